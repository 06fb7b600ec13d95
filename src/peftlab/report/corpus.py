"""Corpus-level CodeBLEU in the report (docs/report.md).

Corpus CodeBLEU pools counts over the test set, so its interval and paired test resample *items* and
recompute the corpus score from the items' sufficient statistics (:mod:`peftlab.metrics.codebleu_stats`).
The score is ``corpus_scores(..., library=False)``: the corpus CodeBLEU of metrics.json, except that a
data-flow match of 0 counts as 0 rather than 1. Otherwise every resample that happens to draw no item with
a matching data-flow edge (a third of them, for a method with one such item in ten) would jump by 0.25.

- :func:`run_matrix`: one run's per-item statistics, from ``scored.jsonl``'s ``codebleu_stats`` or, for
  runs written before those were stored, recomputed from the stored top candidate and reference;
- :func:`corpus_ci`: percentile bootstrap of corpus CodeBLEU on the same resampled items as
  :func:`~peftlab.report.stats.bootstrap_ci` (both draw them from :mod:`peftlab.report.resampling`);
- :func:`corpus_paired_test`: two-sided paired permutation test on the corpus statistic: on each item the
  two methods' outputs swap places with probability 1/2 (exact enumeration up to ``EXACT_LIMIT`` items
  that differ, else ``PERMUTATIONS`` seeded random swaps);
- :func:`disagreements`: pairs of methods that a metric's item mean and its corpus value rank oppositely.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from peftlab.metrics.codebleu_stats import COLUMN, FIELDS, VERSION, as_matrix, corpus_scores, item_statistics
from peftlab.report.resampling import EXACT_LIMIT, LEVEL, PERMUTATIONS, RESAMPLES, SEED, Estimate, resample_indices

CORPUS_METRICS = ("codebleu",)
"""Main metrics whose table value, interval and test are corpus-level, recomputed from item statistics."""
COMPONENTS = ("codebleu", "codebleu_ngram", "codebleu_weighted_ngram", "codebleu_syntax", "codebleu_dataflow")
TIE = 1e-9
"""Differences below this count as ties when comparing rankings."""


def _stored(item: dict) -> dict | None:
    stats = item.get("codebleu_stats")
    if isinstance(stats, dict) and stats.get("version") == VERSION and all(
        isinstance(stats.get(name), (int, float)) for name in FIELDS
    ):
        return stats
    return None


def run_matrix(items: list[dict]) -> tuple[np.ndarray | None, int]:
    """``(per-item statistics in item order, number of items recomputed)``; ``(None, 0)`` when some item
    has neither stored statistics nor a string reference and a candidate list to recompute them from."""
    rows, recomputed = [], 0
    for item in items:
        stats = _stored(item)
        if stats is None:
            candidates, reference = item.get("candidates"), item.get("reference")
            if not isinstance(reference, str) or not isinstance(candidates, list):
                return None, 0
            top = candidates[0] if candidates and isinstance(candidates[0], str) else ""
            stats = item_statistics(top, reference)
            recomputed += 1
        rows.append(stats)
    return as_matrix(rows), recomputed


def _score(sums, metric: str = "codebleu") -> np.ndarray:
    return corpus_scores(sums, library=False)[metric]


def corpus_value(matrix: np.ndarray, metric: str = "codebleu") -> float:
    return float(_score(np.asarray(matrix).sum(axis=0), metric))


def _weighted_sums(weights: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``weights @ matrix`` with a fixed summation order: einsum's plain loop, not BLAS, whose blocking
    may vary with the thread count and would change the last bits of the report's numbers."""
    return np.einsum("rn,nf->rf", weights, matrix, optimize=False)


@lru_cache(maxsize=4)
def _resample_counts(n: int, resamples: int) -> np.ndarray:
    """How often each item is drawn in each resample, for the same draws as ``bootstrap_ci``."""
    indices = resample_indices(n, resamples)
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], indices), 1.0)
    return counts


