"""The sections of a recipe, as dataclasses: every field with its type, default and help (`hf_kd.recipe.config` reads
them).

Each section's fields are written in its YAML section (`student: {alpha: 0.3}`) and overridden on the command line as
`--section.field VALUE`. The `teacher` and `student` sections also take every `DistillationTrainingArguments` field
of their training run; those are kept in the section's `training` mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from ..constants import CORPUS_LEVELS, EXPORT_FORMATS, NARROW_INITS, TEACHER_LOGITS_DTYPES
from ..evaluation.thresholds import check_threshold_rule

__all__ = [
    "SEARCH_BACKENDS",
    "SECTIONS",
    "TRAINED_SECTIONS",
    "check_data_section",
    "check_search_section",
    "check_student_section",
    "DataConfig",
    "EvaluationConfig",
    "SearchConfig",
    "StudentConfig",
    "TeacherConfig",
    "TopLevelConfig",
    "lora_config",
]

SEARCH_BACKENDS = ("pso", "tpe", "random")
# LoraConfig fields the pipeline sets itself.
_LORA_RESERVED = ("peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision", "inference_mode")


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
        level (`str`, *optional*):
            HoC: `"abstract"` (the default) or `"sentence"` (sentence-level training, BLURB abstract-level
            evaluation). CodiEsp: `"chapter"` (the default: multi-label ICD-10-CM chapters) or `"triage"` (a binary
            proxy label: the case has an injury/poisoning or external-cause code, see
            `hf_kd.data.corpora.load_codiesp`).
        text_column (`str`, *optional*, defaults to `"text"`):
            Column the student reads.
        teacher_text_column (`str`, *optional*):
            Column the teacher reads (e.g. `text_en_mt`); defaults to `text_column`.
        label_column (`str`, *optional*, defaults to `"labels"`):
            Label column for `"files"`.
        id_column (`str`, *optional*, defaults to `"id"`):
            The column that identifies a row: the predictions for an unlabeled test split carry its value (the row's
            position when the split has no such column).
        problem_type (`str`, *optional*):
            `"single_label_classification"`, `"multi_label_classification"`, `"regression"` or `"binary"` (two
            classes scored as triage: AUROC, sensitivity... at the operating threshold); inferred when unset, a
            two-class dataset being binary.
        label_names (`list[str]`, *optional*):
            The label names, in id order: labels outside them are an error naming the label, split and row. For a
            binary task the second one is the positive class. Read from the data (sorted) when unset.
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
        validation_size (`float` or `int`, *optional*):
            When the data has no `validation_split`: hold one out of the training split, a fraction of it (`0.1`) or
            a count (`200`), drawn with the recipe's seed and stratified by class (multi-label: by each row's
            rarest label; grouped rows: by document). Refused when the data has its own validation split, and when
            the held-out split would be too small to score (`hf_kd.constants.MIN_VALIDATION_ROWS`).
        max_unknown_rate (`float`, *optional*, defaults to 0.1):
            Refuse a run before any training when a tokenizer turns more than this share of the words of the
            training text or the transfer set into its unknown token (a model that cannot read the language); above
            1 % a warning is logged. In [0, 1]; `1` turns the refusal off.
        test_split (`str`, *optional*, defaults to `"test"`):
            Split reported as test; skipped when absent or set to null.
        unlabeled_files (`list[str]`, *optional*):
            Files of unlabeled text (CSV/TSV/JSON(L)/Parquet with `text_column`, and `teacher_text_column` when set),
            added to the transfer set: the teacher's logits on them are cached and the student learns them with the
            distillation term only. They never reach the teacher's fine-tuning, the gate, the thresholds or the
            metrics. Any other split of a `"files"` dataset without the label column joins the transfer set too (an
            unlabeled test split also gets the student's predictions instead of metrics).
        unlabeled_from_corpus (`bool`, *optional*, defaults to `False`):
            Add the dataset's own unlabeled text to the transfer set: the training rows (documents when grouped)
            outside `train_size`, their labels hidden, and for CodiEsp its 2,751 background cases.
        keep_cache (`bool`, *optional*, defaults to `False`):
            Keep `output_dir/cache/` after a successful run: the `datasets` cache files of the data files and their
            tokenization, which hold copies of the text. By default they are removed when the run succeeds.
    """

    dataset: Literal["hoc", "codiesp", "files"] = field(
        default="hoc", metadata={"help": "hoc, codiesp, or files (CSV/TSV/JSON(L)/Parquet files or a Hub dataset)."}
    )
    path: str | None = field(default=None, metadata={"help": "Data directory, file or Hub id."})
    data_files: dict[str, str] | None = field(
        default=None, metadata={"help": "For dataset: files, a mapping split -> file (YAML), instead of path."}
    )
    level: str | None = field(
        default=None, metadata={"help": "HoC: abstract (default) or sentence; CodiEsp: chapter (default) or triage."}
    )
    text_column: str = field(default="text", metadata={"help": "Column the student reads."})
    teacher_text_column: str | None = field(
        default=None, metadata={"help": "Column the teacher reads (defaults to text_column)."}
    )
    label_column: str = field(default="labels", metadata={"help": "Label column (dataset: files)."})
    id_column: str = field(default="id", metadata={"help": "Row id column carried by predictions (when present)."})
    problem_type: (
        Literal["single_label_classification", "multi_label_classification", "regression", "binary"] | None
    ) = field(default=None, metadata={"help": "The task; inferred when unset (two classes: binary)."})
    label_names: list[str] | None = field(
        default=None, metadata={"help": "The label names in id order (binary: negative, positive)."}
    )
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
    validation_size: float | None = field(
        default=None,
        metadata={"help": "Hold a validation split out of train (fraction or count) when the data has none."},
    )
    max_unknown_rate: float = field(
        default=0.1,
        metadata={"help": "Refuse when a tokenizer reads more than this share of words as its unknown token."},
    )
    test_split: str | None = field(default="test", metadata={"help": "Split reported as test (null: none)."})
    unlabeled_files: list[str] | None = field(
        default=None,
        metadata={"help": "Files of unlabeled text added to the transfer set (distillation term only)."},
    )
    unlabeled_from_corpus: bool = field(
        default=False,
        metadata={"help": "Add the training rows outside train_size (labels hidden) and CodiEsp's background cases."},
    )
    keep_cache: bool = field(
        default=False, metadata={"help": "Keep output_dir/cache (datasets cache files, text copies) after success."}
    )

    def validate(self) -> None:
        """Check the section's fields, and set the corpus's default level; a `ValueError` names the field."""
        data = self
        if data.dataset not in (*CORPUS_LEVELS, "files"):
            raise ValueError(f"`data.dataset` must be one of {(*CORPUS_LEVELS, 'files')}, got {data.dataset!r}.")
        levels = CORPUS_LEVELS.get(data.dataset, (None,))
        if data.level is None:
            data.level = levels[0]
        elif data.level not in levels:
            raise ValueError(
                f"`data.level` must be one of {[level for level in levels if level]} for `data.dataset: "
                f"{data.dataset}`, got {data.level!r}."
            )
        for name in ("train_size", "eval_size"):
            value = getattr(data, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"`data.{name}` must be a positive integer when set, got {value!r}.")
        size = data.validation_size
        if size is not None and (
            isinstance(size, bool)
            or not isinstance(size, int | float)
            or size <= 0
            or (isinstance(size, float) and not size.is_integer() and size >= 1)
        ):
            raise ValueError(
                f"`data.validation_size` must be a fraction in (0, 1) or a positive count of rows, got {size!r}."
            )
        rate = data.max_unknown_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"`data.max_unknown_rate` must be a number in [0, 1], got {rate!r}.")
        if data.unlabeled_files is not None and (
            isinstance(data.unlabeled_files, str) or not all(isinstance(f, str) and f for f in data.unlabeled_files)
        ):
            raise ValueError(f"`data.unlabeled_files` must be a list of file paths, got {data.unlabeled_files!r}.")


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

    def validate(self) -> None:
        """Check the section: a teacher is named, its LoRA is a LoraConfig; a `ValueError` names the field."""
        if self.model is None:
            raise ValueError("The recipe needs `teacher.model` (a path or Hub id).")
        if self.lora is not None:
            lora_config(self.lora, "teacher")


