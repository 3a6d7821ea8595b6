"""The two corpora of the source papers, read from their files in `../shared`: HoC (KDH-MLTC) and CodiEsp (DSG-KD).

Both loaders return a `DatasetDict` with `train`, `validation` and `test` splits and a normalized `labels` column,
like `hf_kd.load_classification_dataset`, and the label names. BLURB's abstract-level scoring of sentence-level HoC
is `hf_kd.evaluation.blurb.blurb_hoc_f1` (the `group` column holds the PMID).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import datasets
from datasets import DatasetDict

from ..constants import CORPUS_LEVELS, IGNORE_INDEX, MULTI_LABEL, SINGLE_LABEL
from .labels import encode_labels, label_feature
from .loading import load_data_files, require_column, require_text_column

__all__ = ["TRIAGE_CHAPTERS", "TRIAGE_LABELS", "load_codiesp", "load_hoc"]


_HOC_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
_HOC_NUM_LABELS = 10
_HOC_LABEL_RE = re.compile(r"^(\d+)_([01])$")
_HOC_INDEX_RE = re.compile(r"^([1-9]\d*)_s(\d+)$")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {str(path)!r}.")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _hoc_label_names(data_dir: Path) -> list[str]:
    names = _read_json(data_dir / "labels.json")
    if isinstance(names, Mapping):
        names = [names[str(i)] for i in range(len(names))]
    if len(names) != _HOC_NUM_LABELS:
        raise ValueError(f"HoC labels.json must list {_HOC_NUM_LABELS} names, found {len(names)}.")
    return [str(n) for n in names]


def _parse_hoc_labels(value: str, split: str, row: int) -> list[float]:
    vector: list[float | None] = [None] * _HOC_NUM_LABELS
    for piece in value.split(","):
        match = _HOC_LABEL_RE.match(piece.strip())
        index = int(match.group(1)) if match else -1
        if not 0 <= index < _HOC_NUM_LABELS or vector[index] is not None:
            raise ValueError(
                f"Malformed HoC label in column 'labels' of split '{split}' (row {row}): expected "
                f"'0_x,1_x,...,9_x' with x in {{0, 1}}."
            )
        vector[index] = float(match.group(2))
    if any(v is None for v in vector):
        raise ValueError(
            f"Malformed HoC label in column 'labels' of split '{split}' (row {row}): expected all "
            f"{_HOC_NUM_LABELS} hallmarks."
        )
    return vector  # type: ignore[return-value]


def _parse_hoc_index(value: str, split: str, row: int) -> tuple[int, int]:
    match = _HOC_INDEX_RE.match(value)
    if not match:
        raise ValueError(
            f"Malformed HoC sentence index in column 'index' of split '{split}' (row {row}): expected '<PMID>_s<k>'."
        )
    return int(match.group(1)), int(match.group(2))


def load_hoc(
    data_dir: str | os.PathLike,
    level: Literal["abstract", "sentence"] = "abstract",
    cache_dir: str | os.PathLike | None = None,
) -> tuple[DatasetDict, list[str]]:
    """Load the Hallmarks of Cancer corpus (BLURB split) as a 10-label multi-label dataset.

    Splits are `train`, `validation` (BLURB `dev`) and `test`. Columns:

    - `level="sentence"` (`blurb_split/{split}.tsv`, one row per sentence, file order kept): `text` (the sentence),
      `labels` (10-dim `float32` multi-hot, parsed from `0_x,1_x,...,9_x`), `group` (the PMID as `int64`, parsed from
      `index` = `<PMID>_s<k>`) and `sentence_index` (`k`). BLURB evaluates per abstract: take the union of the
      sentence predictions of each `group`.
    - `level="abstract"` (`abstract_level_{split}.jsonl`): `text` (the abstract), `labels` (10-dim multi-hot, the union
      of its sentence labels) and `group` (the PMID as `int64`). The derived fields `label_names`, `sentence_labels`
      and `n_sentences` of the files are not loaded.

    Args:
        data_dir (`str` or `os.PathLike`):
            The HoC directory (holding `labels.json`, `blurb_split/` and `abstract_level_*.jsonl`).
        level (`str`, *optional*, defaults to `"abstract"`):
            `"abstract"` or `"sentence"`.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Where `datasets` keeps its cache files of the data (copies of the text); its default cache when None.

    Returns:
        `tuple[datasets.DatasetDict, list[str]]`: The dataset and the 10 hallmark names from `labels.json`.

    Raises:
        `ValueError`: On an unknown `level`, a malformed label string or sentence index (naming split and row), or
            an empty split.
        `FileNotFoundError`: If a file is missing.
    """
    data_dir = Path(data_dir)
    names = _hoc_label_names(data_dir)
    if level == "sentence":
        files = {split: data_dir / "blurb_split" / f"{name}.tsv" for split, name in _HOC_SPLITS.items()}
        raw = load_data_files(files, cache_dir=cache_dir)
        out = {}
        for split, ds in raw.items():
            for column in ("labels", "index"):
                require_column(ds, column, split)
            require_text_column(ds, "sentence", split)
            label_strings = list(ds["labels"])
            indices = list(ds["index"])
            vectors = [_parse_hoc_labels(v, split, row) for row, v in enumerate(label_strings)]
            parsed = [_parse_hoc_index(v, split, row) for row, v in enumerate(indices)]
            ds = ds.remove_columns(["labels", "index"]).rename_column("sentence", "text")
            ds = ds.add_column("labels", vectors, feature=label_feature(MULTI_LABEL))
            ds = ds.add_column("group", [g for g, _ in parsed], feature=datasets.Value("int64"))
            out[split] = ds.add_column("sentence_index", [k for _, k in parsed], feature=datasets.Value("int64"))
        return DatasetDict(out), names
    if level == "abstract":
        files = {split: data_dir / f"abstract_level_{name}.jsonl" for split, name in _HOC_SPLITS.items()}
        raw = load_data_files(files, cache_dir=cache_dir)
        for split, ds in raw.items():
            for column in ("text", "labels", "pmid"):
                require_column(ds, column, split)
        raw = DatasetDict({split: ds.select_columns(["text", "labels", "pmid"]) for split, ds in raw.items()})
        for split, ds in raw.items():
            require_text_column(ds, "text", split)
        dataset, _, _ = encode_labels(raw, "labels", MULTI_LABEL, names, label_format="multi_hot")
        out = {}
        for split, ds in dataset.items():
            pmids = list(ds["pmid"])
            groups = []
            for row, pmid in enumerate(pmids):
                if pmid is None or not re.fullmatch(r"[1-9]\d*", str(pmid)):
                    raise ValueError(f"Malformed PMID in column 'pmid' of split '{split}' (row {row}).")
                groups.append(int(pmid))
            ds = ds.remove_columns("pmid")
            out[split] = ds.add_column("group", groups, feature=datasets.Value("int64"))
        return DatasetDict(out), names
    raise ValueError(f"`level` must be one of {CORPUS_LEVELS['hoc']}, got {level!r}.")


_CODIESP_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
_CODIESP_TEXT_COLUMNS = ("text_es", "text_en_mt")


TRIAGE_LABELS = ("other", "injury_or_external_cause")
"""Label names of CodiEsp's binary triage proxy (`level="triage"`): the positive class is the second."""
TRIAGE_CHAPTERS = (19, 20)
"""ICD-10-CM chapters of the triage proxy: injury, poisoning (S00-T88) and external causes of morbidity (V00-Y99)."""


