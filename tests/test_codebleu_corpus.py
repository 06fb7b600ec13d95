"""CodeBLEU's per-item sufficient statistics: summed over a corpus they give ``codebleu.calc_codebleu``
exactly; scored alone, an absent data flow is no longer a perfect match."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
from codebleu import calc_codebleu

from peftlab.metrics import match_scores
from peftlab.metrics.codebleu_score import codebleu_metric
from peftlab.metrics.codebleu_stats import FIELDS, as_matrix, corpus_scores, item_scores, item_statistics

LIBRARY_KEYS = {
    "codebleu": "codebleu", "codebleu_ngram": "ngram_match_score",
    "codebleu_weighted_ngram": "weighted_ngram_match_score", "codebleu_syntax": "syntax_match_score",
    "codebleu_dataflow": "dataflow_match_score",
}
REFERENCES = [
    "def add(a, b):\n    total = a + b\n    return total",
    "def answer():\n    return 42",  # no data flow
    "def h(a, b):\n    '''Docstring.'''\n    # comment\n    for i in range(a):\n        b += i\n    return b",
    "class Box:\n    def get(self):\n        return self.value",
    "def pick(items, key):\n    found = [item for item in items if item[key]]\n    return found[0] if found else None",
]
CANDIDATES = [
    "def add(a, b):", "def add(a, b):\n    return a * b", "", "   ", "def answer():\n    return 41",
    "def h(a, b):\n    return a + b", "((( not python", "class Box:\n    pass", "x = 1\ny = x\nprint(y)",
    "def pick(items, key):\n    # first match\n    for item in items:\n        if item[key]:\n            return item",
    "def add(a, b):\n    total = a + b\n    return total",
]


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)  # calc_codebleu warns on corpora without reference data flow
    yield
    logging.disable(logging.NOTSET)


def _library(references, candidates) -> dict[str, float]:
    scores = calc_codebleu(references, candidates, lang="python")
    return {ours: scores[theirs] for ours, theirs in LIBRARY_KEYS.items()}


def test_corpus_from_item_statistics_equals_calc_codebleu():
    rng = random.Random(2024)
    corpora = [(REFERENCES, CANDIDATES[:5]), ([REFERENCES[1]] * 3, CANDIDATES[:3]), ([REFERENCES[0]], ["def add(a, b):"])]
    for _ in range(40):
        size = rng.randint(1, 12)
        corpora.append(([rng.choice(REFERENCES) for _ in range(size)], [rng.choice(CANDIDATES) for _ in range(size)]))
    worst = 0.0
    for references, candidates in corpora:
        matrix = as_matrix([item_statistics(c, r) for c, r in zip(candidates, references)])
        ours = {key: float(value) for key, value in corpus_scores(matrix.sum(axis=0)).items()}
        expected = _library(references, candidates)
        worst = max(worst, *(abs(ours[key] - expected[key]) for key in LIBRARY_KEYS))
    assert worst <= 1e-12
    # The corpora include the library's quirks: no reference data flow at all (data flow 0 -> counted as 1)
    # and a corpus whose data-flow match is 0 although the references have some (also counted as 1).
    assert _library([REFERENCES[1]] * 3, CANDIDATES[:3])["codebleu_dataflow"] == 0
    assert _library([REFERENCES[0]], ["def add(a, b):"])["codebleu_dataflow"] == 0


def test_report_rule_differs_from_the_library_only_without_a_matching_data_flow_edge():
    matched = as_matrix([item_statistics(c, r) for c, r in zip(CANDIDATES[-5:], REFERENCES)]).sum(axis=0)
    assert matched[FIELDS.index("dataflow_matches")] > 0
    assert float(corpus_scores(matched, library=False)["codebleu"]) == float(corpus_scores(matched)["codebleu"])
    # No edge matched although the reference has some: the library counts data flow as 1, the report as 0.
    unmatched = as_matrix([item_statistics("def add(a, b):", REFERENCES[0])]).sum(axis=0)
    library, report = float(corpus_scores(unmatched)["codebleu"]), float(corpus_scores(unmatched, library=False)["codebleu"])
    assert library == pytest.approx(report + 0.25, abs=1e-15)
    # No data flow on either side: left out, the other three weights renormalised.
    silent = as_matrix([item_statistics("def answer():\n    return 41", REFERENCES[1])]).sum(axis=0)
    parts = corpus_scores(silent, library=False)
    three = sum(float(parts[key]) for key in ("codebleu_ngram", "codebleu_weighted_ngram", "codebleu_syntax")) / 3
    assert np.isnan(parts["codebleu_dataflow"]) and float(parts["codebleu"]) == pytest.approx(three, abs=1e-15)


def test_metrics_json_values_unchanged():
    """codebleu_metric is still calc_codebleu over the corpus (pinned on a fixed corpus)."""
    candidates = [[c] for c in CANDIDATES[:5]]
    expected = _library(REFERENCES, CANDIDATES[:5])
    assert codebleu_metric(candidates, REFERENCES) == expected
    metrics, scored = match_scores([{"candidates": c, "reference": r} for c, r in zip(candidates, REFERENCES)])
    assert {key: metrics[key] for key in LIBRARY_KEYS} == expected
    # ... and the statistics stored per row rebuild it.
    rebuilt = corpus_scores(as_matrix([row["codebleu_stats"] for row in scored]).sum(axis=0))
    assert float(rebuilt["codebleu"]) == pytest.approx(metrics["codebleu"], abs=1e-12)
    assert set(FIELDS) < set(scored[0]["codebleu_stats"]) and scored[0]["codebleu_stats"]["version"] == 1


def test_signature_only_no_longer_beats_a_plausible_body():
    reference = "def scale(values, factor):\n    result = []\n    for value in values:\n        result.append(value * factor)\n    return result"
    signature = "def scale(values, factor):"
    body = "def scale(values, factor):\n    return [v * factor for v in values]"
    # The artefact: scored alone by the library, the signature wins (its data flow 0 becomes 1).
    library_signature, library_body = (calc_codebleu([reference], [c], "python")["codebleu"] for c in (signature, body))
    assert library_signature > library_body
    _, scored = match_scores([{"candidates": [c], "reference": reference} for c in (signature, body)])
    ours_signature, ours_body = (row["scores"]["codebleu"] for row in scored)
    assert ours_body > ours_signature
    assert scored[0]["scores"]["codebleu_dataflow"] == 0.0  # reference has data flow, the signature none
    print(f"library {library_signature:.3f} vs {library_body:.3f}; ours {ours_signature:.3f} vs {ours_body:.3f}")


def test_dataflow_left_out_when_neither_side_has_any():
    reference, candidate = "def answer():\n    return 42", "def answer():\n    return 41"
    stats = item_statistics(candidate, reference)
    assert stats["dataflow_totals"] == 0 and stats["candidate_dataflow"] == 0
    scores = {key: float(value[0]) for key, value in item_scores(as_matrix([stats])).items()}
    three = (scores["codebleu_ngram"] + scores["codebleu_weighted_ngram"] + scores["codebleu_syntax"]) / 3
    assert np.isnan(scores["codebleu_dataflow"]) and scores["codebleu"] == pytest.approx(three, abs=1e-15)
    library = calc_codebleu([reference], [candidate], "python")
    assert library["codebleu"] == pytest.approx(0.25 * (3 * three + 1), abs=1e-12)  # the library adds 0.25 for nothing
    _, (row,) = match_scores([{"candidates": [candidate], "reference": reference}])
    assert row["scores"]["codebleu_dataflow"] is None and row["scores"]["codebleu"] == pytest.approx(three)
    # A candidate with data flow against a reference without any scores 0 on data flow, not "left out".
    flowing = item_statistics("def answer():\n    x = 41\n    return x", reference)
    assert flowing["candidate_dataflow"] > 0
    assert float(item_scores(as_matrix([flowing]))["codebleu_dataflow"][0]) == 0.0


def test_a_perfect_candidate_scores_one():
    stats = item_statistics(REFERENCES[0], REFERENCES[0])
    assert float(item_scores(as_matrix([stats]))["codebleu"][0]) == pytest.approx(1.0)


def test_incomplete_statistics_are_refused():
    stats = item_statistics("x = 1", "x = 2")
    del stats["syntax_totals"]
    with pytest.raises(ValueError, match="incomplete"):
        as_matrix([stats])
