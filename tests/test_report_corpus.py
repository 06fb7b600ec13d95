"""The report's CodeBLEU is the corpus CodeBLEU of metrics.json: its ranking, intervals and paired test,
on a study shaped like the default one (signature-only RAG candidates), with old and new scored.jsonl."""

from __future__ import annotations

import csv
import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from codebleu import calc_codebleu

from peftlab.metrics import METRICS, match_scores
from peftlab.metrics.codebleu_stats import as_matrix, corpus_scores, item_statistics
from peftlab.report import build_report
from peftlab.report.collect import collect_runs, group_runs
from peftlab.report.corpus import _resample_counts, corpus_ci, corpus_paired_test
from peftlab.report.stats import group_stats

REFERENCES = [
    "def clamp(value, low, high):\n    if value < low:\n        return low\n    if value > high:\n        return high\n    return value",
    "def mean(values):\n    total = 0\n    for value in values:\n        total += value\n    return total / len(values)",
    "def first_word(text):\n    words = text.split()\n    return words[0] if words else ''",
    "def count_lines(path):\n    with open(path) as handle:\n        lines = handle.readlines()\n    return len(lines)",
    "def merge(left, right):\n    result = dict(left)\n    result.update(right)\n    return result",
    "def is_even(number):\n    return number % 2 == 0",
    "def reverse_words(sentence):\n    parts = sentence.split(' ')\n    parts.reverse()\n    return ' '.join(parts)",
    "def default_port():\n    return 8080",
    "def squares(limit):\n    result = []\n    for index in range(limit):\n        result.append(index * index)\n    return result",
    "def strip_prefix(text, prefix):\n    if text.startswith(prefix):\n        return text[len(prefix):]\n    return text",
]
BODIES = [  # plausible, differently written bodies
    "def clamp(value, low, high):\n    return max(low, min(value, high))",
    "def mean(values):\n    n = len(values)\n    return sum(values) / n",
    "def first_word(text):\n    return text.split()[0]",
    "def count_lines(path):\n    f = open(path)\n    n = len(f.read().splitlines())\n    f.close()\n    return n",
    "def merge(left, right):\n    out = {}\n    out.update(left)\n    out.update(right)\n    return out",
    "def is_even(number):\n    if number % 2:\n        return False\n    return True",
    "def reverse_words(sentence):\n    return ' '.join(reversed(sentence.split()))",
    "def default_port():\n    port = 80\n    return port",
    "def squares(limit):\n    return [i ** 2 for i in range(limit)]",
    "def strip_prefix(text, prefix):\n    n = len(prefix)\n    return text[n:]",
]
STUDY = {  # method -> top candidate per problem, as in the default study's failure modes
    "qlora-4bit": BODIES,
    "zero-shot": [b.replace("\n", "\n    ### Output:\n", 1) if i % 2 else b.splitlines()[0] + "\n    pass"
                  for i, b in enumerate(BODIES)],
    "rag": [b if i == 2 else r.splitlines()[0] for i, (r, b) in enumerate(zip(REFERENCES, BODIES))],  # signatures
}


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)  # calc_codebleu warns on items without reference data flow
    yield
    logging.disable(logging.NOTSET)


def _library_item_scores(candidate: str, reference: str) -> dict:
    """What the old evaluate stored per item: calc_codebleu on the problem alone."""
    scores = {}
    for metric in METRICS.values():
        scores.update(metric([[candidate]], [reference]))
    return scores


def write_cell(root: Path, name: str, method: str, candidates: list[str], references: list[str], *,
               old_format: bool = False, keep_texts: bool = True, seed: int = 42) -> Path:
    """One finished study cell. ``old_format``: scored.jsonl as written before per-item statistics (the
    library's per-item scores, no ``codebleu_stats``); ``keep_texts=False`` drops candidates/references."""
    cell = root / "cells" / name
    cell.mkdir(parents=True)
    rows = [{"id": f"test-{i:05d}", "candidates": [c], "reference": r}
            for i, (c, r) in enumerate(zip(candidates, references))]
    metrics, scored = match_scores(rows)
    if old_format:
        scored = [{"id": row["id"], "candidates": row["candidates"], "reference": row["reference"],
                   "scores": _library_item_scores(row["candidates"][0], row["reference"])} for row in scored]
    if not keep_texts:
        scored = [{"id": row["id"], "scores": row["scores"]} for row in scored]
    config = {"model": {"name": "smollm2-135m"}, "method": {"name": method}, "task": "codegen",
              "train": {"seed": seed}, "data": {"dir": "runs/data/codegen"}}
    (cell / "config.yaml").write_text(yaml.safe_dump(config))
    (cell / "metrics.json").write_text(json.dumps({**metrics, "k": 1}))
    (cell / "scored.jsonl").write_text("".join(json.dumps(row) + "\n" for row in scored))
    labels = {"model": "smollm2-135m", "method": method, "task": "codegen", "seed": seed, "sweep": {}}
    (cell / "cell.json").write_text(json.dumps({"cell": name, "study": "corpus", "labels": labels, "status": "done"}))
    return cell


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _ranking(values: dict[str, float]) -> list[str]:
    return sorted(values, key=lambda method: -values[method])


