"""The all-pairs table: which pairs of methods differ (exploratory).

Every pair of rows per task, model and metric with a declared paired test, tested on the problems both
scored and Holm-adjusted over all pairs of that task, model and metric (:mod:`peftlab.report.paired`: exact
McNemar for 0/1 scores, a sign-flip permutation test otherwise, a paired permutation test on the corpus
statistic for CodeBLEU). Pairs whose rows score identically on every item are listed apart: they are not
tests. These tables are exploratory; the study's declared hypotheses (:mod:`peftlab.report.hypotheses`) are
the confirmatory answers.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass

from peftlab.report.paired import PairTest
from peftlab.report.stats import GroupStats, metric_title
from peftlab.report.tables import _md_table, _p_text

ALPHA = 0.05


@dataclass
class Pair(PairTest):
    task: str = ""


def all_pairs(groups: list[GroupStats]) -> list[Pair]:
    """Every pair of rows per task, model and paired-tested metric, first the better one (degenerate pairs
    included, marked)."""
    return [Pair(**asdict(test), task=stats.group.title) for stats in groups for test in stats.pairs]


def pairs_cells(groups: list[GroupStats]) -> tuple[str, list[str], list[list[str]]]:
    """A one-sentence summary, the header and the rows of the all-pairs table: significant pairs
    (Holm-adjusted p < 0.05) first, then by difference."""
    listed = all_pairs(groups)
    degenerate = [pair for pair in listed if pair.degenerate]
    pairs = [pair for pair in listed if not pair.degenerate]
    specs = {key: spec for stats in groups for key, spec in stats.specs.items()}
    pairs.sort(key=lambda pair: (pair.task, pair.model, pair.metric, pair.p_holm >= ALPHA, -pair.difference))
    header = ["Task", "Model", "Metric", "Better", "Worse", "Difference", "n", "p", "p (Holm)", "Significant"]
    rows = [[pair.task, pair.model, metric_title(pair.metric, specs), pair.first, pair.second,
             f"{pair.difference:+.3f}", str(pair.n), _p_text(pair.p), _p_text(pair.p_holm),
             "yes" if pair.p_holm < ALPHA else "no"] for pair in pairs]
    significant = sum(pair.p_holm < ALPHA for pair in pairs)
    note = (f"Exploratory: {significant} of {len(pairs)} pairs differ significantly (Holm-adjusted p < {ALPHA} "
            "over all pairs of each task, model and metric; exact McNemar on 0/1 scores, sign-flip permutation "
            "test otherwise, permutation on the corpus statistic for CodeBLEU)."
            if pairs else "No pair of methods that shares a scored problem scores differently on it.")
    if degenerate:
        families = Counter((pair.task, pair.model, metric_title(pair.metric, specs)) for pair in degenerate)
        apart = "; ".join(f"{' · '.join(family)}: {count}" for family, count in families.items())
        note += (f" Not tests, left out of the adjustment: {len(degenerate)} pairs score identically on every "
                 f"item ({apart}).")
    return note, header, rows


PAIRS_NUMERIC = range(5, 9)


def pairs_markdown(groups: list[GroupStats]) -> str:
    note, header, rows = pairs_cells(groups)
    return note + "\n\n" + (_md_table(header, rows, PAIRS_NUMERIC) if rows else "")


def pairs_json(groups: list[GroupStats]) -> str:
    """Every pair as JSON (``{"alpha", "pairs": [...]}``, each with ``significant`` and ``degenerate``), for scripts and for
    ``peftlab study``'s closing summary."""
    pairs = [{**asdict(pair), "significant": not pair.degenerate and pair.p_holm < ALPHA} for pair in all_pairs(groups)]
    return json.dumps({"alpha": ALPHA, "pairs": pairs}, indent=1) + "\n"
