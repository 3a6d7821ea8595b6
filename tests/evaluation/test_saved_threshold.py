"""The operating threshold travels with the model: one save/load pair beside the threshold rules."""

from __future__ import annotations

import json

import pytest
from transformers import BertConfig

from hf_kd.constants import BINARY, THRESHOLD_KEY, task_of_config
from hf_kd.evaluation.thresholds import save_threshold, saved_threshold
from hf_kd.pipeline.evaluation import saved_threshold as old_path


def test_a_saved_threshold_reads_back_from_the_config_and_from_the_folder(tmp_path):
    config = BertConfig(num_labels=2)
    assert saved_threshold(config) is None and saved_threshold(tmp_path) is None  # none saved, no config.json
    save_threshold(config, 0.125)
    config.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())[THRESHOLD_KEY] == 0.125
    assert saved_threshold(config) == saved_threshold(tmp_path) == saved_threshold(str(tmp_path)) == 0.125
    assert task_of_config(BertConfig.from_pretrained(tmp_path)) == BINARY  # a 2-label head with a threshold
    assert old_path is saved_threshold  # `hf_kd.pipeline.evaluation.saved_threshold` still imports


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "0.5", True])
def test_a_threshold_outside_0_1_is_refused_naming_it(bad):
    config = BertConfig(num_labels=2)
    with pytest.raises(ValueError, match="operating threshold"):
        save_threshold(config, bad)
    assert saved_threshold(config) is None
