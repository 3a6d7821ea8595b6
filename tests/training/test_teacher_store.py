"""The teacher-logit store: streamed, compact, one copy, memory-mapped."""

from __future__ import annotations

import datasets
import pytest
import torch
from conftest import tiny_bert

from hf_kd import cache_teacher_logits


def _rows(n: int, vocab: int, seed: int = 0, with_mask: bool = True, ragged: bool = True) -> datasets.Dataset:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 10, (n,), generator=g).tolist() if ragged else [8] * n
    ids = [torch.randint(5, vocab, (k,), generator=g).tolist() for k in lengths]
    data = {"input_ids": ids, "labels": [i % 3 for i in range(n)]}
    if with_mask:
        data["attention_mask"] = [[1] * k for k in lengths]
        data["token_type_ids"] = [[0] * k for k in lengths]
    return datasets.Dataset.from_dict(data)


def _plain_logits(teacher, dataset) -> torch.Tensor:
    out = []
    for row in dataset:
        ids = torch.tensor([row["input_ids"]])
        with torch.no_grad():
            out.append(teacher(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0])
    return torch.stack(out)


def test_the_store_keeps_ids_in_the_smallest_type_and_leaves_out_zero_type_ids(tmp_path):
    teacher = tiny_bert(vocab_size=30_522, seed=1).eval()
    data = _rows(40, vocab=30_522)
    cached = cache_teacher_logits(teacher, data, batch_size=8, cache_dir=tmp_path)
    assert cached.features["input_ids"].feature.dtype == "uint16"  # 30,522 ids fit in 16 bits
    assert cached.features["attention_mask"].feature.dtype == "uint8"
    assert "token_type_ids" not in cached.column_names  # all zeros: the models read none as zeros
    assert cached.features["teacher_logits"].feature.dtype == "float32"
    assert cached["input_ids"] == data["input_ids"] and cached["labels"] == data["labels"]
    torch.testing.assert_close(
        torch.tensor(cached["teacher_logits"]), _plain_logits(teacher, data), atol=1e-5, rtol=1e-4
    )
    # Memory-mapped from the store's Arrow files, not held in memory.
    assert cached.cache_files and all(f["filename"].startswith(str(tmp_path)) for f in cached.cache_files)

    # A mask with zeros (pre-padded rows) is kept as it is, and the teacher reads it.
    padded = data.map(lambda row: {"attention_mask": [1] * (len(row["input_ids"]) - 1) + [0]})
    kept = cache_teacher_logits(teacher, padded, batch_size=8, cache_dir=tmp_path)
    assert kept.features["attention_mask"].feature.dtype == "uint8"
    assert kept["attention_mask"] == padded["attention_mask"]
    assert not torch.allclose(torch.tensor(kept["teacher_logits"]), torch.tensor(cached["teacher_logits"]))

    small = cache_teacher_logits(tiny_bert(seed=1).eval(), _rows(10, vocab=64), batch_size=4, cache_dir=tmp_path)
    assert small.features["input_ids"].feature.dtype == "uint8"


def test_float16_logits_are_the_float32_ones_rounded(tmp_path):
    teacher = tiny_bert(seed=2).eval()
    data = _rows(30, vocab=64)
    full = cache_teacher_logits(teacher, data, batch_size=8, cache_dir=tmp_path)
    half = cache_teacher_logits(teacher, data, batch_size=8, cache_dir=tmp_path, logits_dtype="float16")
    assert half.features["teacher_logits"].feature.dtype == "float16"
    assert half._fingerprint != full._fingerprint
    expected = torch.tensor(full["teacher_logits"]).half().float()
    assert torch.equal(torch.tensor(half["teacher_logits"]), expected)
    with pytest.raises(ValueError, match=r"`logits_dtype` must be one of \['float32', 'float16'\], got 'int8'"):
        cache_teacher_logits(teacher, data, logits_dtype="int8")


