"""Score generated tests by running them in the sandbox against a trusted focal function and its mutants
(the in-sandbox side is :mod:`peftlab.tasks.testgen.generated_test_runner`, copied into each sandbox with
the codec it imports, :mod:`peftlab.execution.runner`).

::

    FocalProblem(source, entry_point, mutants=(), module="focal")
    score_tests(items, *, timeout=5.0, workers=2, backend=None) -> list[dict]      items: (FocalProblem, test)
    has_assertion(test) -> bool
    focal_coverage(report, source, entry_point) -> (line, branch, statements, branches)

A verdict: ``valid`` (the test parses), ``passed`` (every test function it defines passes on the original;
at least one must exist), ``line_coverage`` and ``branch_coverage`` of the focal function's body only
(coverage.py, measured in the trusted process, 0 for an invalid test), ``mutants``, ``killed`` and
``mutation_score`` (killed / mutants; a mutant is killed when the test, passing on the original, fails on
it; a test that does not pass, or asserts nothing, kills none), ``status`` and ``reason``. Every run is a
fresh sandbox, so nothing a test leaves behind reaches the next variant.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources

from peftlab import pyparse
from peftlab.execution.harness import attested_records
from peftlab.execution.sandbox import Limits, run

RUNNER_FILE = "peftlab_testgen_runner.py"
CODEC_FILE = "peftlab_codec.py"
FOCAL_FILE = "focal_module.py"
STARTUP_SECONDS = 5.0


@dataclass(frozen=True)
class FocalProblem:
    source: str
    """The focal module (e.g. HumanEval's prompt + canonical solution)."""
    entry_point: str
    mutants: tuple[str, ...] = ()
    """Mutated modules, each already known to change behaviour on the reference tests."""
    module: str = "focal"
    """The name a test may import the focal functions from (``from focal import f``)."""


@functools.cache
def _sources() -> tuple[str, str]:
    return (resources.files("peftlab.tasks.testgen").joinpath("generated_test_runner.py").read_text(encoding="utf-8"),
            resources.files("peftlab.execution").joinpath("runner.py").read_text(encoding="utf-8"))


def _function(source: str, entry_point: str):
    tree = pyparse.parse(source)
    return next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == entry_point), None), tree


def _top_level_functions(source: str) -> list[str]:
    return [n.name for n in pyparse.parse(source).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def focal_coverage(report: dict | None, source: str, entry_point: str) -> tuple[float, float, int, int]:
    """(line coverage, branch coverage, statements, branches) of the body of ``entry_point``, from
    coverage.py's JSON report of the focal file. A body without branches has the branch coverage of its
    lines being reached at all (1.0 or 0.0)."""
    function, _ = _function(source, entry_point)
    if function is None or not report:
        return 0.0, 0.0, 0, 0
    span = range(function.lineno + 1, function.end_lineno + 1)  # the def line runs at import
    executed = [n for n in report.get("executed_lines", []) if n in span]
    statements = len(executed) + len([n for n in report.get("missing_lines", []) if n in span])
    taken = [b for b in report.get("executed_branches", []) if b[0] in span]
    branches = len(taken) + len([b for b in report.get("missing_branches", []) if b[0] in span])
    line = len(executed) / statements if statements else 0.0
    branch = len(taken) / branches if branches else (1.0 if executed else 0.0)
    return line, branch, statements, branches


def has_assertion(test: str) -> bool:
    """Whether the test checks anything: an ``assert``, a ``self.assert*``/``pytest.raises``-style call or
    ``with`` block, or a raise of its own."""
    try:
        tree = pyparse.parse(test)
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assert, ast.Raise)):
            return True
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name.startswith(("assert", "fail")) or name in ("raises", "warns", "approx"):
                return True
    return False