def _architecture(help: str) -> dict[str, Any]:
    """The metadata of a student field that makes the student before its task (see `architecture_fields`)."""
    return {"help": help, "architecture": True}


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
        prune_vocabulary (`bool`, *optional*, defaults to `False`):
            Keep only the embedding rows of the tokens the training texts and the label names use, plus the special
            tokens and every single-character piece (`hf_kd.training.vocabulary`); the student's tokenizer is pruned to
            match and saved with it. The teacher keeps its own tokenizer.
        hidden_size (`int`, *optional*):
            Build a narrow student of this width from the teacher's layers (`hf_kd.training.narrow`, BERT-architecture
            teachers): a multiple of the teacher's head size, below its width. Distil it with the logit terms and,
            through the trainer's projections, `hidden_loss_weight`.
        intermediate_size (`int`, *optional*):
            Feed-forward width of a narrow student; defaults to the teacher's ratio (4 × `hidden_size` for BERT).
        narrow_init (`str`, *optional*, defaults to `"slice"`):
            Initialisation of a narrow student: `"slice"` (the first coordinates; best after distillation in
            `benchmarks/narrow_init.py`), `"pca"` (principal directions of the teacher's hidden states on 256
            training sequences) or `"random"`.
        warmup_epochs (`float`, *optional*, defaults to `0.0`):
            Epochs of hard-label training (`alpha=1`) before the distillation (stage 4); 0 skips it.
        online_teacher (`bool`, *optional*, defaults to `False`):
            Run the teacher at every training step of the distillation instead of reading the logits cached in stage
            3 (e.g. to compare both; they give the same student). Implied by hidden-state and attention losses,
            which need the teacher's activations.
        teacher_logits_dtype (`str`, *optional*, defaults to `"float32"`):
            How stage 3 stores the teacher's logits: `"float32"`, or `"float16"` (half that column; the loss reads
            them as float32 either way).
        lora (`dict[str, Any]`, *optional*):
            Train the student with LoRA (in the warm-up, the distillation and the search): `peft.LoraConfig` keyword
            arguments, as for the teacher (`task_type` is always `SEQ_CLS`, the head is trained in full). Each stage
            merges the adapter into the student (`merge_and_unload`) and saves that plain model in
            `<stage>/model/`, which the next stages, the evaluation, the report and the model card use; the adapter
            alone is kept in `<stage>/adapter/`.
        general_distillation (`dict[str, Any]`, *optional*):
            Run the general-distillation stage first (`DistillationTrainingArguments` fields): the student is built
            from the pretrained teacher and distilled on the training and transfer text with the hidden-state and
            relation terms only (no labels, no logits), then the task stages start from its encoder. `teacher: <path>`
            names the pretrained teacher when `teacher.model` is already fine-tuned; `model: <path>` reuses another
            run's `general_distillation/model` instead of running it (see the deploy guide).
        training (`dict[str, Any]`, *optional*):
            `DistillationTrainingArguments` fields of the distillation.
    """

    model: str | None = field(default=None, metadata=_architecture("A pretrained student (path or Hub id)."))
    from_teacher_layers: list[int] | None = field(
        default=None, metadata=_architecture("Build the student from these 0-based teacher layers, e.g. 0 2 4.")
    )
    num_layers: int | None = field(
        default=None, metadata=_architecture("Build the student from this many evenly spaced teacher layers.")
    )
    tokenizer: str | None = field(default=None, metadata=_architecture("Tokenizer of a pretrained student."))
    prune_vocabulary: bool = field(
        default=False, metadata=_architecture("Keep only the embedding rows of the tokens the training texts use.")
    )
    hidden_size: int | None = field(
        default=None, metadata=_architecture("Width of a narrow student built from the teacher (BERT teachers).")
    )
    intermediate_size: int | None = field(
        default=None, metadata=_architecture("Feed-forward width of a narrow student (default: the teacher's ratio).")
    )
    narrow_init: str = field(
        default="slice", metadata=_architecture("Initialisation of a narrow student: slice, pca or random.")
    )
    warmup_epochs: float = field(default=0.0, metadata={"help": "Epochs of hard-label training before distilling."})
    online_teacher: bool = field(
        default=False, metadata={"help": "Run the teacher at every step instead of reading the cached logits."}
    )
    teacher_logits_dtype: str = field(
        default="float32", metadata={"help": "How the cached teacher logits are stored: float32 or float16."}
    )
    lora: dict[str, Any] | None = field(
        default=None, metadata={"help": "Train with LoRA: peft.LoraConfig keyword arguments (YAML mapping)."}
    )
    general_distillation: dict[str, Any] | None = field(
        default=None, metadata=_architecture("General distillation of the student on the text first (YAML mapping).")
    )
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def architecture_fields(cls) -> tuple[str, ...]:
        """The fields that make the student before its task (marked `"architecture"` in their metadata): what a
        general distillation is made from, and so what invalidates it."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("architecture"))

    @property
    def needs_online_teacher(self) -> bool:
        """Whether the distillation runs the teacher at every step (hidden-state/attention terms, `online_teacher`)."""
        weights = (float(self.training.get(k, 0) or 0) for k in ("hidden_loss_weight", "attention_loss_weight"))
        return bool(self.online_teacher) or any(w > 0 for w in weights)

    def validate(self) -> None:
        """Check the section's own fields together (and its LoRA); a `ValueError` names the field and value."""
        student = self
        if student.model is not None and (student.from_teacher_layers is not None or student.num_layers is not None):
            raise ValueError(
                "`student.model` (a pretrained student) excludes `student.from_teacher_layers` / `student.num_layers`."
            )
        if student.model is not None and student.hidden_size is not None:
            raise ValueError(
                "`student.model` (a pretrained student) excludes `student.hidden_size` (a narrow student)."
            )
        if student.hidden_size is not None and (isinstance(student.hidden_size, bool) or student.hidden_size < 1):
            raise ValueError(f"`student.hidden_size` must be a positive integer, got {student.hidden_size!r}.")
        if student.intermediate_size is not None and student.hidden_size is None:
            raise ValueError("`student.intermediate_size` is set without `student.hidden_size` (a narrow student).")
        if student.narrow_init not in NARROW_INITS:
            raise ValueError(
                f"`student.narrow_init` must be one of {list(NARROW_INITS)}, got {student.narrow_init!r}."
            )
        if student.teacher_logits_dtype not in TEACHER_LOGITS_DTYPES:
            raise ValueError(
                f"`student.teacher_logits_dtype` must be one of {list(TEACHER_LOGITS_DTYPES)}, got "
                f"{student.teacher_logits_dtype!r}."
            )
        if student.warmup_epochs < 0:
            raise ValueError(f"`student.warmup_epochs` must be >= 0, got {student.warmup_epochs!r}.")
        if student.lora is not None:
            lora_config(student.lora, "student")