def test_the_pass_never_holds_more_than_one_chunk_of_rows(tmp_path, monkeypatch):
    teacher = tiny_bert(layers=1, hidden_size=8, seed=3).eval()
    n, chunk = 50_000, 512
    data = _rows(n, vocab=64, with_mask=False, ragged=False)
    data = data.map(lambda b: b, batched=True, cache_file_name=str(tmp_path / "rows.arrow"))  # on disk, as in a run
    held: list[int] = []
    original = datasets.Dataset.__getitem__

    def counting(self, key):
        out = original(self, key)
        if isinstance(out, dict):  # a slice (rows) or a batch of columns
            held.append(max((len(v) for v in out.values()), default=0))
        elif hasattr(out, "num_rows"):  # an Arrow slice
            held.append(out.num_rows)
        elif isinstance(key, str):  # a whole column
            held.append(len(self))
        return out

    monkeypatch.setattr(datasets.Dataset, "__getitem__", counting)
    cached = cache_teacher_logits(teacher, data, batch_size=256, cache_dir=tmp_path / "store", map_batch_size=chunk)
    monkeypatch.undo()
    assert held and max(held) <= chunk, max(held)  # never the whole dataset, never more than one chunk
    assert len(cached) == n
    assert cached.cache_files  # memory-mapped
    sample = cached.select(range(0, n, 9_973))
    torch.testing.assert_close(
        torch.tensor(sample["teacher_logits"]), _plain_logits(teacher, sample), atol=1e-5, rtol=1e-4
    )


def test_the_stored_rows_keep_their_order_and_the_store_is_reused(tmp_path):
    teacher = tiny_bert(seed=4).eval()
    data = _rows(37, vocab=64).shuffle(seed=1)  # an indices mapping, as a subset has
    first = cache_teacher_logits(teacher, data, batch_size=4, cache_dir=tmp_path, map_batch_size=8)
    assert first["input_ids"] == data["input_ids"]
    stores = sorted(p.name for p in tmp_path.iterdir())
    assert len(stores) == 1 and stores[0].startswith("teacher_logits-")
    files = sorted(p.name for p in (tmp_path / stores[0]).iterdir())
    assert files == ["data-00000-of-00001.arrow", "dataset_info.json", "state.json"]  # one copy of the rows
    again = cache_teacher_logits(tiny_bert(seed=4).eval(), data, batch_size=4, cache_dir=tmp_path, map_batch_size=8)
    assert again._fingerprint == first._fingerprint and again["teacher_logits"] == first["teacher_logits"]


def test_the_store_is_written_in_large_record_batches_and_left_unmapped(tmp_path, monkeypatch):
    import os

    import pyarrow as pa
    from conftest import mapped_rss

    from hf_kd.training import teacher_cache

    monkeypatch.setattr(teacher_cache, "_RECORD_BATCH_BYTES", 16 << 10)
    teacher = tiny_bert(seed=3).eval()
    data = _rows(3_000, vocab=64, seed=3)
    cached = cache_teacher_logits(teacher, data, batch_size=64, cache_dir=tmp_path, map_batch_size=128)
    (path,) = [f["filename"] for f in cached.cache_files]
    assert mapped_rss(path) < 0.05 * os.path.getsize(path)  # what loading the store mapped in is released
    with pa.memory_map(path) as source:
        batches = list(pa.ipc.open_stream(source))
    # Chunks of 128 rows joined into batches of 16 KiB or more (the last one excepted), in order.
    assert len(batches) < 3_000 // 128 and all(batch.nbytes >= 16 << 10 for batch in batches[:-1])
    assert sum(batch.num_rows for batch in batches) == 3_000 and cached["input_ids"] == data["input_ids"]
    torch.testing.assert_close(
        torch.tensor(cached["teacher_logits"]), _plain_logits(teacher, data), atol=1e-5, rtol=1e-4
    )
