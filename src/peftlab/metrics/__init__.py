"""Match-based metrics over k candidates per problem. Registry: name -> function.

A metric function takes ``candidates`` (one list of k strings per problem, best first) and ``references``
(one string per problem) and returns a flat ``{name: value}`` dict. Add a metric by writing one module and
one entry in :data:`METRICS`. A metric whose per-problem score is not the corpus function on one problem
(CodeBLEU: docs/metrics.md) also has an entry in :data:`ITEM_METRICS`.
"""

from __future__ import annotations

from collections.abc import Callable

from peftlab.metrics.codebleu_score import codebleu_item, codebleu_metric
from peftlab.metrics.exact_match import exact_match_metric

MetricFn = Callable[[list[list[str]], list[str]], dict[str, float]]
ItemFn = Callable[[list[str], str], tuple[dict, dict]]
"""One problem's candidates and reference -> (its scores, extra fields for its scored.jsonl row)."""

METRICS: dict[str, MetricFn] = {
    "exact_match": exact_match_metric,
    "codebleu": codebleu_metric,
}

ITEM_METRICS: dict[str, ItemFn] = {"codebleu": codebleu_item}

LANGUAGE_AWARE = {"codebleu"}
"""Metrics that parse the code, and so take ``lang`` (exact match compares text in any language)."""


def _options(name: str, lang: str) -> dict:
    return {"lang": lang} if name in LANGUAGE_AWARE else {}


def match_scores(predictions: list[dict], lang: str = "python") -> tuple[dict[str, float], list[dict]]:
    """Every match metric over all rows (``{candidates, reference}``), and each row with its own ``scores``
    (the metrics on that problem alone) and ``codebleu_stats`` (CodeBLEU's per-item counts, from which the
    report recomputes corpus CodeBLEU for its bootstrap intervals and paired tests). ``lang``: the
    programming language, for the metrics in :data:`LANGUAGE_AWARE`."""
    candidates = [row["candidates"] for row in predictions]
    references = [row["reference"] for row in predictions]
    metrics: dict[str, float] = {}
    for name, metric in METRICS.items():
        metrics.update(metric(candidates, references, **_options(name, lang)))
    scored = []
    for row, problem_candidates, reference in zip(predictions, candidates, references, strict=True):
        scores: dict[str, float] = {}
        extra: dict = {}
        for name, metric in METRICS.items():
            if name in ITEM_METRICS:
                item, fields = ITEM_METRICS[name](problem_candidates, reference, **_options(name, lang))
                scores.update(item)
                extra.update(fields)
            else:
                scores.update(metric([problem_candidates], [reference], **_options(name, lang)))
        scored.append({**row, "scores": scores, **extra})
    return metrics, scored