def _run_variant(source: str, problem: FocalProblem, test: str, timeout: float, backend) -> dict:
    runner, codec = _sources()
    nonce = secrets.token_hex(16)
    job = {"nonce": nonce, "focal": source, "file": FOCAL_FILE, "module": problem.module,
           "functions": _top_level_functions(source), "entry_point": problem.entry_point, "test": test,
           "coverage": True, "timeout": float(timeout)}
    wall = float(timeout) + STARTUP_SECONDS
    limits = Limits(wall_seconds=wall, cpu_seconds=math.ceil(wall), max_output_bytes=4096)
    result = run([sys.executable, "-I", RUNNER_FILE], limits=limits, files={RUNNER_FILE: runner, CODEC_FILE: codec},
                 control_input=json.dumps(job).encode(), backend=backend)
    records = attested_records(result.control_output, nonce)
    found = next((r for r in records if r.get("type") == "result"), None)
    if found is None or not any(r.get("type") == "done" for r in records):
        tail = result.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:]
        return {"status": "timeout" if result.timed_out else "error", "outcomes": [], "coverage": None,
                "reason": "the runner did not attest the run" + (f": {tail[0][:200]}" if tail else "")}
    outcomes = [o for o in found.get("outcomes") or [] if isinstance(o, list) and len(o) == 3]
    return {"status": str(found.get("status")), "outcomes": outcomes, "coverage": found.get("coverage"), "reason": ""}


def _passed(run_result: dict) -> bool:
    return run_result["status"] == "ok" and bool(run_result["outcomes"]) and all(
        o[1] == "passed" for o in run_result["outcomes"])


def _reason(run_result: dict) -> str:
    if run_result["reason"]:
        return run_result["reason"]
    if run_result["status"] != "ok":
        return f"the test run ended: {run_result['status']}"
    if not run_result["outcomes"]:
        return "the test defines no test function (test_*, a TestCase method, or check(candidate))"
    failing = next((o for o in run_result["outcomes"] if o[1] != "passed"), None)
    return f"{failing[0]}: {failing[1]} {failing[2]}".strip() if failing else "passed"


def score_tests(items: list[tuple[FocalProblem, str]], *, timeout: float = 5.0, workers: int = 2,
                backend=None) -> list[dict]:
    """One verdict (see the module docstring) per ``(problem, test)``, in order."""
    pool = ThreadPoolExecutor(max_workers=max(1, int(workers)))
    try:
        valid = []
        for _, test in items:
            try:
                pyparse.parse(test)
                valid.append(True)
            except (SyntaxError, ValueError):
                valid.append(False)
        originals = list(pool.map(lambda i: _run_variant(items[i][0].source, items[i][0], items[i][1], timeout,
                                                         backend) if valid[i] else None, range(len(items))))
        mutant_jobs = [(i, source) for i, ((problem, test), first) in enumerate(zip(items, originals))
                       if first is not None and _passed(first) and has_assertion(test) for source in problem.mutants]
        mutant_results = list(pool.map(lambda job: _run_variant(job[1], items[job[0]][0], items[job[0]][1],
                                                                timeout, backend), mutant_jobs))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    killed = [0] * len(items)
    for (index, _), result in zip(mutant_jobs, mutant_results):
        killed[index] += not _passed(result)
    verdicts = []
    for index, ((problem, test), first) in enumerate(zip(items, originals)):
        total = len(problem.mutants)
        if first is None:
            verdicts.append({"valid": False, "passed": False, "line_coverage": 0.0, "branch_coverage": 0.0,
                             "mutants": total, "killed": 0, "mutation_score": 0.0, "status": "invalid",
                             "reason": "the test does not parse"})
            continue
        line, branch, _, _ = focal_coverage(first["coverage"], problem.source, problem.entry_point)
        verdicts.append({"valid": True, "passed": _passed(first), "line_coverage": line, "branch_coverage": branch,
                         "mutants": total, "killed": killed[index],
                         "mutation_score": killed[index] / total if total else 0.0,
                         "status": "passed" if _passed(first) else ("timeout" if first["status"] == "timeout"
                                                                     else "failed"),
                         "reason": _reason(first)})
    return verdicts
