"""Per-row and per-group statistics of the report (see docs/report.md): each row's per-item scores
averaged over its seeds, their confidence intervals, the best rows, and the paired tests.

The tests themselves work on plain arrays (:mod:`peftlab.report.inference`); every pair of rows is tested in
:mod:`peftlab.report.paired`. CodeBLEU is corpus-level, not a mean: its interval and test live in
:mod:`peftlab.report.corpus` and resample the same items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from peftlab.metrics.codebleu_stats import corpus_scores, item_scores
from peftlab.metrics.exact_match import normalize_code
from peftlab.metrics.specs import describe
from peftlab.report.corpus import (
    COMPONENTS, Disagreement, corpus_ci, library_value, disagreements, run_matrix,
)
from peftlab.report.inference import bootstrap_ci
from peftlab.report.paired import PairTest, find_pair, pair_tests
from peftlab.report.resampling import Estimate


# --- Per-row statistics of a report group --------------------------------------------------------------

ITEM_MEAN = "codebleu_item"
"""The secondary CodeBLEU column: per-item CodeBLEU averaged. Descriptive only: it gets no paired test."""
COMPONENT_TITLES = {
    "codebleu_ngram": "CodeBLEU n-gram", "codebleu_weighted_ngram": "CodeBLEU weighted n-gram",
    "codebleu_syntax": "CodeBLEU syntax", "codebleu_dataflow": "CodeBLEU data flow",
}


def declared_specs(runs) -> dict[str, dict]:
    """The metric declarations the runs wrote (``metrics.json["metric_specs"]``); for runs from before
    declarations, the built-in ones of the keys they report."""
    specs: dict[str, dict] = {}
    for run in runs:
        specs.update(run.metrics.get("metric_specs") or {})
    if not specs:
        keys = {key for run in runs for item in run.items for key in item["scores"]}
        specs = describe(keys | {key for run in runs for key in run.metrics})
    return specs


def metric_title(key: str, specs: dict | None = None) -> str:
    declared = (specs or {}).get(key) or describe([key]).get(key)
    return declared["title"] if declared else COMPONENT_TITLES.get(key, key)


@dataclass
class RowStats:
    """A table row's per-item scores (averaged over its seeds, on the items all seeds share) and CIs."""

    row: object
    ids: list[str]
    scores: dict[str, np.ndarray]
    """Per-item scores of the item-mean metrics (EM, pass@k, ``codebleu_item``, ...)."""
    estimates: dict[str, Estimate]
    em_curve: list[Estimate]
    """EM@k for k = 1..K from the candidates and references (empty when the task reports no EM)."""
    best: set[str]
    corpus: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-item CodeBLEU statistics (items × FIELDS, averaged over seeds) of each corpus metric."""
    corpus_values: dict[str, float] = field(default_factory=dict)
    """Corpus value of each metric (recomputed CodeBLEU and components; metrics.json for the others)."""
    item_means: dict[str, float] = field(default_factory=dict)
    """Item mean of the same metrics, to flag the two ranking methods differently."""
    recomputed: int = 0
    """Items whose CodeBLEU statistics were recomputed from the stored candidate (older scored.jsonl)."""
    library_codebleu: float | None = None
    """metrics.json's corpus CodeBLEU where it differs from the report's: no data-flow edge matched, which
    codebleu 0.7.0 counts as a perfect data-flow match."""
    seed_means: dict[str, list[float]] = field(default_factory=dict)
    """Per item-mean metric, each seed's own mean on the shared items: the spread a single training run has."""
    fallback: bool = False
    """No CodeBLEU statistics and nothing to recompute them from: no corpus column, stored item mean only."""
    specs: dict = field(default_factory=dict)
    """The metric declarations of the row's runs (:func:`declared_specs`)."""


@dataclass
class Comparison:
    """A row against the best row of the same model for one metric, on their shared items; ``p_holm`` is
    the pair's Holm-adjusted p among all pairs of that model and metric (:mod:`peftlab.report.paired`)."""

    model: str
    metric: str
    method: str
    best: str
    difference: float
    n: int
    p: float
    p_holm: float
    test: str


@dataclass
class GroupStats:
    group: object
    rows: list[RowStats]
    metrics: list[str]
    comparisons: list[Comparison]
    disagreements: list[Disagreement] = field(default_factory=list)
    specs: dict = field(default_factory=dict)
    """Metric declarations of all rows: titles and column order."""
    pairs: list[PairTest] = field(default_factory=list)
    """Every pair of rows per model and paired-tested metric (:mod:`peftlab.report.paired`)."""


def _item_id(item: dict, index: int) -> str:
    return str(item.get("id", f"#{index}"))


def _first_hits(items: list[dict]) -> list[float]:
    """Per item, the 0-based rank of the first candidate matching the reference (inf when none does)."""
    hits = []
    for item in items:
        target = normalize_code(str(item.get("reference") or ""))
        ranks = [rank for rank, candidate in enumerate(item.get("candidates") or []) if normalize_code(str(candidate)) == target]
        hits.append(float(ranks[0]) if ranks else float("inf"))
    return hits


