"""The report: built from a synthetic study (no model needed), checked for content, statistics and
byte-for-byte reproducibility; bad input is a one-line error from the CLI."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from peftlab.metrics import METRICS, match_scores
from peftlab.metrics.exact_match import exact_match_at_k
from peftlab.report import build_report
from peftlab.report.pareto import pareto_front
from peftlab.report.inference import bootstrap_ci, holm, mcnemar_exact, paired_test, sign_flip_test
from peftlab.report.tables import latex_escape

ITEMS = 60
K = 4
MODELS = {"smollm2-135m": 0.0, "qwen2.5_coder-0.5b": 0.1}
# method -> (trainable params, chance of a hit at rank 0..3)
METHODS = {
    "zero-shot": (0, (0.05, 0.02, 0.02, 0.01)),
    "lora": (1_843_200, (0.55, 0.10, 0.05, 0.05)),
    "prompt_tuning": (9_600, (0.10, 0.05, 0.03, 0.02)),
}


def _reference(index: int) -> str:
    return f"def f{index}(x):\n    return x + {index}\n"


def _scored_rows(rng, hit_chances) -> list[dict]:
    """Predictions scored by the real metrics (``match_scores``), so scored.jsonl has ``codebleu_stats``."""
    rows = []
    for index in range(ITEMS):
        reference = _reference(index)
        candidates = [f"def f{index}(x):\n    return x - {index + rank + 1}\n" for rank in range(K)]
        draw = rng.random()
        rank = next((r for r, edge in enumerate(np.cumsum(hit_chances)) if draw < edge), None)
        if rank is not None:
            candidates[rank] = reference.replace("x + ", "x  +  ")  # normalised match, not a byte match
        rows.append({"id": f"test-{index:05d}", "candidates": candidates, "reference": reference})
    return match_scores(rows)[1]


def _write_run(directory: Path, model: str, method: str, seed: int, rows: list[dict], params: int, extra=None) -> None:
    directory.mkdir(parents=True)
    config = {
        "model": {"name": model, "max_length": 320}, "data": {"dir": "runs/data/codegen"},
        "method": {"name": method, "r": 16, **(extra or {})}, "train": {"seed": seed}, "generation": {"k": K},
        "task": "codegen", "output_dir": str(directory),
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    metrics = {"k": K}
    for metric in METRICS.values():  # corpus values, as evaluate writes them
        metrics.update(metric([r["candidates"] for r in rows], [r["reference"] for r in rows]))
    if params:
        metrics.update(trainable_params=params, total_params=134_515_008, trainable_percent=100 * params / 134_515_008,
                       peak_memory_mb=900.0 + params / 4000, train_time_s=300.0)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    (directory / "scored.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def make_study(root: Path) -> Path:
    """2 models x 3 methods x 1 task, seeded; on the second model prompt tuning copies LoRA's items exactly
    (a tie); plus one failed and one running cell."""
    cells = root / "cells"
    number = 0
    for model, shift in MODELS.items():
        lora_rows = None
        for method, (params, chances) in METHODS.items():
            rng = np.random.default_rng([7, number])
            rows = _scored_rows(rng, tuple(c + shift * (c > 0.2) for c in chances))
            if method == "lora":
                lora_rows = rows
            if method == "prompt_tuning" and shift:
                rows = json.loads(json.dumps(lora_rows))
            cell = cells / f"cell{number:02d}"
            _write_run(cell, model, method, 42, rows, params)
            labels = {"model": model, "method": method, "task": "codegen", "seed": 42, "sweep": {}}
            (cell / "cell.json").write_text(json.dumps({"cell": cell.name, "study": "unit_study", "labels": labels,
                                                        "status": "done", "wall_time_s": 12.5}))
            number += 1
    for status in ("failed", "running"):
        cell = cells / f"cell-{status}"
        cell.mkdir()
        labels = {"model": "smollm2-135m", "method": "ia3", "task": "codegen", "seed": 42, "sweep": {}}
        (cell / "cell.json").write_text(json.dumps({"cell": cell.name, "study": "unit_study", "labels": labels,
                                                    "status": status, "wall_time_s": 1.0}))
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="module")
def report(study) -> dict[str, Path]:
    return build_report(study)


def _csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_all_files_written(study, report):
    out = study / "report"
    for name in ("report.md", "report.html", "significance.md", "significance.csv", "tables/codegen.md",
                 "tables/codegen.csv", "tables/codegen.tex", "figures/codegen-effect-vs-params.png",
                 "figures/codegen-effect-vs-memory.png", "figures/codegen-pareto.png", "figures/codegen-em-at-k.png"):
        assert report[name] == out / name and (out / name).stat().st_size > 0, name
    for path in report.values():
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert b"Software" not in path.read_bytes() and b"Creation" not in path.read_bytes()
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 4  # params, memory, Pareto, EM@k
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "cell-failed" in html and "cell-running" in html


def test_table_values_cis_and_best(study, report):
    rows = _csv(report["tables/codegen.csv"])
    assert len(rows) == 6
    assert [(r["model"], r["method"]) for r in rows[:3]] == [
        ("qwen2.5_coder-0.5b", "zero-shot"), ("qwen2.5_coder-0.5b", "prompt_tuning"), ("qwen2.5_coder-0.5b", "lora")]
    for row in rows:
        for metric in ("em@1", f"em@{K}", "codebleu", "codebleu_item"):
            low, value, high = (float(row[f"{metric}_ci_low"]), float(row[metric]), float(row[f"{metric}_ci_high"]))
            assert low <= value <= high and high - low < 0.5
        metrics = json.loads((study / row["runs"] / "metrics.json").read_text())
        assert float(row["em@1"]) == pytest.approx(metrics["em@1"], abs=1e-6)
        assert float(row["codebleu"]) == pytest.approx(metrics["codebleu"], abs=1e-6)  # corpus, as metrics.json
    best = {(r["model"], r["method"]): r["best"] for r in rows}
    assert best[("smollm2-135m", "lora")] == f"em@1;em@{K};codebleu;codebleu_item"
    assert best[("smollm2-135m", "zero-shot")] == ""
    # On the second model prompt tuning ties LoRA item for item: both are best.
    assert best[("qwen2.5_coder-0.5b", "prompt_tuning")] == best[("qwen2.5_coder-0.5b", "lora")] != ""
    markdown = report["tables/codegen.md"].read_text()
    lora_line = next(line for line in markdown.splitlines() if "smollm2-135m | lora" in line)
    assert lora_line.count("**") == 8 and re.search(r"\*\*0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]\*\*", lora_line)
    assert "1,843,200 (1.37%)" in lora_line


def test_em_at_k_curve_matches_metric(study):
    from peftlab.report.collect import collect_runs, group_runs
    from peftlab.report.stats import group_stats

    stats = group_stats(group_runs(collect_runs(study).runs)[0])
    for row in stats.rows:
        items = row.row.runs[0].items
        candidates, references = [i["candidates"] for i in items], [i["reference"] for i in items]
        assert [e.value for e in row.em_curve] == pytest.approx([exact_match_at_k(candidates, references, k) for k in range(1, K + 1)])
        assert row.em_curve[0].value == pytest.approx(row.estimates["em@1"].value)


def test_significance(report):
    rows = _csv(report["significance.csv"])
    by = {(r["model"], r["metric"], r["method"]): r for r in rows}
    clearly_worse = by[("smollm2-135m", "em@1", "zero-shot")]
    assert clearly_worse["best_method"] == "lora" and float(clearly_worse["p"]) < 0.001
    assert clearly_worse["test"] == "McNemar exact"
    assert by[("smollm2-135m", "codebleu", "zero-shot")]["test"] == "paired permutation (corpus)"
    assert not any(r["metric"] == "codebleu_item" for r in rows)  # the item mean is descriptive only
    assert float(by[("smollm2-135m", "codebleu", "zero-shot")]["p"]) < 0.01
    tie = [r for r in rows if r["model"] == "qwen2.5_coder-0.5b" and {r["method"], r["best_method"]} == {"lora", "prompt_tuning"}]
    assert len(tie) == 3 and all(float(r["p"]) == 1.0 and float(r["difference"]) == 0 for r in tie)
    assert "| Task | Model | Metric |" in report["significance.md"].read_text()


def test_latex_escapes(report):
    tex = report["tables/codegen.tex"].read_text()
    assert r"prompt\_tuning" in tex and r"qwen2.5\_coder-0.5b" in tex and r"95\%" in tex
    assert r"\textbf{" in tex and "\\begin{tabular}{llrrrrr}" in tex
    assert latex_escape("a_b 50% & #1 $x$ {y} ~^\\") == (
        r"a\_b 50\% \& \#1 \$x\$ \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}")


def _snapshot(out: Path) -> dict[str, bytes]:
    files = {path.relative_to(out).as_posix(): path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()}
    files["report.html"] = re.sub(rb'<meta name="generated" content="[^"]*">', b"", files["report.html"])
    return files


def test_rebuild_is_byte_identical(study, report, tmp_path):
    first = _snapshot(study / "report")
    shutil.rmtree(study / "report")
    build_report(study)
    assert _snapshot(study / "report") == first
    # The same runs copied elsewhere give the same bytes too (no absolute paths in any file).
    copy = tmp_path / study.name
    shutil.copytree(study / "cells", copy / "cells")
    build_report(copy)
    assert _snapshot(copy / "report") == first


def test_plain_run_dirs_with_sweep(tmp_path):
    """Without cell.json, labels come from config.yaml and differing config keys become the sweep."""
    for index, r in enumerate((4, 8, 16)):
        rows = _scored_rows(np.random.default_rng(index), (0.2 + 0.1 * index, 0.05, 0.05, 0.05))
        _write_run(tmp_path / "runs" / f"lora-r{r}", "smollm2-135m", "lora", 42, rows, 1000 * r, {"r": r})
    _write_run(tmp_path / "runs" / "zs", "smollm2-135m", "zero-shot", 42, _scored_rows(np.random.default_rng(9), (0.1, 0, 0, 0)), 0)
    (tmp_path / "runs" / "unfinished").mkdir()
    (tmp_path / "runs" / "unfinished" / "config.yaml").write_text("task: codegen\n")
    written = build_report(tmp_path / "runs", tmp_path / "out")
    rows = _csv(written["tables/codegen.csv"])
    assert [(r["method"], r["sweep"]) for r in rows] == [
        ("zero-shot", ""), ("lora", "method.r=4"), ("lora", "method.r=8"), ("lora", "method.r=16")]
    assert "figures/codegen-sweep-method-r.png" in written
    assert "unfinished" in written["report.md"].read_text()


def test_a_study_sweep_of_one_value_is_drawn_with_the_unswept_cell(tmp_path):
    """A study sweep lists only the other values (``method.r: [4]``); the unswept LoRA cell (r=16 in its
    config) is the line's second point, so the figure exists. Other methods get no line."""
    cells = tmp_path / "study" / "cells"
    for number, (method, sweep, extra) in enumerate((("lora", {}, None), ("lora", {"method.r": 4}, {"r": 4}),
                                                     ("zero-shot", {}, None))):
        rows = _scored_rows(np.random.default_rng(number), (0.3, 0.05, 0.05, 0.05))
        cell = cells / f"cell{number}"
        _write_run(cell, "smollm2-135m", method, 42, rows, 1000 if method == "lora" else 0, extra)
        labels = {"model": "smollm2-135m", "method": method, "task": "codegen", "seed": 42, "sweep": sweep}
        (cell / "cell.json").write_text(json.dumps({"cell": cell.name, "study": "s", "labels": labels,
                                                    "status": "done", "wall_time_s": 1.0}))
    written = build_report(tmp_path / "study", tmp_path / "out")
    assert "figures/codegen-sweep-method-r.png" in written
    from peftlab.report.collect import collect_runs

    runs = collect_runs(tmp_path / "study").runs
    assert {run.config["method.r"] for run in runs if run.method == "lora"} == {16, 4}