@pytest.mark.parametrize("old_format", [False, True], ids=["new-scored", "old-scored"])
def test_report_ranks_codebleu_as_the_corpus(tmp_path, old_format):
    for method, candidates in STUDY.items():
        write_cell(tmp_path, method, method, candidates, REFERENCES, old_format=old_format)
    corpus = {m: json.loads((tmp_path / "cells" / m / "metrics.json").read_text())["codebleu"] for m in STUDY}
    library_item_mean = {m: np.mean([calc_codebleu([r], [c], "python")["codebleu"] for c, r in zip(STUDY[m], REFERENCES)])
                         for m in STUDY}
    # The fixture reproduces the bug: the library's per-item mean ranks the methods otherwise than corpus.
    assert _ranking(corpus) == ["qlora-4bit", "zero-shot", "rag"]
    assert _ranking(library_item_mean) != _ranking(corpus) and library_item_mean["rag"] > library_item_mean["qlora-4bit"]

    written = build_report(tmp_path)
    table = {row["method"]: row for row in _csv(written["tables/codegen.csv"])}
    report_values = {m: float(table[m]["codebleu"]) for m in STUDY}
    assert _ranking(report_values) == _ranking(corpus)
    assert {"codebleu", "codebleu_item"} <= set(table["qlora-4bit"]["best"].split(";"))
    for method in STUDY:
        assert report_values[method] == pytest.approx(corpus[method], abs=1e-6)
        assert float(table[method]["codebleu_ci_low"]) <= report_values[method] <= float(table[method]["codebleu_ci_high"])
    stats = group_stats(group_runs(collect_runs(tmp_path).runs)[0])
    for row in stats.rows:
        assert row.estimates["codebleu"].value == pytest.approx(corpus[row.row.method], abs=1e-12)
        assert row.recomputed == (len(REFERENCES) if old_format else 0)
    significance = {r["method"]: r for r in _csv(written["significance.csv"]) if r["metric"] == "codebleu"}
    assert set(significance) == {"zero-shot", "rag"}
    assert all(r["best_method"] == "qlora-4bit" and r["test"] == "paired permutation (corpus)" for r in significance.values())
    assert float(significance["rag"]["difference"]) == pytest.approx(corpus["rag"] - corpus["qlora-4bit"], abs=1e-6)
    assert float(significance["rag"]["p"]) < 0.05
    markdown = written["report.md"].read_text()
    assert "| CodeBLEU (corpus) | CodeBLEU (item mean) |" in markdown
    assert ("recomputed from the stored top candidate" in markdown) == old_format
    print({m: (round(corpus[m], 3), round(library_item_mean[m], 3), round(report_values[m], 3)) for m in STUDY},
          {m: significance[m]["p"] for m in significance})


def test_item_mean_vs_corpus_disagreement_is_flagged(tmp_path):
    """Method A copies the eight short references and gives only signatures on the four long ones; method
    B gets the long ones (nearly) right and the short ones wrong. The corpus, whose counts the long items
    dominate, prefers B; the item mean, which weighs every problem alike, prefers A."""
    short = [f"def const_{i}():\n    return {i}" for i in range(8)]
    long = [REFERENCES[1], REFERENCES[8], REFERENCES[0], REFERENCES[9]]
    references = short + long
    a = short + [r.splitlines()[0] for r in long]
    b = [f"def const_{i}():\n    pass" for i in range(8)] + [long[0], BODIES[8], long[2], BODIES[9]]
    write_cell(tmp_path, "a", "method-a", a, references)
    write_cell(tmp_path, "b", "method-b", b, references)
    stats = group_stats(group_runs(collect_runs(tmp_path).runs)[0])
    flagged = [d for d in stats.disagreements if d.metric == "codebleu"]
    assert len(flagged) == 1 and (flagged[0].higher, flagged[0].lower) == ("method-b", "method-a")
    corpus_high, corpus_low = flagged[0].corpus
    mean_high, mean_low = flagged[0].item_mean
    assert corpus_high > corpus_low and mean_high < mean_low
    written = build_report(tmp_path)
    line = f"| codegen | smollm2-135m | CodeBLEU (corpus) | method-b | method-a | {corpus_high:.3f} > {corpus_low:.3f} |"
    for name in ("report.md", "significance.md"):
        assert line in written[name].read_text(), name
    html = written["report.html"].read_text()
    assert 'id="item-mean-vs-corpus"' in html and "<td>method-b</td><td>method-a</td>" in html
    print(flagged)


