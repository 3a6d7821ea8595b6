"""Hyperparameter search of the distillation: PSO (pyswarms) behind `hyperparameter_search(backend="pso")`.

| module | what |
| --- | --- |
| `hf_kd.search.space` | the search space, shared with the Optuna backends |
| `hf_kd.search.pso` | `run_pso`: the trials, the iterations, resuming, parallel particles |
| `hf_kd.search.swarm` | pyswarms' swarm state, its RNG and the files a search writes |
| `hf_kd.search.isolation` | single-process trials inside a multi-process launch |

`hf-kd search` (a recipe's search, after its teacher stages) is `hf_kd.pipeline.recipe_search.run_search`.

Each module's public names (its `__all__`) are importable from here too (`from hf_kd.search import NAME`), each
imported from its module on first use (`hf_kd.exports`).
"""

from typing import TYPE_CHECKING

from ..exports import lazy_exports

if TYPE_CHECKING:
    from .isolation import *  # noqa: F403
    from .pso import *  # noqa: F403
    from .space import *  # noqa: F403
    from .swarm import *  # noqa: F403

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