def test_statistics_units():
    rng = np.random.default_rng(0)
    values = rng.random(200)
    estimate = bootstrap_ci(values)
    assert estimate.low < values.mean() < estimate.high and estimate.text().count("[") == 1
    assert bootstrap_ci(values) == estimate
    same = rng.integers(0, 2, 50).astype(float)
    assert paired_test(same, same) == (1.0, "McNemar exact")
    assert mcnemar_exact([1] * 10 + [0] * 10, [0] * 20) == pytest.approx(2 / 2**10)
    assert sign_flip_test([0.5, 0.4, 0.6]) == pytest.approx(0.25)  # exact: 2 of 8 sign patterns are as extreme
    assert sign_flip_test(values - values) == 1.0
    assert sign_flip_test(values + 0.2) < 0.001
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "peftlab.cli", "report", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _one_line_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_cli_missing_dir(tmp_path):
    _one_line_error(_cli(tmp_path / "nope"), "runs directory not found")


def test_cli_no_finished_run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("task: codegen\n")
    _one_line_error(_cli(tmp_path), "no finished runs")


def test_cli_writes_report(study, tmp_path):
    result = _cli(study, "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r" / "report.html").is_file() and "report.html" in result.stdout


def test_all_pairs_are_tested_and_holm_adjusted(study, report):
    from peftlab.report.collect import collect_runs, group_runs
    from peftlab.report.pairs import all_pairs
    from peftlab.report.stats import group_stats

    groups = [group_stats(group) for group in group_runs(collect_runs(study).runs)]
    pairs = all_pairs(groups)
    # 3 methods -> 3 pairs per model and paired-tested metric (EM@1, EM@4, corpus CodeBLEU)
    assert len(pairs) == 2 * 3 * 3
    by = {(p.model, p.metric, frozenset((p.first, p.second))): p for p in pairs}
    lora_vs_zero = by[("smollm2-135m", "em@1", frozenset(("lora", "zero-shot")))]
    assert lora_vs_zero.first == "lora" and lora_vs_zero.difference > 0.3 and lora_vs_zero.test == "McNemar exact"
    stats = {row.row.label: row for row in groups[0].rows if row.row.model == "smollm2-135m"}
    expected = float(stats["lora"].scores["em@1"].mean() - stats["zero-shot"].scores["em@1"].mean())
    assert lora_vs_zero.difference == pytest.approx(expected)
    assert lora_vs_zero.p == pytest.approx(paired_test(stats["lora"].scores["em@1"], stats["zero-shot"].scores["em@1"])[0])
    block = [p for p in pairs if p.model == "smollm2-135m" and p.metric == "em@1" and not p.degenerate]
    assert [p.p_holm for p in block] == pytest.approx(holm([p.p for p in block]))
    tie = by[("qwen2.5_coder-0.5b", "em@1", frozenset(("lora", "prompt_tuning")))]
    assert tie.difference == 0 and tie.p == 1.0 and tie.degenerate  # identical on every item: not a test
    qwen_em = [p for p in pairs if p.model == "qwen2.5_coder-0.5b" and p.metric == "em@1" and not p.degenerate]
    assert [p.p_holm for p in qwen_em] == pytest.approx(holm([p.p for p in qwen_em]))  # the tie is left out
    # The "vs best" table reads each pair's p from the all-pairs family: the same p (Holm) for the same pair
    for group in groups:
        for comparison in group.comparisons:
            pair = by[(comparison.model, comparison.metric, frozenset((comparison.method, comparison.best)))]
            assert comparison.p_holm == pair.p_holm and abs(comparison.difference) == pytest.approx(pair.difference)
    text = report["pairs.md"].read_text()
    assert "pairs differ significantly" in text and "| Better | Worse |" in text
    listed = json.loads(report["pairs.json"].read_text())["pairs"]
    assert len(listed) == len(pairs)
    assert [(p["first"], p["second"], p["p_holm"], p["significant"]) for p in listed] == [
        (p.first, p.second, p.p_holm, p.p_holm < 0.05 and not p.degenerate) for p in pairs]
    assert "score identically on every item" in text
    assert "## All pairs" in report["report.md"].read_text() and 'id="pairs"' in report["report.html"].read_text()


