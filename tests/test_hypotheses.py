"""Declared hypotheses answered with verdicts; TOST and the paired tests checked by hand and against
statsmodels/scipy; the honest adjustment of the forgetting table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from peftlab.errors import UserError
from peftlab.report import build_report
from peftlab.report.collect import collect_runs, group_runs
from peftlab.report.declared import Hypothesis
from peftlab.report.forgetting import forgetting
from peftlab.report.hypotheses import answer_hypotheses
from peftlab.report.inference import holm, paired_test, tost_paired
from peftlab.report.stats import group_stats
from test_report import METHODS, _scored_rows, _write_run, make_study


def test_tost_by_hand():
    # 20 items: 5 where A alone passes, 5 where B alone passes, 10 ties -> differences mean 0, sd sqrt(10/19)
    a = np.array([1] * 5 + [0] * 5 + [1] * 4 + [0] * 6, dtype=float)
    b = np.array([0] * 5 + [1] * 5 + [1] * 4 + [0] * 6, dtype=float)
    # t = 0.3 / (sqrt(10/19) / sqrt(20)) = 1.8493 on 19 df; one-sided p = 0.0400 (both sides alike by symmetry)
    assert 0.3 / (math.sqrt(10 / 19) / math.sqrt(20)) == pytest.approx(1.8493242, abs=1e-6)
    assert tost_paired(a, b, 0.3) == pytest.approx(0.0400155, abs=1e-6)
    assert tost_paired(a, b, 0.1) > 0.05  # a margin this narrow cannot be shown with 20 items (p 0.27)
    # no spread in the differences: inside the margin is equivalent, outside is not
    assert tost_paired(np.zeros(8), np.zeros(8), 0.05) == 0.0
    assert tost_paired(np.ones(8), np.zeros(8), 0.05) == 1.0
    with pytest.raises(ValueError):
        tost_paired(a, b, 0.0)


def test_superiority_by_hand():
    # 10 items: 6 only A passes, none only B: exact McNemar p = 2 * (1/2)^6 = 0.03125
    a = np.array([1] * 8 + [0] * 2, dtype=float)
    b = np.array([0] * 6 + [1] * 2 + [0] * 2, dtype=float)
    assert paired_test(a, b) == (pytest.approx(0.03125), "McNemar exact")


@pytest.mark.parametrize("case", range(25))
def test_tost_agrees_with_statsmodels(case):
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng([11, case])
    n = int(rng.integers(5, 200))
    a = rng.binomial(1, rng.uniform(0.2, 0.8), n).astype(float) if case % 2 else rng.normal(0.5, 0.2, n)
    b = np.clip(a + rng.normal(rng.uniform(-0.1, 0.1), 0.3, n), 0, 1)
    margin = float(rng.uniform(0.02, 0.2))
    if np.std(a - b) == 0:
        pytest.skip("no spread")
    assert tost_paired(a, b, margin) == pytest.approx(ttost_paired(a, b, -margin, margin)[0], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("case", range(10))
def test_mcnemar_agrees_with_scipy_binomtest(case):
    from scipy.stats import binomtest

    rng = np.random.default_rng([12, case])
    n = int(rng.integers(10, 300))
    a, b = rng.binomial(1, 0.5, n).astype(float), rng.binomial(1, 0.4, n).astype(float)
    only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    expected = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    assert paired_test(a, b)[0] == pytest.approx(expected, rel=1e-9)


def test_declared_hypotheses_are_answered_with_verdicts(tmp_path):
    study = make_study(tmp_path / "study")
    hypotheses = [
        {"name": "LoRA beats zero-shot", "a": "lora", "b": "zero-shot", "model": "smollm2-135m", "metric": "em@1"},
        {"name": "prompt tuning = LoRA", "a": "prompt_tuning", "b": "lora", "model": "qwen2.5_coder-0.5b",
         "metric": "em@1", "test": "equivalence", "margin": 0.05},
        {"name": "zero-shot vs prompt tuning", "a": "zero-shot", "b": "prompt_tuning", "model": "smollm2-135m",
         "metric": "em@1"},
        {"name": "a row that is not there", "a": "lora", "b": "ia3", "metric": "em@1"},
    ]
    (study / "study.yaml").write_text(yaml.safe_dump({"name": "unit", "hypotheses": hypotheses}))
    written = build_report(study)
    listed = json.loads(written["hypotheses.json"].read_text())["hypotheses"]
    assert [item["verdict"] for item in listed[:2]] == ["lora better", "equivalent within ±0.05"]
    assert listed[3]["verdict"] == "not answered" and "no finished rows" in listed[3]["problem"]

    groups = [group_stats(group) for group in group_runs(collect_runs(study).runs)]
    rows = {(row.row.model, row.row.label): row for row in groups[0].rows}
    lora, zero = rows[("smollm2-135m", "lora")].scores["em@1"], rows[("smollm2-135m", "zero-shot")].scores["em@1"]
    assert listed[0]["p"] == pytest.approx(paired_test(lora, zero)[0])
    assert listed[0]["effect"]["value"] == pytest.approx(lora.mean() - zero.mean()) and listed[0]["n"] == 60
    assert listed[1]["p"] == 0.0  # identical rows: no spread, inside the margin
    # Holm over the three answered hypotheses only
    assert [item["p_holm"] for item in listed[:3]] == pytest.approx(holm([item["p"] for item in listed[:3]]))
    third = listed[2]
    assert third["verdict"] == ("undecided" if third["p_holm"] >= 0.05 else
                                ("zero-shot better" if third["effect"]["value"] > 0 else "prompt_tuning better"))
    report = written["report.md"].read_text()
    assert "## Hypotheses" in report and "Confirmatory" in report and "| LoRA beats zero-shot |" in report
    assert 'id="hypotheses"' in written["report.html"].read_text()


def test_a_gap_that_is_not_significant_is_undecided(tmp_path):
    """LoRA passes 2 more of 60 items than prompt tuning: the verdict is 'undecided', not 'lora better'."""
    base = _scored_rows(np.random.default_rng([5]), METHODS["lora"][1])
    worse = json.loads(json.dumps(base))
    flipped = 0
    for row in worse:
        if row["scores"]["em@1"] == 1 and flipped < 2:
            row["candidates"][0] = "pass\n"
            row["scores"]["em@1"] = 0
            flipped += 1
    root = tmp_path / "runs"
    _write_run(root / "lora", "m", "lora", 42, base, 10)
    _write_run(root / "pt", "m", "prompt_tuning", 42, worse, 10)
    groups = [group_stats(group) for group in group_runs(collect_runs(root).runs)]
    (answer,) = answer_hypotheses([Hypothesis(a="lora", b="prompt_tuning", metric="em@1")], groups)
    assert answer.effect.value == pytest.approx(2 / 60) and answer.p == pytest.approx(0.5)
    assert answer.verdict == "undecided"


def test_study_rejects_a_hypothesis_that_names_what_the_study_lacks(tmp_path):
    from peftlab.study.spec import StudySpec, expand

    base = {"methods": ["zero-shot", "icl"], "tasks": ["codegen"], "output_dir": str(tmp_path)}
    with pytest.raises(UserError, match="names methods not in the study: lora"):
        expand(StudySpec.model_validate({**base, "hypotheses": [{"a": "lora", "b": "icl"}]}))
    with pytest.raises(UserError, match="names task 'mbpp'"):
        expand(StudySpec.model_validate({**base, "hypotheses": [{"a": "zero-shot", "b": "icl", "task": "mbpp"}]}))
    with pytest.raises(ValueError, match="needs its margin"):
        Hypothesis.model_validate({"a": "zero-shot", "b": "icl", "test": "equivalence"})
    with pytest.raises(UserError, match="tests metric 'pass', which task codegen does not score"):
        expand(StudySpec.model_validate({**base, "hypotheses": [{"a": "zero-shot", "b": "icl", "metric": "pass"}]}))
    with pytest.raises(UserError, match="tests metric 'plausible@1'"):  # repair's, not codegen's
        expand(StudySpec.model_validate({**base, "hypotheses": [{"a": "icl", "b": "zero-shot",
                                                                   "metric": "plausible@1"}]}))
    cells = expand(StudySpec.model_validate({**base, "hypotheses": [{"a": "icl", "b": "zero-shot"}]}))
    assert len(cells) == 2
    cells = expand(StudySpec.model_validate({**base, "hypotheses": [{"a": "icl", "b": "zero-shot", "metric": "em@1"}]}))
    assert len(cells) == 2


def test_forgetting_rows_are_holm_adjusted_together(tmp_path):
    """Two methods trained on another task, scored beside the zero-shot base: each metric's rows form one
    family (the unadjusted p of the most extreme row is not what the table reports as adjusted)."""
    root = tmp_path / "runs"
    for number, method in enumerate(METHODS):
        rows = _scored_rows(np.random.default_rng([9, number]), METHODS[method][1])
        directory = root / method
        _write_run(directory, "smollm2-135m", method, 42, rows, METHODS[method][0])
        if method != "zero-shot":
            config = yaml.safe_load((directory / "config.yaml").read_text())
            config["data"]["train_task"] = "testgen"
            (directory / "config.yaml").write_text(yaml.safe_dump(config))
    changes = forgetting([group_stats(group) for group in group_runs(collect_runs(root).runs)])
    by_metric: dict[str, list] = {}
    for change in changes:
        by_metric.setdefault(change.metric, []).append(change)
    assert set(by_metric) >= {"em@1"} and all(len(family) == 2 for family in by_metric.values())
    for family in by_metric.values():
        assert [c.p_holm for c in family] == pytest.approx(holm([c.p for c in family]))
        assert min(c.p_holm for c in family) >= min(c.p for c in family)


def test_answers_need_rows_in_one_table():
    answers = answer_hypotheses([Hypothesis(a="lora", b="icl")], [])
    assert answers[0].verdict == "not answered" and answers[0].p_holm is None


def test_a_study_file_with_hypotheses_round_trips(tmp_path):
    from peftlab.study.command import record_study
    from peftlab.report.hypotheses import read_hypotheses
    from peftlab.study.spec import StudySpec

    spec = StudySpec.model_validate({"methods": ["zero-shot", "icl"], "hypotheses": [
        {"a": "icl", "b": "zero-shot", "test": "equivalence", "margin": 0.05, "name": "(x)"}]})
    record_study(spec, tmp_path)
    assert read_hypotheses(Path(tmp_path)) == spec.hypotheses


def test_seeds_show_their_spread_and_the_test_uses_item_means(tmp_path):
    """Two seeds per row: the table gives each seed's own value beside the CI, and a hypothesis is tested on
    each item's mean over the seeds (fractional scores, so the sign-flip test, not McNemar)."""
    root = tmp_path / "study"
    number = 0
    for method in ("lora", "zero-shot"):
        for seed in (1, 2):
            rows = _scored_rows(np.random.default_rng([21, number]), METHODS[method][1])
            cell = root / "cells" / f"c{number}"
            _write_run(cell, "m", method, seed, rows, METHODS[method][0])
            labels = {"model": "m", "method": method, "task": "codegen", "seed": seed, "sweep": {}}
            (cell / "cell.json").write_text(json.dumps({"cell": cell.name, "study": "s", "labels": labels,
                                                        "status": "done", "wall_time_s": 1.0}))
            number += 1
    (root / "study.yaml").write_text(yaml.safe_dump({"hypotheses": [{"a": "lora", "b": "zero-shot", "metric": "em@1"}]}))
    written = build_report(root)
    (group,) = [group_stats(group) for group in group_runs(collect_runs(root).runs)]
    lora = next(row for row in group.rows if row.row.label == "lora")
    per_seed = [float(np.mean([item["scores"]["em@1"] for item in run.items])) for run in lora.row.runs]
    assert sorted(lora.seed_means["em@1"]) == pytest.approx(sorted(per_seed))
    assert lora.estimates["em@1"].value == pytest.approx(np.mean(per_seed))
    table = written["tables/codegen.md"].read_text()
    assert f"seeds {min(per_seed):.3f}–{max(per_seed):.3f}" in table
    (answer,) = json.loads(written["hypotheses.json"].read_text())["hypotheses"]
    assert answer["test"] == "sign-flip permutation" and answer["seeds"] == 2
    zero = next(row for row in group.rows if row.row.label == "zero-shot")
    assert answer["p"] == pytest.approx(paired_test(lora.scores["em@1"], zero.scores["em@1"])[0])
    assert answer["verdict"] == "lora better"


