"""HumanEval wired into the CLI: external predictions and the generate -> evaluate path."""

import json
import subprocess
import sys

from peftlab.tasks.humaneval import load_problems


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "peftlab.cli", *map(str, args)], capture_output=True, text=True, timeout=600)


def test_evaluate_external_predictions_carries_keys_in_input_order(tmp_path):
    problems = load_problems()
    ids = list(problems)[:3]
    rows = [
        {"task_id": ids[1], "completion": problems[ids[1]]["canonical_solution"], "model": "x", "sample": 0},
        {"task_id": ids[0], "completion": "    return None\n", "model": "x", "sample": 0},
        {"task_id": ids[1], "completion": "    pass\n", "model": "x", "sample": 1},
        {"task_id": ids[0], "completion": problems[ids[0]]["canonical_solution"], "model": "x", "sample": 1},
    ]
    path = tmp_path / "preds.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = tmp_path / "run"
    # data.test_size=2: the test split is HumanEval/0 and /1, which the file covers completely
    result = run_cli("evaluate", "--task", "humaneval", "--predictions", path, "-o", run, "data.test_size=2")
    assert result.returncode == 0, result.stderr

    verdicts = [json.loads(line) for line in (run / "verdicts.jsonl").read_text().splitlines()]
    assert [(v["task_id"], v["sample"], v["model"]) for v in verdicts] == [(r["task_id"], r["sample"], "x") for r in rows]
    assert [v["passed"] for v in verdicts] == [True, False, False, True]
    assert [v["candidate"] for v in verdicts] == [0, 0, 1, 1]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["pass@1"] == 0.5 and metrics["pass@2"] == 1.0 and "partial" not in metrics
    assert 0 < metrics["tests_passed"] < 1
    scored = [json.loads(line) for line in (run / "scored.jsonl").read_text().splitlines()]
    assert [row["id"] for row in scored] == [ids[1], ids[0]]
    assert all(row["scores"]["pass@1"] == 0.5 for row in scored)


def test_unknown_task_id_is_one_line_error(tmp_path):
    path = tmp_path / "preds.jsonl"
    path.write_text(json.dumps({"task_id": "HumanEval/999", "completion": "pass"}) + "\n")
    result = run_cli("evaluate", "--task", "humaneval", "--predictions", path, "-o", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: prediction row 1: unknown HumanEval task_id 'HumanEval/999'"]


def test_generate_then_evaluate_humaneval_with_the_tiny_model(tiny_model_dir, tmp_path):
    overrides = [
        "--task", "humaneval", "-o", tmp_path / "run", f"model.name={tiny_model_dir}", "method.name=zero-shot",
        "data.test_size=2", "generation.k=3", "generation.do_sample=true", "generation.max_new_tokens=8",
    ]
    assert run_cli("generate", *overrides).returncode == 0
    predictions = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert [row["id"] for row in predictions] == ["HumanEval/0", "HumanEval/1"]
    assert all(len(row["candidates"]) == 3 for row in predictions)
    result = run_cli("evaluate", *overrides)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # a random tiny model solves nothing; the point is that every metric is computed side by side
    assert metrics["pass@1"] == 0.0 and metrics["pass@3"] == 0.0
    assert {"tests_passed", "em@1", "em@3", "codebleu", "verdict_failed"} <= set(metrics)
    assert metrics["samples"] == 6