def test_pareto_front_dominance_and_ties():
    # (memory, score): lower memory and higher score are better.
    assert pareto_front([(2000, 0.7), (1000, 0.5), (1500, 0.4), (0, 0.1)]) == [0, 1, 3]  # 1500/0.4 loses to 1000/0.5
    assert pareto_front([(5, 0.5), (5, 0.5)]) == [0, 1]  # equal memory and equal score: neither dominates
    assert pareto_front([(5, 0.5), (5, 0.6)]) == [1]  # equal memory: the higher score wins
    assert pareto_front([(5, 0.5), (6, 0.5)]) == [0]  # equal score: the lower memory wins
    assert pareto_front([(5, 0.5), (5, 0.5), (4, 0.5)]) == [2]  # a tie is dominated together
    assert pareto_front([(1, 0.1), (2, 0.2), (3, 0.3)]) == [0, 1, 2]  # a trade-off at every step
    assert pareto_front([(3, 0.3), (2, 0.2), (1, 0.4)]) == [2]
    assert pareto_front([]) == []


def _hit_rows(hits: int) -> list[dict]:
    """The first ``hits`` of ``ITEMS`` problems solved at rank 0, the rest not at all: EM@1 = hits / ITEMS."""
    rows = []
    for index in range(ITEMS):
        reference = _reference(index)
        candidates = [f"def f{index}(x):\n    return x - {index + rank + 1}\n" for rank in range(K)]
        if index < hits:
            candidates[0] = reference
        rows.append({"id": f"test-{index:05d}", "candidates": candidates, "reference": reference})
    return match_scores(rows)[1]


