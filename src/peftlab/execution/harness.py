"""Run a candidate program against assert-style tests in the sandbox; report an attested verdict.

::

    run_tests(program, entry_point, tests, *, setup="", check_name="check", timeout=3.0,
              limits=None, backend=None) -> Verdict
    run_batch(jobs: list[dict], workers: int = 2) -> list[Verdict]   # jobs: run_tests keyword arguments
    count_cases(tests, check_name="check", entry_point=None) -> int

``tests`` is a module defining ``check(candidate)`` (HumanEval style); every top-level statement of its
body that asserts something about the candidate is one test case, run on its own: a failing case does not
stop the next. The trusted runner (:mod:`peftlab.execution.runner`) executes inside the sandbox and writes
nonce-stamped records to a pipe only it holds. A verdict is ``passed`` only if the parent finds the final
``done`` record with its nonce and every one of the cases it counted itself reported ``passed``; exit
codes are never trusted. Statuses: ``passed``, ``failed``, ``timeout``, ``error`` (the harness or the
tests could not run; not the candidate's fault).
"""

from __future__ import annotations

import functools
import json
import math
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from peftlab import pyparse
from peftlab.execution import runner
from peftlab.execution.sandbox import Limits, run_runner

STATUSES = ("passed", "failed", "timeout", "error")
STARTUP_ALLOWANCE = 5.0  # seconds on top of the candidate's budget before the sandbox is killed
OUTPUT_KEPT = 4096  # bytes of the program's stdout kept in a Verdict (thousands are held at once)


@dataclass
class Verdict:
    """Outcome of one program: ``status`` is one of STATUSES, ``reason`` one line."""

    status: str
    reason: str
    tests_passed: int
    tests_total: int
    wall_seconds: float
    backend: str
    output: str = ""  # the start of the program's stdout, for debugging


@functools.lru_cache(maxsize=1024)  # every sample of a problem has the same tests
def count_cases(tests: str, check_name: str = "check", entry_point: str | None = None) -> int:
    """Number of test cases in ``tests``. Raises ValueError if it has no ``check_name`` function."""
    with pyparse.LOCK:  # the runner parses with ast.parse itself, and this runs on the pool's threads
        return sum(is_case for _, is_case in runner.split_cases(tests, check_name, entry_point))


def attested_records(control_output: bytes, nonce: str) -> list[dict]:
    """The JSON-object lines of a runner's fd 4 output that carry ``nonce`` (the rest is not trusted)."""
    found = []
    for line in control_output.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("nonce") == nonce:
            found.append(record)
    return found


def judge(records: list[dict], total: int, timed_out: bool, returncode, stderr: bytes,
          wall_limit: float) -> tuple[str, str, int]:
    """(status, reason, cases passed) from the runner's authenticated records."""
    cases: dict[int, dict] = {}
    for record in records:
        if (record.get("type") == "case" and record.get("index") in range(total)
                and record.get("status") in STATUSES):
            cases.setdefault(record["index"], record)
    passed = sum(r["status"] == "passed" for r in cases.values())
    fatal = next((r for r in records if r.get("type") == "fatal"), None)
    done = any(r.get("type") == "done" and r.get("total") == total for r in records)
    if fatal:
        return "error", runner.one_line(fatal.get("reason")), passed
    if total == 0:
        return "error", "the tests contain no test case", 0
    if done and len(cases) == total:
        bad = [cases[i] for i in range(total) if cases[i]["status"] != "passed"]
        if not bad:
            return "passed", f"all {total} test cases passed", passed
        for status in ("timeout", "error", "failed"):
            first = next((r for r in bad if r["status"] == status), None)
            if first:
                reason = runner.one_line(first.get("reason"))
                return status, f"case {first['index'] + 1}/{total}: {reason}", passed
    if timed_out:
        return "timeout", f"wall-clock limit of {wall_limit:g}s reached after {len(cases)}/{total} cases", passed
    lines = stderr.decode("utf-8", errors="replace").strip().splitlines()
    tail = f": {runner.one_line(lines[-1])}" if lines else ""
    return "error", f"the runner ended without attesting completion (status {returncode}){tail}", passed


def run_tests(program: str, entry_point: str, tests: str, *, setup: str = "", check_name: str = "check",
              timeout: float = 3.0, limits: Limits | None = None, backend=None) -> Verdict:
    """Run ``check`` from ``tests`` against ``entry_point`` of ``program`` in a fresh sandbox.

    ``timeout`` is the candidate's budget for loading and answering every case. ``setup`` is trusted code
    run before ``tests`` in the runner (HumanEval: the prompt, for its helper functions). ``limits``
    defaults to a wall-clock limit of ``timeout + STARTUP_ALLOWANCE`` and a CPU limit of ``timeout + 2``
    seconds per process. Raises ValueError when ``tests`` has no ``check`` function, UserError for an
    unknown or unavailable backend.
    """
    total = count_cases(tests, check_name, entry_point)
    nonce = secrets.token_hex(16)
    job = {"nonce": nonce, "program": program, "entry_point": entry_point, "tests": tests, "setup": setup,
           "check_name": check_name, "timeout": float(timeout)}
    limits = limits or Limits(wall_seconds=float(timeout) + STARTUP_ALLOWANCE, cpu_seconds=math.ceil(timeout) + 2)
    result = run_runner(limits=limits, backend=backend, control_input=json.dumps(job).encode())
    status, reason, passed = judge(attested_records(result.control_output, nonce), total, result.timed_out,
                                   result.returncode, result.stderr, limits.wall_seconds)
    return Verdict(status, reason, passed, total, result.wall_seconds, result.backend,
                   result.stdout[:OUTPUT_KEPT].decode("utf-8", errors="replace"))


def run_batch(jobs: list[dict], workers: int = 2) -> list[Verdict]:
    """``run_tests(**job)`` for every job on ``workers`` threads (each drives one sandbox); input order.

    On Ctrl-C (or any error) the jobs not yet started are cancelled; the running ones end within their
    own time limits. A plain ``with ThreadPoolExecutor`` would run every queued job first.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, int(workers)))
    try:
        return list(pool.map(lambda job: run_tests(**job), jobs))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
