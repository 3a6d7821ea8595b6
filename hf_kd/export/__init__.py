"""Export: a fused ONNX graph of a student (fp32, dynamic or static int8) and `OnnxClassifier`, which runs it with
onnxruntime alone.

The order between subpackages is written in `docs/src/architecture.md` and checked by `tests/test_layout.py`.
"""
