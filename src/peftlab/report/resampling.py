"""The report's resampling settings and the bootstrap draws that :mod:`peftlab.report.stats` (item means)
and :mod:`peftlab.report.corpus` (corpus CodeBLEU) share, so that both resample the same items.

It sits below both modules: ``stats`` imports ``corpus`` for the CodeBLEU columns, and ``corpus`` needs
the same draws and settings, which therefore cannot live in ``stats``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SEED = 20240501
RESAMPLES = 1000
LEVEL = 0.95
PERMUTATIONS = 9999
EXACT_LIMIT = 16


@dataclass(frozen=True)
class Estimate:
    """A value over test items with its percentile-bootstrap confidence interval."""

    value: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 3) -> str:
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@lru_cache(maxsize=4)
def resample_indices(n: int, resamples: int) -> np.ndarray:
    """``resamples`` × ``n`` item indices drawn with replacement. Seeded with ``SEED`` and ``n`` only, so
    every method of the same items is resampled alike, whatever order the rows are processed in."""
    rng = np.random.default_rng([SEED, n])
    return rng.integers(0, n, size=(resamples, n))
