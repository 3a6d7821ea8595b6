"""Data: files read with `datasets`' loaders, label columns, the two corpora, unlabeled text, the collator and
the word alignment of two tokenizers. Imports only `hf_kd.constants`.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.

Each module's public names (its `__all__`) are importable from here too (`from hf_kd.data import NAME`), each
imported from its module on first use (`hf_kd.exports`).
"""

from typing import TYPE_CHECKING

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .alignment import *  # noqa: F403
    from .collator import *  # noqa: F403
    from .corpora import *  # noqa: F403
    from .coverage import *  # noqa: F403
    from .label_checks import *  # noqa: F403
    from .labels import *  # noqa: F403
    from .leakage import *  # noqa: F403
    from .loading import *  # noqa: F403
    from .mapped import *  # noqa: F403
    from .streaming import *  # noqa: F403
    from .tokenizer_identity import *  # noqa: F403
    from .unlabeled import *  # noqa: F403
    from .word_pooling import *  # noqa: F403

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
