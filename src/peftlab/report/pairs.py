"""Every pair of methods, not only each against the best: which pairs differ significantly.

The significance table (:mod:`peftlab.report.tables`) tests each row against the best row of its model.
A user choosing between two methods (LoRA or QLoRA? ICL or zero-shot?) needs that pair's test, so for each
task, model and item-level metric with a declared paired test (pass@1, EM@k, tests passed; the corpus
CodeBLEU keeps its own test against the best), every pair of rows is tested on the problems both scored:
exact McNemar for 0/1 scores, a sign-flip permutation test otherwise (:func:`~peftlab.report.stats.paired_test`),
Holm-adjusted over all pairs of that task, model and metric.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from itertools import combinations

from peftlab.report.stats import GroupStats, RowStats, holm, metric_title, paired_test, shared_rows
from peftlab.report.tables import _md_table, _p_text

ALPHA = 0.05


@dataclass
class Pair:
    task: str
    model: str
    metric: str
    first: str
    second: str
    difference: float
    """first − second, on the problems both scored."""
    n: int
    p: float
    p_holm: float
    test: str


def _pair(first: RowStats, second: RowStats, metric: str):
    second_rows, first_rows = shared_rows(second, first)  # in first's order
    if not first_rows:
        return None
    a, b = first.scores[metric][first_rows], second.scores[metric][second_rows]
    p, test = paired_test(a, b)
    return float(a.mean() - b.mean()), len(first_rows), p, test


def all_pairs(groups: list[GroupStats]) -> list[Pair]:
    """Every pair of rows per task, model and item-level paired metric, first the better one."""
    found: list[Pair] = []
    for stats in groups:
        for model in sorted({row.row.model for row in stats.rows}):
            for metric in stats.metrics:
                spec = stats.specs.get(metric, {})
                if not spec.get("paired_test") or spec.get("aggregation") != "mean":
                    continue
                rows = [row for row in stats.rows if row.row.model == model and metric in row.scores]
                block = []
                for first, second in combinations(rows, 2):
                    result = _pair(first, second, metric)
                    if result is None:
                        continue
                    difference, n, p, test = result
                    if difference < 0:
                        first, second, difference = second, first, -difference
                    block.append(Pair(stats.group.title, model, metric, first.row.label, second.row.label,
                                      difference, n, p, p, test))
                for pair, adjusted in zip(block, holm([pair.p for pair in block])):
                    pair.p_holm = adjusted
                found += block
    return found


def pairs_cells(groups: list[GroupStats]) -> tuple[str, list[str], list[list[str]]]:
    """A one-sentence summary, the header and the rows of the all-pairs table: significant pairs
    (Holm-adjusted p < 0.05) first, then by difference."""
    pairs = all_pairs(groups)
    specs = {key: spec for stats in groups for key, spec in stats.specs.items()}
    pairs.sort(key=lambda pair: (pair.task, pair.model, pair.metric, pair.p_holm >= ALPHA, -pair.difference))
    header = ["Task", "Model", "Metric", "Better", "Worse", "Difference", "n", "p", "p (Holm)", "Significant"]
    rows = [[pair.task, pair.model, metric_title(pair.metric, specs), pair.first, pair.second,
             f"{pair.difference:+.3f}", str(pair.n), _p_text(pair.p), _p_text(pair.p_holm),
             "yes" if pair.p_holm < ALPHA else "no"] for pair in pairs]
    significant = sum(pair.p_holm < ALPHA for pair in pairs)
    note = (f"{significant} of {len(pairs)} pairs differ significantly (Holm-adjusted p < {ALPHA} within each "
            "task, model and metric; exact McNemar on 0/1 scores, sign-flip permutation test otherwise)."
            if pairs else "No pair of methods shares a scored problem.")
    return note, header, rows


PAIRS_NUMERIC = range(5, 9)


def pairs_markdown(groups: list[GroupStats]) -> str:
    note, header, rows = pairs_cells(groups)
    return note + "\n\n" + (_md_table(header, rows, PAIRS_NUMERIC) if rows else "")


def pairs_json(groups: list[GroupStats]) -> str:
    """Every pair as JSON (``{"alpha", "pairs": [...]}``, each with ``significant``), for scripts and for
    ``peftlab study``'s closing summary."""
    pairs = [{**asdict(pair), "significant": pair.p_holm < ALPHA} for pair in all_pairs(groups)]
    return json.dumps({"alpha": ALPHA, "pairs": pairs}, indent=1) + "\n"
