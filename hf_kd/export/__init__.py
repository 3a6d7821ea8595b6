"""Export: a fused ONNX graph of a student (fp32, dynamic or static int8) and `OnnxClassifier`, which runs it with
onnxruntime alone.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.

Each module's public names (its `__all__`) are importable from here too (`from hf_kd.export import NAME`), each
imported from its module on first use (`hf_kd.exports`).
"""

from typing import TYPE_CHECKING

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .onnx import *  # noqa: F403
    from .onnx_classifier import *  # noqa: F403
    from .predict import *  # noqa: F403
    from .serving import *  # noqa: F403

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
