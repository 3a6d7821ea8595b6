"""Training: `DistillationTrainer` and `DistillationTrainingArguments`, the losses, intermediate-layer terms,
the teacher (loading, placement, cached logits), students built from the teacher, and accelerate's process state.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.

Each module's public names (its `__all__`) are importable from here too (`from hf_kd.training import NAME`), each
imported from its module on first use (`hf_kd.exports`).
"""

from typing import TYPE_CHECKING

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .checkpoints import *  # noqa: F403
    from .distillation_config import *  # noqa: F403
    from .distillation_trainer import *  # noqa: F403
    from .distributed import *  # noqa: F403
    from .intermediate import *  # noqa: F403
    from .losses import *  # noqa: F403
    from .model_files import *  # noqa: F403
    from .narrow import *  # noqa: F403
    from .student import *  # noqa: F403
    from .teacher import *  # noqa: F403
    from .teacher_cache import *  # noqa: F403
    from .vocabulary import *  # noqa: F403

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
