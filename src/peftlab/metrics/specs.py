"""Metric declarations: what each reported metric is, so report and study tables build their columns
from the runs' own ``metrics.json`` instead of a list of names kept in the report.

A :class:`MetricSpec` says how a metric is titled and ordered, whether higher is better, how per-item
scores aggregate to the corpus value (``mean``, or ``corpus``: recomputed from per-item statistics, as
CodeBLEU), and whether the report may bootstrap it per item and run paired tests on it. A task's evaluate
writes ``metric_specs`` (:func:`describe` of the keys it reports) into ``metrics.json``; the report reads
them from there.

:data:`FAMILIES` holds the families any task may report (EM, CodeBLEU, pass@k). A family of one task's own
(testgen's coverage, repair's plausible@k) is declared by that task (``Task.metric_families``, built with
:func:`at_k`, :func:`exactly` or :func:`best_and_mean`) and passed to :func:`describe`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MetricSpec:
    key: str
    title: str
    column: tuple[int, int]
    """Table column order: (family position, k or sub-position)."""
    higher_is_better: bool = True
    aggregation: str = "mean"
    """``mean``: the corpus value is the mean of per-item scores; ``corpus``: recomputed from per-item
    sufficient statistics (CodeBLEU)."""
    bootstrap: bool = True
    """Per-item scores exist, so the report gives a bootstrap confidence interval."""
    paired_test: bool = True
    """The report runs paired tests between methods on it."""


def at_k(family: str, title: str, position: int):
    def build(key: str) -> MetricSpec | None:
        name, _, k = key.partition("@")
        return MetricSpec(key, f"{title}@{k}", (position, int(k))) if name == family and k.isdigit() else None
    return build


def exactly(key: str, **fields):
    def build(candidate: str) -> MetricSpec | None:
        return MetricSpec(key, **fields) if candidate == key else None
    return build


def best_and_mean(family: str, title: str, position: int):
    """``<family>_best`` (the best of a problem's k candidates) and ``<family>_mean`` (their mean)."""
    def build(key: str) -> MetricSpec | None:
        for sub, (suffix, label) in enumerate((("_best", "best"), ("_mean", "mean"))):
            if key == family + suffix:
                return MetricSpec(key, f"{title} ({label})", (position, sub))
        return None
    return build


# Column positions are one order across tasks: the generic families first (0-2), then the tasks' own
# (testgen 3-7, repair 8-10), so that a table mixing tasks keeps a stable order.
FAMILIES = (
    at_k("em", "EM", 0),
    exactly("codebleu", title="CodeBLEU (corpus)", column=(1, 0), aggregation="corpus"),
    # The item mean of per-item CodeBLEU: descriptive only, it ranks short outputs too high (docs/metrics.md).
    exactly("codebleu_item", title="CodeBLEU (item mean)", column=(1, 1), paired_test=False),
    at_k("pass", "pass", 2),
)


def spec(key: str, families=()) -> MetricSpec | None:
    """The declaration of ``key`` among the generic families and ``families``, or None for keys that are not
    table metrics (timings, counts)."""
    return next((found for build in (*FAMILIES, *families) if (found := build(key)) is not None), None)


def describe(keys, families=()) -> dict[str, dict]:
    """``metric_specs`` for ``metrics.json``: the declaration of every table metric among ``keys``
    (CodeBLEU brings its item-mean column along), in column order; ``families`` are a task's own."""
    keys = set(keys)
    if "codebleu" in keys:
        keys.add("codebleu_item")
    found = [s for key in keys if (s := spec(key, families)) is not None]
    return {s.key: asdict(s) for s in sorted(found, key=lambda s: s.column)}
