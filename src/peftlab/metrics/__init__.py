"""Match-based metrics over k candidates per problem. Registry: name -> function.

A metric function takes ``candidates`` (one list of k strings per problem, best first) and ``references``
(one string per problem) and returns a flat ``{name: value}`` dict. Add a metric by writing one module and
one entry in :data:`METRICS`.
"""

from __future__ import annotations

from collections.abc import Callable

from peftlab.errors import UserError
from peftlab.metrics.codebleu_score import codebleu_metric
from peftlab.metrics.exact_match import exact_match_metric

MetricFn = Callable[[list[list[str]], list[str]], dict[str, float]]

METRICS: dict[str, MetricFn] = {
    "exact_match": exact_match_metric,
    "codebleu": codebleu_metric,
}


def get_metric(name: str) -> MetricFn:
    """Raises: UserError for an unknown metric name."""
    if name not in METRICS:
        raise UserError(f"unknown metric '{name}'; known: {', '.join(sorted(METRICS))}")
    return METRICS[name]


def match_scores(predictions: list[dict]) -> tuple[dict[str, float], list[dict]]:
    """Every match metric over all rows (``{candidates, reference}``), and each row with its own ``scores``
    (the same metrics on that problem alone, which the report bootstraps intervals and paired tests from)."""
    candidates = [row["candidates"] for row in predictions]
    references = [row["reference"] for row in predictions]
    metrics: dict[str, float] = {}
    for metric in METRICS.values():
        metrics.update(metric(candidates, references))
    scored = []
    for row, problem_candidates, reference in zip(predictions, candidates, references, strict=True):
        scores: dict[str, float] = {}
        for metric in METRICS.values():
            scores.update(metric([problem_candidates], [reference]))
        scored.append({**row, "scores": scores})
    return metrics, scored

