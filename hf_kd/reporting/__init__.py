"""Reporting: the teacher-vs-student report, the model card and what it records, and the figures.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.

Each module's public names (its `__all__`) are importable from here too (`from hf_kd.reporting import NAME`), each
imported from its module on first use (`hf_kd.exports`).
"""

from typing import TYPE_CHECKING

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .card_data import *  # noqa: F403
    from .model_card import *  # noqa: F403
    from .plots import *  # noqa: F403
    from .report import *  # noqa: F403

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
