"""``peftlab study --plan``: before running, what the study will cost and what each declared hypothesis can
decide at its size.

- **Time.** A cell's estimate comes from this study's finished cells: of the same method and task, scaled
  from the items it scored to the items the cell will score (its training time counted once); else the mean
  wall time of finished cells of the same method; else unknown.
- **Power.** Per hypothesis, exactly (:mod:`peftlab.report.power`), at the hypothesis's declared effect
  (superiority) or margin (equivalence), at n = the task's ``data.test_size``, with the share of items on
  which the two methods disagree observed from their finished cells where they exist, else
  :data:`~peftlab.report.power.ASSUMED_DISCORDANCE` (said so). The level is alpha / (number of hypotheses),
  the strictest step of Holm's adjustment, so the figure is a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from peftlab.report.collect import read_scored, row_label
from peftlab.report.declared import ALPHA, Hypothesis
from peftlab.report.power import ASSUMED_DISCORDANCE, hypothesis_power
from peftlab.runs.directory import read_metrics
from peftlab.study.spec import Cell
from peftlab.tasks import task_class

TARGET_POWER = 0.8


def _scored(cell: Cell, metric: str) -> dict[str, float] | None:
    path = Path(cell.config.output_dir) / "scored.jsonl"
    if not path.is_file():
        return None
    scores = {str(item.get("id")): float(value) for item in read_scored(path)
              if isinstance(value := item["scores"].get(metric), (int, float))}
    return scores or None


@dataclass
class HypothesisPlan:
    hypothesis: Hypothesis
    n: int | None
    discordance: float
    observed: bool
    alpha: float
    power: float | None

    def line(self) -> str:
        h = self.hypothesis
        what = (f"equivalence within ±{h.margin:g}" if h.test == "equivalence" else f"a {h.effect:g} difference")
        source = "observed" if self.observed else "assumed"
        if self.power is None:
            return f"{h.title}: power unknown (set data.test_size for task {h.task or 'of its rows'})"
        verdict = "enough" if self.power >= TARGET_POWER else f"below {TARGET_POWER:g}"
        return (f"{h.title}: power {self.power:.2f} ({verdict}) to show {what} on {h.metric} with n {self.n} at "
                f"alpha {self.alpha:.3g}, methods disagreeing on {self.discordance:.0%} of items ({source})")


def _dataset(cell: Cell) -> str:
    """The cell's test set as the report names it: its task's test-set option, else ``data.dir``."""
    data = cell.config.data.model_dump()
    options = task_class(cell.labels["task"]).test_set_options
    return str(next((data[option] for option in options if data.get(option)), None) or data.get("dir") or "")


def _cells_of(hypothesis: Hypothesis, label: str, cells: list[Cell]) -> list[Cell]:
    return [cell for cell in cells if row_label(cell.labels["method"], cell.labels["sweep"].items()) == label
            and (hypothesis.task is None or cell.labels["task"] == hypothesis.task)
            and (hypothesis.dataset is None or _dataset(cell) == hypothesis.dataset)
            and (hypothesis.model is None or cell.labels["model"] == hypothesis.model)]


def _discordance(first: list[Cell], second: list[Cell], metric: str) -> float | None:
    for a in first:
        for b in second:
            if (a.labels["task"], a.labels["model"], a.labels["seed"]) != (b.labels["task"], b.labels["model"], b.labels["seed"]):
                continue
            scores_a, scores_b = _scored(a, metric), _scored(b, metric)
            shared = sorted(set(scores_a or {}) & set(scores_b or {}))
            if shared:
                return sum(scores_a[key] != scores_b[key] for key in shared) / len(shared)
    return None


def plan_hypotheses(hypotheses: list[Hypothesis], cells: list[Cell]) -> list[HypothesisPlan]:
    alpha = ALPHA / max(1, len(hypotheses))
    plans = []
    for hypothesis in hypotheses:
        first, second = _cells_of(hypothesis, hypothesis.a, cells), _cells_of(hypothesis, hypothesis.b, cells)
        sizes = [cell.config.data.test_size for cell in first + second]
        n = min(sizes) if sizes and None not in sizes else None
        observed = _discordance(first, second, hypothesis.metric)
        discordance = observed if observed else ASSUMED_DISCORDANCE
        power = (hypothesis_power(hypothesis.test, n, discordance, alpha, hypothesis.effect, hypothesis.margin)
                 if n else None)
        plans.append(HypothesisPlan(hypothesis, n, discordance, observed is not None and observed > 0, alpha, power))
    return plans


@dataclass
class Finished:
    """A finished cell's cost: wall time, training time, items scored."""

    method: str
    task: str
    wall: float
    train: float
    items: int


def finished_costs(cells: list[Cell], states: dict[str, dict]) -> list[Finished]:
    found = []
    for cell in cells:
        state = states[cell.key]
        if state.get("status") != "done" or not isinstance(state.get("wall_time_s"), (int, float)):
            continue
        metrics = read_metrics(Path(cell.config.output_dir))
        scored = Path(cell.config.output_dir) / "scored.jsonl"
        items = sum(1 for line in scored.read_text().splitlines() if line.strip()) if scored.is_file() else 0
        # a cell that borrowed an adapter did not train: its metrics show the lender's training time
        train = 0.0 if cell.labels.get("adapter_from") else float(metrics.get("train_time_s") or 0.0)
        found.append(Finished(cell.labels["method"], cell.labels["task"], state["wall_time_s"], train, items))
    return found


def estimate_seconds(cell: Cell, finished: list[Finished]) -> float | None:
    """The cell's estimated wall time from finished cells (see the module docstring), or None."""
    alike = [f for f in finished if f.method == cell.labels["method"] and f.task == cell.labels["task"] and f.items]
    planned = cell.config.data.test_size
    if alike and planned:
        per_item = sum((f.wall - f.train) / f.items for f in alike) / len(alike)
        train = 0.0 if cell.labels.get("adapter_from") else sum(f.train for f in alike) / len(alike)
        return train + per_item * planned
    same_method = [f.wall for f in finished if f.method == cell.labels["method"]]
    return sum(same_method) / len(same_method) if same_method else None