def corpus_ci(matrix: np.ndarray, resamples: int | None = None, level: float | None = None):
    """Corpus CodeBLEU of ``matrix``'s items with its percentile-bootstrap interval (items resampled,
    corpus score recomputed per resample).

    Raises:
        ValueError: ``matrix`` has no item.
    """
    resamples, level = resamples or RESAMPLES, level or LEVEL
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape[0] == 0:
        raise ValueError("no items to bootstrap")
    values = _score(_weighted_sums(_resample_counts(matrix.shape[0], resamples), matrix))
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    value = corpus_value(matrix)
    # A corpus score is not a mean: its bootstrap distribution may sit slightly off the point; the interval
    # is widened to include the point rather than printing a value outside its own interval.
    return Estimate(value, float(min(low, value)), float(max(high, value)), int(matrix.shape[0]))


def corpus_paired_test(a: np.ndarray, b: np.ndarray, metric: str = "codebleu") -> tuple[float, str]:
    """p-value for "methods ``a`` and ``b`` (per-item statistics of the same items, in the same order) have
    the same corpus score", and the test's name.

    Raises:
        ValueError: the two matrices differ in shape or are empty.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.shape[0] == 0:
        raise ValueError("paired test needs two equally long, non-empty statistics matrices")
    name = "paired permutation (corpus)"
    sum_a, sum_b = a.sum(axis=0), b.sum(axis=0)
    observed = abs(_score(sum_a, metric) - _score(sum_b, metric))
    delta = (b - a)[np.any(a != b, axis=1)]  # swapping identical items changes nothing
    if delta.shape[0] == 0:
        return 1.0, name
    threshold = observed - 1e-12 * max(1.0, float(observed))

    def extreme(swaps: np.ndarray) -> int:
        moved = _weighted_sums(swaps, delta)
        statistic = _score(sum_a + moved, metric) - _score(sum_b - moved, metric)
        return int(np.sum(np.abs(statistic) >= threshold))

    if delta.shape[0] <= EXACT_LIMIT:
        swaps = np.array(list(itertools.product((0.0, 1.0), repeat=delta.shape[0])))
        return extreme(swaps) / swaps.shape[0], name
    rng = np.random.default_rng([SEED, delta.shape[0], 2])  # its own stream, not the sign-flip test's
    found, done = 0, 0
    while done < PERMUTATIONS:
        batch = min(1000, PERMUTATIONS - done)
        found += extreme(rng.integers(0, 2, size=(batch, delta.shape[0])).astype(float))
        done += batch
    return (found + 1) / (PERMUTATIONS + 1), name


def library_value(matrix: np.ndarray) -> float | None:
    """metrics.json's corpus CodeBLEU of these items where it differs from the report's (no data-flow edge
    matches, which codebleu 0.7.0 counts as a perfect data-flow match), else ``None``."""
    sums = np.asarray(matrix).sum(axis=0)
    if sums[COLUMN["dataflow_matches"]] > 0:
        return None
    return float(corpus_scores(sums)["codebleu"])


@dataclass(frozen=True)
class Disagreement:
    """Two rows of one model that a metric's corpus value ranks ``higher`` > ``lower`` and its item mean
    the other way round."""

    model: str
    metric: str
    higher: str
    lower: str
    corpus: tuple[float, float]
    item_mean: tuple[float, float]


def disagreements(rows) -> list[Disagreement]:
    """Every pair of same-model rows whose ``corpus_values`` and ``item_means`` rank them oppositely."""
    found = []
    for first, second in itertools.combinations(rows, 2):
        if first.row.model != second.row.model:
            continue
        for metric in sorted(set(first.corpus_values) & set(second.corpus_values)
                             & set(first.item_means) & set(second.item_means)):
            corpus = first.corpus_values[metric] - second.corpus_values[metric]
            mean = first.item_means[metric] - second.item_means[metric]
            if abs(corpus) > TIE and abs(mean) > TIE and (corpus > 0) != (mean > 0):
                high, low = (first, second) if corpus > 0 else (second, first)
                found.append(Disagreement(
                    first.row.model, metric, high.row.label, low.row.label,
                    (high.corpus_values[metric], low.corpus_values[metric]),
                    (high.item_means[metric], low.item_means[metric]),
                ))
    return found
