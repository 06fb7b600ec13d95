"""HumanEval: the dataset, prompts, post-processing and execution-based scoring."""

from __future__ import annotations

import os

import pytest

from peftlab.errors import UserError
from peftlab.execution import sandbox
from peftlab.tasks import humaneval

WORKERS = 4  # sandboxes mostly wait on process start-up; 4 keeps 2 cores busy
BACKENDS = [b.name for b in sandbox.available_backends()] if os.name == "posix" else []



@pytest.fixture(scope="module")
def problems() -> dict:
    return humaneval.load_problems()


def test_load_problems(problems):
    assert len(problems) == 164
    assert list(problems)[:2] == ["HumanEval/0", "HumanEval/1"]
    first = problems["HumanEval/0"]
    assert set(first) >= {"task_id", "prompt", "canonical_solution", "test", "entry_point"}
    assert humaneval.build_prompt(first) == first["prompt"]


def test_every_canonical_solution_passes():
    report = humaneval.self_check(workers=WORKERS, timeout=10.0)
    assert report["failures"] == []
    assert report["passed"] == report["tasks"] == 164


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_canonical_solutions_pass_on_the_other_backends(problems, backend):
    rows = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in list(problems.items())[::8]]
    metrics, verdicts = humaneval.evaluate_predictions(rows, WORKERS, 10.0, backend=backend,
                                                       apply_postprocess=False)
    assert [v["reason"] for v in verdicts if not v["passed"]] == []
    assert metrics["pass@1"] == 1.0 and metrics["sandbox_backend"] == backend


def test_wrong_solutions_all_fail(problems):
    rows = []
    for number, (task_id, problem) in enumerate(problems.items()):
        variant = humaneval.WRONG_KINDS[number % 3]
        rows.append({"task_id": task_id, "completion": humaneval.wrong_completion(problem, variant), "variant": variant})
    metrics, verdicts = humaneval.evaluate_predictions(rows, WORKERS, 10.0, apply_postprocess=False)
    assert [v["task_id"] for v in verdicts if v["passed"]] == []
    assert metrics["pass@1"] == 0.0
    assert {v["verdict"] for v in verdicts} <= {"failed", "timeout"}
    assert all(v["tests_passed"] < v["tests_total"] for v in verdicts)


def test_evaluate_predictions_rows_metrics_and_order(problems):
    canonical = problems["HumanEval/2"]["canonical_solution"]
    rows = [
        {"task_id": "HumanEval/2", "completion": "    return 0.0\n", "model": "a", "sample": 0},
        {"task_id": "HumanEval/0", "completion": "```python\n" + problems["HumanEval/0"]["canonical_solution"]
         + "```\nThat is all.", "model": "a"},
        {"task_id": "HumanEval/2", "completion": canonical + "\n\ndef main():\n    pass\n", "model": "b"},
        {"task_id": "HumanEval/0", "completion": "    while True:\n        pass\n", "model": "b"},
    ]
    metrics, verdicts = humaneval.evaluate_predictions(rows, workers=2, timeout=2.0, ks=(1, 2))
    assert [(v["task_id"], v["candidate"], v["model"]) for v in verdicts] == [
        ("HumanEval/2", 0, "a"), ("HumanEval/0", 0, "a"), ("HumanEval/2", 1, "b"), ("HumanEval/0", 1, "b")]
    assert [v["verdict"] for v in verdicts] == ["failed", "passed", "passed", "timeout"]
    assert verdicts[0]["sample"] == 0 and verdicts[0]["completion"] == rows[0]["completion"]
    assert verdicts[1]["tests_passed"] == verdicts[1]["tests_total"] == 7
    assert all(isinstance(v["reason"], str) and v["reason"] for v in verdicts)
    assert metrics["pass@1"] == pytest.approx(0.5)
    assert metrics["pass@2"] == pytest.approx(1.0)
    assert (metrics["tasks"], metrics["samples"], metrics["n_per_task"]) == (2, 4, 2)
    assert metrics["verdict_passed"] == 2 and metrics["verdict_timeout"] == 1
    expected_tests = (verdicts[0]["tests_passed"] / verdicts[0]["tests_total"] + 1 + 1 + 0) / 4
    assert metrics["tests_passed"] == pytest.approx(expected_tests)


def test_user_mistakes_are_reported():
    good = {"task_id": "HumanEval/0", "completion": "    return True\n"}
    with pytest.raises(UserError, match="HumanEval/999"):
        humaneval.evaluate_predictions([good, {"task_id": "HumanEval/999", "completion": ""}], 1, 1.0)
    with pytest.raises(UserError, match="pass@2"):
        humaneval.evaluate_predictions([good], 1, 1.0, ks=(1, 2))
    with pytest.raises(UserError, match="completion"):
        humaneval.evaluate_predictions([{"task_id": "HumanEval/0"}], 1, 1.0)
    with pytest.raises(UserError):
        humaneval.evaluate_predictions([], 1, 1.0)
    with pytest.raises(UserError):
        humaneval.evaluate_predictions([good], 0, 1.0)


@pytest.mark.parametrize("raw,expected", [
    ("    return x\n\ndef other():\n    pass\n", "    return x\n"),
    ("    return x\nclass A:\n    pass", "    return x"),
    ("    return x\n\nif __name__ == '__main__':\n    main()", "    return x\n"),
    ("    return x\nprint(f(1))", "    return x"),
    ("    return x\n# tests\nassert f(1)", "    return x"),
    ("    y = 1  # a comment stays\n    return y", "    y = 1  # a comment stays\n    return y"),
    ("```python\ndef f(x):\n    return x\n```\nExplanation: ...", "def f(x):\n    return x\n"),
    ("Here you go:\n```\n    return x\n```", "    return x\n"),
    ("    return x\n```\n\nThis returns x.", "    return x"),
    ("", ""),
])
def test_postprocess(raw, expected):
    assert humaneval.postprocess(raw) == expected
    assert humaneval.postprocess(humaneval.postprocess(raw)) == expected
