"""hf_kd: knowledge distillation of text classifiers as a drop-in `transformers.Trainer`."""

__version__ = "0.1.0"

__all__: list[str] = ["__version__"]
