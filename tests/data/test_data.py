"""Tests for `hf_kd.data.loading`: loading and label normalization, HoC/CodiEsp loaders, tokenization and collation."""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from transformers import AutoTokenizer, BertTokenizerFast, BertTokenizerLegacy

from hf_kd.data.alignment import same_tokenization
from hf_kd.data.collator import DistillationDataCollator
from hf_kd.data.corpora import load_codiesp, load_hoc
from hf_kd.data.loading import load_classification_dataset, tokenize_for_distillation

SHARED = Path(__file__).parents[2] / ".." / "shared"
HOC_DIR = SHARED / "data" / "hoc"
CODIESP_DIR = SHARED / "data" / "codiesp"
MINILM_DIR = SHARED / "models" / "all-MiniLM-L6-v2"

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
STUDENT_WORDS = ["hello", "world", "the", "cancer", "cell", "##s", "tumor", "growth"]
# The teacher splits words differently and puts [PAD] at id 4, so padding values reveal which side was padded how.
TEACHER_SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "[PAD]"]
TEACHER_WORDS = ["hello", "world", "can", "##cer", "cells", "cell", "the", "tu", "##mor", "growth"]
SECRET = "patient zeta confidential"


def build_tokenizer(folder: Path, words: list[str], specials: list[str] = SPECIALS, **kwargs) -> BertTokenizerFast:
    """A real fast WordPiece tokenizer from a vocabulary file.

    In transformers v5 `BertTokenizerFast(vocab_file=...)` ignores the file and builds a 5-token vocabulary; the
    vocabulary must be passed as `vocab=`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join([*specials, *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(path), **kwargs)
    assert len(tokenizer.get_vocab()) == len(specials) + len(words)
    return tokenizer


@pytest.fixture
def student_tok(tmp_path: Path) -> BertTokenizerFast:
    return build_tokenizer(tmp_path / "student", STUDENT_WORDS)


@pytest.fixture
def teacher_tok(tmp_path: Path) -> BertTokenizerFast:
    return build_tokenizer(tmp_path / "teacher", TEACHER_WORDS, TEACHER_SPECIALS)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_table(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    """CSV with standard quoting, or TSV as a plain tab-joined file (no quoting, like the HoC files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if delimiter == "\t":
        lines = ["\t".join(rows[0])] + ["\t".join(str(v) for v in row.values()) for row in rows]
        path.write_text("\n".join(lines) + "\n")
        return path
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def load_rows(tmp_path: Path, train: list, test: list | None = None, name: str = "d", **kwargs):
    """Write the label values (with dummy texts) to JSONL files and load them."""
    files = {
        "train": write_jsonl(
            tmp_path / name / "train.jsonl", [{"text": f"t{i}", "labels": v} for i, v in enumerate(train)]
        )
    }
    if test is not None:
        files["test"] = write_jsonl(
            tmp_path / name / "test.jsonl", [{"text": f"u{i}", "labels": v} for i, v in enumerate(test)]
        )
    return load_classification_dataset(files, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# File formats
# ---------------------------------------------------------------------------------------------------------------------

ROWS = [
    {"text": "hello world", "labels": "b"},
    {"text": "NA", "labels": "a"},  # must stay text, not become a missing value
    {"text": '"quoted start and a, comma', "labels": "c"},
    {"text": "null", "labels": "b"},
]


@pytest.mark.parametrize("extension", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_file_format_round_trip(tmp_path: Path, extension: str) -> None:
    files = {}
    for split, rows in (("train", ROWS), ("test", ROWS[::-1])):
        path = tmp_path / f"{split}.{extension}"
        if extension in ("csv", "tsv"):
            write_table(path, rows, "," if extension == "csv" else "\t")
        elif extension in ("jsonl", "json"):
            write_jsonl(path, rows)
        else:
            Dataset.from_list(rows).to_parquet(str(path))
        files[split] = str(path)
    dataset, names = load_classification_dataset(files)
    assert names == ["a", "b", "c"]
    assert list(dataset) == ["train", "test"]
    assert list(dataset["train"]["text"]) == [r["text"] for r in ROWS]
    assert list(dataset["train"]["labels"]) == [1, 0, 2, 1]
    assert list(dataset["test"]["text"]) == [r["text"] for r in ROWS[::-1]]
    assert list(dataset["test"]["labels"]) == [1, 2, 0, 1]
    assert dataset["train"].features["labels"] == Value("int64")


def test_directory_source_uses_datasets_split_patterns(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "corpus" / "train.jsonl", [{"text": "x", "labels": 1}, {"text": "y", "labels": 0}])
    write_jsonl(tmp_path / "corpus" / "dev.jsonl", [{"text": "z", "labels": 1}])
    (tmp_path / "corpus" / "README.md").write_text("not data")
    dataset, names = load_classification_dataset(tmp_path / "corpus")
    assert sorted(dataset) == ["train", "validation"]
    assert list(dataset["validation"]["labels"]) == [1]
    assert names == ["0", "1"]


def test_single_file_is_train_and_splits_selects(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "all.jsonl", [{"text": "x", "labels": "pos"}, {"text": "y", "labels": "neg"}])
    dataset, names = load_classification_dataset(path)
    assert list(dataset) == ["train"] and names == ["neg", "pos"]
    assert list(dataset["train"]["labels"]) == [1, 0]
    with pytest.raises(ValueError, match="'validation'.*available splits: \\['train'\\]"):
        load_classification_dataset(path, splits=["train", "validation"])


def test_mixed_extensions_in_one_split_are_refused(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": "x", "labels": 0}])
    b = Dataset.from_list([{"text": "y", "labels": 1}]).to_parquet(str(tmp_path / "b.parquet"))
    assert b
    with pytest.raises(ValueError, match="'train' mixes file types"):
        load_classification_dataset({"train": [a, tmp_path / "b.parquet"]})


def test_missing_paths_and_bad_extensions(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_classification_dataset({"train": tmp_path / "missing.csv"})
    with pytest.raises(FileNotFoundError):
        load_classification_dataset(str(tmp_path / "nowhere.jsonl"))  # must not be taken for a Hub id
    (tmp_path / "data.txt").write_text("x\n")
    with pytest.raises(ValueError, match="extension '.txt'"):
        load_classification_dataset({"train": tmp_path / "data.txt"})


# ---------------------------------------------------------------------------------------------------------------------
# Label formats
# ---------------------------------------------------------------------------------------------------------------------


def test_single_label_int_ids_keep_ids_and_unlabeled(tmp_path: Path) -> None:
    dataset, names = load_rows(tmp_path, [2, 0, -100, 1], [1, -100])
    assert names == ["0", "1", "2"]
    assert list(dataset["train"]["labels"]) == [2, 0, -100, 1]
    assert list(dataset["test"]["labels"]) == [1, -100]
    with pytest.raises(ValueError, match="Unknown label 3 .*split 'test'"):
        load_rows(tmp_path, [2, 0, 1], [3], name="e")
    with pytest.raises(ValueError, match="Negative label -1 .*split 'train' \\(row 1\\)"):
        load_rows(tmp_path, [0, -1], name="f")


def test_single_label_ids_with_label_names(tmp_path: Path) -> None:
    dataset, names = load_rows(tmp_path, [0, 1], [2], label_names=["neg", "pos", "neutral"])
    assert names == ["neg", "pos", "neutral"]
    assert list(dataset["test"]["labels"]) == [2]
    with pytest.raises(ValueError, match="Unknown label 3 .*split 'test'"):
        load_rows(tmp_path, [0, 1], [3], name="e", label_names=["neg", "pos", "neutral"])


def test_single_label_names_sorted_from_train_and_unknown_in_test(tmp_path: Path) -> None:
    dataset, names = load_rows(tmp_path, ["flu", "covid", "flu", "asthma"], ["covid"])
    assert names == ["asthma", "covid", "flu"]
    assert list(dataset["train"]["labels"]) == [2, 1, 2, 0]
    assert list(dataset["test"]["labels"]) == [1]
    with pytest.raises(ValueError, match="Unknown label 'measles' .*split 'test'"):
        load_rows(tmp_path, ["flu", "covid"], ["measles"], name="e")
    # Given names fix the order, and unknown train labels are errors too.
    dataset, names = load_rows(tmp_path, ["flu", "covid"], name="g", label_names=["flu", "covid"])
    assert list(dataset["train"]["labels"]) == [0, 1]
    with pytest.raises(ValueError, match="Unknown label 'covid' .*split 'train'"):
        load_rows(tmp_path, ["flu", "covid"], name="h", label_names=["flu"])


def test_integral_floats_are_single_label_and_other_floats_regression(tmp_path: Path) -> None:
    dataset, names = load_rows(tmp_path, [1.0, 0.0, 2.0])
    assert list(dataset["train"]["labels"]) == [1, 0, 2] and names == ["0", "1", "2"]
    dataset, names = load_rows(tmp_path, [0.5, 1.25, 3.0], name="r")
    assert dataset["train"].features["labels"] == Value("float32")
    assert list(dataset["train"]["labels"]) == [0.5, 1.25, 3.0] and names == []
    with pytest.raises(ValueError, match="Label 0.5 .*split 'train' \\(row 0\\).*not an integer"):
        load_rows(tmp_path, [0.5, 1.0], name="s", problem_type="single_label_classification")
    dataset, _ = load_rows(tmp_path, [1, 3], name="t", problem_type="regression")
    assert dataset["train"].features["labels"] == Value("float32")
    assert list(dataset["train"]["labels"]) == [1.0, 3.0]


def test_multi_hot_vectors(tmp_path: Path) -> None:
    dataset, names = load_rows(tmp_path, [[1, 0, 1], [0, 0, 0], [-100, -100, -100]], [[0, 1, 0]])
    assert names == ["0", "1", "2"]
    assert dataset["train"].features["labels"].feature == Value("float32")
    assert list(dataset["train"]["labels"]) == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [-100.0] * 3]
    assert list(dataset["test"]["labels"]) == [[0.0, 1.0, 0.0]]
    dataset, names = load_rows(tmp_path, [[0.0, 1.0], [0.25, 0.75]], name="soft", label_names=["a", "b"])
    assert names == ["a", "b"] and list(dataset["train"]["labels"])[1] == [0.25, 0.75]
    with pytest.raises(ValueError, match="value -100.0 .*split 'train' \\(row 1\\)"):
        load_rows(tmp_path, [[1.0, 0.0], [-100.0, 1.0]], name="partial")
    with pytest.raises(ValueError, match="different lengths"):
        load_rows(tmp_path, [[1.0, 0.0], [0.0, 1.0, 0.0]], name="ragged")
    with pytest.raises(ValueError, match="2 entries but 3 label names"):
        load_rows(tmp_path, [[1.0, 0.0]], name="names", label_names=["a", "b", "c"])


def test_multi_label_lists_of_names(tmp_path: Path) -> None:
    dataset, names = load_rows(tmp_path, [["fever", "cough"], [], ["asthma"]], [["cough"]])
    assert names == ["asthma", "cough", "fever"]
    assert list(dataset["train"]["labels"]) == [[0.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    assert list(dataset["test"]["labels"]) == [[0.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match="Unknown label 'rash' .*split 'test' \\(row 0\\)"):
        load_rows(tmp_path, [["fever"]], [["rash", "fever"]], name="e")


def test_multi_label_lists_of_ids(tmp_path: Path) -> None:
    dataset, names = load_rows(tmp_path, [[0, 3], [1], []], [[2, 3]])
    assert names == ["0", "1", "2", "3"]
    assert list(dataset["train"]["labels"]) == [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0], [0.0] * 4]
    assert list(dataset["test"]["labels"]) == [[0.0, 0.0, 1.0, 1.0]]
    with pytest.raises(ValueError, match="Unknown label 4 .*split 'test'"):
        load_rows(tmp_path, [[0, 3], [1]], [[4]], name="e")


def test_delimited_strings_in_csv(tmp_path: Path) -> None:
    rows = [{"text": "a", "codes": "fever; cough"}, {"text": "b", "codes": "cough"}, {"text": "c", "codes": "asthma"}]
    path = write_table(tmp_path / "train.csv", rows)
    test = write_table(tmp_path / "test.csv", [{"text": "d", "codes": "cough;fever"}])
    dataset, names = load_classification_dataset(
        {"train": path, "test": test}, label_column="codes", label_delimiter=";"
    )
    assert names == ["asthma", "cough", "fever"]
    assert "codes" not in dataset["train"].column_names
    assert list(dataset["train"]["labels"]) == [[0.0, 1.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    assert list(dataset["test"]["labels"]) == [[0.0, 1.0, 1.0]]


def test_scalar_labels_as_multi_label_become_one_hot(tmp_path: Path) -> None:
    dataset, names = load_rows(tmp_path, ["b", "a"], problem_type="multi_label_classification")
    assert names == ["a", "b"]
    assert list(dataset["train"]["labels"]) == [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match="multi-label.*single_label_classification"):
        load_rows(tmp_path, [["a"], ["b"]], name="e", problem_type="single_label_classification")


def test_class_label_feature_keeps_its_order_and_minus_one_is_unlabeled(tmp_path: Path) -> None:
    features = Features({"text": Value("string"), "labels": ClassLabel(names=["zeta", "alpha"])})
    Dataset.from_dict({"text": ["x", "y", "z"], "labels": [1, 0, -1]}, features=features).to_parquet(
        str(tmp_path / "train.parquet")
    )
    dataset, names = load_classification_dataset({"train": tmp_path / "train.parquet"})
    assert names == ["zeta", "alpha"]  # not re-sorted
    assert list(dataset["train"]["labels"]) == [1, 0, -100]


def test_label_column_renamed_and_other_columns_kept(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"text": "x", "y": "a", "note_id": 7}])
    dataset, _ = load_classification_dataset({"train": path}, label_column="y")
    assert dataset["train"].column_names == ["text", "note_id", "labels"]
    clash = write_jsonl(tmp_path / "clash.jsonl", [{"text": "x", "y": "a", "labels": 1}])
    with pytest.raises(ValueError, match="already has a 'labels' column"):
        load_classification_dataset({"train": clash}, label_column="y")


# ---------------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------------


def test_missing_column_names_it_and_lists_available(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"body": SECRET, "labels": 0}])
    with pytest.raises(ValueError, match="Column 'text' not found in split 'train'.*\\['body', 'labels'\\]"):
        load_classification_dataset({"train": path})
    with pytest.raises(ValueError, match="Column 'label' not found"):
        load_classification_dataset({"train": path}, text_column="body", label_column="label")
    with pytest.raises(ValueError, match="Column 'text_en' not found"):
        load_classification_dataset({"train": path}, text_column="body", teacher_text_column="text_en")


def test_empty_split_is_named(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "x", "labels": 0}])
    (tmp_path / "test.csv").write_text("text,labels\n")
    with pytest.raises(ValueError, match="Split 'test' is empty"):
        load_classification_dataset({"train": train, "test": tmp_path / "test.csv"})


def test_missing_labels_name_column_split_and_row_without_text(tmp_path: Path) -> None:
    rows = [{"text": "ok", "dx": "a"}, {"text": SECRET, "dx": ""}]
    path = write_table(tmp_path / "train.csv", rows)
    with pytest.raises(ValueError, match="column 'dx' of split 'train' at row 1") as error:
        load_classification_dataset({"train": path}, label_column="dx")
    assert SECRET not in str(error.value)
    for name, value in (("none", None), ("nan", float("nan")), ("inner", [1, None])):
        rows = [{"text": "ok", "labels": 1 if name != "inner" else [1, 0]}, {"text": SECRET, "labels": value}]
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # json.dumps writes NaN
        with pytest.raises(ValueError, match="column 'labels' of split 'valid' at row 1") as error:
            load_classification_dataset({"train": write_jsonl(tmp_path / "t.jsonl", rows[:1]), "valid": path})
        assert SECRET not in str(error.value)


def test_missing_text_is_reported_without_content(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [{"text": SECRET, "labels": 0}, {"text": None, "labels": 1}])
    with pytest.raises(ValueError, match="Missing text in column 'text' of split 'train' at row 1") as error:
        load_classification_dataset({"train": path})
    assert SECRET not in str(error.value)


def test_label_names_needed_without_train_split(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "test.jsonl", [{"text": "x", "labels": "a"}])
    with pytest.raises(ValueError, match="no 'train' split"):
        load_classification_dataset({"test": path})
    dataset, names = load_classification_dataset({"test": path}, label_names=["b", "a"])
    assert names == ["b", "a"] and list(dataset["test"]["labels"]) == [1]


def test_invalid_arguments_and_inconsistent_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="problem_type"):
        load_rows(tmp_path, [0, 1], name="a", problem_type="multiclass")
    with pytest.raises(ValueError, match="duplicates"):
        load_rows(tmp_path, [0, 1], name="b", label_names=["x", "x"])
    with pytest.raises(ValueError, match="mixes lists and scalars"):
        load_rows(tmp_path, [[0, 1]], [1], name="c")
    with pytest.raises(ValueError, match="names, incompatible with problem_type='regression'"):
        load_rows(tmp_path, ["a", "b"], name="d", problem_type="regression")
    with pytest.raises(ValueError, match="label column 'text' is also a text column"):
        load_rows(tmp_path, ["a", "b"], name="e", label_column="text")


# ---------------------------------------------------------------------------------------------------------------------
# HoC
# ---------------------------------------------------------------------------------------------------------------------

HOC_NAMES = [f"hallmark {i}" for i in range(10)]


def hoc_label(*on: int) -> str:
    return ",".join(f"{i}_{int(i in on)}" for i in range(10))


def write_hoc(root: Path, train_rows: list[tuple[str, str, str]] | None = None) -> Path:
    (root / "blurb_split").mkdir(parents=True)
    (root / "labels.json").write_text(json.dumps(HOC_NAMES))
    train_rows = train_rows or [
        (hoc_label(), '"Quoted start of a sentence', "111_s0"),
        (hoc_label(3, 7), "Second sentence .", "111_s1"),
        (hoc_label(7), "Other abstract .", "222_s0"),
    ]
    splits = {"train": train_rows, "dev": [(hoc_label(0), "Dev sentence .", "333_s0")]}
    splits["test"] = [(hoc_label(9), "Test sentence .", "444_s0"), (hoc_label(), "NA", "444_s1")]
    for split, rows in splits.items():
        lines = ["labels\tsentence\tindex"] + ["\t".join(r) for r in rows]
        (root / "blurb_split" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
        by_pmid: dict[str, list] = defaultdict(list)
        for labels, sentence, index in rows:
            by_pmid[index.split("_")[0]].append((labels, sentence))
        records = []
        for pmid, sentences in by_pmid.items():
            vector = [max(int(s[0][4 * i + 2]) if len(s[0]) == 39 else 0 for s in sentences) for i in range(10)]
            records.append(
                {
                    "pmid": pmid,
                    "text": " ".join(s[1] for s in sentences),
                    "labels": vector,
                    "label_names": [],
                    "sentence_labels": [],
                    "n_sentences": len(sentences),
                }
            )
        write_jsonl(root / f"abstract_level_{split}.jsonl", records)
    return root


def test_hoc_sentence_level_synthetic(tmp_path: Path) -> None:
    dataset, names = load_hoc(write_hoc(tmp_path / "hoc"), level="sentence")
    assert names == HOC_NAMES
    assert list(dataset) == ["train", "validation", "test"]
    train = dataset["train"]
    assert train.column_names == ["text", "labels", "group", "sentence_index"]
    assert list(train["text"]) == ['"Quoted start of a sentence', "Second sentence .", "Other abstract ."]
    assert list(train["group"]) == [111, 111, 222]
    assert list(train["sentence_index"]) == [0, 1, 0]
    expected = [[0.0] * 10, [0.0] * 10, [0.0] * 10]
    expected[1][3] = expected[1][7] = expected[2][7] = 1.0
    assert list(train["labels"]) == expected
    assert list(dataset["test"]["text"]) == ["Test sentence .", "NA"]


def test_hoc_abstract_level_synthetic(tmp_path: Path) -> None:
    dataset, names = load_hoc(write_hoc(tmp_path / "hoc"))
    assert names == HOC_NAMES
    train = dataset["train"]
    assert train.column_names == ["text", "labels", "group"]
    assert list(train["group"]) == [111, 222]
    assert list(train["labels"])[0] == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((hoc_label(1)[:-4], "s", "1_s0"), "Malformed HoC label .*split 'train' \\(row 0\\)"),
        (("0_1,0_1,2_0,3_0,4_0,5_0,6_0,7_0,8_0,9_0", "s", "1_s0"), "Malformed HoC label"),
        ((hoc_label().replace("4_0", "4_2"), "s", "1_s0"), "Malformed HoC label"),
        ((hoc_label(), "s", "1-s0"), "Malformed HoC sentence index in column 'index' of split 'train' \\(row 0\\)"),
    ],
)
def test_hoc_malformed_rows(tmp_path: Path, row: tuple[str, str, str], message: str) -> None:
    root = write_hoc(tmp_path / "hoc", [row])
    with pytest.raises(ValueError, match=message):
        load_hoc(root, level="sentence")


