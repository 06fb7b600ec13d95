"""The report's statistical tests, on plain arrays of per-item scores (see docs/report.md, docs/metrics.md).

- :func:`bootstrap_ci`: 95% percentile bootstrap of the mean of per-item scores, 1000 resamples. The
  resampled indices depend only on the number of items (seeded with ``SEED`` and ``n``; drawn in
  :mod:`peftlab.report.resampling`, which corpus CodeBLEU shares), so the same items are drawn for every
  method and the output never depends on the order in which rows are processed.
- :func:`paired_test`: McNemar's exact test when both methods' per-item scores are 0/1 (EM, pass@k with
  one sample), otherwise a two-sided paired sign-flip permutation test on the per-item differences
  (exact enumeration up to ``EXACT_LIMIT`` non-zero differences, else ``PERMUTATIONS`` random flips).
- :func:`tost_paired`: equivalence within ``±margin`` by two one-sided paired t-tests (TOST) on the per-item
  differences.
- :func:`holm`: Holm's step-down adjustment for a family of p-values.

tests/test_stats_crosscheck.py checks these against scipy/statsmodels.
"""

from __future__ import annotations

import itertools
from math import comb, sqrt

import numpy as np
from scipy import stats as scipy_stats

from peftlab.report.resampling import EXACT_LIMIT, LEVEL, PERMUTATIONS, RESAMPLES, SEED, Estimate, resample_indices


def bootstrap_ci(values, resamples: int = RESAMPLES, level: float = LEVEL) -> Estimate:
    """Mean of ``values`` with its percentile-bootstrap interval at ``level``.

    Raises:
        ValueError: ``values`` is empty.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to bootstrap")
    means = data[resample_indices(data.size, resamples)].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    value = float(data.mean())
    # Guard against rounding in the resampled means putting the point a hair outside a degenerate interval.
    return Estimate(value, float(min(low, value)), float(max(high, value)), int(data.size))


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def mcnemar_exact(a, b) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes (binomial test on the discordant pairs)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    only_a = int(np.sum((a == 1) & (b == 0)))
    only_b = int(np.sum((a == 0) & (b == 1)))
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    tail = sum(comb(discordant, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**discordant)


def sign_flip_test(differences, permutations: int = PERMUTATIONS) -> float:
    """Two-sided paired permutation p-value for mean(differences) == 0, flipping each difference's sign."""
    diff = np.asarray(differences, dtype=float)
    diff = diff[diff != 0]
    if diff.size == 0:
        return 1.0
    observed = abs(diff.sum()) - 1e-12 * max(1.0, float(np.abs(diff).sum()))
    if diff.size <= EXACT_LIMIT:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=diff.size)))
        return float(np.mean(np.abs(signs @ diff) >= observed))
    rng = np.random.default_rng([SEED, diff.size])
    extreme, done = 0, 0
    while done < permutations:
        batch = min(1000, permutations - done)
        signs = rng.choice((-1.0, 1.0), size=(batch, diff.size))
        extreme += int(np.sum(np.abs(signs @ diff) >= observed))
        done += batch
    return (extreme + 1) / (permutations + 1)


def paired_test(a, b) -> tuple[float, str]:
    """p-value for "methods ``a`` and ``b`` score the same on these items", and the test's name.

    Raises:
        ValueError: ``a`` and ``b`` differ in length or are empty.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired test needs two equally long, non-empty score vectors")
    if _is_binary(a) and _is_binary(b):
        return mcnemar_exact(a, b), "McNemar exact"
    return sign_flip_test(a - b), "sign-flip permutation"


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order."""
    order = sorted(range(len(pvalues)), key=lambda i: (pvalues[i], i))
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def tost_paired(a, b, margin: float) -> float:
    """p-value of TOST for "mean(a - b) lies within (-margin, +margin)": the larger of the two one-sided
    paired t-tests' p-values (H0: mean <= -margin; H0: mean >= +margin). Small p: equivalent.

    Per-item differences with no spread (every item differs by the same amount, e.g. both methods score 0
    everywhere) have no t statistic: p is 0 when that difference lies inside the margin, else 1.

    Raises:
        ValueError: ``a`` and ``b`` differ in length, have fewer than two items, or ``margin`` <= 0.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError("TOST needs two equally long score vectors of at least two items")
    if margin <= 0:
        raise ValueError(f"the equivalence margin must be positive, not {margin}")
    diff = a - b
    mean, spread = float(diff.mean()), float(diff.std(ddof=1))
    if spread == 0:
        return 0.0 if -margin < mean < margin else 1.0
    error, df = spread / sqrt(diff.size), diff.size - 1
    above_lower = scipy_stats.t.sf((mean + margin) / error, df)
    below_upper = scipy_stats.t.cdf((mean - margin) / error, df)
    return float(max(above_lower, below_upper))
