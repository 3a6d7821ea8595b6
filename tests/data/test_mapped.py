"""Sequential passes over memory-mapped datasets: resident pages released, data unchanged."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from hf_kd.data.mapped import PageRelease, release_mapped_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")


def _file_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssFile in /proc/self/status")


def _big(tmp_path: Path) -> datasets.Dataset:
    rows = np.random.default_rng(0).integers(0, 30_000, (20_000, 256)).tolist()  # a file of about 20 MB
    return datasets.Dataset.from_dict({"input_ids": rows}).map(
        lambda b: b, batched=True, cache_file_name=str(tmp_path / "big.arrow")
    )


def test_released_pages_leave_the_resident_memory_and_the_data_reads_the_same(tmp_path):
    data = _big(tmp_path)
    files = [f["filename"] for f in data.cache_files]
    release_mapped_pages(files)  # whatever writing the file left mapped
    before_read = _file_rss()
    first = [sum(map(sum, b["input_ids"])) for b in data.with_format("numpy").iter(batch_size=2_000)]
    read = _file_rss()
    size = os.path.getsize(files[0])
    assert read - before_read > 0.8 * size  # reading mapped the file's pages in
    assert release_mapped_pages(files) >= size and read - _file_rss() > 0.8 * size
    again = [sum(map(sum, b["input_ids"])) for b in data.with_format("numpy").iter(batch_size=2_000)]
    assert again == first  # faulted in again from the file: the same values
    assert release_mapped_pages([str(tmp_path / "not-mapped.arrow")]) == 0


def test_a_pass_with_page_release_keeps_the_file_pages_bounded(tmp_path):
    data = _big(tmp_path)
    release_mapped_pages([f["filename"] for f in data.cache_files])
    start, peak = _file_rss(), 0
    release = PageRelease([data], every_bytes=4 << 20)
    for table in data.with_format("arrow").iter(batch_size=1_000):
        release.read(table.nbytes)
        peak = max(peak, _file_rss() - start)
    assert peak < 0.5 * os.path.getsize(data.cache_files[0]["filename"])  # about every_bytes and a batch
    assert PageRelease([datasets.Dataset.from_dict({"a": [1]})]).paths == []  # in memory: nothing to release


def test_the_training_callback_releases_the_pages_every_few_steps(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from hf_kd.data.mapped import ReleaseMappedPagesCallback

    data = _big(tmp_path)
    callback = ReleaseMappedPagesCallback([data], every_steps=10)
    args, state = TrainingArguments(str(tmp_path / "out"), report_to=[]), TrainerState()
    size = os.path.getsize(data.cache_files[0]["filename"])
    first = [sum(map(sum, b["input_ids"])) for b in data.with_format("numpy").iter(batch_size=2_000)]
    resident = _file_rss()
    state.global_step = 9
    callback.on_step_end(args, state, TrainerControl())
    assert resident - _file_rss() < 0.2 * size  # not a release step: the pages stay
    state.global_step = 10
    callback.on_step_end(args, state, TrainerControl())
    assert resident - _file_rss() > 0.8 * size  # released
    assert [sum(map(sum, b["input_ids"])) for b in data.with_format("numpy").iter(batch_size=2_000)] == first
    with pytest.raises(ValueError, match="every_steps.*0"):
        ReleaseMappedPagesCallback([data], every_steps=0)


def test_text_types_are_unified_by_casting_the_smaller_part_and_its_pages_are_released(tmp_path):
    from datasets import Value

    from hf_kd.pipeline.splits import same_text_types

    words = [" ".join(f"w{(i * 7 + j) % 997}" for j in range(200)) for i in range(20_000)]  # about 20 MB of text
    mapped = datasets.Dataset.from_dict({"text": words}).map(
        lambda b: b, batched=True, cache_file_name=str(tmp_path / "mapped.arrow")
    )
    source = mapped.cache_files[0]["filename"]
    one = datasets.Dataset.from_dict({"text": ["x"]}).cast_column("text", Value("large_string"))
    kept, cast = same_text_types([mapped, one])  # the 20k-row part sets the type: only the 1-row part is cast
    assert kept.cache_files == mapped.cache_files and cast.features["text"] == Value("string")
    more = datasets.Dataset.from_dict({"text": ["y"] * 30_000}).cast_column("text", Value("large_string"))
    release_mapped_pages([source])
    before = _file_rss()
    cast, _ = same_text_types([mapped, more])  # now the mapped part is the smaller one
    assert cast.features["text"] == Value("large_string") and cast["text"] == words
    release_mapped_pages([f["filename"] for f in cast.cache_files])  # leave only what the cast left of the source
    assert _file_rss() - before < 0.2 * os.path.getsize(source)


def test_tokenizing_releases_the_text_pages_it_has_read(tmp_path, monkeypatch):
    from conftest import WORDS, make_tokenizer

    from hf_kd.data import loading
    from hf_kd.data.loading import tokenize_for_distillation

    words = list(WORDS)
    texts = [" ".join(words[(i * 7 + j) % len(words)] for j in range(60)) for i in range(30_000)]  # about 10 MB
    data = datasets.Dataset.from_dict({"text": texts}).map(
        lambda b: b, batched=True, cache_file_name=str(tmp_path / "text.arrow")
    )
    source = data.cache_files[0]["filename"]
    size = os.path.getsize(source)
    tokenizer = make_tokenizer(tmp_path / "tok")
    monkeypatch.setattr(loading, "_TEXT_RELEASES", {(source,): PageRelease([], every_bytes=1 << 20, paths=[source])})

    def source_rss() -> int:  # this process's resident pages of `source`, from /proc/self/smaps
        total, inside = 0, False
        for line in Path("/proc/self/smaps").read_text().splitlines():
            if line[:1].isdigit() or line[:1] in "abcdef":
                inside = line.rstrip().endswith(os.path.realpath(source))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1]) * 1024
        return total

    release_mapped_pages([source])
    tokenized = tokenize_for_distillation(data, tokenizer, max_length=16)
    assert source_rss() < 0.3 * size  # released every MiB of text read (without: the whole file stays resident)
    assert tokenized[123]["input_ids"] == tokenizer(texts[123], truncation=True, max_length=16)["input_ids"]
    # Written in record batches of 4,000 rows (the last one shorter), and what loading them mapped in is released.
    import pyarrow as pa
    from conftest import mapped_rss

    (written,) = [f["filename"] for f in tokenized.cache_files]
    assert mapped_rss(written) < 0.05 * os.path.getsize(written)
    with pa.memory_map(written) as stream:
        assert [batch.num_rows for batch in pa.ipc.open_stream(stream)] == [4_000] * 7 + [2_000]
    other = data.map(lambda b: b, batched=True, cache_file_name=str(tmp_path / "other.arrow"))  # the same text
    source = other.cache_files[0]["filename"]
    release_mapped_pages([source])
    tokenize_for_distillation(other, tokenizer, max_length=16)  # the default: one release every 64 MiB of text
    assert source_rss() > 0.7 * size  # 10 MB read, none released: the pages stay


def test_hidden_labels_are_written_in_large_record_batches_and_left_unmapped(tmp_path):
    import pyarrow as pa
    from conftest import mapped_rss
    from datasets import List, Value

    from hf_kd.data.unlabeled import hide_labels

    notes = [f"note {i}" for i in range(60_000)]
    text = datasets.Dataset.from_dict({"text": notes}).map(
        lambda b: b, batched=True, cache_file_name=str(tmp_path / "text.arrow")
    )
    hidden = hide_labels(text, List(Value("float32")), 10)
    (path,) = {f["filename"] for f in hidden.cache_files} - {f["filename"] for f in text.cache_files}
    # Loading the labels' file read every record batch's header; none of its pages is left resident.
    assert mapped_rss(path) < 0.02 * os.path.getsize(path)
    with pa.memory_map(path) as source:
        assert [batch.num_rows for batch in pa.ipc.open_stream(source)] == [10_000] * 6  # not 60 of 1,000
    assert hidden["text"] == notes and hidden.features["labels"] == List(Value("float32"))
    assert (np.asarray(hidden["labels"]) == -100).all() and len(hidden) == 60_000


def test_a_loaded_data_file_is_copied_in_large_record_batches_and_left_unmapped(tmp_path):
    import json

    import pyarrow as pa
    from conftest import mapped_rss

    from hf_kd.data.loading import load_data_files

    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"text": f"note {i} " * 20}) + "\n" for i in range(25_000)))
    loaded = load_data_files({"unlabeled": str(notes)}, cache_dir=str(tmp_path / "cache"))["unlabeled"]
    (copy,) = [f["filename"] for f in loaded.cache_files]
    assert mapped_rss(copy) < 0.05 * os.path.getsize(copy)  # loading the copy mapped its pages in: released
    with pa.memory_map(copy) as stream:
        sizes = [batch.num_rows for batch in pa.ipc.open_stream(stream)]
    assert sum(sizes) == 25_000 and max(sizes) == 10_000 and len(sizes) <= 4  # not 25 batches of 1,000 rows
    assert loaded[24_999]["text"] == "note 24999 " * 20
