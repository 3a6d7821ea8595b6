"""Recipes: the sections of a distillation run as typed dataclasses, read from YAML and `--section.field` overrides.

A recipe is a YAML file with the sections `data`, `teacher`, `student`, `evaluation` and `search`, plus `output_dir`
and `seed` at the top level. Each section is a dataclass below; `teacher` and `student` also take every
[`~hf_kd.DistillationTrainingArguments`] field of their training run (e.g. `learning_rate`, `num_train_epochs`).
Every field has one spelling, `section.field`, in the file (nested) and on the command line (`--section.field VALUE`).

Parsing goes through [`RecipeParser`], a `transformers.HfArgumentParser` whose arguments are named `--section.field`:
the type of every field (its `argparse` type, choices, list or boolean handling) comes from `HfArgumentParser`, the
YAML values become the parser's defaults (strings among them are converted by the field's type, as command-line
values are), and the command line overrides them. YAML is read with floats such as `1e-4` resolved as numbers (YAML
1.2), not as strings.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml
from transformers import HfArgumentParser

__all__ = [
    "DataConfig",
    "DistillationPipelineConfig",
    "EvaluationConfig",
    "RecipeError",
    "RecipeParser",
    "SearchConfig",
    "StudentConfig",
    "TeacherConfig",
    "load_yaml",
    "lora_config",
]

SEARCH_BACKENDS = ("pso", "tpe", "random")
# Training fields the pipeline sets itself for every stage.
_PIPELINE_OWNED = ("output_dir",)
# LoraConfig fields the pipeline sets itself.
_LORA_RESERVED = ("peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode")
_NULLS = ("null", "none", "None", "~")


class RecipeError(ValueError):
    """A recipe that cannot be read: unknown field, wrong type, invalid value (the message names the field)."""


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: `1e-4` is a number, not the string PyYAML 1.1 makes of it."""


_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """
    Parse YAML text as recipes are read (safe loader, YAML 1.2 floats).

    Args:
        text (`str`):
            The YAML text.

    Returns:
        `Any`: The parsed value.
    """
    return yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 - a SafeLoader subclass


