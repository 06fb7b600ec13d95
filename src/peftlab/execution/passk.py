"""Unbiased pass@k (Chen et al., 2021) and the tests-passed fraction.

::

    pass_at_k(n, c, k) -> float                       # one problem: n samples, c of them correct
    mean_pass_at_k(counts, k) -> float                # counts: iterable of (n, c), one per problem
    mean_tests_passed(rows) -> float                  # rows: (tests_passed, tests_total) per sample

pass@k = 1 - C(n-c, k) / C(n, k), the probability that at least one of k samples drawn without replacement
from the n is correct. It is computed as the product 1 - prod_{i=n-c+1..n} (1 - k/i), which never forms the
huge binomials and stays accurate for large n.
"""

from __future__ import annotations

from collections.abc import Iterable

from peftlab.errors import UserError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem.

    Raises UserError if k < 1, k > n (pass@k needs at least k samples) or c is outside 0..n.
    """
    if k < 1:
        raise UserError(f"pass@k needs k >= 1, got k={k}")
    if k > n:
        raise UserError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if not 0 <= c <= n:
        raise UserError(f"the number of correct samples must be between 0 and {n}, got {c}")
    if n - c < k:
        return 1.0  # every k-subset contains a correct sample
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Average of :func:`pass_at_k` over problems. Raises UserError if there is no problem or k > some n."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise UserError("pass@k over zero problems is undefined")
    return sum(values) / len(values)


def mean_tests_passed(rows: Iterable[tuple[int, int]]) -> float:
    """Average over samples of the fraction of test cases passed (a sample with no cases counts as 0)."""
    fractions = [passed / total if total else 0.0 for passed, total in rows]
    if not fractions:
        raise UserError("the tests-passed average over zero samples is undefined")
    return sum(fractions) / len(fractions)