def test_pareto_front_in_report(tmp_path):
    """A: best score, most memory; B: lower score, least trained memory; C: dominated by B; D and E:
    prompting baselines (no training memory; E scores lower, so D dominates it); F: trained, no memory
    recorded (left out). The front, in memory order, is D, B, A."""
    runs = tmp_path / "runs"
    # method -> (EM@1 hits of 60, trainable params, peak memory MB or None)
    setup = {"lora": (42, 1_843_200, 2000.0), "ia3": (30, 50_000, 1000.0), "prompt_tuning": (24, 9_600, 1500.0),
             "zero-shot": (6, 0, None), "few-shot": (3, 0, None), "prefix_tuning": (45, 80_000, None)}
    for method, (hits, params, memory) in setup.items():
        _write_run(runs / method, "smollm2-135m", method, 42, _hit_rows(hits), params)
        metrics = json.loads((runs / method / "metrics.json").read_text())
        metrics.pop("peak_memory_mb", None)
        if memory is not None:
            metrics["peak_memory_mb"] = memory
        (runs / method / "metrics.json").write_text(json.dumps(metrics))
    written = build_report(runs, tmp_path / "out")
    png = written["figures/codegen-pareto.png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = written["report.md"].read_text()
    line = ("smollm2-135m: zero-shot (no training, 0.100), ia3 (1,000 MB, 0.500), lora (2,000 MB, 0.700); "
            "left out, no peak memory recorded: prefix_tuning")
    assert f"- {line}\n" in markdown
    assert markdown.index("](figures/codegen-pareto.png)") < markdown.index(line)  # listed under its figure
    html = written["report.html"].read_text()
    assert f"<li>{line}</li>" in html and html.count('src="data:image/png;base64,') == 4

    from peftlab.report.collect import collect_runs, group_runs
    from peftlab.report.pareto import group_fronts
    from peftlab.report.stats import group_stats

    (front,) = group_fronts(group_stats(group_runs(collect_runs(runs).runs)[0]))
    assert front.metric == "em@1"
    assert [(p.row.row.method, p.optimal) for p in front.points] == [
        ("zero-shot", True), ("few-shot", False), ("ia3", True), ("prompt_tuning", False), ("lora", True)]