# ---------------------------------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    """
    Where the data comes from and how it is tokenized.

    Args:
        dataset (`str`, *optional*, defaults to `"hoc"`):
            `"hoc"` (`hf_kd.load_hoc`), `"codiesp"` (`hf_kd.load_codiesp`) or `"files"` (generic files or a Hub
            dataset id through `hf_kd.load_classification_dataset`).
        path (`str`, *optional*):
            The data directory (hoc, codiesp), or the file / directory / Hub id for `"files"`. Relative paths are
            resolved against the current directory.
        data_files (`dict[str, str]`, *optional*):
            For `"files"`: a mapping split -> file, used instead of `path`.
        level (`str`, *optional*, defaults to `"abstract"`):
            HoC level: `"abstract"` or `"sentence"` (sentence-level training, BLURB abstract-level evaluation).
        text_column (`str`, *optional*, defaults to `"text"`):
            Column the student reads.
        teacher_text_column (`str`, *optional*):
            Column the teacher reads (e.g. `text_en_mt`); defaults to `text_column`.
        label_column (`str`, *optional*, defaults to `"labels"`):
            Label column for `"files"`.
        problem_type (`str`, *optional*):
            Problem type for `"files"`; inferred when unset.
        label_delimiter (`str`, *optional*):
            Delimiter of string labels for `"files"`.
        max_length (`int`, *optional*, defaults to 256):
            Student truncation length.
        teacher_max_length (`int`, *optional*):
            Teacher truncation length; defaults to `max_length`.
        train_size (`int`, *optional*):
            Keep a random subset of the training split (documents when a `group` column exists, e.g. the abstracts
            of sentence-level HoC). All of it when unset.
        eval_size (`int`, *optional*):
            Likewise for the validation and test splits (for quick runs only).
        validation_split (`str`, *optional*, defaults to `"validation"`):
            Split used for thresholds and the gate.
        test_split (`str`, *optional*, defaults to `"test"`):
            Split reported as test; skipped when absent or set to null.
    """

    dataset: Literal["hoc", "codiesp", "files"] = field(
        default="hoc", metadata={"help": "hoc, codiesp, or files (CSV/TSV/JSON(L)/Parquet files or a Hub dataset)."}
    )
    path: str | None = field(default=None, metadata={"help": "Data directory, file or Hub id."})
    data_files: dict[str, str] | None = field(
        default=None, metadata={"help": "For dataset: files, a mapping split -> file (YAML), instead of path."}
    )
    level: str = field(default="abstract", metadata={"help": "HoC level: abstract or sentence."})
    text_column: str = field(default="text", metadata={"help": "Column the student reads."})
    teacher_text_column: str | None = field(
        default=None, metadata={"help": "Column the teacher reads (defaults to text_column)."}
    )
    label_column: str = field(default="labels", metadata={"help": "Label column (dataset: files)."})
    problem_type: str | None = field(default=None, metadata={"help": "Problem type (dataset: files); inferred."})
    label_delimiter: str | None = field(default=None, metadata={"help": "Delimiter of string labels (files)."})
    max_length: int | None = field(default=256, metadata={"help": "Student truncation length."})
    teacher_max_length: int | None = field(
        default=None, metadata={"help": "Teacher truncation length (defaults to max_length)."}
    )
    train_size: int | None = field(
        default=None, metadata={"help": "Random subset of the training split (documents when grouped)."}
    )
    eval_size: int | None = field(default=None, metadata={"help": "Random subset of the evaluation splits."})
    validation_split: str = field(default="validation", metadata={"help": "Split for thresholds and the gate."})
    test_split: str | None = field(default="test", metadata={"help": "Split reported as test (null: none)."})


@dataclass
class TeacherConfig:
    """
    The teacher and its fine-tuning.

    Any other key of the `teacher:` section is a `DistillationTrainingArguments` field for the fine-tuning (stage 1),
    e.g. `learning_rate`, `head_learning_rate`, `num_train_epochs`, `per_device_train_batch_size`; it is kept in
    `training`.

    Args:
        model (`str`, *optional*):
            Local path or Hub id: a classifier already fine-tuned on this label space (stage 1 is then skipped), or a
            base model to fine-tune.
        tokenizer (`str`, *optional*):
            Tokenizer path or id; defaults to `model`.
        lora (`dict[str, Any]`, *optional*):
            Fine-tune the teacher with LoRA instead of fully: `peft.LoraConfig` keyword arguments (e.g. `r`,
            `lora_alpha`, `lora_dropout`, `target_modules`; `{}` takes peft's defaults). `task_type` is always
            `SEQ_CLS`, so the classification head is trained in full (peft's `modules_to_save`). After the
            fine-tuning the adapter is merged into the teacher (`merge_and_unload`), and `teacher/model/` holds that
            plain merged model, which the evaluation and the cached logits use; the adapter alone is kept in
            `teacher/adapter/`. Unused when stage 1 is skipped (teacher already fine-tuned).
        training (`dict[str, Any]`, *optional*):
            `DistillationTrainingArguments` fields of the fine-tuning (`alpha` is forced to 1).
    """

    model: str | None = field(default=None, metadata={"help": "Teacher path or Hub id (required)."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer path or id (defaults to model)."})
    lora: dict[str, Any] | None = field(
        default=None, metadata={"help": "Fine-tune with LoRA: peft.LoraConfig keyword arguments (YAML mapping)."}
    )
    training: dict[str, Any] = field(default_factory=dict)


@dataclass
class StudentConfig:
    """
    The student and its distillation.

    Any other key of the `student:` section is a `DistillationTrainingArguments` field for the distillation, e.g.
    `temperature`, `alpha`, `head_learning_rate`, `hidden_loss_weight`, `num_train_epochs`; it is kept in `training`.

    Args:
        model (`str`, *optional*):
            A pretrained student (path or Hub id), given a new classification head. Exclusive with
            `from_teacher_layers` / `num_layers`.
        from_teacher_layers (`list[int]`, *optional*):
            Build the student from these teacher layers (e.g. `[0, 2, 4]`), embeddings and head copied.
        num_layers (`int`, *optional*):
            Build the student from this many evenly spaced teacher layers. The default when neither `model` nor
            `from_teacher_layers` is given is half the teacher's layers.
        tokenizer (`str`, *optional*):
            Tokenizer of a pretrained student; defaults to `model` (a student built from the teacher uses the
            teacher's tokenizer).
        warmup_epochs (`float`, *optional*, defaults to `0.0`):
            Epochs of hard-label training (`alpha=1`) before the distillation (stage 4); 0 skips it.
        online_teacher (`bool`, *optional*, defaults to `False`):
            Run the teacher at every training step of the distillation instead of reading the logits cached in stage
            3 (e.g. to compare both; they give the same student). Implied by hidden-state and attention losses,
            which need the teacher's activations.
        lora (`dict[str, Any]`, *optional*):
            Train the student with LoRA (in the warm-up, the distillation and the search): `peft.LoraConfig` keyword
            arguments, as for the teacher (`task_type` is always `SEQ_CLS`, the head is trained in full). Each stage
            merges the adapter into the student (`merge_and_unload`) and saves that plain model in
            `<stage>/model/`, which the next stages, the evaluation, the report and the model card use; the adapter
            alone is kept in `<stage>/adapter/`.
        training (`dict[str, Any]`, *optional*):
            `DistillationTrainingArguments` fields of the distillation.
    """

    model: str | None = field(default=None, metadata={"help": "A pretrained student (path or Hub id)."})
    from_teacher_layers: list[int] | None = field(
        default=None, metadata={"help": "Build the student from these 0-based teacher layers, e.g. 0 2 4."}
    )
    num_layers: int | None = field(
        default=None, metadata={"help": "Build the student from this many evenly spaced teacher layers."}
    )
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer of a pretrained student."})
    warmup_epochs: float = field(default=0.0, metadata={"help": "Epochs of hard-label training before distilling."})
    online_teacher: bool = field(
        default=False, metadata={"help": "Run the teacher at every step instead of reading the cached logits."}
    )
    lora: dict[str, Any] | None = field(
        default=None, metadata={"help": "Train with LoRA: peft.LoraConfig keyword arguments (YAML mapping)."}
    )
    training: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationConfig:
    """
    Evaluation, quality gate and report.

    Args:
        gate_metric (`str`, *optional*, defaults to `"micro_f1"`):
            Validation metric of the teacher checked against `min_teacher_metric` (`blurb_micro_f1` for
            sentence-level HoC, `accuracy` for single-label tasks...).
        min_teacher_metric (`float`, *optional*):
            Stop after stage 2 with a `QualityGateError` when the teacher's `gate_metric` is below this.
        tune_threshold (`bool`, *optional*, defaults to `True`):
            Multi-label: tune one global threshold on the validation split (`hf_kd.thresholds.tune_thresholds`) and
            apply it to the test split; otherwise 0.5.
        batch_size (`int`, *optional*, defaults to 32):
            Batch size for the evaluation and logit caching.
        latency (`bool`, *optional*, defaults to `True`):
            Measure CPU latency in the report.
        latency_batch_sizes (`list[int]`, *optional*, defaults to `[1, 32]`):
            Batch sizes timed.
        plots (`bool`, *optional*, defaults to `True`):
            Write training-curve and per-label F1 plots.
        model_card (`bool`, *optional*, defaults to `True`):
            Write the student's model card.
    """

    gate_metric: str = field(default="micro_f1", metadata={"help": "Teacher validation metric of the gate."})
    min_teacher_metric: float | None = field(
        default=None, metadata={"help": "Stop before distilling when the teacher's gate metric is below this."}
    )
    tune_threshold: bool = field(
        default=True, metadata={"help": "Multi-label: tune the threshold on the validation split (else 0.5)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Batch size of the evaluation and the logit caching."})
    latency: bool = field(default=True, metadata={"help": "Measure CPU latency in the report."})
    latency_batch_sizes: list[int] = field(default_factory=lambda: [1, 32], metadata={"help": "Batch sizes timed."})
    plots: bool = field(default=True, metadata={"help": "Write the report's figures."})
    model_card: bool = field(default=True, metadata={"help": "Write the student's model card."})


@dataclass
class SearchConfig:
    """
    Search of the student's distillation hyperparameters (`hf-kd search`): particle swarm by default.

    Args:
        hp_space (`dict[str, list]`, *optional*):
            `DistillationTrainingArguments` field -> `[low, high]`, `[low, high, "log"]` or `[low, high, "int"]`.
            Defaults to `hf_kd.search.DEFAULT_PSO_SPACE`.
        n_trials (`int`, *optional*, defaults to 10):
            Number of trials (rounded up to whole swarm iterations).
        n_particles (`int`, *optional*, defaults to 5):
            Swarm size.
        metric (`str`, *optional*, defaults to `"micro_f1"`):
            Validation metric maximised (read as `eval_<metric>`).
        direction (`str`, *optional*, defaults to `"maximize"`):
            `"maximize"` or `"minimize"`.
        backend (`str`, *optional*, defaults to `"pso"`):
            `"pso"` (pyswarms, `hf_kd.search`), or `"tpe"` / `"random"`: Optuna's TPE or random sampler through
            `Trainer.hyperparameter_search(backend="optuna")`, over the same space (needs `pip install optuna`,
            the `search` extra). The Optuna searches are not resumable and run in one process.
    """

    hp_space: dict[str, list[Any]] | None = field(
        default=None, metadata={"help": "Field -> [low, high(, log|int)] (YAML mapping)."}
    )
    n_trials: int = field(default=10, metadata={"help": "Number of trials."})
    n_particles: int = field(default=5, metadata={"help": "Swarm size."})
    metric: str = field(default="micro_f1", metadata={"help": "Validation metric optimised (eval_<metric>)."})
    direction: Literal["maximize", "minimize"] = field(default="maximize", metadata={"help": "maximize or minimize."})
    backend: Literal["pso", "tpe", "random"] = field(
        default="pso", metadata={"help": "pso (pyswarms), or tpe / random (Optuna)."}
    )


@dataclass
class _TopLevel:
    output_dir: str = field(default="runs/hf-kd", metadata={"help": "Root folder of the stages."})
    seed: int = field(default=42, metadata={"help": "Seed of the subsets and of every training run."})


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "teacher": TeacherConfig,
    "student": StudentConfig,
    "evaluation": EvaluationConfig,
    "search": SearchConfig,
}
"""The recipe's sections, in the order they are written."""

_TRAINED_SECTIONS = ("teacher", "student")


# ---------------------------------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------------------------------


def _nullable(type_fn: Any) -> Any:
    def convert(value: str) -> Any:
        return None if value in _NULLS else type_fn(value)

    convert.__name__ = getattr(type_fn, "__name__", "value")
    return convert


def _yaml_value(value: str) -> Any:
    return load_yaml(value)


_yaml_value.__name__ = "YAML"


def _allows_none(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in typing.get_args(hint)


def _is_mapping(hint: Any) -> bool:
    args = [a for a in typing.get_args(hint) if a is not type(None)] if _allows_none(hint) else [hint]
    return any(typing.get_origin(a) is dict or a is dict for a in args)


class RecipeParser(HfArgumentParser):
    """
    A `transformers.HfArgumentParser` over the recipe's sections, with arguments named `--section.field`.

    The arguments' types come from `HfArgumentParser` (one per dataclass field), with three additions: `null`
    (or `none`) sets an optional field to None, mapping fields (`data.data_files`, `teacher.lora`, `search.hp_space`)
    read a YAML mapping, and the `teacher.` / `student.` arguments include every `DistillationTrainingArguments`
    field but `output_dir` (not shown by `--help`). Every argument defaults to "not given", so a parse returns only
    what the recipe file and the command line set. Errors raise [`RecipeError`] instead of exiting.

    Args:
        training_fields (`bool`, *optional*, defaults to `True`):
            Whether to add the `DistillationTrainingArguments` fields to the teacher and student sections (importing
            transformers' training arguments and torch). `--help` alone does without them.
        **kwargs:
            `argparse.ArgumentParser` keyword arguments (`prog`, `description`, `epilog`, ...).
    """

    def __init__(self, training_fields: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(**kwargs)
        self._recipe_keys: set[str] = set()
        self._add_section("", _TopLevel, self.add_argument_group("top level"))
        for name, cls in SECTIONS.items():
            group = self.add_argument_group(f"{name} section", f"`{name}:` in the recipe, --{name}.<field> here.")
            self._add_section(name, cls, group)
        if training_fields:
            from .config import DistillationTrainingArguments

            for name in _TRAINED_SECTIONS:
                self._add_section(name, DistillationTrainingArguments, self, hidden=True)

    def _add_section(self, prefix: str, cls: type, group: Any, hidden: bool = False) -> None:
        hints = typing.get_type_hints(cls)
        for original in fields(cls):
            if not original.init or original.name == "training" or (hidden and original.name in _PIPELINE_OWNED):
                continue
            item = copy.copy(original)
            item.name = f"{prefix}.{original.name}" if prefix else original.name
            item.type = hints[original.name]
            before = len(self._actions)
            self._parse_dataclass_field(group, item)
            action, *complements = self._actions[before:]
            for extra in complements:  # HfArgumentParser's `--no_<field>`: one spelling per field
                self._drop(extra, group)
            for alias in action.option_strings[1:]:  # and its `--field-name` alias
                del self._option_string_actions[alias]
            action.option_strings = action.option_strings[:1]
            if _is_mapping(hints[original.name]):
                action.type, action.nargs, action.metavar = _yaml_value, None, "YAML"
            elif _allows_none(hints[original.name]) and action.type is not None:
                action.type = _nullable(action.type)
            action.required = False
            action.default = argparse.SUPPRESS
            self._recipe_keys.add(action.dest)
            if hidden:
                action.help = argparse.SUPPRESS
            else:
                missing = original.default is dataclasses.MISSING
                default = original.default_factory() if missing else original.default
                action.help = f"{action.help or ''} (default: {default!r})".strip()

    def _drop(self, action: argparse.Action, group: Any) -> None:
        self._remove_action(action)
        if action in getattr(group, "_group_actions", ()):
            group._group_actions.remove(action)
        for option in action.option_strings:
            self._option_string_actions.pop(option, None)

    def error(self, message: str) -> typing.NoReturn:
        """Raise a [`RecipeError`] (instead of printing and exiting), naming the nested spelling of a flat field."""
        match = re.search(r"unrecognized arguments: (\S+)", message)
        if match:
            message += self._suggestion(match.group(1).lstrip("-").split("=")[0])
        raise RecipeError(message)

    def _suggestion(self, key: str) -> str:
        known = sorted(self._recipe_keys)
        prefixed = [f"{s}.{key[len(s) + 1 :]}" for s in SECTIONS if key.startswith(s + "_")]
        nested = [name for name in known if name.endswith("." + key) or name in prefixed]
        close = nested or difflib.get_close_matches(key, known, n=3)
        return f"; did you mean {' or '.join('--' + c for c in close)}?" if close else ""

    def known_keys(self) -> set[str]:
        """Every `section.field` (and top-level field) the parser takes.

        Returns:
            `set[str]`: The keys.
        """
        return set(self._recipe_keys)

    def parse_recipe(
        self, values: Mapping[str, Any], args: Sequence[str] = (), overrides: Mapping[str, Any] | None = None
    ) -> DistillationPipelineConfig:
        """
        Build the config from a nested recipe mapping, command-line arguments and `section.field` overrides.

        Args:
            values (`Mapping[str, Any]`):
                The recipe (e.g. the parsed YAML), with nested sections.
            args (`Sequence[str]`, *optional*):
                Command-line arguments (`--section.field VALUE`), applied over the recipe.
            overrides (`Mapping[str, Any]`, *optional*):
                `section.field` -> value, applied over the recipe and before `args`.

        Returns:
            [`DistillationPipelineConfig`]: The config.

        Raises:
            [`RecipeError`]: On an unknown key (naming the nested spelling when a field of that name exists), a value
                of the wrong type, or an invalid value.
        """
        flat = self._flatten(values)
        known = self.known_keys()
        for key, value in (overrides or {}).items():
            if key not in known:
                raise RecipeError(f"Unknown recipe field {key!r}{self._suggestion(key)}")
            flat[key] = value
        self.set_defaults(**flat)
        namespace = self.parse_args(list(args))
        given = {key: value for key, value in vars(namespace).items() if key in known}
        self._check_types(given)
        tree: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        top: dict[str, Any] = {}
        for key, value in given.items():
            section, _, name = key.rpartition(".")
            (tree[section] if section else top)[name] = value
        kwargs: dict[str, Any] = dict(top)
        for name, cls in SECTIONS.items():
            own = {f.name for f in fields(cls)}
            section = tree[name]
            if "training" in own:
                training = {k: section.pop(k) for k in list(section) if k not in own}
                section["training"] = training
            kwargs[name] = cls(**section)
        try:
            return DistillationPipelineConfig(**kwargs)
        except ValueError as error:
            raise RecipeError(str(error)) from None

    def _flatten(self, values: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(values, Mapping):
            raise RecipeError(f"A recipe must be a YAML mapping of sections, got {type(values).__name__}.")
        known = self.known_keys()
        flat: dict[str, Any] = {}
        for key, value in values.items():
            key = str(key)
            if key in SECTIONS:
                if value is None:
                    continue
                if not isinstance(value, Mapping):
                    raise RecipeError(f"Recipe section {key!r} must be a mapping of fields, got {value!r}.")
                for name, item in value.items():
                    dotted = f"{key}.{name}"
                    if dotted not in known:
                        raise RecipeError(f"Unknown recipe field {dotted!r}{self._suggestion(str(name))}")
                    flat[dotted] = item
            elif key in known and "." not in key:
                flat[key] = value
            else:
                where = key.rpartition(".")[2]
                raise RecipeError(
                    f"Unknown recipe key {key!r}: fields are written inside their section{self._suggestion(where)}"
                )
        return flat

    def _check_types(self, given: Mapping[str, Any]) -> None:
        """Check the recipe file's values against the argument types (command-line values are typed already)."""
        actions = {a.dest: a for a in self._actions if a.option_strings}
        for key, value in given.items():
            action = actions[key]
            if value is None or action.type is _yaml_value:
                continue
            base = getattr(action.type, "__name__", "")
            expected = {"int": int, "float": (int, float)}.get(base)
            items = value if isinstance(value, list) and action.nargs in ("+", "*") else [value]
            if action.nargs in ("+", "*") and not isinstance(value, list):
                raise RecipeError(f"Recipe field {key!r} must be a list, got {value!r}.")
            for item in items:
                if expected is not None and (isinstance(item, bool) or not isinstance(item, expected)):
                    raise RecipeError(f"Recipe field {key!r} must be {base}, got {item!r}.")
                if expected is int and isinstance(item, float):  # pragma: no cover - excluded above
                    raise RecipeError(f"Recipe field {key!r} must be an integer, got {item!r}.")
            if action.choices is not None and value not in action.choices:
                raise RecipeError(f"Recipe field {key!r} must be one of {list(action.choices)}, got {value!r}.")


# ---------------------------------------------------------------------------------------------------------------------
# The recipe
# ---------------------------------------------------------------------------------------------------------------------


def lora_config(values: Mapping[str, Any], section: str) -> Any:
    """
    The `peft.LoraConfig` of a `teacher.lora` / `student.lora` mapping, for sequence classification.

    Args:
        values (`Mapping[str, Any]`):
            `LoraConfig` keyword arguments.
        section (`str`):
            `"teacher"` or `"student"`, for messages.

    Returns:
        `peft.LoraConfig`: With `task_type=SEQ_CLS`.

    Raises:
        `ValueError`: On a key that is not a `LoraConfig` field, or another task type.
    """
    from peft import LoraConfig, TaskType

    if not isinstance(values, Mapping):
        raise ValueError(f"`{section}.lora` must be a mapping of LoraConfig fields, got {type(values).__name__}.")
    known = {f.name for f in fields(LoraConfig) if f.init} - set(_LORA_RESERVED)
    unknown = sorted(str(k) for k in set(values) - known)
    if unknown:
        raise ValueError(f"Unknown `{section}.lora` key(s) {unknown}; the keys are `peft.LoraConfig` fields.")
    task_type = values.get("task_type", TaskType.SEQ_CLS)
    if task_type != TaskType.SEQ_CLS:
        raise ValueError(f"`{section}.lora.task_type` must be 'SEQ_CLS' (sequence classification), got {task_type!r}.")
    return LoraConfig(**{**values, "task_type": TaskType.SEQ_CLS})


@dataclass
class DistillationPipelineConfig:
    """
    A distillation recipe: data, teacher, student, evaluation/gate, search, seed and output folder.

    Read one with [`~DistillationPipelineConfig.from_yaml`] (or [`~DistillationPipelineConfig.from_dict`]); both go
    through [`RecipeParser`]. Fields are written in their section (`student: {alpha: 0.3}`), and overridden as
    `section.field` (`--student.alpha 0.3` on the command line). Unknown keys raise a [`RecipeError`] naming them.

    Args:
        data ([`DataConfig`], *optional*):
            The data.
        teacher ([`TeacherConfig`], *optional*):
            The teacher and its fine-tuning.
        student ([`StudentConfig`], *optional*):
            The student and its distillation.
        evaluation ([`EvaluationConfig`], *optional*):
            Evaluation, quality gate and report.
        search ([`SearchConfig`], *optional*):
            Hyperparameter search (`hf-kd search`).
        output_dir (`str`, *optional*, defaults to `"runs/hf-kd"`):
            Root folder of the stages.
        seed (`int`, *optional*, defaults to 42):
            Seed of the subsets and of every training run.
    """

    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    output_dir: str = "runs/hf-kd"
    seed: int = 42

    def __post_init__(self) -> None:
        if self.teacher.model is None:
            raise ValueError("The recipe needs `teacher.model` (a path or Hub id).")
        if self.student.model is not None and (
            self.student.from_teacher_layers is not None or self.student.num_layers is not None
        ):
            raise ValueError(
                "`student.model` (a pretrained student) excludes `student.from_teacher_layers` / `student.num_layers`."
            )
        if self.data.dataset not in ("hoc", "codiesp", "files"):
            raise ValueError(f"`data.dataset` must be 'hoc', 'codiesp' or 'files', got {self.data.dataset!r}.")
        if self.data.dataset == "hoc" and self.data.level not in ("abstract", "sentence"):
            raise ValueError(f"`data.level` must be 'abstract' or 'sentence' for HoC, got {self.data.level!r}.")
        for name in ("train_size", "eval_size"):
            value = getattr(self.data, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"`data.{name}` must be a positive integer when set, got {value!r}.")
        if self.student.warmup_epochs < 0:
            raise ValueError(f"`student.warmup_epochs` must be >= 0, got {self.student.warmup_epochs!r}.")
        if self.search.direction not in ("maximize", "minimize"):
            raise ValueError(f"`search.direction` must be 'maximize' or 'minimize', got {self.search.direction!r}.")
        if self.search.backend not in SEARCH_BACKENDS:
            raise ValueError(f"`search.backend` must be one of {list(SEARCH_BACKENDS)}, got {self.search.backend!r}.")
        for section in _TRAINED_SECTIONS:
            lora = getattr(self, section).lora
            if lora is not None:
                lora_config(lora, section)

    @property
    def use_cpu(self) -> bool:
        """Whether a training section sets `use_cpu` (the run then starts accelerate's state on the CPU)."""
        return any(bool(getattr(self, name).training.get("use_cpu")) for name in _TRAINED_SECTIONS)

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> DistillationPipelineConfig:
        """
        Build a config from a recipe mapping (nested sections), then apply `overrides`.

        Args:
            values (`Mapping[str, Any]`):
                The recipe, e.g. the parsed YAML.
            overrides (`Mapping[str, Any]`, *optional*):
                `section.field` (or `output_dir` / `seed`) -> value, applied last.

        Returns:
            [`DistillationPipelineConfig`]: The config.

        Raises:
            [`RecipeError`]: On an unknown key (naming it) or an invalid value.
        """
        return RecipeParser().parse_recipe(values or {}, overrides=overrides)

    @classmethod
    def from_yaml(
        cls, path: str | os.PathLike, overrides: Mapping[str, Any] | None = None, args: Sequence[str] = ()
    ) -> DistillationPipelineConfig:
        """
        Read a recipe from a YAML file.

        Args:
            path (`str` or `os.PathLike`):
                The YAML file.
            overrides (`Mapping[str, Any]`, *optional*):
                `section.field` -> value, applied on top (see [`~DistillationPipelineConfig.from_dict`]).
            args (`Sequence[str]`, *optional*):
                Command-line arguments `--section.field VALUE`, applied last.

        Returns:
            [`DistillationPipelineConfig`]: The config.
        """
        return RecipeParser().parse_recipe(read_recipe_file(path), args=args, overrides=overrides)

    def to_dict(self) -> dict[str, Any]:
        """
        The config as a nested mapping (the `training` fields written inline in their section).

        Returns:
            `dict[str, Any]`: A mapping that [`~DistillationPipelineConfig.from_dict`] reads back to an equal config.
        """
        out: dict[str, Any] = {}
        for name in SECTIONS:
            section = asdict(getattr(self, name))
            training = section.pop("training", None) or {}
            section.update(training)
            out[name] = section
        out["output_dir"] = self.output_dir
        out["seed"] = self.seed
        return out

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """
        Write the config as YAML.

        Args:
            path (`str` or `os.PathLike`, *optional*):
                File to write; the YAML text is returned either way.

        Returns:
            `str`: The YAML text.
        """
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        return text


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """
    Read a recipe file into a mapping, with errors that name the file.

    Args:
        path (`str` or `os.PathLike`):
            The YAML file.

    Returns:
        `dict[str, Any]`: The recipe mapping (empty for an empty file).

    Raises:
        [`RecipeError`]: When the file is missing, unreadable, not YAML or not a mapping.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"Recipe file {str(path)!r} does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"Recipe file {str(path)!r} cannot be read: {type(error).__name__}.") from None
    try:
        values = load_yaml(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise RecipeError(f"Recipe file {str(path)!r} is not valid YAML{where}.") from None
    if not isinstance(values, Mapping):
        raise RecipeError(f"Recipe {str(path)!r} must be a YAML mapping, got {type(values).__name__}.")
    return dict(values)