@dataclass
class EvaluationConfig:
    """
    Evaluation, quality gate and report.

    Args:
        gate_metric (`str`, *optional*):
            Validation metric of the teacher checked against `min_teacher_metric`. By default the task's: BLURB
            micro-F1 (`blurb_micro_f1`) for sentence-level HoC, `micro_f1` for multi-label, `macro_f1` for
            single-label and `auroc` for binary tasks. A metric the task does not produce is an error before any
            stage runs.
        min_teacher_metric (`float`, *optional*):
            Stop after stage 2 with a `QualityGateError` when the teacher's `gate_metric` is below this.
        threshold (`float`, `str` or `dict`, *optional*, defaults to `"f1"`):
            The operating point of multi-label and binary tasks, chosen on the validation split and applied to every
            split (`hf_kd.evaluation.thresholds`): a number in [0, 1] (fixed), `"f1"` (tuned for F1), `"prevalence"`
            (the validation positive rate) or `{"sensitivity": s}` (the highest threshold with sensitivity >= s, binary
            tasks). It is saved in the student's `config.json` (`hf_kd_threshold`), where `hf-kd evaluate` reads it.
        batch_size (`int`, *optional*, defaults to 32):
            Batch size for the evaluation and logit caching.
        latency (`bool`, *optional*, defaults to `True`):
            Measure CPU latency in the report.
        latency_batch_sizes (`list[int]`, *optional*, defaults to `[1, 32]`):
            Batch sizes timed.
        latency_rounds (`int`, *optional*, defaults to 5):
            Rounds of the latency timing, interleaved across the teacher, the student and the export
            (`hf_kd.evaluation.model_stats.interleaved_latency`): each latency is the median round, each speed-up the
            median of the rounds' ratios, reported with their min-max.
        plots (`bool`, *optional*, defaults to `True`):
            Write training-curve and per-label F1 plots.
        model_card (`bool`, *optional*, defaults to `True`):
            Write the student's model card.
        evaluate_metrics (`list[str]`, *optional*):
            `evaluate` metrics of your own, as local folders or scripts (`evaluate.load` paths; nothing is fetched
            from the Hub), combined and computed on the predicted labels and the labels of every evaluation: the
            trainers' and the report's. `hf_kd.evaluation.evaluate_metrics.metric_path` gives our own metrics' paths.
        export (`str`, *optional*):
            Also export the student to a fused ONNX graph (`hf_kd.export.onnx`) in `evaluation/export/`: `"fp32"`,
            `"int8"` (dynamic int8) or `"int8-static"` (static int8 calibrated on 256 training texts). The exported
            model is evaluated through onnxruntime at the student's threshold, and the report gets a third column:
            its metrics, size and latency. Needs the `export` extra.
    """

    gate_metric: str | None = field(
        default=None, metadata={"help": "Teacher validation metric of the gate (default: the task's)."}
    )
    min_teacher_metric: float | None = field(
        default=None, metadata={"help": "Stop before distilling when the teacher's gate metric is below this."}
    )
    threshold: Any = field(
        default="f1", metadata={"help": "Operating point: a number, f1, prevalence or {sensitivity: s} (YAML)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Batch size of the evaluation and the logit caching."})
    latency: bool = field(default=True, metadata={"help": "Measure CPU latency in the report."})
    latency_batch_sizes: list[int] = field(default_factory=lambda: [1, 32], metadata={"help": "Batch sizes timed."})
    latency_rounds: int = field(
        default=5, metadata={"help": "Latency rounds, interleaved across the models (speed-ups: median, min-max)."}
    )
    plots: bool = field(default=True, metadata={"help": "Write the report's figures."})
    model_card: bool = field(default=True, metadata={"help": "Write the student's model card."})
    evaluate_metrics: list[str] | None = field(
        default=None,
        metadata={"help": "Local `evaluate` metrics (folders or scripts) computed too on every evaluation."},
    )
    export: str | None = field(
        default=None, metadata={"help": "Export the student to ONNX as a last step: fp32, int8 or int8-static."}
    )

    def validate(self) -> None:
        """Check the rounds of timing, the export format and the threshold rule; a `ValueError` quotes the value."""
        rounds = self.latency_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"`evaluation.latency_rounds` must be an integer >= 1, got {rounds!r}.")
        if self.export not in (None, *EXPORT_FORMATS):
            raise ValueError(f"`evaluation.export` must be one of {EXPORT_FORMATS}, got {self.export!r}.")
        try:
            check_threshold_rule(self.threshold)
        except ValueError as error:
            raise ValueError(f"`evaluation.threshold`: {error}") from None


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
        metric (`str`, *optional*):
            Validation metric optimised (read as `eval_<metric>`); by default the task's gate metric (see
            `EvaluationConfig.gate_metric`).
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
    metric: str | None = field(
        default=None, metadata={"help": "Validation metric optimised (eval_<metric>); default: the task's."}
    )
    direction: Literal["maximize", "minimize"] = field(default="maximize", metadata={"help": "maximize or minimize."})
    backend: Literal["pso", "tpe", "random"] = field(
        default="pso", metadata={"help": "pso (pyswarms), or tpe / random (Optuna)."}
    )

    def validate(self) -> None:
        """Check the direction and backend; a `ValueError` quotes the bad value."""
        search = self
        if search.direction not in ("maximize", "minimize"):
            raise ValueError(f"`search.direction` must be 'maximize' or 'minimize', got {search.direction!r}.")
        if search.backend not in SEARCH_BACKENDS:
            raise ValueError(f"`search.backend` must be one of {list(SEARCH_BACKENDS)}, got {search.backend!r}.")


@dataclass
class TopLevelConfig:
    """
    The recipe's top-level fields.

    Args:
        output_dir (`str`, *optional*, defaults to `"runs/hf-kd"`):
            Root folder of the stages.
        seed (`int`, *optional*, defaults to 42):
            Seed of the subsets and of every training run.
    """

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

TRAINED_SECTIONS = ("teacher", "student")
"""The sections that train a model and take `DistillationTrainingArguments` fields."""


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


def check_data_section(data: DataConfig) -> None:
    """
    `data.validate()` ([`DataConfig.validate`]), kept under its earlier name.

    Args:
        data ([`DataConfig`]):
            The section.
    """
    data.validate()


def check_student_section(student: StudentConfig) -> None:
    """
    `student.validate()` ([`StudentConfig.validate`]), kept under its earlier name.

    Args:
        student ([`StudentConfig`]):
            The section.
    """
    student.validate()


def check_search_section(search: SearchConfig) -> None:
    """
    `search.validate()` ([`SearchConfig.validate`]), kept under its earlier name.

    Args:
        search ([`SearchConfig`]):
            The section.
    """
    search.validate()
