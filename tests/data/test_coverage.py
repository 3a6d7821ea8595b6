"""The unknown-token check: fires on text the tokenizer cannot read, stays silent on text it can, names the tokenizer,
the split and the rate (never the text), and runs before any training."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import MINILM, make_tokenizer
from transformers import Trainer

from hf_kd.data.coverage import check_unknown_rates, unknown_token_rate
from hf_kd.pipeline.run import run_pipeline
from hf_kd.recipe.config import DistillationPipelineConfig

CHINESE = ["胸痛三天伴发热", "腹痛的治疗方法有哪些", "咳嗽咳痰一周"]
ENGLISH = ["chest pain for three days with fever", "what are the treatments of abdominal pain", "cough for a week"]


def test_rate_is_the_share_of_unknown_tokens_against_a_hand_count(tmp_path):
    tokenizer = make_tokenizer(tmp_path / "tok")  # knows "the patient fever ..." only
    texts = ["the patient zzz", "fever qqq qqq cough"]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    expected = sum(i.count(tokenizer.unk_token_id) for i in ids) / sum(len(i) for i in ids)
    assert unknown_token_rate(tokenizer, texts) == pytest.approx(expected)
    assert expected == pytest.approx(3 / 7)
    assert unknown_token_rate(tokenizer, ["the patient fever"]) == 0.0
    assert unknown_token_rate(tokenizer, []) is None


def test_the_english_minilm_tokenizer_cannot_read_chinese_and_can_read_english():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    assert unknown_token_rate(tokenizer, CHINESE) > 0.3
    assert unknown_token_rate(tokenizer, ENGLISH) == 0.0


def test_sampling_is_seeded_and_bounded(tmp_path):
    tokenizer = make_tokenizer(tmp_path / "tok")
    texts = ["the patient"] * 50 + ["zzz"] * 50
    a = unknown_token_rate(tokenizer, texts, sample_size=10, seed=1)
    assert a == unknown_token_rate(tokenizer, texts, sample_size=10, seed=1)
    assert 0 < a < 1


def test_check_warns_above_one_percent_and_refuses_above_the_field_without_text(caplog):
    rates = {"teacher tokenizer (some/model)": {"train": 0.05, "transfer set": None}}
    with caplog.at_level(logging.WARNING):
        check_unknown_rates(rates, max_rate=0.1)
    assert "teacher tokenizer (some/model) reads 5.0% of the tokens of the train text" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_unknown_rates({"t": {"train": 0.005}}, max_rate=0.1)
    assert caplog.text == ""
    with pytest.raises(
        ValueError, match=r"reads 50\.0% of the tokens of the transfer set.*`data.max_unknown_rate` \(10%\)"
    ):
        check_unknown_rates({"t": {"transfer set": 0.5}}, max_rate=0.1)


def test_a_run_on_text_its_teacher_cannot_read_is_refused_before_any_training(recipe, tmp_path, monkeypatch):
    data = tmp_path / "zh"
    data.mkdir()
    for split, n in (("train", 24), ("validation", 8)):
        rows = [{"text": f"{CHINESE[i % 3]} fever", "labels": ["fever"] if i % 2 else ["cough"]} for i in range(n)]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    recipe["data"]["path"] = str(data)
    trained = []
    monkeypatch.setattr(Trainer, "train", lambda self, *a, **k: trained.append(1))
    with pytest.raises(
        ValueError, match=r"teacher tokenizer \(.*teacher_base\) reads .*% of the tokens of the train"
    ) as error:
        run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    assert trained == [] and "胸" not in str(error.value)
    # Raised on purpose, the run goes on, and the report records the rates.
    recipe["data"]["max_unknown_rate"] = 1.0
    monkeypatch.undo()
    result = run_pipeline(DistillationPipelineConfig.from_dict(recipe))
    rates = result["report"]["extra"]["unknown_token_rate"]
    assert rates["teacher"]["train"] > 0.1 and rates["teacher"]["transfer set"] is None
    report = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "Unknown-token rate (teacher tokenizer: train" in report
