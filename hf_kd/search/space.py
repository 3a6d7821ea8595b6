"""The search space of `hyperparameter_search(backend="pso")`, shared with the Optuna backends.

`hp_space` maps a field of `DistillationTrainingArguments` to `(low, high)`, `(low, high, "log")` or
`(low, high, "int")`. Particles move in the unit cube, one axis per field, and a coordinate `u` in [0, 1] maps to
`low + u · (high − low)` (linear), `low · (high / low) ** u` (log) or `floor(low + u · (high − low + 1))` capped at
`high` (int). [`optuna_space`] turns the same space into an Optuna `hp_space` function.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from ..constants import is_number
from .isolation import single_process_overrides, single_process_state

__all__ = ["DEFAULT_PSO_SPACE", "ParamSpec", "check_bounds", "optuna_space", "parse_space"]

#: Space searched when `hp_space` is not given.
DEFAULT_PSO_SPACE: dict[str, tuple] = {
    "learning_rate": (1e-5, 5e-4, "log"),
    "temperature": (1.0, 8.0),
    "alpha": (0.0, 1.0),
}
_KINDS = ("linear", "log", "int")


@dataclass(frozen=True)
class ParamSpec:
    """One searched field: its range and how a unit-cube coordinate maps to a value.

    Args:
        name (`str`):
            The `DistillationTrainingArguments` field.
        low (`float`):
            Lowest value (inclusive).
        high (`float`):
            Highest value (inclusive), > `low`.
        kind (`str`, *optional*, defaults to `"linear"`):
            `"linear"`, `"log"` (uniform in log space, `low` > 0) or `"int"` (integers in [low, high]).
    """

    name: str
    low: float
    high: float
    kind: str = "linear"

    def value(self, u: float) -> float | int:
        """The field value at unit-cube coordinate `u` (clipped to [0, 1])."""
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "int":
            low, high = int(self.low), int(self.high)
            return min(high, int(math.floor(low + u * (high - low + 1))))
        if self.kind == "log":
            value = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            value = self.low + u * (self.high - self.low)
        return min(max(value, float(self.low)), float(self.high))

    def to_json(self) -> list:
        """`[low, high, kind]`, as kept in the search state."""
        return [self.low, self.high, self.kind]


def _field_kind(args: Any, name: str) -> str | None:
    """`"int"` or `"float"` for a numeric field of `args`, `None` for any other type."""
    for f in fields(args):
        if f.name == name:
            annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            tokens = set(re.findall(r"[A-Za-z_]+", annotation)) - {"typing", "Optional", "Union", "None", "NoneType"}
            if tokens == {"int"}:
                return "int"
            if tokens and tokens <= {"int", "float"}:
                return "float"
            return None
    return None


def parse_space(hp_space: Mapping[str, Any], args: Any, check_values: bool = True) -> list[ParamSpec]:
    """Validate a PSO search space against the training arguments and return one `ParamSpec` per field.

    Args:
        hp_space (`Mapping[str, tuple]`):
            Field name -> `(low, high)`, `(low, high, "log")` or `(low, high, "int")`.
        args (`DistillationTrainingArguments`):
            The arguments the trials start from; every key must be one of their numeric fields.
        check_values (`bool`, *optional*, defaults to `True`):
            Also build the arguments with each field at both ends of its range, so that values the arguments refuse
            (e.g. `alpha` > 1) are reported before any training.

    Returns:
        `list[ParamSpec]`: in the order of `hp_space`.
    """
    if not isinstance(hp_space, Mapping) or len(hp_space) == 0:
        raise ValueError(
            f"`hp_space` must be a non-empty dict of field -> (low, high[, 'log' | 'int']) for backend='pso', "
            f"got {hp_space!r}."
        )
    init_fields = {f.name for f in fields(args) if f.init}
    specs = []
    for name, spec in hp_space.items():
        if not isinstance(name, str) or name not in init_fields or not hasattr(args, name):
            raise ValueError(f"`hp_space` key {name!r} is not a field of {type(args).__name__}.")
        if not isinstance(spec, tuple | list) or len(spec) not in (2, 3):
            raise ValueError(f"`hp_space[{name!r}]` must be (low, high) or (low, high, kind), got {spec!r}.")
        low, high = spec[0], spec[1]
        kind = spec[2] if len(spec) == 3 else "linear"
        if kind not in _KINDS:
            raise ValueError(f"`hp_space[{name!r}]` has kind {kind!r}; use one of {', '.join(map(repr, _KINDS))}.")
        for bound, label in ((low, "low"), (high, "high")):
            if not is_number(bound) or not math.isfinite(bound):
                raise ValueError(f"`hp_space[{name!r}]` {label} must be a finite number, got {bound!r}.")
        if low >= high:
            raise ValueError(f"`hp_space[{name!r}]` needs low < high, got low={low!r}, high={high!r}.")
        if kind == "log" and low <= 0:
            raise ValueError(f"`hp_space[{name!r}]` is on a log scale, so low must be > 0, got low={low!r}.")
        if kind == "int" and (int(low) != low or int(high) != high):
            raise ValueError(f"`hp_space[{name!r}]` is an int range, so its bounds must be integers, got {spec!r}.")
        field_kind = _field_kind(args, name)
        if field_kind is None:
            raise ValueError(
                f"`hp_space` key {name!r} is not a numeric field of {type(args).__name__} (current value "
                f"{getattr(args, name)!r}); only int and float fields can be searched."
            )
        if field_kind == "int" and kind != "int":
            raise ValueError(
                f"`hp_space[{name!r}]` must be an int range (low, high, 'int'): {name} is an integer; got {spec!r}."
            )
        if kind == "int":
            low, high = int(low), int(high)
        else:
            low, high = float(low), float(high)
        specs.append(ParamSpec(name, low, high, kind))
    if check_values:
        check_bounds(specs, args, None)
    return specs


def optuna_space(specs: Sequence[ParamSpec]) -> Callable[[Any], dict[str, float | int]]:
    """The same search space as an Optuna `hp_space` function, for `Trainer.hyperparameter_search(backend="optuna")`.

    Lets a PSO space (from [`parse_space`]) be searched by Optuna's samplers (TPE, random) at the same bounds and
    scales, e.g. to compare searches at an equal budget.

    Args:
        specs (`Sequence[ParamSpec]`):
            The parsed space.

    Returns:
        `Callable[[optuna.Trial], dict]`: Suggests every field: `suggest_int` for `"int"`, `suggest_float` otherwise
        (`log=True` for `"log"`).
    """

    def hp_space(trial: Any) -> dict[str, float | int]:
        out: dict[str, float | int] = {}
        for spec in specs:
            if spec.kind == "int":
                out[spec.name] = trial.suggest_int(spec.name, int(spec.low), int(spec.high))
            else:
                out[spec.name] = trial.suggest_float(spec.name, spec.low, spec.high, log=spec.kind == "log")
        return out

    return hp_space


def check_bounds(specs: list[ParamSpec], args: Any, device: torch.device | None) -> None:
    """Build the arguments with each field at both ends of its range; raise if the arguments refuse a value."""
    for spec in specs:
        for value in sorted({spec.value(0.0), spec.value(1.0)}):
            with single_process_state(device):
                try:
                    replace(args, **{spec.name: value}, **single_process_overrides(device))
                except ValueError as err:
                    raise ValueError(
                        f"`hp_space[{spec.name!r}]` allows {spec.name}={value!r}, which {type(args).__name__} "
                        f"refuses: {err}"
                    ) from err
