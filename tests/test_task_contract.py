"""Every registered task honours the task contract (load -> prompt -> post-process -> evaluate), in the
style of PEFT's common tester; and a task defined outside peftlab runs end to end with no edit to peftlab."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from peftlab.config import load_config
from peftlab.tasks import TASKS, get_task

# Config a task needs to find its data in the test environment (tasks that ship their data need none).
PROJECT = Path(__file__).parent / "fixtures" / "tested_project"
HUB = Path(__file__).parent / "fixtures" / "hub"  # local copies in the hub datasets' schemas
TASK_OVERRIDES = {"codegen": lambda data_dir: [f"data.dir={data_dir}"],
                  "apps": lambda _: ["data.loader=apps", f"data.source={HUB / 'apps'}"],
                  "java-testgen": lambda _: ["data.loader=methods2test", f"data.source={HUB / 'methods2test'}"],
                  "project-codegen": lambda _: [f"data.project={PROJECT}"],
                  "testgen": lambda _: [f"data.project={PROJECT}"],
                  "repair": lambda _: [f"data.project={PROJECT}"]}


JAVA_TASKS = ("humaneval-x-java", "java-repair")  # they execute Java: skipped where it is not installed


def _java_missing() -> str | None:
    from peftlab.errors import UserError
    from peftlab.execution.java.toolchain import toolchain

    try:
        toolchain()
    except UserError as exc:
        return str(exc)
    return None


def _task(name, tiny_data_dir, *extra):
    overrides = TASK_OVERRIDES.get(name, lambda _: [])(tiny_data_dir)
    return get_task(name, load_config(None, [f"task={name}", "data.test_size=3", *overrides, *extra]))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_contract(name, tiny_data_dir, tmp_path, monkeypatch):
    if name in JAVA_TASKS and (missing := _java_missing()):
        pytest.skip(missing)
    if name in ("project-codegen", "testgen", "repair"):  # they mine their project into the cache: a private one
        monkeypatch.setenv("PEFTLAB_CACHE", str(tmp_path / "cache"))
    task = _task(name, tiny_data_dir)
    assert task.name == name
    problems = task.load("test")
    assert 0 < len(problems) <= 3
    ids = [problem["id"] for problem in problems]
    assert len(set(ids)) == len(ids) and all(isinstance(i, str) for i in ids)
    for problem in problems:
        prompt = task.prompt(problem)
        assert isinstance(prompt, str) and prompt.strip()
        assert isinstance(task.retrieval_text(problem), str)
    assert all(isinstance(stop, str) and stop for stop in task.stop)
    assert isinstance(task.postprocess("    return 1\n\n\n\ndef other():\n    pass\n"), str)
    if task.trainable:
        train = task.load("train")
        assert train and all(isinstance(task.response(example), str) for example in train)
        assert task.demonstration(train[0]).startswith(task.prompt(train[0]))

    # Fixture predictions: the reference where the dataset has one, else an empty body.
    predictions = [{"id": p["id"], "candidates": [p.get("reference") or "    pass\n"] * 2} for p in problems]
    evaluation = task.evaluate(predictions)
    assert [row["id"] for row in evaluation.scored] == ids
    keys = {frozenset(row["scores"]) for row in evaluation.scored}
    assert len(keys) == 1, "every item has the same score keys"
    specs = evaluation.metrics["metric_specs"]
    assert specs, "a task declares the metrics it reports"
    for key, spec in specs.items():
        assert spec["key"] == key and spec["title"] and len(spec["column"]) == 2
        if spec["aggregation"] == "mean" and spec["bootstrap"] and key in evaluation.metrics:
            assert key in next(iter(keys)), f"{key} is bootstrapped per item, so every item needs its score"
    assert set(evaluation.files) == set(task.extra_outputs)
    if any(p.get("reference") for p in problems) and "em@1" in specs:
        assert evaluation.metrics["em@1"] == 1.0  # the reference itself matches
    with pytest.raises(Exception, match="not in the test split"):
        task.evaluate([*predictions, {"id": "no-such-problem", "candidates": ["x"]}])


TOY_TASK = '''
"""A toy task defined outside peftlab: return a constant. Its data lives in the module."""
from pydantic import Field

from peftlab.config import OwnedOptions
from peftlab.metrics import match_scores
from peftlab.metrics.specs import describe
from peftlab.tasks.base import Evaluation, Task, check_candidate_rows, match_test_ids

NUMBERS = {"train": range(0, 12), "validation": range(12, 14), "test": range(14, 18)}


class ConstantOptions(OwnedOptions):
    offset: int = Field(0, ge=0)
    """Added to every constant (data.offset)."""


class ReturnConstant(Task):
    name = "return-constant"
    default_stop = ("\\n",)
    Options = ConstantOptions

    def load(self, split):
        return [{"id": f"{split}-{n}", "instruction": f"Return {n + self.options.offset}.",
                 "reference": str(n + self.options.offset)} for n in NUMBERS[split]]

    def prompt(self, problem):
        return f"# {problem['instruction']}\\ndef f():\\n    return "

    def postprocess(self, completion):
        return completion.split("\\n")[0].strip()

    def evaluate(self, predictions, partial=False):
        check_candidate_rows(predictions)
        references = {p["id"]: p["reference"] for p in self.load("test")}
        coverage = match_test_ids([row["id"] for row in predictions], list(references), partial=partial)
        metrics, scored = match_scores([{**row, "reference": references[row["id"]]} for row in predictions])
        return Evaluation({**metrics, **coverage, "metric_specs": describe(metrics)}, scored)
'''


def test_a_task_outside_peftlab_needs_no_edit_to_peftlab(tiny_model_dir, tmp_path):
    package = tmp_path / "toy_tasks"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(TOY_TASK))
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    for method in ("zero-shot", "icl", "lora"):
        run = tmp_path / method
        result = subprocess.run(
            [sys.executable, "-m", "peftlab.cli", "run", "--task", "toy_tasks", "--method", method,
             f"model.name={tiny_model_dir}", "-o", str(run), "train.max_steps=2", "train.batch_size=4",
             "generation.max_new_tokens=4", "data.offset=100", *(["method.shots=2"] if method == "icl" else [])],
            capture_output=True, text=True, env=env, timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["test_problems"] == 4 and "em@1" in metrics and "em@1" in metrics["metric_specs"]
        rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
        assert [row["id"] for row in rows] == [f"test-{n}" for n in range(14, 18)]
        # its own option, declared in its own module, resolved into the run's config with the others
        assert "offset: 100" in (run / "config.yaml").read_text()
        assert json.loads((run / "scored.jsonl").read_text().splitlines()[0])["reference"] == "114"
    from peftlab.report import build_report

    build_report(tmp_path, tmp_path / "report")  # the report builds its columns from the declarations
    assert "EM@1" in (tmp_path / "report" / "report.md").read_text()
