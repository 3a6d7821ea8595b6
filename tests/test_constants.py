"""The one task vocabulary of `hf_kd.constants`: tasks from labels, from a model's config, and their problem types."""

from __future__ import annotations

import datasets
from transformers import BertConfig

from hf_kd.constants import (
    BINARY,
    MULTI_LABEL,
    PROBLEM_TYPES,
    REGRESSION,
    SINGLE_LABEL,
    TASK_TYPES,
    THRESHOLD_KEY,
    infer_task,
    problem_type_of_task,
    task_of_config,
)


def test_tasks_from_labels():
    ids, floats = datasets.Value("int64"), datasets.Value("float32")
    multi_hot = datasets.List(datasets.Value("float32"))
    assert infer_task(ids, 3) == SINGLE_LABEL
    assert infer_task(ids, 2) == BINARY  # two classes are a triage task unless declared otherwise
    assert infer_task(ids, 2, problem_type=SINGLE_LABEL) == SINGLE_LABEL
    assert infer_task(ids, 3, problem_type=BINARY) == BINARY  # the loader then refuses three classes
    assert infer_task(multi_hot, 2) == MULTI_LABEL
    assert infer_task(floats, 1) == REGRESSION


def test_tasks_from_a_model_and_back():
    config = BertConfig(num_labels=2)
    assert task_of_config(config) == SINGLE_LABEL  # no saved operating point: two classes
    setattr(config, THRESHOLD_KEY, 0.3)
    assert task_of_config(config) == BINARY
    config.problem_type = MULTI_LABEL
    assert task_of_config(config) == MULTI_LABEL
    assert [problem_type_of_task(t) for t in TASK_TYPES] == [SINGLE_LABEL, MULTI_LABEL, SINGLE_LABEL, REGRESSION]
    assert set(PROBLEM_TYPES) == {problem_type_of_task(t) for t in TASK_TYPES}


def test_the_thresholded_tasks_are_multi_label_and_binary():
    from hf_kd.constants import BINARY, MULTI_LABEL, REGRESSION, SINGLE_LABEL, TASK_TYPES, has_threshold

    assert [t for t in TASK_TYPES if has_threshold(t)] == [MULTI_LABEL, BINARY]
    assert not has_threshold(SINGLE_LABEL) and not has_threshold(REGRESSION)
