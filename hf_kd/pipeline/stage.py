"""The shape of a pipeline stage ([`Stage`]) and the fingerprints of a recipe's stages, derived from what each stage
declares it reads.

A stage declares:

- `inputs`: the recipe fields (and files) it is made from, and the fingerprints of the upstream stages it reads.
  They are its fingerprint: a rerun recomputes the stage when one of them changed (`hf_kd.pipeline.markers`);
- `after`: the stages whose outputs it reads (a recomputed one recomputes it too);
- `outputs`: what it sets on the run ([`~hf_kd.pipeline.context.PipelineRun`]);
- `run`: the stage itself (resuming, skipping when done).

The declared stages, in order, are `hf_kd.pipeline.stages.PIPELINE`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..recipe.config import DistillationPipelineConfig
from ..recipe.sections import StudentConfig
from ..training.distillation_config import DistillationTrainingArguments
from .markers import digest, files_identity

__all__ = [
    "GENERAL_STUDENT_FIELDS",
    "Stage",
    "always",
    "data_identity",
    "general_identity",
    "no_upstream",
    "declared_fingerprints",
    "student_fields",
    "student_model_identity",
    "transfer_identity",
    "warmup_fields",
]

Inputs = Callable[[DistillationPipelineConfig, Mapping[str, str]], "dict[str, Any] | None"]


def always(config: DistillationPipelineConfig) -> bool:
    """A stage every recipe has."""
    return True


def no_upstream(config: DistillationPipelineConfig) -> tuple[str, ...]:
    """A stage made from no other stage."""
    return ()


@dataclass(frozen=True)
class Stage:
    """
    One declared stage of the pipeline.

    Args:
        name (`str`):
            The stage's name: its folder under the run's `output_dir`, and the key of its marker.
        inputs (`Callable[[DistillationPipelineConfig, Mapping[str, str]], dict | None]`):
            Its declared inputs: `(recipe, upstream fingerprints by stage)` -> `{part: value}`, each part a recipe
            section's fields, a file's identity or an upstream stage's fingerprint. `None` when the recipe makes
            nothing here to fingerprint (e.g. a general distillation reused from another run).
        run (`Callable[[PipelineRun], None]`):
            The stage: it reads the run's recipe, data and the earlier stages' outputs, and sets its `outputs` on
            the run, skipping the work when its marker says it is done.
        outputs (`tuple[str, ...]`, *optional*, defaults to `()`):
            The attributes of the run it sets.
        after (`Callable[[DistillationPipelineConfig], tuple[str, ...]]`, *optional*):
            The stages it is made from (recomputed, they recompute it); defaults to none.
        in_recipe (`Callable[[DistillationPipelineConfig], bool]`, *optional*):
            Whether the recipe has the stage (it is then numbered in the banners); defaults to every recipe.
    """

    name: str
    inputs: Inputs
    run: Callable[[Any], None]
    outputs: tuple[str, ...] = ()
    after: Callable[[DistillationPipelineConfig], tuple[str, ...]] = no_upstream
    in_recipe: Callable[[DistillationPipelineConfig], bool] = always


def declared_fingerprints(stages: Sequence[Stage], config: DistillationPipelineConfig) -> dict[str, dict[str, Any]]:
    """
    What each stage of a recipe is made from (its declared inputs), and its fingerprint.

    Args:
        stages (`Sequence[Stage]`):
            The stages, in order (an upstream stage before the stages made from it).
        config ([`~hf_kd.recipe.config.DistillationPipelineConfig`]):
            The recipe.

    Returns:
        `dict[str, dict]`: Stage -> `{"fingerprint": str, "inputs": {part: digest}, "after": (stage, ...)}` for each
        stage that has inputs of its own.
    """
    out: dict[str, dict[str, Any]] = {}
    for stage in stages:
        parts = stage.inputs(config, {name: entry["fingerprint"] for name, entry in out.items()})
        if parts is None:
            continue
        out[stage.name] = {
            "fingerprint": digest(stage.name, parts),
            "inputs": {k: digest(v) for k, v in parts.items()},
            "after": stage.after(config),
        }
    return out


# ---------------------------------------------------------------------------------------------- shared inputs


def data_identity(config: DistillationPipelineConfig) -> str:
    """The labelled data: the `data` section (but the transfer set and what only checks or caches), the seed, and
    the data files' identities. The transfer set is an input of the teacher's logits and after, not of the teacher."""
    ignored = ("keep_cache", "max_unknown_rate", "unlabeled_files", "unlabeled_from_corpus")
    data = {k: v for k, v in asdict(config.data).items() if k not in ignored}
    files = {split: files_identity(path) for split, path in (config.data.data_files or {}).items()}
    return digest(data, config.seed, files_identity(config.data.path), files)


def transfer_identity(config: DistillationPipelineConfig) -> list[Any]:
    """The transfer set: the corpus's unlabeled rows, and the identities of the unlabeled files."""
    return [config.data.unlabeled_from_corpus, [files_identity(p) for p in config.data.unlabeled_files or []]]


def student_fields(config: DistillationPipelineConfig) -> dict[str, Any]:
    """The student section's fields with its training fields inline (but `teacher_logits_dtype`, an input of the
    teacher's logits)."""
    skipped = ("training", "teacher_logits_dtype")
    student = {k: v for k, v in asdict(config.student).items() if k not in skipped}
    return student | dict(config.student.training)


def warmup_fields(config: DistillationPipelineConfig) -> dict[str, Any]:
    """The student fields the hard-label warm-up reads: all but the distillation's own
    (`DistillationTrainingArguments.distillation_fields`, and `online_teacher`)."""
    ignored = DistillationTrainingArguments.distillation_fields() | {"online_teacher"}
    return {k: v for k, v in student_fields(config).items() if k not in ignored}


def student_model_identity(config: DistillationPipelineConfig) -> Any:
    """The files of a pretrained student (`student.model`), when the recipe names one."""
    return files_identity(config.student.model)


GENERAL_STUDENT_FIELDS: tuple[str, ...] = StudentConfig.architecture_fields()
"""Student fields the general-distillation stage is made from: those its section marks as the student's architecture
(`hf_kd.recipe.sections.StudentConfig.architecture_fields`)."""


def general_identity(config: DistillationPipelineConfig, upstream: Mapping[str, str]) -> str:
    """What the student starts from before the task: the general distillation's fingerprint when the recipe runs it,
    otherwise the section (none, or a reused model's files)."""
    if "general_distillation" in upstream:
        return upstream["general_distillation"]
    general = config.student.general_distillation
    return digest(general, files_identity((general or {}).get("model")))
