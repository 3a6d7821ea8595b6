"""The pipeline: the stages a recipe runs (`run_pipeline`), their markers, the checks before the first stage,
the splits a run uses, the models of each stage, the evaluation stage and its report, and `hf-kd search`.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.

Each module's public names (its `__all__`) are importable from here too (`from hf_kd.pipeline import NAME`), each
imported from its module on first use (`hf_kd.exports`).
"""

from typing import TYPE_CHECKING

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .builders import *  # noqa: F403
    from .context import *  # noqa: F403
    from .markers import *  # noqa: F403
    from .preflight import *  # noqa: F403
    from .push import *  # noqa: F403
    from .recipe_search import *  # noqa: F403
    from .run import *  # noqa: F403
    from .run_report import *  # noqa: F403
    from .scoring import *  # noqa: F403
    from .splits import *  # noqa: F403
    from .stage import *  # noqa: F403
    from .stage_models import *  # noqa: F403
    from .students import *  # noqa: F403

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
