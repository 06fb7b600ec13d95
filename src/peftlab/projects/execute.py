"""Run a project's tests in the sandbox through the trusted driver (:mod:`peftlab.projects.driver`) and
read back its attested records.

::

    TestJob(args, files={}, coverage=None, deadline)    one pytest invocation (node ids or test files)
    run_jobs(tree, jobs, *, timeout, backend=None) -> list[JobResult]        one sandbox run, jobs in order
    run_batched(tree, jobs, *, timeout, workers=2, batch=32, progress=None) -> list[JobResult]

A job's results count only if the driver's final ``done`` record, stamped with the run's nonce, came
back; a job the driver did not report (the sandbox was killed) has status ``lost`` and no outcomes.
"""

from __future__ import annotations

import json
import math
import secrets
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources

from peftlab.execution.sandbox import Limits, run
from peftlab.projects.tree import ProjectTree

DRIVER_FILE = "peftlab_project_driver.py"
PYTEST_INI = "peftlab_pytest.ini"  # empty: a project's own pytest options (addopts, plugins) do not apply
PROJECT_DIR = "project"
STARTUP_SECONDS = 15.0  # interpreter, pytest import and the copy of the tree, per sandbox run
JOB_SLACK_SECONDS = 10.0  # per job: pytest start-up and collection


@dataclass(frozen=True)
class TestJob:
    args: tuple[str, ...]
    """Node ids (or test files) pytest runs."""
    files: dict[str, str] = field(default_factory=dict)
    """Project files (relative path -> text) replaced for this job only."""
    coverage: tuple[str, ...] | None = None
    """Project files to measure, one coverage context per test; None: no coverage."""
    deadline: float = 60.0
    """Seconds for the whole job before its pytest process is killed."""


@dataclass
class JobResult:
    status: str
    """``ok``, ``timeout`` (killed at its deadline), ``crashed`` (pytest's process died), ``lost``."""
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Node id -> (passed | failed | timeout | skipped, reason)."""
    collect_errors: dict[str, str] = field(default_factory=dict)
    lines: dict[str, dict[int, set[str]]] = field(default_factory=dict)
    """With coverage: file -> line -> node ids of the tests that executed it."""

    def passed(self, test_ids) -> int:
        return sum(self.outcomes.get(test, ("",))[0] == "passed" for test in test_ids)


def job_deadline(tests: int, timeout: float) -> float:
    return JOB_SLACK_SECONDS + tests * timeout


def _driver_source() -> str:
    return resources.files("peftlab.projects").joinpath("driver.py").read_text(encoding="utf-8")


def _results(control_output: bytes, nonce: str, count: int) -> list[JobResult]:
    results = [JobResult("lost") for _ in range(count)]
    raw_lines: dict[int, list[dict]] = {}
    names: dict[int, list[str]] = {}
    done = False
    for line in control_output.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("nonce") != nonce:
            continue
        kind, job = record.get("type"), record.get("job")
        if kind == "done":
            done = record.get("jobs") == count
            continue
        if not isinstance(job, int) or not 0 <= job < count:
            continue
        result = results[job]
        if kind == "test" and isinstance(record.get("id"), str):
            result.outcomes.setdefault(record["id"], (str(record.get("outcome")), str(record.get("reason", ""))))
        elif kind == "collect_error":
            result.collect_errors[str(record.get("id"))] = str(record.get("reason", ""))
        elif kind == "lines":
            raw_lines.setdefault(job, []).append(record)
        elif kind == "contexts":
            names[job] = list(record.get("names") or [])
        elif kind == "job":
            result.status = str(record.get("status"))
    if not done:  # the run did not end as the driver ends it: nothing it said is trusted
        return [JobResult("lost") for _ in range(count)]
    for job, records in raw_lines.items():
        known = names.get(job, [])
        for record in records:
            per_line = results[job].lines.setdefault(str(record["file"]), {})
            for number, ids in record["lines"].items():
                per_line[int(number)] = {known[i] for i in ids if isinstance(i, int) and 0 <= i < len(known)}
    return results


def run_jobs(tree: ProjectTree, jobs: list[TestJob], *, timeout: float, backend=None,
             memory_bytes: int = 2 << 30) -> tuple[list[JobResult], bool]:
    """Run ``jobs`` one after another in one sandbox holding a copy of ``tree``; (results, timed_out).

    ``timeout`` is the per-test limit. The sandbox's wall-clock limit is the jobs' deadlines plus start-up.
    """
    nonce = secrets.token_hex(16)
    files: dict[str, str | bytes] = {f"{PROJECT_DIR}/{rel}": content for rel, content in tree.files.items()}
    files[DRIVER_FILE] = _driver_source()
    files[PYTEST_INI] = "[pytest]\n"
    roots = [PROJECT_DIR if root == "." else f"{PROJECT_DIR}/{root}" for root in tree.import_roots]
    job = {"nonce": nonce, "root": PROJECT_DIR, "import_roots": roots, "timeout": float(timeout),
           "jobs": [{"args": list(j.args), "files": j.files, "coverage": None if j.coverage is None
                     else list(j.coverage), "deadline": j.deadline} for j in jobs]}
    wall = STARTUP_SECONDS + sum(j.deadline + 2.0 for j in jobs)
    limits = Limits(wall_seconds=wall, cpu_seconds=math.ceil(wall), memory_bytes=memory_bytes,
                    max_processes=128, max_output_bytes=16 * 1024, max_open_files=1024)
    result = run([sys.executable, "-I", DRIVER_FILE], limits=limits, files=files,
                 control_input=json.dumps(job).encode(), backend=backend)
    return _results(result.control_output, nonce, len(jobs)), result.timed_out


def run_batched(tree: ProjectTree, jobs: list[TestJob], *, timeout: float, workers: int = 2, batch: int = 64,
                backend=None, progress: Callable[[int, int], None] | None = None) -> list[JobResult]:
    """:func:`run_jobs` over batches of ``batch`` jobs on ``workers`` sandboxes at once; results in order.
    ``progress(done, total)`` is called as batches finish."""
    chunks = [jobs[i:i + batch] for i in range(0, len(jobs), batch)]
    finished = [0]

    def one(chunk):
        results, _ = run_jobs(tree, chunk, timeout=timeout, backend=backend)
        finished[0] += len(chunk)
        if progress is not None:
            progress(finished[0], len(jobs))
        return results

    pool = ThreadPoolExecutor(max_workers=max(1, int(workers)))
    try:
        return [result for results in pool.map(one, chunks) for result in results]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
