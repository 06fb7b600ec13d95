"""Catastrophic forgetting: a method trained for one task (``data.train_task``), scored on another task's
test set, against the untrained base model (the ``zero-shot`` row of the same model) on the same items.

::

    forgetting(groups) -> list[Change]
    forgetting_cells(changes) -> (header, rows)        forgetting_markdown(changes) -> str

A change is the mean of the per-item differences (adapted - base) on the items both scored, with its
percentile-bootstrap 95% CI and the paired test (exact McNemar for 0/1 scores, sign-flip otherwise), for
every item-level metric the task declares as paired-tested. Negative: the adapted model does worse than the
base on a task it was not trained for. ``p_holm`` adjusts over the table's rows of the same task, model and
metric (one per adapted method): reading "which method forgets" off the table is looking at all of them.
A forgetting claim meant as a finding is declared as a hypothesis in the study file
(:mod:`peftlab.report.hypotheses`), which adjusts over the declared hypotheses instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftlab.report.inference import bootstrap_ci, holm, paired_test
from peftlab.report.paired import shared_rows
from peftlab.report.stats import Estimate, GroupStats, metric_title

BASE_METHOD = "zero-shot"
NOTE = ("Rows trained on another task's data (data.train_task) scored on this task, against the untrained "
        "base model (zero-shot) on the same items: adapted - base, mean with its 95% bootstrap CI; p from the "
        "paired test; p (Holm) adjusts over the rows of the same task, model and metric. Negative = forgetting. "
        "Exploratory unless declared as a hypothesis.")


@dataclass
class Change:
    task: str
    model: str
    method: str
    trained_on: str
    metric: str
    title: str
    base: float
    adapted: float
    change: Estimate
    p: float
    test: str
    p_holm: float = 1.0


def _trained_on(stats) -> str | None:
    tasks = {run.train_task for run in stats.row.runs}
    trains = all((run.metrics.get("trainable_params") or 0) > 0 for run in stats.row.runs)
    if len(tasks) != 1 or not trains:
        return None
    task = next(iter(tasks))
    return task if task and task != stats.row.runs[0].task else None


def forgetting(groups: list[GroupStats]) -> list[Change]:
    changes = []
    for group in groups:
        for model in sorted({stats.row.model for stats in group.rows}):
            members = [stats for stats in group.rows if stats.row.model == model]
            base = next((s for s in members if s.row.method == BASE_METHOD and not s.row.sweep), None)
            if base is None:
                continue
            for stats in members:
                trained_on = _trained_on(stats)
                if trained_on is None:
                    continue
                for metric in group.metrics:
                    spec = group.specs.get(metric, {})
                    if not spec.get("paired_test") or metric not in base.scores or metric not in stats.scores:
                        continue
                    base_rows, own_rows = shared_rows(base, stats)
                    if not base_rows:
                        continue
                    before, after = base.scores[metric][base_rows], stats.scores[metric][own_rows]
                    p, test = paired_test(after, before)
                    changes.append(Change(group.group.title, model, stats.row.label, trained_on, metric,
                                          metric_title(metric, group.specs), float(before.mean()),
                                          float(after.mean()), bootstrap_ci(after - before), p, test))
    families: dict[tuple, list[Change]] = {}
    for change in changes:
        families.setdefault((change.task, change.model, change.metric), []).append(change)
    for family in families.values():
        for change, adjusted in zip(family, holm([change.p for change in family])):
            change.p_holm = adjusted
    return changes


def forgetting_cells(changes: list[Change]) -> tuple[list[str], list[list[str]]]:
    header = ["Task", "Model", "Method", "Trained on", "Metric", "Base", "Adapted", "Change [95% CI]", "n", "p",
              "p (Holm)", "Test"]
    rows = [[c.task, c.model, c.method, c.trained_on, c.title, f"{c.base:.3f}", f"{c.adapted:.3f}", c.change.text(),
             str(c.change.n), f"{c.p:.3g}", f"{c.p_holm:.3g}", c.test] for c in changes]
    return header, rows


def forgetting_markdown(changes: list[Change]) -> str:
    if not changes:
        return "No row was trained on another task's data and scored beside a zero-shot base.\n"
    header, rows = forgetting_cells(changes)
    lines = [NOTE, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