def test_hoc_bad_level(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one of \\('abstract', 'sentence'\\), got 'document'"):
        load_hoc(write_hoc(tmp_path / "hoc"), level="document")  # type: ignore[arg-type]


@pytest.mark.slow
def test_hoc_real_files() -> None:
    sentences, names = load_hoc(HOC_DIR, level="sentence")
    abstracts, abstract_names = load_hoc(HOC_DIR, level="abstract")
    assert names == abstract_names and len(names) == 10
    assert {s: len(d) for s, d in sentences.items()} == {"train": 12119, "validation": 1798, "test": 3547}
    assert {s: len(d) for s, d in abstracts.items()} == {"train": 1295, "validation": 186, "test": 371}
    groups = list(sentences["train"]["group"])
    assert len(set(groups)) == 1295
    # The union of the sentence labels of each PMID is the abstract label vector.
    union: dict[int, list[float]] = {}
    for group, labels in zip(groups, sentences["train"]["labels"]):
        union[group] = [max(a, b) for a, b in zip(union.get(group, [0.0] * 10), labels)]
    abstract_labels = dict(zip(abstracts["train"]["group"], abstracts["train"]["labels"]))
    assert union == abstract_labels
    counts = [int(sum(v[i] for v in abstract_labels.values())) for i in range(10)]
    assert counts == [201, 86, 68, 87, 169, 222, 101, 309, 315, 180]  # README, abstract level, train
    assert sum(1 for v in abstract_labels.values() if not any(v)) == 197


# ---------------------------------------------------------------------------------------------------------------------
# CodiEsp
# ---------------------------------------------------------------------------------------------------------------------


def write_codiesp(root: Path, dev_chapters: list[int] | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "icd10cm_chapters.json").write_text(json.dumps({str(i): f"chapter {i}" for i in range(1, 23)}))

    def record(i: int, chapters: list[int]) -> dict:
        return {
            "id": f"doc{i}",
            "text_es": f"caso {i}",
            "text_en_mt": f"case {i}",
            "icd10_diagnosis": ["x"],
            "icd10_procedure": [],
            "diag_cat3": ["x"],
            "diag_chapters": chapters,
        }

    write_jsonl(root / "codiesp_train.jsonl", [record(0, [10, 2]), record(1, [9])])
    write_jsonl(root / "codiesp_dev.jsonl", [record(2, dev_chapters or [9, 10])])
    write_jsonl(root / "codiesp_test.jsonl", [record(3, [2])])
    write_jsonl(
        root / "codiesp_background_unlabeled.jsonl",
        [{"id": f"bg{i}", "text_es": "es", "text_en_mt": "en"} for i in range(3)],
    )
    return root


def test_codiesp_synthetic_chapter_order_and_unlabeled(tmp_path: Path) -> None:
    dataset, names = load_codiesp(write_codiesp(tmp_path / "codiesp"), include_unlabeled=True)
    assert names == ["chapter 2", "chapter 9", "chapter 10"]  # numeric, not string, order
    assert list(dataset) == ["train", "validation", "test", "unlabeled"]
    assert dataset["train"].column_names == ["id", "text_es", "text_en_mt", "labels"]
    assert list(dataset["train"]["labels"]) == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert list(dataset["validation"]["labels"]) == [[0.0, 1.0, 1.0]]
    assert list(dataset["unlabeled"]["labels"]) == [[-100.0] * 3] * 3
    assert dataset["unlabeled"].features["labels"] == dataset["train"].features["labels"]
    without, _ = load_codiesp(tmp_path / "codiesp")
    assert "unlabeled" not in without


def test_codiesp_unknown_chapter_and_level(tmp_path: Path) -> None:
    root = write_codiesp(tmp_path / "codiesp", dev_chapters=[9, 14])
    with pytest.raises(ValueError, match="Unknown label 14 .*split 'validation'"):
        load_codiesp(root)
    with pytest.raises(ValueError, match="'chapter'"):
        load_codiesp(root, level="cat3")  # type: ignore[arg-type]


@pytest.mark.slow
def test_codiesp_real_files() -> None:
    dataset, names = load_codiesp(CODIESP_DIR, include_unlabeled=True)
    assert {s: len(d) for s, d in dataset.items()} == {"train": 500, "validation": 250, "test": 250, "unlabeled": 2751}
    assert len(names) == 21 and names[1] == "Neoplasms"
    train_labels = list(dataset["train"]["labels"])
    assert all(len(v) == 21 and sum(v) >= 1 for v in train_labels)
    assert abs(sum(sum(v) for v in train_labels) / 500 - 4.89) < 0.01  # README: mean #chapters/doc
    assert all(v == [-100.0] * 21 for v in dataset["unlabeled"]["labels"])


# ---------------------------------------------------------------------------------------------------------------------
# same_tokenization
# ---------------------------------------------------------------------------------------------------------------------


def test_same_tokenization(tmp_path: Path, student_tok, teacher_tok) -> None:
    twin = build_tokenizer(tmp_path / "twin", STUDENT_WORDS)
    cased = build_tokenizer(tmp_path / "cased", STUDENT_WORDS, do_lower_case=False)
    reordered = build_tokenizer(tmp_path / "reordered", STUDENT_WORDS[::-1])
    vocab_file = tmp_path / "student" / "vocab.txt"
    slow = BertTokenizerLegacy(vocab_file=str(vocab_file))
    assert same_tokenization(student_tok, student_tok)
    assert same_tokenization(student_tok, twin)
    assert not same_tokenization(student_tok, teacher_tok)
    assert not same_tokenization(student_tok, cased)
    assert not same_tokenization(student_tok, reordered)
    assert not same_tokenization(student_tok, slow)
    assert same_tokenization(slow, BertTokenizerLegacy(vocab_file=str(vocab_file)))
    assert not same_tokenization(slow, BertTokenizerLegacy(vocab_file=str(vocab_file), do_lower_case=False))


@pytest.mark.slow
def test_same_tokenization_real_tokenizer(student_tok) -> None:
    first = AutoTokenizer.from_pretrained(str(MINILM_DIR))
    second = AutoTokenizer.from_pretrained(str(MINILM_DIR))
    first("truncated text", truncation=True, max_length=3)  # run-time truncation settings must not matter
    assert same_tokenization(first, second)
    assert not same_tokenization(first, student_tok)


# ---------------------------------------------------------------------------------------------------------------------
# tokenize_for_distillation
# ---------------------------------------------------------------------------------------------------------------------

TEXTS = ["hello cancer cells", "the world", "tumor growth the cell"]


def text_dataset(extra: dict | None = None) -> Dataset:
    columns = {"text": TEXTS, "labels": [0, 1, -100]}
    columns.update(extra or {})
    return Dataset.from_dict(columns)


def test_tokenize_single_tokenization_when_teacher_matches(tmp_path: Path, student_tok) -> None:
    expected_first = [2, 5, 8, 9, 10, 3]  # [CLS] hello cancer cell ##s [SEP]
    for teacher in (None, build_tokenizer(tmp_path / "twin", STUDENT_WORDS)):
        out = tokenize_for_distillation(text_dataset(), student_tok, teacher)
        assert isinstance(out, Dataset)
        assert out.column_names == ["text", "labels", "input_ids", "token_type_ids", "attention_mask"]
        assert out[0]["input_ids"] == expected_first
        assert list(out["labels"]) == [0, 1, -100]


def test_tokenize_different_teacher_adds_teacher_and_word_columns(student_tok, teacher_tok) -> None:
    data = DatasetDict({"train": text_dataset(), "test": text_dataset()})
    out = tokenize_for_distillation(data, student_tok, teacher_tok, remove_text=True)
    assert isinstance(out, DatasetDict) and list(out) == ["train", "test"]
    row = out["train"][0]
    assert set(row) == {
        "labels",
        "input_ids",
        "token_type_ids",
        "attention_mask",
        "word_ids",
        "teacher_input_ids",
        "teacher_token_type_ids",
        "teacher_attention_mask",
        "teacher_word_ids",
    }
    assert row["input_ids"] == [2, 5, 8, 9, 10, 3]
    assert row["teacher_input_ids"] == [1, 5, 7, 8, 9, 2]  # [CLS] hello can ##cer cells [SEP] in the teacher vocab
    assert row["word_ids"] == [-1, 0, 1, 2, 2, -1]
    assert row["teacher_word_ids"] == [-1, 0, 1, 1, 2, -1]
    assert list(out["test"]["labels"]) == [0, 1, -100]


def test_tokenize_word_alignment_switches(tmp_path: Path, student_tok, teacher_tok, caplog) -> None:
    out = tokenize_for_distillation(text_dataset(), student_tok, teacher_tok, word_alignment=False)
    assert "teacher_input_ids" in out.column_names and "word_ids" not in out.column_names
    slow = BertTokenizerLegacy(vocab_file=str(tmp_path / "teacher" / "vocab.txt"), pad_token="[PAD]")
    with pytest.raises(ValueError, match="BertTokenizerLegacy.*slow"):
        tokenize_for_distillation(text_dataset(), student_tok, slow, word_alignment=True)
    with caplog.at_level(logging.WARNING, logger="hf_kd.data.loading"):
        out = tokenize_for_distillation(text_dataset(), student_tok, slow)
    assert "teacher_input_ids" in out.column_names and "word_ids" not in out.column_names
    assert "slow" in caplog.text and not any(text in caplog.text for text in TEXTS)
    with pytest.raises(ValueError, match="word_alignment"):
        tokenize_for_distillation(text_dataset(), student_tok, teacher_tok, word_alignment="yes")  # type: ignore


def test_tokenize_teacher_reads_other_column(student_tok) -> None:
    data = text_dataset({"text_en": ["the world", "hello", "cancer"]})
    out = tokenize_for_distillation(data, student_tok, teacher_text_column="text_en", remove_text=True)
    assert out.column_names == [
        "labels",
        "input_ids",
        "token_type_ids",
        "attention_mask",
        "teacher_input_ids",
        "teacher_token_type_ids",
        "teacher_attention_mask",
    ]
    assert out[0]["teacher_input_ids"] == [2, 7, 6, 3]  # "the world" with the (shared) student tokenizer
    assert out[0]["input_ids"] == [2, 5, 8, 9, 10, 3]
    with pytest.raises(ValueError, match="Column 'text_fr' not found"):
        tokenize_for_distillation(data, student_tok, teacher_text_column="text_fr")


def test_tokenize_truncation_lengths(student_tok, teacher_tok) -> None:
    out = tokenize_for_distillation(text_dataset(), student_tok, max_length=4)
    assert [len(ids) for ids in out["input_ids"]] == [4, 4, 4]
    assert "teacher_input_ids" not in out.column_names
    # Same tokenizer but a longer teacher budget: the teacher needs its own columns, and no word ids.
    out = tokenize_for_distillation(text_dataset(), student_tok, max_length=4, teacher_max_length=6)
    assert [len(ids) for ids in out["teacher_input_ids"]] == [6, 4, 6]
    assert "word_ids" not in out.column_names
    out = tokenize_for_distillation(text_dataset(), student_tok, teacher_tok, max_length=3)
    assert all(len(ids) == 3 for ids in out["teacher_input_ids"])


def test_tokenize_errors(student_tok) -> None:
    with pytest.raises(ValueError, match="Column 'body' not found in split '<dataset>'"):
        tokenize_for_distillation(text_dataset(), student_tok, text_column="body")
    tokenized = tokenize_for_distillation(text_dataset(), student_tok)
    with pytest.raises(ValueError, match="already has column\\(s\\) \\['input_ids'"):
        tokenize_for_distillation(tokenized, student_tok)
    with_none = Dataset.from_dict({"text": [SECRET, None], "labels": [0, 1]})
    with pytest.raises(ValueError, match="Missing text in column 'text' .* row 1") as error:
        tokenize_for_distillation(with_none, student_tok)
    assert SECRET not in str(error.value)


# ---------------------------------------------------------------------------------------------------------------------
# DistillationDataCollator
# ---------------------------------------------------------------------------------------------------------------------


def features(student_lengths: list[int], teacher_lengths: list[int] | None = None) -> list[dict]:
    rows = []
    for i, n in enumerate(student_lengths):
        row = {
            "input_ids": [7] * n,
            "attention_mask": [1] * n,
            "token_type_ids": [0] * n,
            "word_ids": list(range(n)),
            "labels": i,
        }
        if teacher_lengths is not None:
            m = teacher_lengths[i]
            row.update(teacher_input_ids=[9] * m, teacher_attention_mask=[1] * m, teacher_word_ids=list(range(m)))
        rows.append(row)
    return rows


def test_collator_pads_each_side_with_its_own_values(student_tok, teacher_tok) -> None:
    collator = DistillationDataCollator(student_tok, teacher_tok)
    batch = collator(features([3, 5], [6, 2]))
    assert batch["input_ids"].tolist() == [[7, 7, 7, 0, 0], [7] * 5]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch["token_type_ids"].tolist() == [[0] * 5, [0] * 5]
    assert batch["word_ids"].tolist() == [[0, 1, 2, -1, -1], [0, 1, 2, 3, 4]]
    assert batch["teacher_input_ids"].tolist() == [[9] * 6, [9, 9, 4, 4, 4, 4]]  # teacher [PAD] is id 4
    assert batch["teacher_attention_mask"].tolist() == [[1] * 6, [1, 1, 0, 0, 0, 0]]
    assert batch["teacher_word_ids"].tolist() == [list(range(6)), [0, 1, -1, -1, -1, -1]]
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 1]
    assert all(batch[k].dtype == torch.long for k in batch)