def load_codiesp(
    data_dir: str | os.PathLike,
    level: Literal["chapter", "triage"] = "chapter",
    include_unlabeled: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[DatasetDict, list[str]]:
    """Load CodiEsp (CLEF eHealth 2020, Spanish clinical cases) as ICD-10-CM chapter or triage-proxy classification.

    Splits are `train`, `validation` (CodiEsp `dev`) and `test`, plus `unlabeled` (the 2,751 background cases of
    `codiesp_background_unlabeled.jsonl`, labels all `-100`) when `include_unlabeled=True`. Columns: `id`, `text_es`
    (Spanish original), `text_en_mt` (English machine translation) and `labels`, a `float32` multi-hot vector over the
    chapters that occur in the train split, in chapter order. The code columns of the files (`icd10_diagnosis`,
    `icd10_procedure`, `diag_cat3`, `diag_chapters`) are not kept. Remove `id` and the text columns before collation.

    `level="triage"` makes a binary task for DSG-KD's emergency triage setting. CodiEsp has no triage label, so the
    label is a proxy: 1 (`injury_or_external_cause`) when the case has a diagnosis code of chapter 19 (injury,
    poisoning) or 20 (external causes), the cases an emergency department sees as trauma; 0 (`other`) otherwise.
    About a fifth of the cases are positive (102 of 500 in train, 56 of 250 in dev, 53 of 250 in test). It is not a
    clinical urgency judgement: a fracture seen months later counts, an acute myocardial infarction does not.

    Args:
        data_dir (`str` or `os.PathLike`):
            The CodiEsp directory (holding `codiesp_{train,dev,test}.jsonl`, `icd10cm_chapters.json` and, for
            `include_unlabeled`, `codiesp_background_unlabeled.jsonl`).
        level (`str`, *optional*, defaults to `"chapter"`):
            `"chapter"` (multi-label ICD-10-CM chapters, from `diag_chapters`; finer levels have codes in the dev/test
            splits that never occur in train) or `"triage"` (the binary proxy above, `int64` labels).
        include_unlabeled (`bool`, *optional*, defaults to `False`):
            Whether to add the `unlabeled` split.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Where `datasets` keeps its cache files of the data (copies of the text); its default cache when None.

    Returns:
        `tuple[datasets.DatasetDict, list[str]]`: The dataset and the chapter names (from `icd10cm_chapters.json`),
        or [`TRIAGE_LABELS`].

    Raises:
        `ValueError`: On an unsupported `level`, a missing column or label, or a chapter of the validation/test
            split that does not occur in train (naming chapter and split).
        `FileNotFoundError`: If a file is missing.
    """
    if level not in CORPUS_LEVELS["codiesp"]:
        raise ValueError(f"`level` must be 'chapter' or 'triage', got {level!r}.")
    data_dir = Path(data_dir)
    chapter_names = _read_json(data_dir / "icd10cm_chapters.json")
    files = {split: data_dir / f"codiesp_{name}.jsonl" for split, name in _CODIESP_SPLITS.items()}
    raw = load_data_files(files, cache_dir=cache_dir)
    for split, ds in raw.items():
        for column in _CODIESP_TEXT_COLUMNS:
            require_text_column(ds, column, split)
        require_column(ds, "id", split)
        require_column(ds, "diag_chapters", split)
    raw = DatasetDict({s: ds.select_columns(["id", *_CODIESP_TEXT_COLUMNS, "diag_chapters"]) for s, ds in raw.items()})
    if level == "triage":

        def triage(chapters: list[list[int]]) -> dict[str, list[int]]:
            return {"labels": [int(bool(set(TRIAGE_CHAPTERS) & set(row))) for row in chapters]}

        features = raw["train"].features.copy()
        del features["diag_chapters"]
        features["labels"] = label_feature(SINGLE_LABEL)
        dataset = raw.map(
            triage, batched=True, input_columns=["diag_chapters"], remove_columns=["diag_chapters"], features=features
        )
        names = list(TRIAGE_LABELS)
    else:
        dataset, chapters, _ = encode_labels(raw, "diag_chapters", MULTI_LABEL, label_format="multi_values")
        names = []
        for chapter in chapters:
            if str(chapter) not in chapter_names:
                raise ValueError(f"Chapter {chapter!r} is not in icd10cm_chapters.json.")
            names.append(str(chapter_names[str(chapter)]))
    if include_unlabeled:
        background = {"unlabeled": data_dir / "codiesp_background_unlabeled.jsonl"}
        unlabeled = load_data_files(background, cache_dir=cache_dir)["unlabeled"]
        for column in _CODIESP_TEXT_COLUMNS:
            require_text_column(unlabeled, column, "unlabeled")
        require_column(unlabeled, "id", "unlabeled")
        unlabeled = unlabeled.select_columns(["id", *_CODIESP_TEXT_COLUMNS])
        missing = IGNORE_INDEX if level == "triage" else [float(IGNORE_INDEX)] * len(names)
        problem = SINGLE_LABEL if level == "triage" else MULTI_LABEL
        unlabeled = unlabeled.add_column("labels", [missing] * len(unlabeled), feature=label_feature(problem))
        dataset["unlabeled"] = unlabeled
    return dataset, names
