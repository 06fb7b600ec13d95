"""Every pair of rows of one model, tested on the items both scored, with an honest multiplicity adjustment.

For each metric with a declared paired test, every pair of rows of a model is tested on their shared items:
item metrics (pass@k, EM@k, tests passed, ...) with :func:`~peftlab.report.inference.paired_test`, corpus
CodeBLEU with :func:`~peftlab.report.corpus.corpus_paired_test`.

**The family is all pairs.** Holm adjusts over every pair of one task, model and metric. The "each method
against the best" table reads its p-values from here: its reference row is chosen *after* looking at the
scores, so adjusting over only its k−1 comparisons would be anticonservative (the best row's comparisons are
the extreme ones of the k(k−1)/2 a reader could have looked at).

**Degenerate pairs are not tests.** Two rows that score identically on every shared item (both 0 everywhere,
say) give p = 1 by construction under these conditional tests, which can never reject. They are marked
``degenerate``, reported apart, and left out of the family (Tarone's rule: a test that cannot reach alpha
needs no share of it), so that "0 of 42 significant" is not padded by pairs that could not differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from peftlab.report.corpus import CORPUS_METRICS, corpus_paired_test, corpus_value
from peftlab.report.inference import holm, paired_test

DEGENERATE_TEST = "none (identical scores on every item)"


@dataclass
class PairTest:
    model: str
    metric: str
    first: str
    """Label of the row that scores higher (``difference`` >= 0)."""
    second: str
    difference: float
    """first − second on the shared items (corpus metrics: corpus value of each side)."""
    n: int
    p: float
    p_holm: float
    """Holm over the non-degenerate pairs of the same model and metric; 1.0 for a degenerate pair."""
    test: str
    degenerate: bool = False


def shared_rows(first, second) -> tuple[list[int], list[int]]:
    """Positions in ``first`` and in ``second`` of the items both scored, paired, in ``second``'s order."""
    positions = {item_id: index for index, item_id in enumerate(first.ids)}
    shared = [(positions[item_id], index) for index, item_id in enumerate(second.ids) if item_id in positions]
    return [i for i, _ in shared], [j for _, j in shared]


def paired_scores(first, second, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The two rows' per-item scores (corpus metrics: per-item statistics) on their shared items, paired."""
    second_rows, first_rows = shared_rows(second, first)  # in first's order
    source = "corpus" if metric in CORPUS_METRICS else "scores"
    return getattr(first, source)[metric][first_rows], getattr(second, source)[metric][second_rows]


def _pair(model: str, metric: str, first, second) -> PairTest | None:
    a, b = paired_scores(first, second, metric)
    if not len(a):
        return None
    degenerate = bool(np.array_equal(a, b))
    if metric in CORPUS_METRICS:
        difference = corpus_value(a, metric) - corpus_value(b, metric)
        p, test = (1.0, DEGENERATE_TEST) if degenerate else corpus_paired_test(a, b, metric)
    else:
        difference = float(a.mean() - b.mean())
        p, test = (1.0, DEGENERATE_TEST) if degenerate else paired_test(a, b)
    if difference < 0:
        first, second, difference = second, first, -difference
    return PairTest(model, metric, first.row.label, second.row.label, difference, len(a), p, 1.0, test, degenerate)


def pair_tests(model: str, metric: str, rows: list) -> list[PairTest]:
    """Every pair of ``rows`` (one model's :class:`~peftlab.report.stats.RowStats` scoring ``metric``),
    Holm-adjusted over the pairs that are not degenerate."""
    found = [test for first, second in combinations(rows, 2) if (test := _pair(model, metric, first, second))]
    family = [test for test in found if not test.degenerate]
    for test, adjusted in zip(family, holm([test.p for test in family])):
        test.p_holm = adjusted
    return found


def find_pair(tests: list[PairTest], one: str, other: str) -> PairTest | None:
    """The test of the rows labelled ``one`` and ``other``, in either order."""
    return next((test for test in tests if {test.first, test.second} == {one, other}), None)
