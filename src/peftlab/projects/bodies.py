"""Run mined records with a candidate body in place of the original, on the record's own tests.

::

    run_bodies(tree, items, *, timeout=10.0, workers=2, progress=None) -> list[dict]
        items: (record, body) pairs; body: the function's new body at its own indentation, or None to run
        the original module. One verdict per item, in order: {status, reason, tests_passed, tests_total}.

The candidate replaces the body in a copy of its module inside the sandbox (the project tree is never
written). A verdict is ``passed`` only if the driver attested the job and every one of the record's tests
passed; ``status`` is one of passed, failed, timeout, error (the sandbox run was lost: not attested).
"""

from __future__ import annotations

from collections.abc import Callable

from peftlab.projects.execute import JobResult, TestJob, job_deadline, run_batched
from peftlab.projects.functions import substitute
from peftlab.projects.tree import ProjectTree


def test_job(tree: ProjectTree, record: dict, body: str | None, timeout: float) -> TestJob:
    tests = tuple(test["id"] for test in record["tests"])
    files = {} if body is None else {record["file"]: substitute(tree.text(record["file"]), record, body)}
    return TestJob(tests, files, deadline=job_deadline(len(tests), timeout))


def verdict(record: dict, result: JobResult) -> dict:
    tests = [test["id"] for test in record["tests"]]
    passed = result.passed(tests)
    if result.status == "lost":
        return {"status": "error", "reason": "the sandbox run was not attested (killed or crashed)",
                "tests_passed": 0, "tests_total": len(tests)}
    if passed == len(tests) and result.status == "ok":
        return {"status": "passed", "reason": f"all {len(tests)} tests passed", "tests_passed": passed,
                "tests_total": len(tests)}
    first = next((t for t in tests if result.outcomes.get(t, ("",))[0] != "passed"), tests[0])
    outcome, reason = result.outcomes.get(first, ("not run", ""))
    if outcome == "not run" and result.collect_errors:
        reason = "collection failed: " + next(iter(result.collect_errors.values()))
    status = "timeout" if outcome == "timeout" or result.status == "timeout" else "failed"
    return {"status": status, "reason": f"{first}: {outcome}" + (f" ({reason})" if reason else ""),
            "tests_passed": passed, "tests_total": len(tests)}


def run_bodies(tree: ProjectTree, items: list[tuple[dict, str | None]], *, timeout: float = 10.0,
               workers: int = 2, backend=None, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    jobs = [test_job(tree, record, body, timeout) for record, body in items]
    results = run_batched(tree, jobs, timeout=timeout, workers=workers, backend=backend, progress=progress)
    return [verdict(record, result) for (record, _), result in zip(items, results, strict=True)]
