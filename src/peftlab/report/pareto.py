"""Memory-vs-score Pareto fronts: which rows of a model no other row beats on both peak memory and score.

Per table group and model, every row is a point (peak memory in MB, value of the group's primary metric:
the first column the figures draw, e.g. EM@1). Lower memory and a higher score are better (a metric
declared ``higher_is_better: false`` is negated). A row is Pareto-optimal when no other row of the same
model has at most its memory and at least its score, with one of the two strictly better.

Memory is ``metrics.json``'s ``peak_memory_mb``, which only training records. A row without it:

- a **prompting baseline** (no training keys: zero-/few-shot) trains nothing and needs only the base
  model for inference, which every trained row of the same model also loads. It is placed at
  ``NO_TRAINING`` (0 MB of training), below every trained row of its model; baselines tie on memory, so
  among them only the best score (or an exact tie) stays on the front;
- a trained row without a measurement (older runs) cannot be placed: it is left out and listed.

Fronts are per model, like the tables' best values: a baseline's 0 MB of training says nothing against
another model's training peak, which includes that model's weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from peftlab.report.stats import ITEM_MEAN, GroupStats, RowStats, metric_title

NO_TRAINING = 0.0
"""Memory of a prompting baseline on the front: no training, so below every measured training peak."""
TIE = 1e-12
"""Memories or scores closer than this are equal (the tables' best values use the same margin)."""


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices, ascending, of the ``(memory, score)`` points that no other point dominates: lower memory
    and higher score are better; ``a`` dominates ``b`` when it is no worse on both and better on one.
    Equal points (same memory and same score) do not dominate each other: all of them stay on the front."""

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        no_worse = a[0] <= b[0] + TIE and a[1] >= b[1] - TIE
        return no_worse and (a[0] < b[0] - TIE or a[1] > b[1] + TIE)

    return [i for i, point in enumerate(points) if not any(dominates(other, point) for other in points)]


@dataclass(frozen=True)
class Point:
    row: RowStats
    memory: float
    """Peak training memory in MB; ``NO_TRAINING`` for a prompting baseline."""
    baseline: bool
    """No training and no memory measurement: drawn in the figure's "no training" strip."""
    optimal: bool


@dataclass
class Front:
    """One model's rows on one group's primary metric; ``points`` in front order (memory, then score down)."""

    model: str
    metric: str
    points: list[Point]
    unplaced: list[str] = field(default_factory=list)
    """Labels of trained rows with no peak memory recorded: not on the figure, not on the front."""

    @property
    def optimal(self) -> list[Point]:
        return [point for point in self.points if point.optimal]


def primary_metric(stats: GroupStats) -> str | None:
    """pass@1 where the rows were executed (it is what an execution-scored study is about, even when the
    task also reports EM against reference solutions); else the group's first bootstrapped metric in column
    order, leaving out the descriptive CodeBLEU item mean (the first panel of every figure)."""
    if "pass@1" in stats.metrics:
        return "pass@1"
    return next((metric for metric in stats.metrics if metric != ITEM_MEAN), None)


def _memory(row: RowStats) -> tuple[float | None, bool]:
    """``(memory in MB or None, is a prompting baseline)``."""
    peak = row.row.metric("peak_memory_mb")
    if peak is not None:
        return float(peak), False
    if not row.row.metric("trainable_params"):  # no training keys: a prompting baseline
        return NO_TRAINING, True
    return None, False


def group_fronts(stats: GroupStats) -> list[Front]:
    """One :class:`Front` per model (sorted) with at least one row scored on the primary metric."""
    metric = primary_metric(stats)
    if metric is None:
        return []
    sign = 1.0 if (stats.specs.get(metric) or {}).get("higher_is_better", True) else -1.0
    fronts = []
    for model in sorted({row.row.model for row in stats.rows}):
        placed, unplaced = [], []
        for row in (row for row in stats.rows if row.row.model == model and metric in row.estimates):
            memory, baseline = _memory(row)
            if memory is None:
                unplaced.append(row.row.label)
            else:
                placed.append((row, memory, baseline))
        if not placed and not unplaced:
            continue
        optimal = set(pareto_front([(memory, sign * row.estimates[metric].value) for row, memory, _ in placed]))
        points = [Point(row, memory, baseline, i in optimal) for i, (row, memory, baseline) in enumerate(placed)]
        points.sort(key=lambda p: (p.memory, -sign * p.row.estimates[metric].value, p.row.row.label))
        fronts.append(Front(model, metric, points, unplaced))
    return fronts


def _point_text(point: Point, metric: str) -> str:
    memory = "no training" if point.baseline else f"{point.memory:,.0f} MB"
    return f"{point.row.row.label} ({memory}, {point.row.estimates[metric].value:.3f})"


def front_lines(stats: GroupStats) -> tuple[str, list[str]]:
    """A sentence and one line per model listing its Pareto-optimal rows in order of memory (Markdown
    and HTML print the same text); ``("", [])`` when the group has no scored row."""
    fronts = group_fronts(stats)
    if not fronts:
        return "", []
    title = metric_title(fronts[0].metric, stats.specs)
    intro = (f"Pareto front, peak training memory vs {title} (lower memory and higher {title} are better; "
             "prompting baselines count as no training): the rows of each model that no other row beats on both.")
    lines = []
    for front in fronts:
        line = f"{front.model}: " + (", ".join(_point_text(p, front.metric) for p in front.optimal) or "–")
        if front.unplaced:
            line += f"; left out, no peak memory recorded: {', '.join(front.unplaced)}"
        lines.append(line)
    return intro, lines


def front_markdown(stats: GroupStats) -> str:
    intro, lines = front_lines(stats)
    if not intro:
        return ""
    return "\n".join([f"*{intro}*", "", *(f"- {line}" for line in lines)]) + "\n"
