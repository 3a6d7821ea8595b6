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
from typing import Any

import yaml
from transformers import HfArgumentParser

from .sections import (
    SECTIONS,
    TRAINED_SECTIONS,
    DataConfig,
    EvaluationConfig,
    SearchConfig,
    StudentConfig,
    TeacherConfig,
    TopLevelConfig,
)

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
    "read_recipe_file",
]

# Training fields the pipeline sets itself for every stage.
_PIPELINE_OWNED = ("output_dir",)
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
        self._add_section("", TopLevelConfig, self.add_argument_group("top level"))
        for name, cls in SECTIONS.items():
            description = f"`{name}:` in the recipe, --{name}.<field> here."
            if name in TRAINED_SECTIONS:
                description += (
                    f" Also every DistillationTrainingArguments field of the {name}'s training run, e.g. "
                    f"--{name}.learning_rate, --{name}.num_train_epochs (not listed here)."
                )
            group = self.add_argument_group(f"{name} section", description)
            self._add_section(name, cls, group)
        if training_fields:
            from ..training.distillation_config import DistillationTrainingArguments

            for name in TRAINED_SECTIONS:
                self._add_section(name, DistillationTrainingArguments, self, hidden=True)

    def _add_section(self, prefix: str, cls: type, group: Any, hidden: bool = False) -> None:
        hints = typing.get_type_hints(cls)
        for original in fields(cls):
            if not original.init or original.name == "training" or (hidden and original.name in _PIPELINE_OWNED):
                continue
            item = copy.copy(original)
            item.name = f"{prefix}.{original.name}" if prefix else original.name
            # argparse reads the metadata as `add_argument` keywords: ours (`architecture`) stays on the section.
            item.metadata = types.MappingProxyType({k: v for k, v in original.metadata.items() if k != "architecture"})
            item.type = str if hints[original.name] is Any else hints[original.name]
            before = len(self._actions)
            self._parse_dataclass_field(group, item)
            action, *complements = self._actions[before:]
            for extra in complements:  # HfArgumentParser's `--no_<field>`: one spelling per field
                self._drop(extra, group)
            for alias in action.option_strings[1:]:  # and its `--field-name` alias
                del self._option_string_actions[alias]
            action.option_strings = action.option_strings[:1]
            if action.choices is None and action.nargs != "?":
                action.metavar = "VALUE"
            if _is_mapping(hints[original.name]) or hints[original.name] is Any:
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
    output_dir: str = TopLevelConfig.output_dir  # the top-level fields' defaults are written once, there
    seed: int = TopLevelConfig.seed

    def __post_init__(self) -> None:
        # Each section checks itself; the order is the error a recipe with several mistakes reports first.
        for section in (self.teacher, self.student, self.evaluation, self.data, self.search):
            section.validate()

    @property
    def use_cpu(self) -> bool:
        """Whether a training section sets `use_cpu` (the run then starts accelerate's state on the CPU)."""
        return any(bool(getattr(self, name).training.get("use_cpu")) for name in TRAINED_SECTIONS)

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
