"""The focal classes ``java-testgen`` scores generated tests against (``data.focal``), each with the mutants a
test should kill.

::

    focal_instruction(focal) -> str                           the class as a Methods2Test-style source
    focal_record(focal) -> dict                               the class as the task's problem record
    humaneval_x_focal(limit=None, *, test_half=False, mutants=True) -> list[FocalClass]   HumanEval-X Java
    quixbugs_focal(limit=None, workers=2) -> list[FocalClass]   QuixBugs Java: the corrected programs
    quixbugs_focal_classes(bugs, workers=2) -> list[FocalClass]  the same, for chosen QuixBugs bugs

HumanEval-X: the prompt plus the canonical solution is the focal class; its mutants are the problem's
execution-validated single-site bugs (:func:`peftlab.tasks.humaneval_x_java.bugs.bugs`, up to 3: each fails
the problem's own test); its ``Main`` test, rewritten as a JUnit 4 class
(:func:`peftlab.tasks.java_testgen.main_to_junit.junit_from_main`), is the reference. QuixBugs: the
corrected program (package ``java_programs``) is the focal class and its static method of the class's
name the focal method; its mutants are the real bug (which fails the QuixBugs JUnit tests by
construction) and up to two single-site mutants of the focal method (:mod:`peftlab.data.java_mutants`)
that fail those tests too (by a wrong answer or an exception, not by time or memory), found once and
cached (``<cache>/java-testgen/quixbugs-mutants-v1.json``); the QuixBugs test class is the reference.
"""

from __future__ import annotations

import json
from pathlib import Path

from peftlab.errors import UserError
from peftlab.tasks.java_testgen.junit_scoring import FocalClass
from peftlab.tasks.testgen.data import write_cache

MUTANTS_PER_CLASS = 3
QUIXBUGS_MUTANTS_VERSION = 1  # bump when the mutant search below changes what it keeps
QUIXBUGS_CANDIDATES = 8  # single-site mutants tried per program, in order, until KEPT_INJECTED fail the tests
KEPT_INJECTED = 2
QUIXBUGS_TIMEOUT = 10.0  # seconds for all of a program's tests (their own @Test timeouts are 3 s each)


def focal_instruction(focal: FocalClass) -> str:
    """A focal class as a Methods2Test-style source (focal method named, its class, then the test class to
    fill), so that an adapter trained on Methods2Test sees the shape it learned."""
    simple = focal.class_name.rpartition(".")[2]
    return (f"// Focal method: {simple}.{focal.method}\n{focal.source.strip()}\n\n"
            f"public class {simple}Test {{\n}}")


def focal_record(focal: FocalClass) -> dict:
    """A focal class as the task's problem record (test set and built-in training data alike)."""
    return {"id": focal.id, "instruction": focal_instruction(focal), "reference": focal.reference,
            "focal_class": focal.class_name, "focal_method": focal.method, "focal_source": focal.source}


def humaneval_x_focal(limit: int | None = None, *, test_half: bool = False,
                      mutants: bool = True) -> list[FocalClass]:
    """The first ``limit`` HumanEval-X Java problems (all when None) as focal classes: of the test half
    (:func:`peftlab.tasks.java_repair.data.in_test_half`) when ``test_half``; without their mutants when not
    ``mutants`` (training records need none). The reference is the problem's test as a JUnit 4 class
    (:func:`peftlab.tasks.java_testgen.main_to_junit.junit_from_main`)."""
    try:
        from peftlab.tasks.humaneval_x_java import data
        from peftlab.tasks.humaneval_x_java.bugs import bugs
    except ImportError:
        raise UserError("the HumanEval-X Java problems (peftlab.tasks.humaneval_x_java) are not installed; "
                        "use data.focal=quixbugs") from None
    from peftlab.tasks.java_repair.data import in_test_half
    from peftlab.tasks.java_testgen.main_to_junit import junit_from_main

    problems = [p for p in data.problems() if not test_half or in_test_half(p["id"])]
    problems = problems[:limit] if limit else problems
    kept: dict[str, list[str]] = {}
    for bug in bugs(per_problem=MUTANTS_PER_CLASS) if mutants else ():
        kept.setdefault(bug["problem_id"], []).append(bug["buggy"])
    return [FocalClass(p["id"], data.program(p, p["canonical_solution"]), data.CLASS_NAME, p["entry_point"],
                       tuple(kept.get(p["id"], ())), reference=junit_from_main(p))
            for p in problems]


