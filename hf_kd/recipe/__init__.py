"""Recipes: `DistillationPipelineConfig` (the YAML recipe and its `--section.field` parser), its sections, and the
starting recipe `hf-kd init` writes.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.

Each module's public names (its `__all__`) are importable from here too (`from hf_kd.recipe import NAME`), each
imported from its module on first use (`hf_kd.exports`).
"""

from typing import TYPE_CHECKING

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .config import *  # noqa: F403
    from .sections import *  # noqa: F403
    from .template import *  # noqa: F403

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
