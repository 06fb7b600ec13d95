"""CodeBLEU of the top candidate, via the ``codebleu`` package, with its four components.

Caveat (docs/metrics.md): when a reference has no data-flow edges, ``codebleu`` 0.7.0 scores the
data-flow match as 1, which lifts scores on short functions.
"""

from __future__ import annotations

import logging


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
