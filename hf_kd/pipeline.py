"""A resumable, recipe-driven distillation pipeline: teacher fine-tuning → gate → cached logits → student → report.

A recipe is a YAML file read into a [`DistillationPipelineConfig`]. [`run_pipeline`] runs six stages, each writing
under `output_dir/<stage>/` and leaving a `DONE.json` marker when it finishes, so that a re-run (e.g. after a crash)
skips the finished stages and resumes at the first unfinished one:

1. `teacher`: fine-tune the teacher on the hard labels (`DistillationTrainer` with `alpha=1`), unless the given
   teacher is already fine-tuned on this label space (its `config.id2label` equals the dataset's label names).
2. `teacher_eval`: evaluate the teacher on the validation (and test) split; with `evaluation.min_teacher_metric`,
   stop with an error when the teacher is below the gate.
3. `teacher_logits`: run the teacher once over the tokenized training set (`cache_teacher_logits`), saved with
   `save_to_disk`.
4. `student_warmup` (optional, `student.warmup_epochs > 0`): train the student on the hard labels only.
5. `student`: distil (`DistillationTrainer` on the cached logits; the online teacher is used only when hidden-state
   or attention losses need its activations).
6. `evaluation`: evaluate the student like the teacher, then write `report.json`/`report.md`, plots and the
   student's model card (when `hf_kd.report` / `hf_kd.model_card` are available).

Models are saved with `save_pretrained` (safetensors) together with their tokenizer. With `teacher.lora` /
`student.lora` the model is trained with a LoRA adapter (`peft`), and the stage saves the merged, plain model in
`<stage>/model/` and the adapter in `<stage>/adapter/`. Logs, reports and errors never contain example text. Under
`accelerate launch` every process runs the stages (the trainers synchronise), and only the main process writes
markers, reports and cards and prints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .config import DistillationTrainingArguments

logger = logging.getLogger(__name__)

__all__ = [
    "STAGES",
    "DataConfig",
    "DistillationPipelineConfig",
    "EvaluationConfig",
    "QualityGateError",
    "SearchConfig",
    "StudentConfig",
    "TeacherConfig",
    "evaluate_model",
    "run_pipeline",
    "run_search",
]

STAGES = ("teacher", "teacher_eval", "teacher_logits", "student_warmup", "student", "evaluation")
"""The pipeline's stages, in order; each writes under `output_dir/<stage>/`."""

DONE_FILE = "DONE.json"
_MODEL_COLUMNS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "teacher_input_ids",
    "teacher_attention_mask",
    "teacher_token_type_ids",
    "word_ids",
    "teacher_word_ids",
    "labels",
    "teacher_logits",
)
_TEACHER_SIDE_COLUMNS = (
    "teacher_input_ids",
    "teacher_attention_mask",
    "teacher_token_type_ids",
    "word_ids",
    "teacher_word_ids",
)
_TRAINING_FIELDS = {f.name for f in fields(DistillationTrainingArguments) if f.init}
# PyYAML (YAML 1.1) reads `1e-2` as a string; such values are turned into floats.
_FLOAT_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)$")


class QualityGateError(RuntimeError):
    """Raised when the teacher's evaluation metric is below the recipe's gate."""


# ---------------------------------------------------------------------------------------------------------------------
# Configuration
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

    dataset: str = "hoc"
    path: str | None = None
    data_files: dict[str, str] | None = None
    level: str = "abstract"
    text_column: str = "text"
    teacher_text_column: str | None = None
    label_column: str = "labels"
    problem_type: str | None = None
    label_delimiter: str | None = None
    max_length: int | None = 256
    teacher_max_length: int | None = None
    train_size: int | None = None
    eval_size: int | None = None
    validation_split: str = "validation"
    test_split: str | None = "test"


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

    model: str | None = None
    tokenizer: str | None = None
    lora: dict[str, Any] | None = None
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

    model: str | None = None
    from_teacher_layers: list[int] | None = None
    num_layers: int | None = None
    tokenizer: str | None = None
    warmup_epochs: float = 0.0
    online_teacher: bool = False
    lora: dict[str, Any] | None = None
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
            Stop after stage 2 with a [`QualityGateError`] when the teacher's `gate_metric` is below this.
        tune_threshold (`bool`, *optional*, defaults to `True`):
            Multi-label: tune one global threshold on the validation split (`hf_kd.metrics.tune_thresholds`) and
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

    gate_metric: str = "micro_f1"
    min_teacher_metric: float | None = None
    tune_threshold: bool = True
    batch_size: int = 32
    latency: bool = True
    latency_batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    plots: bool = True
    model_card: bool = True


@dataclass
class SearchConfig:
    """
    Search of the student's distillation hyperparameters (`hf-kd search`): particle swarm by default.

    Args:
        hp_space (`dict[str, list]`, *optional*):
            `DistillationTrainingArguments` field -> `[low, high]`, `[low, high, "log"]` or `[low, high, "int"]`.
            Defaults to `hf_kd.pso.DEFAULT_PSO_SPACE`.
        n_trials (`int`, *optional*, defaults to 10):
            Number of trials (rounded up to whole swarm iterations).
        n_particles (`int`, *optional*, defaults to 5):
            Swarm size.
        metric (`str`, *optional*, defaults to `"micro_f1"`):
            Validation metric maximised (read as `eval_<metric>`).
        direction (`str`, *optional*, defaults to `"maximize"`):
            `"maximize"` or `"minimize"`.
        backend (`str`, *optional*, defaults to `"pso"`):
            `"pso"` (pyswarms, `hf_kd.pso`), or `"tpe"` / `"random"`: Optuna's TPE or random sampler through
            `Trainer.hyperparameter_search(backend="optuna")`, over the same space (needs `pip install optuna`,
            the `search` extra). The Optuna searches are not resumable and run in one process.
    """

    hp_space: dict[str, list[Any]] | None = None
    n_trials: int = 10
    n_particles: int = 5
    metric: str = "micro_f1"
    direction: str = "maximize"
    backend: str = "pso"


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "teacher": TeacherConfig,
    "student": StudentConfig,
    "evaluation": EvaluationConfig,
    "search": SearchConfig,
}
_TOP_LEVEL = ("output_dir", "seed")
_SEARCH_BACKENDS = ("pso", "tpe", "random")