def test_collator_pad_to_multiple_of_and_left_padding(tmp_path: Path, student_tok, teacher_tok) -> None:
    batch = DistillationDataCollator(student_tok, teacher_tok, pad_to_multiple_of=4)(features([3, 5], [6, 2]))
    assert batch["input_ids"].shape == (2, 8) and batch["teacher_input_ids"].shape == (2, 8)
    left = build_tokenizer(tmp_path / "left", STUDENT_WORDS, padding_side="left")
    batch = DistillationDataCollator(left)(features([2, 3]))
    assert batch["input_ids"].tolist() == [[0, 7, 7], [7, 7, 7]]
    assert batch["word_ids"].tolist() == [[-1, 0, 1], [0, 1, 2]]
    assert batch["attention_mask"].tolist() == [[0, 1, 1], [1, 1, 1]]
    with pytest.raises(ValueError, match="pad_to_multiple_of"):
        DistillationDataCollator(student_tok, pad_to_multiple_of=0)


def test_collator_label_and_logit_dtypes_and_pass_through(student_tok) -> None:
    rows = features([2, 2])
    for i, row in enumerate(rows):
        row["labels"] = [1, 0, 1] if i else [0.0, 0.0, 1.0]
        row["teacher_logits"] = [0.5, -1.0, 2]
        row["group"] = 111 + i
    batch = DistillationDataCollator(student_tok)(rows)
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [[0, 0, 1], [1, 0, 1]]
    assert batch["teacher_logits"].dtype == torch.float32 and batch["teacher_logits"].shape == (2, 3)
    assert batch["group"].tolist() == [111, 112] and batch["group"].dtype == torch.long
    for row in rows:
        row["labels"] = 0.25
    assert DistillationDataCollator(student_tok)(rows)["labels"].dtype == torch.float32


