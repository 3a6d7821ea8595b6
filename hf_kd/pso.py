"""Kept importable: the PSO search lives in `hf_kd.search` (`hf_kd.search.pso`, `hf_kd.search.space`)."""

from .search import DEFAULT_PSO_OPTIONS, DEFAULT_PSO_SPACE, PSO_DIR, ParamSpec, optuna_space, parse_space, run_pso

__all__ = [
    "DEFAULT_PSO_OPTIONS",
    "DEFAULT_PSO_SPACE",
    "PSO_DIR",
    "ParamSpec",
    "optuna_space",
    "parse_space",
    "run_pso",
]