@dataclass
class DistillationPipelineConfig:
    """
    A distillation recipe: data, teacher, student, evaluation/gate, search, seed and output folder.

    Load one with [`~DistillationPipelineConfig.from_yaml`] (or [`~DistillationPipelineConfig.from_dict`]). A recipe
    is written in sections (`data:`, `teacher:`, `student:`, `evaluation:`, `search:`) or with flat keys, resolved in
    this order: `output_dir`/`seed`; a `data`, `evaluation` or `search` field; a `student` field or
    `DistillationTrainingArguments` field (the distillation's); `teacher_<name>` / `student_<name>` for the teacher's
    or the student's own field (e.g. `teacher_model`, `teacher_learning_rate`, `student_model`). Dotted keys
    (`student.alpha`) name a section explicitly. Unknown keys raise a `ValueError` naming them.

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
        if self.search.backend not in _SEARCH_BACKENDS:
            raise ValueError(f"`search.backend` must be one of {list(_SEARCH_BACKENDS)}, got {self.search.backend!r}.")
        for section in ("teacher", "student"):
            unknown = sorted(set(getattr(self, section).training) - _TRAINING_FIELDS)
            if unknown:
                raise ValueError(f"Unknown `{section}` field(s) {unknown}.")
            lora = getattr(self, section).lora
            if lora is not None:
                _lora_config(lora, section)

    # ------------------------------------------------------------------ (de)serialisation

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> DistillationPipelineConfig:
        """
        Build a config from a (sectioned or flat) mapping, then apply `overrides`.

        Args:
            values (`Mapping[str, Any]`):
                The recipe, e.g. the parsed YAML.
            overrides (`Mapping[str, Any]`, *optional*):
                Keys (dotted `section.field` or flat, see the class docstring) and values applied last.

        Returns:
            [`DistillationPipelineConfig`]: The config.

        Raises:
            `ValueError`: On an unknown key (naming it) or an invalid value.
        """
        tree: dict[str, Any] = {name: {} for name in _SECTIONS}
        for key, value in (values or {}).items():
            if key in _SECTIONS and isinstance(value, Mapping):
                for sub_key, sub_value in value.items():
                    _assign(tree, f"{key}.{sub_key}", sub_value)
            else:
                _assign(tree, str(key), value)
        for key, value in (overrides or {}).items():
            _assign(tree, str(key), value)
        kwargs: dict[str, Any] = {k: tree.pop(k) for k in _TOP_LEVEL if k in tree}
        for name, section_cls in _SECTIONS.items():
            section = dict(tree[name])
            if "training" in {f.name for f in fields(section_cls)}:
                own = {f.name for f in fields(section_cls)} - {"training"}
                training = dict(section.pop("training", {}) or {})
                training.update({k: section.pop(k) for k in list(section) if k not in own})
                section["training"] = training
            kwargs[name] = section_cls(**section)
        if "seed" in kwargs:
            kwargs["seed"] = int(kwargs["seed"])
        return cls(**kwargs)

    @classmethod
    def from_yaml(
        cls, path: str | os.PathLike, overrides: Mapping[str, Any] | None = None
    ) -> DistillationPipelineConfig:
        """
        Read a recipe from a YAML file.

        Args:
            path (`str` or `os.PathLike`):
                The YAML file.
            overrides (`Mapping[str, Any]`, *optional*):
                Keys and values applied on top (see [`~DistillationPipelineConfig.from_dict`]).

        Returns:
            [`DistillationPipelineConfig`]: The config.
        """
        with open(path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle) or {}
        if not isinstance(values, Mapping):
            raise ValueError(f"Recipe {str(path)!r} must be a YAML mapping, got {type(values).__name__}.")
        return cls.from_dict(values, overrides)

    def to_dict(self) -> dict[str, Any]:
        """
        The config as a sectioned mapping (the `training` fields written inline in their section).

        Returns:
            `dict[str, Any]`: A mapping that [`~DistillationPipelineConfig.from_dict`] reads back to an equal config.
        """
        out: dict[str, Any] = {}
        for name in _SECTIONS:
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


def _coerce(value: Any) -> Any:
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_coerce(v) for v in value]
    if isinstance(value, dict):
        return {k: _coerce(v) for k, v in value.items()}
    return value


def _field_names(section: str) -> set[str]:
    return {f.name for f in fields(_SECTIONS[section])}


def _assign(tree: dict[str, Any], key: str, value: Any) -> None:
    """Put `value` under the section and field that `key` (dotted or flat) names."""
    value = _coerce(value)
    if "." in key:
        section, _, name = key.partition(".")
        if section not in _SECTIONS:
            raise ValueError(f"Unknown recipe section {section!r} in key {key!r}; sections: {list(_SECTIONS)}.")
        name = name.removeprefix("training.")
        own = _field_names(section)
        trainable = "training" in own
        if name not in own and not (trainable and name in _TRAINING_FIELDS):
            raise ValueError(f"Unknown recipe field {key!r}.")
        tree[section][name] = value
        return
    if key in _TOP_LEVEL:
        tree[key] = value
        return
    for section in ("data", "evaluation", "search"):
        if key in _field_names(section):
            tree[section][key] = value
            return
    if (key in _field_names("student") and key != "training") or key in _TRAINING_FIELDS:
        tree["student"][key] = value
        return
    for section in ("teacher", "student"):
        prefix = section + "_"
        if key.startswith(prefix):
            name = key[len(prefix) :]
            if (name in _field_names(section) and name != "training") or name in _TRAINING_FIELDS:
                tree[section][name] = value
                return
    raise ValueError(f"Unknown recipe field {key!r}.")


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


def _state() -> Any:
    from accelerate import PartialState

    return PartialState()


def _start_state(config: DistillationPipelineConfig) -> None:
    """
    Start accelerate's state for the run, on the CPU when the recipe, the launcher or the machine asks for it.

    Every `TrainingArguments` restarts accelerate's state from its own `use_cpu`, and on a machine without accelerator
    a state started without `use_cpu` is a single process even under a multi-process launch: every process would then
    take itself for the main one (writing the markers, the cached logits and the report at the same time, and
    computing the cache each) and the barriers would not wait. So the state is started here, before any stage, with
    the CPU when a training section sets `use_cpu`, when `ACCELERATE_USE_CPU` is set, or when several processes were
    launched and no accelerator was found; every `TrainingArguments` the pipeline builds then follows it
    (`_on_cpu`).
    """
    from accelerate import PartialState
    from accelerate.state import AcceleratorState

    cpu = any(bool(section.training.get("use_cpu")) for section in (config.teacher, config.student))
    cpu = cpu or os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes", "on")
    state = PartialState(cpu=cpu)
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if state.device.type == "cpu" and state.num_processes < launched:
        AcceleratorState._reset_state(reset_partial_state=True)
        PartialState(cpu=True)


def _on_cpu() -> bool:
    """Whether the run computes on the CPU; the pipeline's `TrainingArguments` get it as `use_cpu`."""
    return _state().device.type == "cpu"