def test_collator_refuses_strings_ragged_and_missing_columns(student_tok) -> None:
    rows = features([2, 3])
    rows[0]["text"], rows[1]["text"] = SECRET, "other"
    with pytest.raises(ValueError, match="Column 'text' holds strings") as error:
        DistillationDataCollator(student_tok)(rows)
    assert SECRET not in str(error.value)
    rows = features([2, 3])
    rows[0]["teacher_logits"], rows[1]["teacher_logits"] = [0.1, 0.2], [0.3]
    with pytest.raises(ValueError, match="'teacher_logits' cannot be stacked"):
        DistillationDataCollator(student_tok)(rows)
    rows = features([2, 3])
    del rows[1]["labels"]
    with pytest.raises(ValueError, match="\\['labels'\\]"):
        DistillationDataCollator(student_tok)(rows)
    rows = features([2, 3])
    rows[1]["word_ids"] = [0]
    with pytest.raises(ValueError, match="'word_ids' at position 1"):
        DistillationDataCollator(student_tok)(rows)


def test_collator_teacher_columns_without_teacher_tokenizer(student_tok) -> None:
    batch = DistillationDataCollator(student_tok)(features([2, 3], [4, 4]))
    assert batch["teacher_input_ids"].tolist() == [[9] * 4, [9] * 4]
    with pytest.raises(ValueError, match="teacher_tokenizer"):
        DistillationDataCollator(student_tok)(features([2, 3], [4, 5]))


