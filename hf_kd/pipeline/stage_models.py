"""The old path of the stages' models, kept so that its imports still work.

The module held a stage runner and the export stage beside the student a recipe describes; each now has one home:
the student in `hf_kd.pipeline.students` (`build_student`, `new_student`, `calibration_batch`), general distillation
in its stage module (`hf_kd.pipeline.stages.general_distillation.run_general_distillation`), the export in the
evaluation stage's (`hf_kd.pipeline.stages.evaluation.export_student`), the warm-up's arguments in
`hf_kd.pipeline.builders` (`general_arguments`, `GENERAL_DEFAULTS`).
"""

from .builders import GENERAL_DEFAULTS, general_arguments
from .stages.evaluation import export_student
from .stages.general_distillation import run_general_distillation
from .students import build_student, calibration_batch, new_student

__all__ = [
    "GENERAL_DEFAULTS",
    "build_student",
    "calibration_batch",
    "export_student",
    "general_arguments",
    "new_student",
    "run_general_distillation",
]
