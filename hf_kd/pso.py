"""Kept importable: the PSO search lives in `hf_kd.search` (`hf_kd.search.pso`, `hf_kd.search.space`)."""

from .search import *  # noqa: F403
from .search import __all__  # noqa: F401
