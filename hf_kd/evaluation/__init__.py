"""Evaluation: metrics, decision thresholds, the array checks they share, BLURB's HoC scoring, the task-default
metrics, size and latency, and the `evaluate` modules. Imports only `hf_kd.constants`.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.

Each module's public names (its `__all__`) are importable from here too (`from hf_kd.evaluation import NAME`), each
imported from its module on first use (`hf_kd.exports`).
"""

from typing import TYPE_CHECKING

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .blurb import *  # noqa: F403
    from .metrics import *  # noqa: F403
    from .model_stats import *  # noqa: F403
    from .numeric import *  # noqa: F403
    from .task_metrics import *  # noqa: F403
    from .tasks import *  # noqa: F403
    from .thresholds import *  # noqa: F403

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