def _is_main() -> bool:
    return _state().is_main_process


def _barrier() -> None:
    _state().wait_for_everyone()


def _done(stage_dir: Path) -> dict[str, Any] | None:
    marker = stage_dir / DONE_FILE
    if marker.is_file():
        return json.loads(marker.read_text(encoding="utf-8"))
    return None


def _mark_done(stage_dir: Path, info: Mapping[str, Any]) -> None:
    if _is_main():
        stage_dir.mkdir(parents=True, exist_ok=True)
        tmp = stage_dir / (DONE_FILE + ".tmp")
        tmp.write_text(json.dumps(_jsonable(info), indent=2) + "\n", encoding="utf-8")
        tmp.replace(stage_dir / DONE_FILE)
    _barrier()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _problem_type(dataset: Any) -> str:
    import datasets

    feature = dataset.features["labels"]
    list_types = tuple(
        t for t in (getattr(datasets, n, None) for n in ("List", "Sequence", "LargeList")) if isinstance(t, type)
    )
    if isinstance(feature, list | tuple) or (list_types and isinstance(feature, list_types)):
        return "multi_label_classification"
    if isinstance(feature, datasets.ClassLabel):
        return "single_label_classification"
    if isinstance(feature, datasets.Value) and feature.dtype.startswith("float"):
        return "regression"
    return "single_label_classification"


def _load_data(config: DistillationPipelineConfig) -> tuple[Any, list[str]]:
    from .corpora import load_codiesp, load_hoc
    from .data import load_classification_dataset

    data = config.data
    if data.dataset == "hoc":
        if data.path is None:
            raise ValueError("`data.path` (the HoC directory) is required for `data.dataset: hoc`.")
        return load_hoc(data.path, level=data.level)  # type: ignore[arg-type]
    if data.dataset == "codiesp":
        if data.path is None:
            raise ValueError("`data.path` (the CodiEsp directory) is required for `data.dataset: codiesp`.")
        return load_codiesp(data.path)
    source = data.data_files if data.data_files else data.path
    if source is None:
        raise ValueError("`data.path` or `data.data_files` is required for `data.dataset: files`.")
    return load_classification_dataset(
        source,
        text_column=data.text_column,
        label_column=data.label_column,
        problem_type=data.problem_type,
        label_delimiter=data.label_delimiter,
        teacher_text_column=data.teacher_text_column,
    )


def _subset(dataset: Any, size: int | None, seed: int) -> Any:
    """A random subset of `size` examples, or of `size` documents when there is a `group` column."""
    if size is None:
        return dataset
    if "group" in dataset.column_names:
        groups = list(dict.fromkeys(dataset["group"]))
        if size >= len(groups):
            return dataset
        rng = np.random.default_rng(seed)
        keep = set(rng.permutation(len(groups))[:size].tolist())
        chosen = {groups[i] for i in keep}
        return dataset.select([i for i, g in enumerate(dataset["group"]) if g in chosen])
    if size >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(size))


def _keep_model_columns(dataset: Any, drop_teacher_side: bool = False) -> Any:
    drop = [c for c in dataset.column_names if c not in _MODEL_COLUMNS]
    if drop_teacher_side:
        drop += [c for c in dataset.column_names if c in _TEACHER_SIDE_COLUMNS]
    return dataset.remove_columns(drop) if drop else dataset


def _load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def _label_kwargs(label_names: Sequence[str], problem_type: str) -> dict[str, Any]:
    return {
        "num_labels": len(label_names),
        "problem_type": problem_type,
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }


def _is_finetuned_on(model_name: str, label_names: Sequence[str]) -> bool:
    """Whether the checkpoint's config already has this label space (same names, same order, same count)."""
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(model_name)
    except (OSError, ValueError):
        return False
    id2label = getattr(model_config, "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label, key=int)]
    return model_config.num_labels == len(label_names) and names == list(label_names)


def _load_classifier(name: str, label_names: Sequence[str], problem_type: str, seed: int | None = None) -> Any:
    """Load a classifier; with `seed`, a newly initialised head is drawn from that seed, whatever ran before."""
    import torch
    from transformers import AutoModelForSequenceClassification

    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        return AutoModelForSequenceClassification.from_pretrained(
            name, use_safetensors=True, ignore_mismatched_sizes=True, **_label_kwargs(label_names, problem_type)
        )


# LoraConfig fields the pipeline sets itself.
_LORA_RESERVED = ("peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode")


def _lora_config(values: Mapping[str, Any], section: str) -> Any:
    """The `peft.LoraConfig` of a `teacher.lora` / `student.lora` mapping, for sequence classification."""
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


def _with_lora(model: Any, values: Mapping[str, Any] | None, section: str, seed: int) -> Any:
    """`model` wrapped by `peft.get_peft_model` when `values` (a `lora` section) is set, else `model`."""
    if values is None:
        return model
    import torch
    from peft import get_peft_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the adapter's initialisation
        return get_peft_model(model, _lora_config(values, section))


def _training_args(
    output_dir: Path, config: DistillationPipelineConfig, overrides: Mapping[str, Any], **forced: Any
) -> DistillationTrainingArguments:
    values: dict[str, Any] = {
        "report_to": "none",
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_steps": 10,
        "per_device_eval_batch_size": config.evaluation.batch_size,
        "disable_tqdm": True,
        "seed": config.seed,
        "use_cpu": _on_cpu(),
    }
    values.update(overrides)
    values.update(forced)
    values["output_dir"] = str(output_dir)
    return DistillationTrainingArguments(**values)


def _train(trainer: Any) -> None:
    from peft import PeftModel
    from transformers.trainer_utils import get_last_checkpoint

    if isinstance(trainer.model, PeftModel) and (trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled):
        raise ValueError(
            "`teacher.lora` / `student.lora` are not supported with DeepSpeed or FSDP in the pipeline (the adapter is "
            "merged into unsharded weights); run it single-process or with DDP, or use `DistillationTrainer` directly."
        )
    checkpoint = None
    if os.path.isdir(trainer.args.output_dir):
        checkpoint = get_last_checkpoint(trainer.args.output_dir)
    trainer.train(resume_from_checkpoint=checkpoint)


def _save(trainer: Any, folder: Path) -> str | None:
    """Save the trainer's model in `folder`; a LoRA model is saved merged, its adapter in `folder/../adapter`.

    Returns the adapter folder, or None for a plain model.
    """
    from peft import PeftModel

    adapter_dir = None
    if isinstance(trainer.model, PeftModel):
        adapter_dir = folder.parent / "adapter"
        trainer.save_model(str(adapter_dir))  # adapter_model.safetensors + adapter_config.json
        trainer.model = trainer.model.merge_and_unload()
    trainer.save_model(str(folder))  # main process only, safetensors
    if _is_main():
        (folder.parent / "log_history.json").write_text(
            json.dumps(_jsonable(trainer.state.log_history), indent=2) + "\n", encoding="utf-8"
        )
    _barrier()
    return str(adapter_dir) if adapter_dir is not None else None


# ---------------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------------


def _split_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    problem_type: str,
    label_names: Sequence[str],
    threshold: float,
) -> dict[str, float]:
    from .corpora import blurb_hoc_f1
    from .metrics import multilabel_metrics, sigmoid, single_label_metrics, softmax

    if problem_type == "multi_label_classification":
        probs = sigmoid(logits)
        out = dict(multilabel_metrics(probs, labels, threshold=threshold, label_names=label_names))
        if groups is not None and len(np.unique(groups)) < len(groups):
            blurb = blurb_hoc_f1(probs, labels, groups, threshold=threshold)
            out.update({f"blurb_{k}": v for k, v in blurb.items()})
        out["threshold"] = float(threshold)
        return out
    if problem_type == "single_label_classification":
        return dict(single_label_metrics(softmax(logits, axis=-1), labels))
    preds = logits.reshape(len(labels), -1)[:, 0]
    errors = preds.astype(np.float64) - np.asarray(labels, dtype=np.float64).reshape(-1)
    return {"mse": float(np.mean(errors**2)), "mae": float(np.mean(np.abs(errors)))}


def _predict(model: Any, tokenizer: Any, dataset: Any, output_dir: Path, batch_size: int) -> np.ndarray:
    from .trainer import DistillationTrainer

    args = DistillationTrainingArguments(
        output_dir=str(output_dir),
        per_device_eval_batch_size=batch_size,
        report_to="none",
        disable_tqdm=True,
        use_cpu=_on_cpu(),
    )
    trainer = DistillationTrainer(model=model, args=args, processing_class=tokenizer)
    output = trainer.predict(_keep_model_columns(dataset, drop_teacher_side=True))
    predictions = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return np.asarray(predictions, dtype=np.float64)


def _evaluate(
    model: Any,
    tokenizer: Any,
    splits: Mapping[str, Any],
    validation_split: str,
    problem_type: str,
    label_names: Sequence[str],
    tune: bool,
    output_dir: Path,
    batch_size: int,
) -> dict[str, dict[str, float]]:
    """Metrics of every split, the multi-label threshold tuned on `validation_split`."""
    from .metrics import sigmoid
    from .thresholds import tune_thresholds

    raw: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    for name, dataset in splits.items():
        logits = _predict(model, tokenizer, dataset, output_dir, batch_size)
        labels = np.asarray(dataset["labels"])
        groups = np.asarray(dataset["group"]) if "group" in dataset.column_names else None
        raw[name] = (logits, labels, groups)
    threshold = 0.5
    if tune and problem_type == "multi_label_classification" and validation_split in raw:
        logits, labels, _ = raw[validation_split]
        threshold = float(tune_thresholds(sigmoid(logits), labels))
    return {
        name: _split_metrics(logits, labels, groups, problem_type, label_names, threshold)
        for name, (logits, labels, groups) in raw.items()
    }


