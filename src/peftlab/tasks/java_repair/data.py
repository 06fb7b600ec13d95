"""The Java repair task's bugs: one documented JSONL format that every Java bug set is converted to, the job
that runs a program against a bug's tests, and the HumanEval-X split between test and training problems.

Bug format (one JSON object per line; ``read_java_bugs``)::

    {"id": str, "buggy": str (the buggy class: a whole compilation unit),
     "tests": {path: source} or str (test classes; one string is one file, named after its public class),
     "run": [str] or str (binary names of the test classes to run, e.g. "java_testcases.junit.GCD_TEST"),
     "fixed": str (optional: the known fix, for exact-fix scoring),
     "support": {path: source} (optional: trusted classes the program uses, e.g. QuixBugs' Node),
     "mode": "junit" | "main" (optional, default junit: every @Test is a case; main: each run class's
             main(String[]) is one case that fails by throwing),
     "operator": str (optional: how the bug was made), "problem_id": str (optional),
     "failing_test": str (optional: one failing test's name and message)}

A candidate runs as the bug's package declaration, the buggy class's imports (an answer often leaves them
out), then the answer without its own package declaration, in the file ``source_path(buggy)``.

::

    read_java_bugs(path) -> list[dict]       normalised (tests a dict, run a list); UserError names the bad row
    candidate_program(bug, answer) -> str
    java_job(bug, program, timeout) -> JavaJob
    in_test_half(problem_id) -> bool        HumanEval-X problems held out for the humaneval-x test set
    humaneval_x_test_bugs() -> list[dict]
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from peftlab.data.records import read_jsonl
from peftlab.errors import UserError
from peftlab.execution.java import JavaJob
from peftlab.tasks.humaneval_x_java.bugs import bugs as injected_humaneval_x_bugs
from peftlab.tasks.humaneval_x_java.data import main_job
from peftlab.tasks.java_repair.source import imports_of, package_of, source_path, without_package

MODES = ("junit", "main")
SPLIT_SALT = "java-repair-split-v1"
"""Changing it moves problems between the HumanEval-X test half and training: a new version, never an edit."""


def _sources(value, what: str) -> dict[str, str]:
    """``{path: source}`` from a dict, or from one source string named after its public class."""
    if isinstance(value, str):
        path = source_path(value)
        if path is None:
            raise ValueError(f"'{what}' declares no class")
        return {path: value}
    if not isinstance(value, dict) or not value:
        raise ValueError(f"'{what}' must be a non-empty object {{path: source}} or one source string")
    for path, text in value.items():
        if not path.endswith(".java") or " " in path or "\n" in path or not isinstance(text, str):
            raise ValueError(f"'{what}' must map file paths ending in .java (no spaces) to source strings")
    return dict(value)


def normalise_bug(bug: dict) -> dict:
    """The bug with ``tests`` as a dict, ``run`` as a list and ``mode`` and ``support`` filled in.

    Raises:
        ValueError: what is wrong, one line (the caller names the row).
    """
    for key in ("id", "buggy", "fixed", "operator", "problem_id", "failing_test"):
        if key in bug and not isinstance(bug[key], str):
            raise ValueError(f"'{key}' must be a string")
    if source_path(bug["buggy"]) is None:
        raise ValueError("'buggy' declares no class, interface, enum or record")
    run = [bug["run"]] if isinstance(bug.get("run"), str) else bug.get("run")
    if not isinstance(run, list) or not run or not all(isinstance(name, str) and name for name in run):
        raise ValueError("'run' must name the test classes to run (a string or a non-empty list of strings)")
    mode = bug.get("mode", "junit")
    if mode not in MODES:
        raise ValueError(f"'mode' must be one of {', '.join(MODES)}, got {mode!r}")
    support = _sources(bug["support"], "support") if bug.get("support") else {}
    return {**bug, "tests": _sources(bug["tests"], "tests"), "run": run, "mode": mode, "support": support}


def read_java_bugs(path) -> list[dict]:
    """Bugs in the documented format, normalised (:func:`normalise_bug`).

    Raises:
        UserError: one line naming the file and row: a missing key, a wrong type, a ``buggy`` without a
            class, ``tests`` that are not Java files, no ``run`` class, an unknown ``mode``, a repeated id.
    """
    bugs, seen = [], set()
    for number, bug in enumerate(read_jsonl(path, required={"id": str, "buggy": str, "tests": object, "run": object}),
                                 start=1):
        try:
            bugs.append(normalise_bug(bug))
        except ValueError as error:
            raise UserError(f"{path}:{number} ({bug['id']}): {error}") from None
        if bug["id"] in seen:
            raise UserError(f"{path}:{number}: id {bug['id']!r} appears more than once")
        seen.add(bug["id"])
    if not bugs:
        raise UserError(f"{path}: no bugs (the file is empty)")
    return bugs


def candidate_program(bug: dict, answer: str) -> str:
    package = package_of(bug["buggy"])
    head = f"package {package};\n" if package else ""
    return head + imports_of(bug["buggy"]) + without_package(answer)


def java_job(bug: dict, program: str, timeout: float) -> JavaJob:
    """``program`` (a candidate's, or the buggy or fixed class) against the bug's tests, as one sandbox run."""
    return JavaJob(program={source_path(bug["buggy"]): program}, tests=bug["tests"], run=tuple(bug["run"]),
                   mode=bug["mode"], timeout=float(timeout), support=bug["support"])


def in_test_half(problem_id: str) -> bool:
    """Whether a HumanEval-X problem belongs to the ``humaneval-x`` test set: a salted hash of its id, so each
    problem's side is fixed whatever else changes (86 of the 164; docs/repair.md, "Java")."""
    return int(hashlib.sha256(f"{SPLIT_SALT}:{problem_id}".encode()).hexdigest(), 16) % 2 == 0


def from_humaneval_x(bug: dict) -> dict:
    """A bug of :func:`peftlab.tasks.humaneval_x_java.bugs.bugs` in this task's format: its tests are one
    ``Main`` class whose ``main`` throws on a wrong answer, and its ``Solution`` classes are taken as that
    task's job runs them (:func:`peftlab.tasks.humaneval_x_java.data.main_job` makes ``class Solution``
    public: the runner loads program and tests in two class loaders, where package access fails)."""
    buggy, fixed = (main_job(bug[key], bug["tests"]).program["Solution.java"] for key in ("buggy", "fixed"))
    return normalise_bug({"id": bug["id"], "problem_id": bug["problem_id"], "buggy": buggy, "fixed": fixed,
                          "tests": {"Main.java": bug["tests"]}, "run": ["Main"], "mode": "main",
                          "operator": bug.get("operator") or "unknown", "failing_test": bug.get("failing_test") or ""})


def humaneval_x_bugs(per_problem: int) -> list[dict]:
    """The first ``per_problem`` HumanEval-X Java bugs of every problem, in this task's format."""
    return [from_humaneval_x(bug) for bug in injected_humaneval_x_bugs(per_problem=per_problem)]


def humaneval_x_test_bugs() -> list[dict]:
    """One bug per problem of the HumanEval-X test half (:func:`in_test_half`)."""
    return [bug for bug in humaneval_x_bugs(per_problem=1) if in_test_half(bug["problem_id"])]


def chosen_bugs(choice: str | None) -> list[dict]:
    """The test set ``data.bugs`` names: ``quixbugs`` (default), ``humaneval-x``, or a JSONL file.

    Raises:
        UserError: a name that is neither, or a bad file (see :func:`read_java_bugs`).
    """
    choice = choice or "quixbugs"
    if choice == "quixbugs":
        from peftlab.tasks.java_repair.quixbugs import quixbugs_java_bugs

        return quixbugs_java_bugs()[0]
    if choice == "humaneval-x":
        return humaneval_x_test_bugs()
    if not Path(choice).is_file():
        raise UserError(f"data.bugs={choice}: not quixbugs, humaneval-x or an existing JSONL file of Java bugs")
    return read_java_bugs(choice)