def test_collator_after_tokenization_end_to_end(student_tok, teacher_tok) -> None:
    data = tokenize_for_distillation(text_dataset(), student_tok, teacher_tok, remove_text=True)
    batch = DistillationDataCollator(student_tok, teacher_tok)([data[i] for i in range(len(data))])
    lengths = [len(ids) for ids in data["input_ids"]]
    teacher_lengths = [len(ids) for ids in data["teacher_input_ids"]]
    assert batch["input_ids"].shape == (3, max(lengths))
    assert batch["teacher_input_ids"].shape == (3, max(teacher_lengths))
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert batch["teacher_attention_mask"].sum(dim=1).tolist() == teacher_lengths
    assert batch["labels"].tolist() == [0, 1, -100]


def test_a_blank_multi_label_cell_is_an_error_and_an_empty_list_means_no_label(tmp_path: Path) -> None:
    rows = [{"text": f"t{i}", "codes": c} for i, c in enumerate(["I10;E11", "E11", "", "I10"])]
    path = write_table(tmp_path / "train.csv", rows)
    with pytest.raises(ValueError, match="Empty label in column 'codes' of split 'train' at row 2.*JSON list"):
        load_classification_dataset({"train": str(path)}, label_column="codes", label_delimiter=";")
    lists = [{"text": f"t{i}", "codes": c} for i, c in enumerate([["I10", "E11"], ["E11"], [], ["I10"]])]
    dataset, names = load_classification_dataset(
        {"train": str(write_jsonl(tmp_path / "lists.jsonl", lists))}, label_column="codes"
    )
    assert names == ["E11", "I10"]
    assert dataset["train"]["labels"] == [[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