def _headline(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Split-prefixed headline metrics (no per-label entries) for the report."""
    out: dict[str, float] = {}
    for split, values in metrics.items():
        for key, value in values.items():
            if key.startswith("f1_") or key in ("blurb_n_documents", "threshold"):
                continue
            out[f"{split}_{key}"] = value
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Pipeline
# ---------------------------------------------------------------------------------------------------------------------


class _Run:
    """The state shared by the stages: data, tokenizers and folders."""

    def __init__(self, config: DistillationPipelineConfig) -> None:
        from .data import tokenize_for_distillation

        self.config = config
        _start_state(config)
        self.root = Path(config.output_dir)
        data_config = config.data
        raw, self.label_names = _load_data(config)
        self.label_names = [str(n) for n in self.label_names]
        if "train" not in raw:
            raise ValueError(f"The dataset has no 'train' split; splits: {list(raw)}.")
        if data_config.validation_split not in raw:
            raise ValueError(f"Validation split {data_config.validation_split!r} not found; splits: {list(raw)}.")
        self.problem_type = _problem_type(raw["train"])
        eval_names = [data_config.validation_split]
        if data_config.test_split and data_config.test_split in raw:
            eval_names.append(data_config.test_split)
        train = _subset(raw["train"], data_config.train_size, config.seed)
        evals = {name: _subset(raw[name], data_config.eval_size, config.seed) for name in eval_names}
        self.validation_split = data_config.validation_split

        self.teacher_name = str(config.teacher.model)
        self.teacher_tokenizer = _load_tokenizer(config.teacher.tokenizer or self.teacher_name)
        if config.student.model is not None:
            self.student_tokenizer = _load_tokenizer(config.student.tokenizer or config.student.model)
        else:
            self.student_tokenizer = self.teacher_tokenizer
        teacher_column = data_config.teacher_text_column or data_config.text_column
        teacher_length = data_config.teacher_max_length or data_config.max_length

        def side(dataset: Any, tokenizer: Any, column: str, length: int | None) -> Any:
            return tokenize_for_distillation(
                dataset, tokenizer, text_column=column, max_length=length, remove_text=True, word_alignment=False
            )

        self.teacher_train = _keep_model_columns(side(train, self.teacher_tokenizer, teacher_column, teacher_length))
        self.teacher_evals = {
            n: side(d, self.teacher_tokenizer, teacher_column, teacher_length) for n, d in evals.items()
        }
        self.student_evals = {
            n: side(d, self.student_tokenizer, data_config.text_column, data_config.max_length)
            for n, d in evals.items()
        }
        self.student_train = _keep_model_columns(
            tokenize_for_distillation(
                train,
                self.student_tokenizer,
                teacher_tokenizer=self.teacher_tokenizer,
                text_column=data_config.text_column,
                teacher_text_column=data_config.teacher_text_column,
                max_length=data_config.max_length,
                teacher_max_length=data_config.teacher_max_length,
                remove_text=True,
            )
        )
        self.n_train = len(train)
        self.teacher_path: str = self.teacher_name
        self.stages: dict[str, str] = {}

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def compute_metrics(self) -> Any:
        from .metrics import make_compute_metrics

        multi_label = self.problem_type == "multi_label_classification"
        # Multi-label: the threshold tuned on the evaluated (validation) predictions, as in the report, so that the
        # trainers' eval metrics and the search objective are the numbers the report shows for that split.
        threshold = "tune" if multi_label and self.config.evaluation.tune_threshold else 0.5
        return make_compute_metrics(
            self.problem_type, threshold=threshold, label_names=self.label_names if multi_label else None
        )

    # ------------------------------------------------------------------ stages

    def run_teacher(self) -> None:
        from .trainer import DistillationTrainer

        folder = self.stage_dir("teacher")
        done = _done(folder)
        if done is not None:
            self.teacher_path = done["model"]
            self.stages["teacher"] = "skipped (done)"
            return
        if _is_finetuned_on(self.teacher_name, self.label_names):
            logger.info("Teacher is already fine-tuned on this label space; skipping its fine-tuning.")
            self.teacher_path = self.teacher_name
            _mark_done(folder, {"model": self.teacher_name, "fine_tuned": False, "reason": "already fine-tuned"})
            self.stages["teacher"] = "skipped (teacher already fine-tuned)"
            return
        model = _load_classifier(self.teacher_name, self.label_names, self.problem_type, seed=self.config.seed)
        lora = self.config.teacher.lora
        model = _with_lora(model, lora, "teacher", self.config.seed)
        args = _training_args(folder / "checkpoints", self.config, self.config.teacher.training, alpha=1.0)
        trainer = DistillationTrainer(
            model=model,
            args=args,
            train_dataset=self.teacher_train,
            eval_dataset=_keep_model_columns(self.teacher_evals[self.validation_split]),
            processing_class=self.teacher_tokenizer,
            compute_metrics=self.compute_metrics(),
        )
        started = time.perf_counter()
        _train(trainer)
        model_dir = folder / "model"
        adapter_dir = _save(trainer, model_dir)
        self.teacher_path = str(model_dir)
        info = {"model": str(model_dir), "fine_tuned": True, "train_seconds": time.perf_counter() - started}
        if lora is not None:
            info.update({"lora": lora, "adapter": adapter_dir})
        _mark_done(folder, info)
        self.stages["teacher"] = "ran"

    def evaluate(
        self, model: Any, tokenizer: Any, splits: dict[str, Any], folder: Path
    ) -> dict[str, dict[str, float]]:
        """Metrics of `model` on each of `splits`, with the threshold tuned on the validation split as configured."""
        return _evaluate(
            model,
            tokenizer,
            splits,
            self.validation_split,
            self.problem_type,
            self.label_names,
            self.config.evaluation.tune_threshold,
            folder / "tmp",
            self.config.evaluation.batch_size,
        )

    def load_teacher(self) -> Any:
        model = _load_classifier(self.teacher_path, self.label_names, self.problem_type)
        return model

    def run_teacher_eval(self) -> dict[str, dict[str, float]]:
        folder = self.stage_dir("teacher_eval")
        done = _done(folder)
        if done is not None:
            metrics = done["metrics"]
            self.stages["teacher_eval"] = "skipped (done)"
        else:
            metrics = self.evaluate(self.load_teacher(), self.teacher_tokenizer, self.teacher_evals, folder)
            _mark_done(folder, {"metrics": metrics})
            self.stages["teacher_eval"] = "ran"
        gate = self.config.evaluation.min_teacher_metric
        if gate is not None:
            name = self.config.evaluation.gate_metric
            values = metrics[self.validation_split]
            if name not in values:
                raise ValueError(f"Gate metric {name!r} is not among the teacher's metrics: {sorted(values)}.")
            if values[name] < gate:
                raise QualityGateError(
                    f"Teacher quality gate failed: {self.validation_split} {name} = {values[name]:.4f} < "
                    f"min_teacher_metric = {gate}. Fix the teacher (or lower the gate) before distilling."
                )
        return metrics

    def needs_online_teacher(self) -> bool:
        args = self.config.student.training
        return (
            bool(self.config.student.online_teacher)
            or float(args.get("hidden_loss_weight", 0) or 0) > 0
            or float(args.get("attention_loss_weight", 0) or 0) > 0
        )

    def run_teacher_logits(self) -> Any:
        import datasets

        from .teacher_cache import cache_teacher_logits

        folder = self.stage_dir("teacher_logits")
        data_dir = folder / "dataset"
        if _done(folder) is not None:
            self.stages["teacher_logits"] = "skipped (done)"
            return datasets.load_from_disk(str(data_dir))
        started = time.perf_counter()
        cached = cache_teacher_logits(
            self.load_teacher(),
            self.student_train,
            batch_size=self.config.evaluation.batch_size,
            cache_dir=str(folder / "cache"),
            accelerator=_state(),
        )
        if _is_main():
            if data_dir.exists():
                shutil.rmtree(data_dir)
            cached.save_to_disk(str(data_dir))
        _barrier()
        seconds = time.perf_counter() - started
        _mark_done(folder, {"dataset": str(data_dir), "num_rows": len(cached), "seconds": seconds})
        self.stages["teacher_logits"] = "ran"
        return datasets.load_from_disk(str(data_dir))

    def new_student(self, warm_model: str | None = None) -> Any:
        """A fresh student (from `warm_model` when given), wrapped with LoRA when `student.lora` is set."""
        from .student import student_from_teacher

        student_config = self.config.student
        if warm_model is not None:
            model = _load_classifier(warm_model, self.label_names, self.problem_type, seed=self.config.seed)
        elif student_config.model is not None:
            model = _load_classifier(student_config.model, self.label_names, self.problem_type, seed=self.config.seed)
        else:
            model = student_from_teacher(
                self.load_teacher(), layers=student_config.from_teacher_layers, num_layers=student_config.num_layers
            )
        return _with_lora(model, student_config.lora, "student", self.config.seed)

    def run_student_warmup(self, train: Any) -> str | None:
        from .trainer import DistillationTrainer

        epochs = self.config.student.warmup_epochs
        if not epochs:
            self.stages["student_warmup"] = "disabled"
            return None
        folder = self.stage_dir("student_warmup")
        done = _done(folder)
        if done is not None:
            self.stages["student_warmup"] = "skipped (done)"
            return done["model"]
        overrides = {
            k: v
            for k, v in self.config.student.training.items()
            if k not in ("hidden_loss_weight", "attention_loss_weight")
        }
        args = _training_args(folder / "checkpoints", self.config, overrides, alpha=1.0, num_train_epochs=epochs)
        trainer = DistillationTrainer(
            model=self.new_student(),
            args=args,
            train_dataset=_keep_model_columns(train.remove_columns(["teacher_logits"]), drop_teacher_side=True),
            processing_class=self.student_tokenizer,
            compute_metrics=self.compute_metrics(),
        )
        _train(trainer)
        model_dir = folder / "model"
        adapter_dir = _save(trainer, model_dir)
        _mark_done(folder, {"model": str(model_dir), **({"adapter": adapter_dir} if adapter_dir else {})})
        self.stages["student_warmup"] = "ran"
        return str(model_dir)

    def distillation_trainer(self, output_dir: Path, train: Any, model: Any = None, model_init: Any = None) -> Any:
        """The student's `DistillationTrainer` (stage 5 and every search trial): the online teacher only when
        `needs_online_teacher()`, otherwise the cached `teacher_logits` column alone."""
        from .trainer import DistillationTrainer

        online = self.needs_online_teacher()
        if self.config.student.online_teacher and "teacher_logits" in train.column_names:
            train = train.remove_columns("teacher_logits")  # every logit comes from the teacher's forward pass
        return DistillationTrainer(
            model=model,
            model_init=model_init,
            teacher_model=self.load_teacher() if online else None,
            args=_training_args(output_dir, self.config, self.config.student.training),
            train_dataset=_keep_model_columns(train, drop_teacher_side=not online),
            eval_dataset=_keep_model_columns(self.student_evals[self.validation_split], drop_teacher_side=True),
            processing_class=self.student_tokenizer,
            teacher_processing_class=self.teacher_tokenizer if online else None,
            compute_metrics=self.compute_metrics(),
        )

    def run_student(self, train: Any, warm_model: str | None) -> tuple[str, dict[str, Any]]:
        folder = self.stage_dir("student")
        done = _done(folder)
        if done is not None:
            self.stages["student"] = "skipped (done)"
            return done["model"], done
        online = self.needs_online_teacher()
        trainer = self.distillation_trainer(folder / "checkpoints", train, model=self.new_student(warm_model))
        started = time.perf_counter()
        _train(trainer)
        model_dir = folder / "model"
        adapter_dir = _save(trainer, model_dir)
        info = {
            "model": str(model_dir),
            "online_teacher": online,
            "train_seconds": time.perf_counter() - started,
            "args": {k: v for k, v in self.config.student.training.items()},
        }
        if adapter_dir is not None:
            info.update({"lora": self.config.student.lora, "adapter": adapter_dir})
        _mark_done(folder, info)
        self.stages["student"] = "ran"
        return str(model_dir), info

    def run_evaluation(self, student_dir: str, teacher_metrics: dict[str, dict[str, float]]) -> dict[str, Any]:
        folder = self.stage_dir("evaluation")
        done = _done(folder)
        if done is not None:
            self.stages["evaluation"] = "skipped (done)"
            return done
        student = _load_classifier(student_dir, self.label_names, self.problem_type)
        student_metrics = self.evaluate(student, self.student_tokenizer, self.student_evals, folder)
        result: dict[str, Any] = {"teacher": teacher_metrics, "student": student_metrics}
        if _is_main():
            result["report"] = self._report(student, student_dir, teacher_metrics, student_metrics, folder)
        _mark_done(folder, result)
        self.stages["evaluation"] = "ran"
        return result

    def _report(
        self,
        student: Any,
        student_dir: str,
        teacher_metrics: dict[str, dict[str, float]],
        student_metrics: dict[str, dict[str, float]],
        folder: Path,
    ) -> dict[str, Any] | None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(
            json.dumps(_jsonable(result_summary(teacher_metrics, student_metrics)), indent=2) + "\n",
            encoding="utf-8",
        )
        try:
            from . import report as report_module
        except ImportError:  # pragma: no cover - the report module is optional
            logger.warning("hf_kd.report is not available; writing metrics.json only.")
            return None
        teacher = self.load_teacher()
        sides: dict[str, dict[str, Any]] = {}
        for name, model, tokenizer, metrics, path in (
            ("teacher", teacher, self.teacher_tokenizer, teacher_metrics, self.teacher_path),
            ("student", student, self.student_tokenizer, student_metrics, student_dir),
        ):
            side: dict[str, Any] = {"metrics": _headline(metrics)}
            size = report_module.model_size(path if Path(path).is_dir() else model)
            side.update({"parameters": size["parameters"], "size_mb": size["size_mb"]})
            if self.config.evaluation.latency:
                side["latency"] = report_module.measure_latency(
                    model,
                    tokenizer,
                    batch_sizes=tuple(self.config.evaluation.latency_batch_sizes),
                    seq_len=self.config.data.max_length or 128,
                )
            sides[name] = side
        extra = {
            "dataset": self.config.data.dataset,
            "level": self.config.data.level if self.config.data.dataset == "hoc" else None,
            "train_examples": self.n_train,
            "teacher": self.teacher_name,
            "student_layers": getattr(student.config, "num_hidden_layers", None),
            "problem_type": self.problem_type,
        }
        report = report_module.build_report(sides["teacher"], sides["student"], extra=extra)
        report_module.write_report(report, self.root)
        report_module.write_report(report, folder)
        report_module.print_report(report)
        if self.config.evaluation.plots:
            self._plots(report_module, teacher_metrics, student_metrics, folder)
        if self.config.evaluation.model_card:
            self._model_card(student, student_dir, teacher, student_metrics, teacher_metrics, report)
        return report

    def _plots(self, report_module: Any, teacher_metrics: Any, student_metrics: Any, folder: Path) -> None:
        from . import plots

        try:
            history = self.root / "student" / "log_history.json"
            if history.is_file():
                plots.plot_training_curves(
                    json.loads(history.read_text(encoding="utf-8")), folder / "student_training_curves.png"
                )
            if self.problem_type == "multi_label_classification":
                plots.plot_per_label_f1(
                    teacher_metrics[self.validation_split],
                    student_metrics[self.validation_split],
                    self.label_names,
                    folder / "per_label_f1.png",
                )
        except Exception as error:  # noqa: BLE001 - plots are a convenience, never fatal
            logger.warning("Could not write the plots: %s", type(error).__name__)

    def _model_card(
        self, student: Any, student_dir: str, teacher: Any, student_metrics: Any, teacher_metrics: Any, report: Any
    ) -> None:
        try:
            from .model_card import card_data_from_trainer, write_model_card
            from .trainer import DistillationTrainer
        except ImportError:  # pragma: no cover - the model card module is optional
            return
        args = _training_args(self.stage_dir("evaluation") / "tmp", self.config, self.config.student.training)
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
        split = self.validation_split
        card = card_data_from_trainer(
            trainer,
            teacher_id=self.teacher_name,
            dataset_names=[self.config.data.dataset],
            metrics=_numeric(student_metrics[split]),
            teacher_metrics=_numeric(teacher_metrics[split]),
            eval_split=split,
            label_names=list(self.label_names),
            cached_teacher_logits=not self.needs_online_teacher(),
            # The card's title: the Hub repo when the recipe names one, else the run's folder name.
            model_name=str(args.hub_model_id).split("/")[-1]
            if args.hub_model_id
            else Path(self.config.output_dir).name,
        )
        write_model_card(student_dir, card, report)


def _numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def result_summary(
    teacher_metrics: Mapping[str, Mapping[str, float]], student_metrics: Mapping[str, Mapping[str, float]]
) -> dict[str, Any]:
    """
    Headline metrics of both models, split-prefixed (e.g. `validation_micro_f1`, `test_micro_f1`).

    Args:
        teacher_metrics (`Mapping[str, Mapping[str, float]]`):
            The teacher's metrics per split.
        student_metrics (`Mapping[str, Mapping[str, float]]`):
            The student's metrics per split.

    Returns:
        `dict[str, Any]`: `{"teacher": {...}, "student": {...}}`.
    """
    return {"teacher": _headline(teacher_metrics), "student": _headline(student_metrics)}


def run_pipeline(config: DistillationPipelineConfig) -> dict[str, Any]:
    """
    Run (or resume) the distillation recipe `config`; see the module docstring for the stages.

    Args:
        config ([`DistillationPipelineConfig`]):
            The recipe.

    Returns:
        `dict[str, Any]`: `output_dir`, `stages` (what each stage did: `"ran"`, `"skipped (...)"` or
        `"disabled"`), `teacher_model` and `student_model` (paths), `teacher` and `student` (metrics per split) and
        `report` (the `hf_kd.report` report when written in this run, else None).

    Raises:
        [`QualityGateError`]: When the teacher is below `evaluation.min_teacher_metric`.
    """
    run = _Run(config)
    if _is_main():
        run.root.mkdir(parents=True, exist_ok=True)
        config.to_yaml(run.root / "recipe.yaml")
    _barrier()
    run.run_teacher()
    teacher_metrics = run.run_teacher_eval()
    train = run.run_teacher_logits()
    warm = run.run_student_warmup(train)
    student_dir, _ = run.run_student(train, warm)
    result = run.run_evaluation(student_dir, teacher_metrics)
    return {
        "output_dir": str(run.root),
        "stages": dict(run.stages),
        "teacher_model": run.teacher_path,
        "student_model": student_dir,
        "teacher": result["teacher"],
        "student": result["student"],
        "report": result.get("report"),
    }


def evaluate_model(
    config: DistillationPipelineConfig, model: str, split: str = "validation", side: str = "student"
) -> dict[str, float]:
    """
    Evaluate a saved classifier on a split of the recipe's data, with the pipeline's metrics.

    For multi-label tasks the threshold is tuned on the validation split (when `evaluation.tune_threshold`) and
    applied to `split`.

    Args:
        config ([`DistillationPipelineConfig`]):
            The recipe (its data section and evaluation settings are used).
        model (`str`):
            Folder (or Hub id) of the classifier; its tokenizer is loaded from there.
        split (`str`, *optional*, defaults to `"validation"`):
            Split to report.
        side (`str`, *optional*, defaults to `"student"`):
            Which text column and maximum length to use: the student's (`text_column`, `max_length`) or the
            teacher's (`teacher_text_column`, `teacher_max_length`).

    Returns:
        `dict[str, float]`: The metrics of `split`.
    """
    from .data import tokenize_for_distillation

    if side not in ("student", "teacher"):
        raise ValueError(f"`side` must be 'student' or 'teacher', got {side!r}.")
    _start_state(config)
    raw, label_names = _load_data(config)
    label_names = [str(n) for n in label_names]
    validation = config.data.validation_split
    for name in {split, validation}:
        if name not in raw:
            raise ValueError(f"Split {name!r} not found; splits: {list(raw)}.")
    problem_type = _problem_type(raw["train"] if "train" in raw else raw[split])
    if side == "teacher":
        column = config.data.teacher_text_column or config.data.text_column
        length = config.data.teacher_max_length or config.data.max_length
    else:
        column, length = config.data.text_column, config.data.max_length
    tokenizer = _load_tokenizer(model)
    splits = {
        name: tokenize_for_distillation(
            _subset(raw[name], config.data.eval_size, config.seed),
            tokenizer,
            text_column=column,
            max_length=length,
            remove_text=True,
            word_alignment=False,
        )
        for name in dict.fromkeys([validation, split])
    }
    classifier = _load_classifier(model, label_names, problem_type)
    metrics = _evaluate(
        classifier,
        tokenizer,
        splits,
        validation,
        problem_type,
        label_names,
        config.evaluation.tune_threshold,
        Path(config.output_dir) / "evaluate_tmp",
        config.evaluation.batch_size,
    )
    return metrics[split]


def run_search(config: DistillationPipelineConfig, n_trials: int | None = None, n_particles: int | None = None) -> Any:
    """
    Particle-swarm search of the student's distillation hyperparameters (`hf_kd.pso`).

    Runs (or reuses) stages 1-3 of the pipeline (teacher, gate, cached logits), then
    `DistillationTrainer.hyperparameter_search(backend="pso", ...)` with a fresh student per trial, the space of the
    recipe's `search:` section, and `eval_<search.metric>` on the validation split as objective. The search writes
    under `output_dir/search/pso/` and resumes like the pipeline. At the end, `output_dir/search/best_recipe.yaml`
    (`search/<backend>/best_recipe.yaml` for Optuna) is the recipe with the best hyperparameters in its `student:`
    section, the fine-tuned teacher as `teacher.model` and `output_dir/best` as output folder: `hf-kd distill` of it
    trains the best student. With `search.backend: tpe` or `random`, the same
    space and objective go to `hyperparameter_search(backend="optuna")` with Optuna's `TPESampler` /
    `RandomSampler` (seeded with `seed`), e.g. to compare searches at an equal budget.

    Args:
        config ([`DistillationPipelineConfig`]):
            The recipe.
        n_trials (`int`, *optional*):
            Overrides `search.n_trials`.
        n_particles (`int`, *optional*):
            Overrides `search.n_particles`.

    Returns:
        `transformers.trainer_utils.BestRun`: The best trial.
    """

    search = config.search
    backend = search.backend
    if backend != "pso":
        try:
            import optuna  # noqa: F401
        except ImportError as error:
            raise ImportError(
                f"`search.backend: {backend}` uses Optuna, which is not installed; `pip install optuna` (or the "
                "`search` extra of hf-kd)."
            ) from error
    run = _Run(config)
    run.run_teacher()
    run.run_teacher_eval()
    train = run.run_teacher_logits()
    # PSO keeps its state in search/pso/; an Optuna search's trial folders go to search/<backend>/.
    search_dir = run.root / "search" if backend == "pso" else run.root / "search" / backend
    # A zero-argument `model_init`: Trainer passes the trial to a one-argument one.
    trainer = run.distillation_trainer(search_dir, train, model_init=lambda: run.new_student())
    args = trainer.args
    key = f"eval_{search.metric}"

    def objective(metrics: dict[str, float]) -> float:
        if key not in metrics:
            raise ValueError(f"Search metric {key!r} not among the evaluation metrics: {sorted(metrics)}.")
        return float(metrics[key])

    hp_space = {name: tuple(bounds) for name, bounds in search.hp_space.items()} if search.hp_space else None
    best = _search(trainer, backend, hp_space, objective, config, n_trials, n_particles, args)
    # The recipe with the best hyperparameters in its student section: `hf-kd distill BEST` trains that student from
    # the teacher fine-tuned here (so its stage 1 is skipped), in a run folder of its own.
    best_config = dataclasses.replace(
        config,
        teacher=dataclasses.replace(config.teacher, model=str(run.teacher_path)),
        student=dataclasses.replace(
            config.student, training={**config.student.training, **dict(best.hyperparameters or {})}
        ),
        output_dir=str(Path(config.output_dir) / "best"),
    )
    if _is_main() and best is not None:
        search_dir.mkdir(parents=True, exist_ok=True)
        header = (
            f"# The recipe with the best of the {backend} search's trials (objective {best.objective}, "
            f"eval_{search.metric}, {search.direction}).\n"
        )
        (search_dir / "best_recipe.yaml").write_text(header + best_config.to_yaml(), encoding="utf-8")
    _barrier()
    return best


def _search(
    trainer: Any,
    backend: str,
    hp_space: dict[str, tuple] | None,
    objective: Any,
    config: DistillationPipelineConfig,
    n_trials: int | None,
    n_particles: int | None,
    args: Any,
) -> Any:
    search = config.search
    if backend != "pso":
        import optuna

        from .search import DEFAULT_PSO_SPACE, optuna_space, parse_space

        n = n_trials if n_trials is not None else search.n_trials
        sampler_class = optuna.samplers.TPESampler if backend == "tpe" else optuna.samplers.RandomSampler
        return trainer.hyperparameter_search(
            backend="optuna",
            hp_space=optuna_space(parse_space(hp_space or DEFAULT_PSO_SPACE, args)),
            n_trials=n,
            direction=search.direction,
            compute_objective=objective,
            sampler=sampler_class(seed=config.seed),
        )
    return trainer.hyperparameter_search(
        backend="pso",
        hp_space=hp_space,
        n_trials=n_trials if n_trials is not None else search.n_trials,
        n_particles=n_particles if n_particles is not None else search.n_particles,
        seed=config.seed,
        direction=search.direction,
        compute_objective=objective,
    )


def replace_config(config: DistillationPipelineConfig, **changes: Any) -> DistillationPipelineConfig:
    """
    A copy of `config` with top-level fields changed (e.g. `output_dir`).

    Args:
        config ([`DistillationPipelineConfig`]):
            The config.
        **changes (`Any`):
            Field values.

    Returns:
        [`DistillationPipelineConfig`]: The copy.
    """
    return dataclasses.replace(config, **changes)