def _cache_file() -> Path:
    from peftlab.cache import cache_dir

    return cache_dir() / "java-testgen" / f"quixbugs-mutants-v{QUIXBUGS_MUTANTS_VERSION}.json"


def _program_name(bug: dict) -> str:
    return bug["id"].rpartition("/")[2]


# A failure that depends on the machine: a loop cut by the clock, a heap or a stack that runs out.
_MACHINE_DEPENDENT = ("OutOfMemoryError", "StackOverflowError", "TestTimedOutException", "did not complete",
                      "not finished in time", "timed out")


def fails_the_same_everywhere(verdict) -> bool:
    """Whether a mutant's run against the dataset's tests failed by a wrong answer or an exception of its own
    (not by time or memory), so that a test that kills it here kills it on any machine. As HumanEval-X's bugs,
    mutants that time out are not kept."""
    return bool(verdict.compiled) and verdict.status == "failed" and not any(
        case.get("status") == "timeout" or any(word in str(case.get("reason")) for word in _MACHINE_DEPENDENT)
        for case in verdict.cases)


def injected_mutants(bugs: list[dict], workers: int = 2) -> dict[str, list[str]]:
    """Per QuixBugs bug id, up to KEPT_INJECTED single-site mutants of the corrected program's focal method that
    fail the program's JUnit tests (:func:`fails_the_same_everywhere`: equivalent and slow mutants are out).
    Computed once per program, then cached."""
    from peftlab.data.java_mutants import mutants
    from peftlab.execution.java import JavaJob, run_java_batch

    path = _cache_file()
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = {}
    missing = [bug for bug in bugs if bug["id"] not in cached]
    if missing:
        candidates = {bug["id"]: [m.source for m in mutants(bug["fixed"], method=_program_name(bug).lower(),
                                                              limit=QUIXBUGS_CANDIDATES)] for bug in missing}
        found: dict[str, list[str]] = {bug["id"]: [] for bug in missing}
        # in rounds, as many candidates per program as it still lacks: most mutants fail at once, and each
        # run that does not (an equivalent mutant, a loop) costs a JVM start or the whole timeout
        while tried := [(bug, candidates[bug["id"]].pop(0)) for bug in missing
                        for _ in range(KEPT_INJECTED - len(found[bug["id"]])) if candidates[bug["id"]]]:
            jobs = [JavaJob(program={f"java_programs/{_program_name(bug)}.java": source}, tests=bug["tests"],
                            run=tuple(bug["run"]), mode=bug["mode"], timeout=QUIXBUGS_TIMEOUT,
                            support=bug["support"], program_untrusted=False) for bug, source in tried]
            for (bug, source), verdict in zip(tried, run_java_batch(jobs, workers), strict=True):
                if fails_the_same_everywhere(verdict):
                    found[bug["id"]].append(source)
        cached.update(found)
        write_cache(path, cached)
    return {bug["id"]: cached[bug["id"]] for bug in bugs}


def quixbugs_focal(limit: int | None = None, workers: int = 2) -> list[FocalClass]:
    """The first ``limit`` QuixBugs Java programs (all 40 when None) as focal classes."""
    from peftlab.tasks.java_repair.quixbugs import quixbugs_java_bugs

    bugs = quixbugs_java_bugs()[0]
    return quixbugs_focal_classes(bugs[:limit] if limit else bugs, workers)


def quixbugs_focal_classes(bugs: list[dict], workers: int = 2) -> list[FocalClass]:
    """QuixBugs bugs (:func:`peftlab.tasks.java_repair.quixbugs.quixbugs_java_bugs`) as focal classes: the
    corrected program, its real bug first among the mutants."""
    injected = injected_mutants(bugs, workers)
    focal = []
    for bug in bugs:
        name = _program_name(bug)
        reference = next(text for path, text in bug["tests"].items() if path.endswith(f"/{name}_TEST.java"))
        focal.append(FocalClass(bug["id"], bug["fixed"], f"java_programs.{name}", name.lower(),
                                (bug["buggy"], *injected[bug["id"]]), support=dict(bug["support"]),
                                reference=reference))
    return focal
