"""Compile and run Java programs against JUnit 4 tests (or a ``main`` that throws on a wrong answer) in the
sandbox; report attested verdicts, and JaCoCo coverage of a focal method on request.

::

    JavaJob(program, tests, run, mode="junit", timeout=5.0, ...)   # sources by path, classes to run
    run_java(job, *, backend=None) -> JavaVerdict
    run_java_batch(jobs, workers=2) -> list[JavaVerdict]            # input order

Each job is one sandbox run of one JVM: the trusted runner (``PeftlabJavaRunner.java``) reads the job on fd 3,
compiles in memory, runs the tests under a SecurityManager and writes nonce-stamped records to fd 4 (see its
header and docs/sandbox.md, "Java"). A verdict is ``passed`` only if the records carry the nonce, the runner
attested completion, and every test it planned reported ``passed``; exit codes and stdout are never read.
"""

from __future__ import annotations

import math
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from peftlab.execution.harness import OUTPUT_KEPT, attested_records
from peftlab.execution.java.job import JavaJob, encode_job
from peftlab.execution.runner import one_line
from peftlab.execution.sandbox import Limits, expose_readonly
from peftlab.execution.sandbox import run as sandbox_run

HEAP_MB = 256
STARTUP_ALLOWANCE = 15.0  # seconds for the JVM start and the in-memory compile, on top of the tests' budget
# A JVM reserves far more address space than it uses. A run with coverage reserves heap + ~460 MB (code cache
# 48, class space 64, metaspace, the class-data archive, libraries, two malloc arenas of 64: toolchain.py
# caps them); 768 MB above the heap leaves room for MAX_THREADS stacks (1 MB each), 64 MB of direct buffers
# and metaspace, so a program that exhausts any of them gets a Java OutOfMemoryError, not a dead JVM
# (measured: docs/sandbox.md, "Java"; tests/test_java_sandbox.py).
ADDRESS_SPACE_BYTES = (HEAP_MB << 20) + (768 << 20)
MAX_THREADS = 96  # RLIMIT_NPROC counts threads: a JVM starts ~15, the runner one per test
CLASS_SHARING = True  # start with the toolchain's class-data archive (False: bench/java_exec.py only)


@dataclass
class JavaVerdict:
    status: str
    """``passed``, ``failed``, ``timeout`` or ``error`` (the runner could not run: not the program's fault)."""
    reason: str
    tests_passed: int
    tests_total: int
    compiled: bool | None
    """False when javac rejected the sources (``compile_where`` says whose); None when unknown."""
    compile_where: str
    cases: list[dict]
    coverage: dict | None
    wall_seconds: float
    backend: str
    output: str = ""


def judge(records: list[dict], timed_out: bool, returncode, stderr: bytes, budget: float) -> dict:
    """Status, reason, counts, compile outcome and coverage from the runner's authenticated records."""
    verdict = {"compiled": None, "compile_where": "", "cases": [], "coverage": None}
    fatal = next((r for r in records if r.get("type") == "fatal"), None)
    compiled = next((r for r in records if r.get("type") == "compile"), None)
    plan = next((r.get("total") for r in records if r.get("type") == "plan"), None)
    cases = {}
    for r in records:
        if r.get("type") == "case" and isinstance(r.get("index"), int):
            cases.setdefault(r["index"], {"name": r.get("name"), "status": r.get("status"), "reason": r.get("reason")})
    verdict["coverage"] = next(({k: r[k] for k in ("method_found", "line_covered", "line_total", "branch_covered",
                                                   "branch_total")} for r in records if r.get("type") == "coverage"), None)
    done = next((r.get("total") for r in records if r.get("type") == "done"), None)
    if compiled is not None:
        verdict["compiled"], verdict["compile_where"] = bool(compiled.get("ok")), compiled.get("where", "")
    passed = sum(c["status"] == "passed" for c in cases.values())
    verdict["cases"] = [cases[i] for i in sorted(cases)]
    if fatal:
        return {**verdict, "status": "error", "reason": one_line(fatal.get("reason")), "passed": passed, "total": plan or 0}
    if compiled is not None and not compiled.get("ok"):
        where = "" if compiled.get("where") == "program" else " (in the tests)"
        return {**verdict, "status": "failed", "reason": f"does not compile{where}: {one_line(compiled.get('reason'))}",
                "passed": 0, "total": 0}
    if done is not None and isinstance(done, int) and done == len(cases) and (plan is None or plan == done):
        if done == 0:
            return {**verdict, "status": "error", "reason": "the tests contain no test case", "passed": 0, "total": 0}
        bad = [(i, cases[i]) for i in range(done) if cases.get(i, {}).get("status") != "passed"]
        if not bad:
            return {**verdict, "status": "passed", "reason": f"all {done} tests passed", "passed": passed, "total": done}
        for status in ("timeout", "failed"):
            first = next(((i, c) for i, c in bad if c["status"] == status), None)
            if first:
                return {**verdict, "status": status, "passed": passed, "total": done,
                        "reason": f"test {first[0] + 1}/{done} {first[1]['name']}: {one_line(first[1]['reason'])}"}
        return {**verdict, "status": "failed", "reason": "a test reported no known status", "passed": passed,
                "total": done}
    if timed_out:
        return {**verdict, "status": "timeout", "reason": f"wall-clock limit of {budget:g}s reached", "passed": passed,
                "total": plan or 0}
    lines = [line for line in stderr.decode("utf-8", errors="replace").strip().splitlines()
             if not line.startswith("WARNING:")]  # the JDK's SecurityManager deprecation notice
    tail = f": {one_line(lines[-1])}" if lines else ""
    return {**verdict, "status": "error", "passed": passed, "total": plan or 0,
            "reason": f"the Java runner ended without attesting completion (status {returncode}){tail}"}


def run_java(job: JavaJob, *, backend=None) -> JavaVerdict:
    """Run ``job`` in a fresh sandbox. Raises UserError when Java is missing (naming the packages to install)
    or the backend is unknown or unavailable; ValueError for a malformed job."""
    from peftlab.execution.java.toolchain import toolchain

    tools = toolchain()
    expose_readonly(tools.home)
    nonce = secrets.token_hex(16)
    wall = float(job.timeout) + STARTUP_ALLOWANCE
    limits = Limits(wall_seconds=wall, cpu_seconds=math.ceil(wall) + 5, memory_bytes=ADDRESS_SPACE_BYTES,
                    max_processes=MAX_THREADS, max_output_bytes=64 * 1024)
    result = sandbox_run(tools.command(HEAP_MB, class_sharing=CLASS_SHARING), limits=limits,
                         control_input=encode_job(job, nonce), backend=backend)
    found = judge(attested_records(result.control_output, nonce), result.timed_out, result.returncode,
                  result.stderr, wall)
    return JavaVerdict(found["status"], found["reason"], found["passed"], found["total"], found["compiled"],
                       found["compile_where"], found["cases"], found["coverage"], result.wall_seconds, result.backend,
                       result.stdout[:OUTPUT_KEPT].decode("utf-8", errors="replace"))


def run_java_batch(jobs: list[JavaJob], workers: int = 2, backend=None) -> list[JavaVerdict]:
    """:func:`run_java` for every job on ``workers`` threads, in input order (Ctrl-C cancels the queued ones)."""
    pool = ThreadPoolExecutor(max_workers=max(1, int(workers)))
    try:
        return list(pool.map(lambda job: run_java(job, backend=backend), jobs))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
