"""The pipeline as declared stages: fingerprints follow the declared inputs, a new stage needs only its declaration,
and each declared output is a typed attribute of the run's context."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from hf_kd.pipeline import context
from hf_kd.pipeline.markers import changed_stages, digest
from hf_kd.pipeline.run import STAGES
from hf_kd.pipeline.stage import Stage, declared_fingerprints
from hf_kd.pipeline.stages import PIPELINE
from hf_kd.recipe.config import DistillationPipelineConfig

RECIPE = {
    "data": {"dataset": "files", "path": "notes", "label_column": "labels"},
    "teacher": {"model": "teacher-model"},
    "student": {"from_teacher_layers": [0]},
    "output_dir": "out",
}


def _config(**overrides) -> DistillationPipelineConfig:
    return DistillationPipelineConfig.from_dict(RECIPE, overrides=overrides)


def test_the_pipeline_runs_its_declared_stages_in_order():
    assert STAGES == tuple(stage.name for stage in PIPELINE) == (
        "general_distillation", "teacher", "teacher_eval", "teacher_logits", "student_warmup", "student", "evaluation",
    )  # fmt: skip
    seen: set[str] = set()
    config = _config()
    for stage in PIPELINE:  # a stage comes after every stage it reads
        assert set(stage.after(config)) <= seen, stage.name
        seen.add(stage.name)


def test_a_stages_fingerprint_is_its_declared_inputs_and_its_upstream():
    config = _config()
    prints = declared_fingerprints(PIPELINE, config)
    assert "general_distillation" not in prints  # the recipe has none
    teacher = prints["teacher"]
    parts = {"data": None, "teacher": None, "model": None}
    assert set(teacher["inputs"]) == set(parts)
    # The teacher's evaluation is made from the teacher's fingerprint and the threshold rule, nothing else.
    expected = digest("teacher_eval", {"teacher": teacher["fingerprint"], "threshold": config.evaluation.threshold})
    assert prints["teacher_eval"]["fingerprint"] == expected
    # A student field moves the student and what is made from it, not the teacher's stages.
    other = declared_fingerprints(PIPELINE, _config(**{"student.alpha": 0.9}))
    moved = {name for name in prints if prints[name]["fingerprint"] != other[name]["fingerprint"]}
    assert moved == {"student", "evaluation"}
    # The warm-up ignores the distillation's own fields (alpha, temperature...), not the learning rate.
    assert other["student_warmup"] == prints["student_warmup"]
    lr = declared_fingerprints(PIPELINE, _config(**{"student.learning_rate": 1e-3}))
    assert lr["student_warmup"] != prints["student_warmup"]


def test_the_general_distillation_is_made_from_the_fields_the_student_section_marks_as_its_architecture():
    from dataclasses import fields

    from hf_kd.pipeline.stage import GENERAL_STUDENT_FIELDS
    from hf_kd.recipe.sections import StudentConfig

    marked = {f.name for f in fields(StudentConfig) if f.metadata.get("architecture")}
    assert set(GENERAL_STUDENT_FIELDS) == marked
    assert {"from_teacher_layers", "hidden_size", "prune_vocabulary", "narrow_init"} <= marked
    general = {"student.general_distillation": {"num_train_epochs": 1}, "student.hidden_size": 192}

    def general_print(**changes) -> str:
        return declared_fingerprints(PIPELINE, _config(**general, **changes))["general_distillation"]["fingerprint"]

    base = general_print()
    assert general_print(**{"student.narrow_init": "pca"}) != base  # the student's architecture: recomputed
    assert general_print(**{"student.warmup_epochs": 1.0, "student.alpha": 0.9}) == base  # the task's: kept


def test_a_new_stage_is_fingerprinted_and_invalidated_from_its_declaration_alone(tmp_path):
    """What a newcomer writes: one `Stage`. Its marker, its invalidation and its downstream follow."""
    config = _config()

    def inputs(config, upstream):
        return {"teacher": upstream["teacher"], "batch": config.evaluation.batch_size}

    calibration = Stage(name="calibration", inputs=inputs, run=lambda run: None, after=lambda config: ("teacher",))
    stages = (*PIPELINE[:2], calibration, *PIPELINE[2:])
    prints = declared_fingerprints(stages, config)
    assert prints["calibration"]["after"] == ("teacher",)
    names = tuple(stage.name for stage in stages)
    for name in ("teacher", "calibration"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "DONE.json").write_text(json.dumps(prints[name]))
    assert changed_stages(tmp_path, names, prints) == []
    changed = declared_fingerprints(stages, _config(**{"evaluation.batch_size": 7}))
    assert changed_stages(tmp_path, names, changed) == [("calibration", ["batch"])]
    retrained = declared_fingerprints(stages, _config(**{"teacher.learning_rate": 3e-3}))
    assert changed_stages(tmp_path, names, retrained) == [("teacher", ["teacher"]), ("calibration", ["upstream"])]


def test_every_declared_output_is_a_typed_attribute_of_the_run():
    tree = ast.parse(Path(context.__file__).read_text())
    typed = {
        node.target.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Attribute)
    }
    outputs = {name for stage in PIPELINE for name in stage.outputs}
    assert outputs and outputs <= typed, sorted(outputs - typed)
