"""Power of the report's paired tests, computed exactly (no simulation), for planning a study.

Two methods scored 0/1 on the same N items disagree on a share ``q`` of them (the discordant items); the true
difference of their means is ``d``. Of the discordant items, the better method alone passes a share
(q + d) / 2q. Then:

- :func:`superiority_power`: P(exact McNemar rejects at ``alpha``), summed over the number of discordant
  items (binomial in N) and how they split (binomial in that number);
- :func:`equivalence_power`: P(TOST with margin ``m`` concludes equivalence at ``alpha``) when the true
  difference is ``d`` (0 by default), over the same two binomials, with the paired t statistic of each
  outcome (:func:`~peftlab.report.inference.tost_paired`).

``bench/power.py`` prints tables of these; ``peftlab study --plan`` prints them per declared hypothesis at
alpha / (number of hypotheses), the strictest Holm step (a lower bound on each hypothesis's power).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.stats import binom
from scipy.stats import t as student_t

from peftlab.report.inference import mcnemar_exact

ASSUMED_DISCORDANCE = 0.20
"""Share of items on which two methods disagree, assumed when no run of the pair exists yet: the default
study's MBPP cells disagreed on 5–20% of problems (bench/results/study-default.md)."""


@lru_cache(maxsize=4096)
def _critical_count(discordant: int, alpha: float) -> int | None:
    """Smallest count b of "only the better method passes" among ``discordant`` items that the exact
    McNemar test rejects at ``alpha`` (the test is symmetric: b >= this or b <= discordant - this)."""
    for count in range((discordant + 1) // 2, discordant + 1):
        if mcnemar_exact([1] * count + [0] * (discordant - count), [0] * count + [1] * (discordant - count)) < alpha:
            return count
    return None


def _split_share(difference: float, discordance: float) -> float:
    if not 0 < discordance <= 1 or abs(difference) > discordance:
        raise ValueError(f"a difference of {difference} needs a discordant share of at least that, not {discordance}")
    return (discordance + difference) / (2 * discordance)


def superiority_power(n: int, difference: float, discordance: float, alpha: float) -> float:
    """P(exact McNemar rejects at ``alpha``) with ``n`` items, true difference ``difference`` and discordant
    share ``discordance`` (>= ``difference``)."""
    better = _split_share(difference, discordance)
    total = 0.0
    for discordant in range(1, n + 1):
        critical = _critical_count(discordant, alpha)
        if critical is None:
            continue
        reject = binom.sf(critical - 1, discordant, better) + binom.cdf(discordant - critical, discordant, better)
        total += binom.pmf(discordant, n, discordance) * reject
    return float(total)


def equivalence_power(n: int, margin: float, discordance: float, alpha: float, difference: float = 0.0) -> float:
    """P(TOST with ``margin`` concludes equivalence at ``alpha``) with ``n`` items, discordant share
    ``discordance`` and true difference ``difference``."""
    better = _split_share(difference, discordance)
    total = binom.pmf(0, n, discordance) * (1.0 if margin > 0 else 0.0)  # no discordant item: no spread, mean 0
    for discordant in range(1, n + 1):
        only_better = np.arange(discordant + 1)
        mean = (2 * only_better - discordant) / n
        variance = (discordant - n * mean**2) / (n - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            error = np.sqrt(np.maximum(variance, 0) / n)
            p = np.maximum(student_t.sf((mean + margin) / error, n - 1), student_t.cdf((mean - margin) / error, n - 1))
        p = np.where(error > 0, p, np.where(np.abs(mean) < margin, 0.0, 1.0))
        weights = binom.pmf(only_better, discordant, better)
        total += binom.pmf(discordant, n, discordance) * float(weights[p < alpha].sum())
    return float(total)


def hypothesis_power(test: str, n: int, discordance: float, alpha: float, effect: float, margin: float | None) -> float:
    """Power of a declared hypothesis: superiority against a true difference ``effect``, equivalence within
    ``margin`` when the true difference is 0."""
    if test == "equivalence":
        return equivalence_power(n, margin, discordance, alpha)
    return superiority_power(n, effect, max(discordance, effect), alpha)