def test_the_report_flags_a_row_whose_training_data_copies_test_items(tmp_path):
    root = tmp_path / "runs"
    for number, method in enumerate(("lora", "zero-shot")):
        _write_run(root / method, "m", method, 42, _scored_rows(np.random.default_rng([4, number]), METHODS[method][1]), 5)
    metrics = json.loads((root / "lora" / "metrics.json").read_text())
    (root / "lora" / "metrics.json").write_text(json.dumps({**metrics, "overlap_exact": 2, "overlap_near": 1}))
    text = build_report(root)["report.md"].read_text()
    assert "lora: lora saw 3 training items that copy its test items' solutions (2 exact, 1 near" in text


def test_an_int8_row_is_compared_with_its_exact_row(tmp_path):
    from peftlab.report.engines import engine_agreement

    root = tmp_path / "study"
    base = _scored_rows(np.random.default_rng([8]), METHODS["lora"][1])
    changed = json.loads(json.dumps(base))
    changed[0]["candidates"][0] = "def other():\n    pass\n"
    changed[0]["scores"]["em@1"] = 0.0
    for number, (rows, sweep) in enumerate(((base, {}), (changed, {"generation.engine": "int8"}))):
        cell = root / "cells" / f"c{number}"
        _write_run(cell, "m", "lora", 42, rows, 10)
        labels = {"model": "m", "method": "lora", "task": "codegen", "seed": 42, "sweep": sweep}
        (cell / "cell.json").write_text(json.dumps({"cell": cell.name, "study": "s", "labels": labels,
                                                    "status": "done", "wall_time_s": 1.0}))
    groups = [group_stats(group) for group in group_runs(collect_runs(root).runs)]
    agreements = {a.metric: a for a in engine_agreement(groups)}
    em = agreements["EM@1"]
    changed_top = 1 if base[0]["candidates"][0] != changed[0]["candidates"][0] else 0
    assert em.identical == pytest.approx(1 - changed_top / 60) and em.n == 60
    assert em.difference.value == pytest.approx((changed[0]["scores"]["em@1"] - base[0]["scores"]["em@1"]) / 60)
    assert "## Engines" in build_report(root)["report.md"].read_text()


