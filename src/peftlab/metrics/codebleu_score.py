"""CodeBLEU of the top candidate, via the ``codebleu`` package, with its four components.

- :func:`codebleu_metric`: corpus CodeBLEU (``codebleu.calc_codebleu`` over all problems) for metrics.json.
- :func:`codebleu_item`: one problem's CodeBLEU and components, plus the sufficient statistics the report
  recomputes corpus CodeBLEU from (:mod:`peftlab.metrics.codebleu_stats`).

Per item, the data-flow component follows our rule, not the library's (docs/metrics.md): ``codebleu``
0.7.0 turns a data-flow match of 0 into 1, so a signature-only candidate with no data flow would get the
full data-flow weight. Per item we score a 0 as 0, and leave data flow out (renormalising the other three
weights) only when neither candidate nor reference has any. The corpus number is the library's, unchanged.
"""

from __future__ import annotations

import logging
import math

from peftlab.metrics.codebleu_stats import VERSION, as_matrix, item_scores, item_statistics


def codebleu_metric(candidates: list[list[str]], references: list[str], lang: str = "python") -> dict[str, float]:
    from codebleu import calc_codebleu

    # codebleu logs a warning for every reference without data-flow; that flood says nothing per run.
    logging.getLogger("codebleu").setLevel(logging.ERROR)
    top = [problem_candidates[0] if problem_candidates else "" for problem_candidates in candidates]
    scores = calc_codebleu(references, top, lang=lang)
    return {
        "codebleu": scores["codebleu"],
        "codebleu_ngram": scores["ngram_match_score"],
        "codebleu_weighted_ngram": scores["weighted_ngram_match_score"],
        "codebleu_syntax": scores["syntax_match_score"],
        "codebleu_dataflow": scores["dataflow_match_score"],
    }


def codebleu_item(candidates: list[str], reference: str, lang: str = "python") -> tuple[dict, dict]:
    """``(scores, extra row fields)`` of one problem: its CodeBLEU and components (``codebleu_dataflow``
    is ``None`` where data flow is left out) and ``{"codebleu_stats": {...}}``."""
    stats = item_statistics(candidates[0] if candidates else "", reference, lang)
    scores = {name: float(values[0]) for name, values in item_scores(as_matrix([stats])).items()}
    scores = {name: None if math.isnan(value) else value for name, value in scores.items()}
    return scores, {"codebleu_stats": {"version": VERSION, **stats}}
