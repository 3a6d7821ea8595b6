# The public API of `hf_kd`: the one table of its names. Type checkers and editors read it; `hf_kd/__init__.py` reads
# it at import (with `ast`) and imports each name from its subpackage on first use.
from .data import DistillationDataCollator as DistillationDataCollator
from .data import load_classification_dataset as load_classification_dataset
from .data import load_codiesp as load_codiesp
from .data import load_hoc as load_hoc
from .data import tokenize_for_distillation as tokenize_for_distillation
from .evaluation import make_compute_metrics as make_compute_metrics
from .pipeline import evaluate_model as evaluate_model
from .pipeline import run_pipeline as run_pipeline
from .pipeline import run_search as run_search
from .recipe import DistillationPipelineConfig as DistillationPipelineConfig
from .reporting import DistillationCardData as DistillationCardData
from .reporting import build_model_card as build_model_card
from .reporting import write_model_card as write_model_card
from .training import DistillationTrainer as DistillationTrainer
from .training import DistillationTrainingArguments as DistillationTrainingArguments
from .training import cache_teacher_logits as cache_teacher_logits
from .training import student_from_teacher as student_from_teacher

__version__: str