def test_a_hypothesis_names_its_dataset_where_a_task_ran_on_two(tmp_path):
    """One task on two test sets is two tables: a hypothesis without a dataset is not answered (ambiguous),
    one that names its dataset is answered on that table alone."""
    rng = np.random.default_rng([7])
    root = tmp_path / "runs"
    for dataset in ("runs/data/a", "runs/data/b"):
        for method in ("lora", "zero-shot"):
            directory = root / f"{method}-{dataset[-1]}"
            _write_run(directory, "m", method, 42, _scored_rows(rng, METHODS[method][1]), 10 if method == "lora" else 0)
            config = yaml.safe_load((directory / "config.yaml").read_text())
            config["data"]["dir"] = dataset
            (directory / "config.yaml").write_text(yaml.safe_dump(config))
    groups = [group_stats(group) for group in group_runs(collect_runs(root).runs)]
    assert sorted(stats.group.dataset for stats in groups) == ["runs/data/a", "runs/data/b"]
    vague, named = answer_hypotheses([Hypothesis(a="lora", b="zero-shot", metric="em@1"),
                                      Hypothesis(a="lora", b="zero-shot", metric="em@1", dataset="runs/data/b")],
                                     groups)
    assert vague.verdict == "not answered" and "in 2 tables" in vague.problem and "dataset" in vague.problem
    table = next(stats for stats in groups if stats.group.dataset == "runs/data/b")
    rows = {row.row.label: row for row in table.rows}
    expected = rows["lora"].scores["em@1"].mean() - rows["zero-shot"].scores["em@1"].mean()
    assert named.verdict != "not answered" and named.effect.value == pytest.approx(expected)
