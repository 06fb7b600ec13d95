"""``--task mbpp`` works like ``--task humaneval``: sandboxed, attested verdicts, pass@k, tests passed."""

import json

from conftest import run_cli_in_process
from test_mbpp_data import CORRECT


def test_external_mbpp_samples_are_scored_by_execution(tmp_path, monkeypatch, capsys):
    ids = ["MBPP/3", "MBPP/4"]  # data.test_size=2: the test split is the first two problems
    rows = [{"task_id": i, "completion": CORRECT[i], "sample": 0} for i in ids]
    rows += [{"task_id": i, "completion": "    return None\n", "sample": 1} for i in ids]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, _, err = run_cli_in_process(monkeypatch, capsys, "evaluate", "--task", "mbpp", "--predictions", str(path),
                                      "-o", str(tmp_path / "run"), "data.test_size=2")
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["pass@1"] == 0.5 and metrics["pass@2"] == 1.0 and metrics["tasks"] == 2
    assert "em@1" not in metrics  # MultiPL-E ships no reference solutions
    assert set(metrics["metric_specs"]) == {"pass@1", "pass@2"}
    verdicts = [json.loads(line) for line in (tmp_path / "run" / "verdicts.jsonl").read_text().splitlines()]
    assert [v["passed"] for v in verdicts] == [True, True, False, False]
    assert all(v["sample"] == row["sample"] for v, row in zip(verdicts, rows))


def test_generate_then_evaluate_mbpp_with_the_tiny_model(tiny_model_dir, tmp_path, monkeypatch, capsys):
    overrides = ["--task", "mbpp", "--method", "zero-shot", "-o", str(tmp_path / "run"), f"model.name={tiny_model_dir}",
                 "data.test_size=2", "generation.max_new_tokens=8"]
    code, _, err = run_cli_in_process(monkeypatch, capsys, "run", *overrides)
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["pass@1"] == 0.0 and metrics["samples"] == 2  # a random tiny model solves nothing


def test_mbpp_refuses_training_and_demonstrations(tiny_model_dir, tmp_path, monkeypatch, capsys):
    for method in ("lora", "icl"):
        code, _, err = run_cli_in_process(monkeypatch, capsys, "run", "--task", "mbpp", "--method", method,
                                          f"model.name={tiny_model_dir}", "-o", str(tmp_path / method))
        assert code == 2 and err.count("\n") == 1, err
        assert "training" in err