def test_runs_without_statistics_or_texts_fall_back_to_the_stored_item_mean(tmp_path):
    for method, candidates in STUDY.items():
        write_cell(tmp_path, method, method, candidates, REFERENCES, old_format=True, keep_texts=False)
    written = build_report(tmp_path)
    header = next(csv.reader(written["tables/codegen.csv"].open()))
    assert "codebleu_item" in header and "codebleu" not in header  # no corpus column without statistics
    table = {row["method"]: row for row in _csv(written["tables/codegen.csv"])}
    stored = {m: np.mean([_library_item_scores(c, r)["codebleu"] for c, r in zip(STUDY[m], REFERENCES)]) for m in STUDY}
    for method in STUDY:
        assert float(table[method]["codebleu_item"]) == pytest.approx(stored[method], abs=1e-6)
    markdown = written["report.md"].read_text()
    assert markdown.count("no CodeBLEU statistics and no stored candidates") == 3
    # metrics.json's corpus value still flags the stored item mean ranking RAG above QLoRA-4bit.
    assert "| codegen | smollm2-135m | CodeBLEU (corpus) | qlora-4bit | rag |" in markdown


def _matrix(candidates, references) -> np.ndarray:
    return as_matrix([item_statistics(c, r) for c, r in zip(candidates, references)])


def _report_codebleu(references, candidates) -> float:
    """The report's corpus CodeBLEU from the library's own components: its total, except that a data-flow
    match of 0 counts as 0 (every corpus here has reference data flow)."""
    scores = calc_codebleu(references, candidates, "python")
    return 0.25 * (scores["ngram_match_score"] + scores["weighted_ngram_match_score"] + scores["syntax_match_score"]
                   + scores["dataflow_match_score"])


def test_corpus_paired_test_equals_brute_force_with_the_library():
    references = REFERENCES[:7]
    a, b = STUDY["qlora-4bit"][:7], STUDY["rag"][:7]
    p, name = corpus_paired_test(_matrix(a, references), _matrix(b, references))
    observed = abs(_report_codebleu(references, a) - _report_codebleu(references, b))
    extreme = 0
    for swaps in itertools.product((False, True), repeat=len(references)):
        first = [y if s else x for x, y, s in zip(a, b, swaps)]
        second = [x if s else y for x, y, s in zip(a, b, swaps)]
        extreme += abs(_report_codebleu(references, first) - _report_codebleu(references, second)) >= observed - 1e-12
    assert name == "paired permutation (corpus)" and p == pytest.approx(extreme / 2 ** len(references), abs=1e-12)
    same = _matrix(a, references)
    assert corpus_paired_test(same, same.copy()) == (1.0, name)


def test_no_matching_data_flow_counts_as_zero_and_is_noted(tmp_path):
    """All-signature candidates match no data-flow edge: metrics.json (the library) adds 0.25 for it, the
    report does not, and says so."""
    write_cell(tmp_path, "sig", "rag", [r.splitlines()[0] for r in REFERENCES], REFERENCES)
    library = json.loads((tmp_path / "cells" / "sig" / "metrics.json").read_text())
    assert library["codebleu_dataflow"] == 0
    written = build_report(tmp_path)
    (row,) = _csv(written["tables/codegen.csv"])
    expected = _report_codebleu(REFERENCES, [r.splitlines()[0] for r in REFERENCES])
    assert float(row["codebleu"]) == pytest.approx(expected, abs=1e-6)
    assert float(row["codebleu"]) == pytest.approx(library["codebleu"] - 0.25, abs=1e-6)
    assert f"(metrics.json: {library['codebleu']:.3f})" in written["report.md"].read_text()


def test_corpus_paired_test_random_path_is_seeded():
    references = REFERENCES * 2  # 20 differing items: more than EXACT_LIMIT, so random swaps
    a, b = _matrix(BODIES * 2, references), _matrix(STUDY["rag"] * 2, references)
    first = corpus_paired_test(a, b)
    assert first == corpus_paired_test(a, b) and 1 / 10000 <= first[0] < 0.05


def test_corpus_bootstrap_resamples_are_library_corpora():
    matrix = _matrix(STUDY["zero-shot"], REFERENCES)
    counts = _resample_counts(len(REFERENCES), 1000)
    for resample in range(3):
        drawn = [index for index, count in enumerate(counts[resample]) for _ in range(int(count))]
        expected = calc_codebleu([REFERENCES[i] for i in drawn], [STUDY["zero-shot"][i] for i in drawn], "python")
        assert float(corpus_scores(counts[resample] @ matrix)["codebleu"]) == pytest.approx(expected["codebleu"], abs=1e-12)
    estimate = corpus_ci(matrix)
    assert estimate.value == pytest.approx(calc_codebleu(REFERENCES, STUDY["zero-shot"], "python")["codebleu"], abs=1e-12)
    assert estimate.low < estimate.value < estimate.high and estimate == corpus_ci(matrix)


def test_seeds_pool_their_counts(tmp_path):
    write_cell(tmp_path, "s1", "lora", BODIES, REFERENCES, seed=1)
    write_cell(tmp_path, "s2", "lora", STUDY["zero-shot"], REFERENCES, seed=2)
    (row,) = group_stats(group_runs(collect_runs(tmp_path).runs)[0]).rows
    pooled = (_matrix(BODIES, REFERENCES) + _matrix(STUDY["zero-shot"], REFERENCES)) / 2
    assert row.estimates["codebleu"].value == pytest.approx(float(corpus_scores(pooled.sum(axis=0))["codebleu"]), abs=1e-12)
