"""What one transform computes, before it becomes an Arrow table or a float matrix.

Why a module of its own: the transform fills it, and three other jobs read it: the fit takes the
feature names, categorical list and sources of a transform of an empty table, the prune plan takes
the sources of a transform of a sample, and the plan's placeholders fill it in the state's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ltv_core.errors import SpecError

Item = tuple[str, np.ndarray, list[str], bool]  # name, values, source columns, is categorical


@dataclass
class Outputs:
    """Ordered outputs of one transform: name -> array, plus sources and which are categorical."""

    arrays: dict[str, np.ndarray | None] = field(default_factory=dict)  # None: pruned (see plan.fill_pruned)
    sources: dict[str, list[str]] = field(default_factory=dict)
    categorical: list[str] = field(default_factory=list)

    def add(self, name: str, values: np.ndarray, sources: list[str], categorical: bool = False) -> None:
        if name in self.arrays:
            raise SpecError(f"two features would be named {name!r}; rename an interaction or a lookup")
        self.arrays[name] = values
        self.sources[name] = sorted(set(sources))
        if categorical:
            self.categorical.append(name)

    def numeric(self, name: str, group: str) -> np.ndarray:
        if name not in self.arrays:
            raise SpecError(f"{group}: feature {name!r} does not exist (known: {sorted(self.arrays)[:40]}...)")
        if name in self.categorical:
            raise SpecError(f"{group}: feature {name!r} is a categorical code, not a number")
        return self.arrays[name]