def _codebleu(stats: RowStats, per_run: list[dict], reports_codebleu: bool) -> None:
    """Corpus CodeBLEU (statistics, value, components) and its item mean, from each seed's statistics;
    without statistics to recompute from, only the stored per-item ``codebleu`` mean (``codebleu_item``)."""
    stored = stats.scores.pop("codebleu", None)
    for component in COMPONENTS[1:]:
        stats.scores.pop(component, None)
    if not reports_codebleu or not stats.ids:
        return
    matrices = []
    for items in per_run:
        matrix, recomputed = run_matrix([items[item_id] for item_id in stats.ids])
        if matrix is None:
            stats.fallback, stats.recomputed = True, 0
            if stored is not None:
                stats.scores[ITEM_MEAN] = stored
                if isinstance(stats.row.metric("codebleu"), (int, float)):
                    stats.corpus_values["codebleu"] = float(stats.row.metric("codebleu"))
                    stats.item_means["codebleu"] = float(stored.mean())
            return
        matrices.append(matrix)
        stats.recomputed += recomputed
    # Pooling the seeds' counts (their mean) keeps one corpus per row; with one seed it is that run's corpus.
    stats.corpus["codebleu"] = pooled = np.mean(matrices, axis=0)
    per_item = [item_scores(matrix) for matrix in matrices]
    stats.scores[ITEM_MEAN] = np.mean([scores["codebleu"] for scores in per_item], axis=0)
    totals = corpus_scores(pooled.sum(axis=0), library=False)
    for component in COMPONENTS:
        values = np.mean([scores[component] for scores in per_item], axis=0)
        if np.isfinite(totals[component]) and not np.all(np.isnan(values)):
            stats.corpus_values[component] = float(totals[component])
            stats.item_means[component] = float(np.nanmean(values))  # data flow: items that have any
    stats.library_codebleu = library_value(pooled)


def row_stats(row) -> RowStats:
    """Statistics of one :class:`~peftlab.report.collect.Row`."""
    per_run = [{_item_id(item, i): item for i, item in enumerate(run.items)} for run in row.runs]
    ids = [key for key in per_run[0] if all(key in items for items in per_run[1:])]
    keys = sorted({key for items in per_run for item in items.values() for key in item["scores"]})
    scores: dict[str, np.ndarray] = {}
    seed_means: dict[str, list[float]] = {}
    for key in keys:
        columns = []
        for items in per_run:
            values = [items[item_id]["scores"].get(key) for item_id in ids]
            if not all(isinstance(value, (int, float)) for value in values):
                break
            columns.append(np.asarray(values, dtype=float))
        else:
            if ids:
                scores[key] = np.mean(columns, axis=0)
                seed_means[key] = [float(column.mean()) for column in columns]
    specs = declared_specs(row.runs)
    stats = RowStats(row, ids, scores, {}, [], set(), specs=specs, seed_means=seed_means)
    reports_codebleu = "codebleu" in keys or any("codebleu" in run.metrics for run in row.runs)
    _codebleu(stats, per_run, reports_codebleu)
    shown = {key for key, declared in specs.items() if declared["bootstrap"]}
    stats.estimates = {key: bootstrap_ci(values) for key, values in scores.items() if key in shown}
    stats.estimates.update({key: corpus_ci(matrix) for key, matrix in stats.corpus.items() if key in shown})
    for key, values in scores.items():
        if key in shown and specs[key]["aggregation"] == "mean" and isinstance(row.metric(key), (int, float)):
            stats.corpus_values[key], stats.item_means[key] = float(row.metric(key)), float(values.mean())
    if "em@1" in scores:
        depth = max(len(items[item_id].get("candidates") or []) for items in per_run for item_id in ids)
        hits = np.array([_first_hits([items[item_id] for item_id in ids]) for items in per_run])
        stats.em_curve = [bootstrap_ci((hits < k).mean(axis=0)) for k in range(1, depth + 1)]
    return stats


def group_stats(group) -> GroupStats:
    """Row statistics, best rows per model and metric, every pair tested (:mod:`peftlab.report.paired`),
    each row against the best row of its model (p-values from the all-pairs family), and item-mean vs
    corpus ranking disagreements, for a group."""
    rows = [row_stats(row) for row in group.rows]
    specs = {key: declared for stats in rows for key, declared in stats.specs.items()}
    metrics = sorted({key for stats in rows for key in stats.estimates}, key=lambda key: tuple(specs[key]["column"]))
    comparisons: list[Comparison] = []
    pairs: list[PairTest] = []
    for model in sorted({stats.row.model for stats in rows}):
        members = [stats for stats in rows if stats.row.model == model]
        for metric in metrics:
            scored = [stats for stats in members if metric in stats.estimates]
            if not scored:
                continue
            top = max(stats.estimates[metric].value for stats in scored)
            for stats in scored:
                if stats.estimates[metric].value >= top - 1e-12:
                    stats.best.add(metric)
            if not specs[metric]["paired_test"]:
                continue
            tests = pair_tests(model, metric, scored)
            pairs += tests
            reference = next(stats for stats in scored if metric in stats.best)
            comparisons += _against_best(model, metric, reference, scored, tests)
    return GroupStats(group, rows, metrics, comparisons, disagreements(rows), specs, pairs)


def _against_best(model: str, metric: str, reference: RowStats, scored: list[RowStats],
                  tests: list[PairTest]) -> list[Comparison]:
    found = []
    for other in scored:
        test = find_pair(tests, reference.row.label, other.row.label) if other is not reference else None
        if test is None:
            continue
        difference = test.difference if test.first == other.row.label else -test.difference
        found.append(Comparison(model, metric, other.row.label, reference.row.label, difference, test.n, test.p,
                                test.p_holm, test.test))
    return found
