"""`data.validation_size`: a validation split held out of train when the data has none (stratified, seeded, part of
the data's fingerprint, refused when too small or beside a real validation split)."""

from __future__ import annotations

import json
from collections import Counter

import datasets
import numpy as np
import pytest
from conftest import write_label_files

from hf_kd.constants import BINARY, MIN_VALIDATION_ROWS, MULTI_LABEL, SINGLE_LABEL
from hf_kd.pipeline.splits import hold_out_validation, recipe_splits
from hf_kd.pipeline.stages import stage_fingerprints
from hf_kd.recipe.config import DistillationPipelineConfig


def _single(n_per_class=(60, 30, 10)):
    labels = [c for c, n in enumerate(n_per_class) for _ in range(n)]
    return datasets.Dataset.from_dict({"idx": list(range(len(labels))), "labels": labels})


def test_single_label_hold_out_keeps_each_class_share_and_partitions_train():
    train = _single()
    validation, rest = hold_out_validation(train, 0.2, seed=0, task=SINGLE_LABEL)
    assert Counter(list(validation["labels"])) == {0: 12, 1: 6, 2: 2}
    assert sorted(list(validation["idx"]) + list(rest["idx"])) == list(range(100))
    assert not set(list(validation["idx"])) & set(list(rest["idx"]))
    assert list(validation["idx"]) == sorted(list(validation["idx"]))  # train's order


def test_count_and_exact_total_by_largest_remainder():
    validation, rest = hold_out_validation(_single((7, 7, 7)), 10, seed=1, task=BINARY)
    assert len(validation) == 10 and len(rest) == 11
    assert sorted(Counter(list(validation["labels"])).values()) == [3, 3, 4]


def test_seeded_same_seed_same_rows_other_seed_other_rows():
    train = _single()
    a = list(hold_out_validation(train, 0.2, seed=3, task=SINGLE_LABEL)[0]["idx"])
    b = list(hold_out_validation(train, 0.2, seed=3, task=SINGLE_LABEL)[0]["idx"])
    c = list(hold_out_validation(train, 0.2, seed=4, task=SINGLE_LABEL)[0]["idx"])
    assert a == b and a != c


def test_multi_label_rows_are_stratified_by_their_rarest_label():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        row = [1.0, float(rng.random() < 0.5), 0.0]
        if i % 20 == 0:  # 10 rows carry the rare label
            row[2] = 1.0
        rows.append(row)
    train = datasets.Dataset.from_dict({"labels": rows})
    validation, rest = hold_out_validation(train, 0.2, seed=0, task=MULTI_LABEL)
    rare = [r[2] for r in list(validation["labels"])]
    assert sum(rare) == 2  # 20 % of the 10 rare rows, not left to chance
    assert sum(r[2] for r in list(rest["labels"])) == 8


def test_grouped_rows_are_held_out_by_document():
    groups = [g for g in range(20) for _ in range(3)]
    train = datasets.Dataset.from_dict({"group": groups, "labels": [g % 2 for g in groups]})
    validation, rest = hold_out_validation(train, 0.25, seed=0, task=SINGLE_LABEL)
    assert len(set(list(validation["group"]))) == 5 and not set(list(validation["group"])) & set(list(rest["group"]))
    assert len(validation) == 15


@pytest.mark.parametrize("size", [0.05, 3])
def test_too_small_a_held_out_split_is_refused_with_the_field(size):
    with pytest.raises(ValueError, match=rf"`data.validation_size` {size}.*too few.*at least {MIN_VALIDATION_ROWS}"):
        hold_out_validation(_single((20, 20)), size, seed=0, task=SINGLE_LABEL)


def test_holding_out_everything_is_refused():
    with pytest.raises(ValueError, match="leaving none to train on"):
        hold_out_validation(_single((10, 10)), 20, seed=0, task=SINGLE_LABEL)


def _files_recipe(tmp_path, **data):
    folder = write_label_files(tmp_path / "data", sizes=(("train", 40), ("test", 12)))
    files = {"train": str(folder / "train.jsonl"), "test": str(folder / "test.jsonl")}
    recipe = {"data": {"dataset": "files", "data_files": files, **data}, "teacher": {"model": "unused"}}
    return DistillationPipelineConfig.from_dict({**recipe, "output_dir": str(tmp_path / "run")})


def test_train_and_test_files_without_validation_name_the_field(tmp_path):
    with pytest.raises(ValueError, match=r"Split 'validation' not found.*`data.validation_size`"):
        recipe_splits(_files_recipe(tmp_path))


def test_recipe_splits_hold_out_validation_from_train(tmp_path):
    splits = recipe_splits(_files_recipe(tmp_path, validation_size=0.25))
    assert len(splits.evals["validation"]) == 10 and len(splits.train) == 30
    assert set(splits.evals) == {"validation", "test"}


def test_validation_size_beside_a_validation_file_is_refused(tmp_path):
    folder = write_label_files(tmp_path / "data")
    config = DistillationPipelineConfig.from_dict(
        {
            "data": {"dataset": "files", "path": str(folder), "validation_size": 0.2},
            "teacher": {"model": "unused"},
            "output_dir": str(tmp_path / "run"),
        }
    )
    with pytest.raises(ValueError, match="has its own 'validation' split"):
        recipe_splits(config)


def test_validation_size_is_part_of_the_data_fingerprint(tmp_path):
    a = stage_fingerprints(_files_recipe(tmp_path, validation_size=0.2))
    b = stage_fingerprints(_files_recipe(tmp_path, validation_size=0.25))
    c = stage_fingerprints(_files_recipe(tmp_path, validation_size=0.2, max_unknown_rate=0.5))
    assert a["teacher"]["fingerprint"] != b["teacher"]["fingerprint"]
    assert a["teacher"]["fingerprint"] == c["teacher"]["fingerprint"]  # a check, not an input


@pytest.mark.parametrize(
    ("value", "pattern"),
    [(0, "validation_size.*got 0"), (-0.1, "got -0.1"), (1.5, "got 1.5"), (True, "got True")],
)
def test_bad_validation_size_is_named(tmp_path, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        _files_recipe(tmp_path, validation_size=value)


def test_bad_max_unknown_rate_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"`data.max_unknown_rate` must be a number in \[0, 1\], got 1.5"):
        _files_recipe(tmp_path, max_unknown_rate=1.5)


def test_section_round_trips_through_json(tmp_path):
    config = _files_recipe(tmp_path, validation_size=0.25)
    assert json.loads(json.dumps(config.data.validation_size)) == 0.25
