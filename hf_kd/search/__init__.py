"""Hyperparameter search of the distillation: PSO (pyswarms) behind `hyperparameter_search(backend="pso")`.

| module | what |
| --- | --- |
| `hf_kd.search.space` | the search space, shared with the Optuna backends |
| `hf_kd.search.pso` | `run_pso`: the trials, the iterations, resuming, parallel particles |
| `hf_kd.search.swarm` | pyswarms' swarm state, its RNG and the files a search writes |
| `hf_kd.search.isolation` | single-process trials inside a multi-process launch |

`hf-kd search` (a recipe's search, after its teacher stages) is `hf_kd.pipeline.recipe_search.run_search`.
"""

from .pso import PSO_DIR, run_pso
from .space import DEFAULT_PSO_SPACE, ParamSpec, optuna_space, parse_space
from .swarm import DEFAULT_PSO_OPTIONS

__all__ = [
    "DEFAULT_PSO_OPTIONS",
    "DEFAULT_PSO_SPACE",
    "PSO_DIR",
    "ParamSpec",
    "optuna_space",
    "parse_space",
    "run_pso",
]
