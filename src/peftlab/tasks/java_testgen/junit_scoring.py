"""Score generated JUnit 4 tests by running them in the Java sandbox against a trusted focal class and its
mutants (:mod:`peftlab.execution.java`): the Java side of :mod:`peftlab.tasks.testgen.generated_tests`.

::

    FocalClass(id, source, class_name, method, mutants=(), support={}, reference="")
    score_junit_tests(items, *, timeout=3.0, workers=2, backend=None) -> list[dict]   items: (FocalClass, test)

A verdict: ``compiles`` (javac accepts the test against the focal class), ``passes`` (it declares at least one
test and every one passes on the correct class), ``line_coverage`` and ``branch_coverage`` of the focal method
(JaCoCo, from the run on the correct class; 0 when it does not compile; a method without branches has the
branch coverage of being reached, 1 or 0, as in the Python task), the counts behind them, ``mutants``,
``killed`` and ``mutation_score`` (killed / mutants: a mutant is killed when the test, passing on the correct
class and asserting something, fails or times out on it; a test that does not pass, or has no assertion,
kills none), ``status`` and ``reason``. Every run is a fresh JVM in a fresh sandbox, compiled in memory: the
test never sees a source on disk, so it can tell a mutant from the original only by its behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peftlab.tasks.humaneval_x_java.data import make_public
from peftlab.tasks.java_testgen.test_class import RunnableTest, has_assertion, runnable_test

# javac --release for every run. 17, not 11: ten HumanEval-X canonical solutions use switch rules, text blocks or
# instanceof patterns. JaCoCo 0.8.6 instruments Java 17 class files with the ASM the toolchain puts beside it
# (Debian's 9.4); tests/test_java_testgen.py checks its counts against JaCoCo's own report at this release.
RELEASE = 17


@dataclass(frozen=True)
class FocalClass:
    id: str
    source: str
    """The focal class's compilation unit (HumanEval-X's ``Solution`` with its canonical solution)."""
    class_name: str
    """Its binary name: ``Solution``, ``java_programs.GCD``."""
    method: str
    """The focal method, whose coverage is measured (all its overloads together)."""
    mutants: tuple[str, ...] = ()
    """Sources of the same file, each known to fail the dataset's own tests (equivalent mutants are out)."""
    support: dict[str, str] = field(default_factory=dict)
    """Other program-side classes (QuixBugs' ``Node``), path -> source."""
    reference: str = ""
    """The dataset's own test (HumanEval-X's ``Main``; CodeBLEU compares against it)."""

    @property
    def path(self) -> str:
        return self.class_name.replace(".", "/") + ".java"


def accessible(source: str, class_name: str) -> str:
    """``source`` with its top-level class ``class_name`` declared public, as HumanEval-X's programs are run
    (:func:`peftlab.tasks.humaneval_x_java.data.make_public` says why)."""
    return make_public(source, class_name.rpartition(".")[2])


def _job(focal: FocalClass, program: str, test: RunnableTest, timeout: float, coverage: bool):
    from peftlab.execution.java import JavaJob

    # program_untrusted=False: the program is the dataset's class (or our mutant of it), the test is untrusted
    return JavaJob(program={focal.path: accessible(program, focal.class_name)}, tests={test.path: test.source},
                   run=test.run, mode="junit", timeout=float(timeout), support=dict(focal.support),
                   program_untrusted=False,
                   coverage=(focal.class_name, focal.method) if coverage else None, release=RELEASE)


def _killed(verdict) -> bool:
    # "error" is the runner's or the machine's failure, not the test's verdict: never counted as a kill
    return verdict.status in ("failed", "timeout")


def _coverage(verdict) -> dict:
    found = verdict.coverage if verdict is not None and verdict.compiled else None
    if not found or not found.get("method_found"):
        return {"line_coverage": 0.0, "branch_coverage": 0.0, "lines_covered": 0, "lines_total": 0,
                "branches_covered": 0, "branches_total": 0}
    lines, line_total = int(found["line_covered"]), int(found["line_total"])
    branches, branch_total = int(found["branch_covered"]), int(found["branch_total"])
    return {"line_coverage": lines / line_total if line_total else 0.0,
            "branch_coverage": branches / branch_total if branch_total else float(lines > 0),
            "lines_covered": lines, "lines_total": line_total, "branches_covered": branches,
            "branches_total": branch_total}


def _invalid(total: int, reason: str, test: RunnableTest | None, status: str = "invalid") -> dict:
    return {"compiles": False, "passes": False, **_coverage(None), "mutants": total, "killed": 0,
            "mutant_errors": 0, "mutation_score": 0.0, "tests_passed": 0, "tests_total": 0, "status": status,
            "reason": reason, **_shape(test)}


def _shape(test: RunnableTest | None) -> dict:
    """What was run, and what :func:`runnable_test` changed (each verdict row says it)."""
    return {"run": list(test.run) if test else [], "wrapped": bool(test and test.wrapped),
            "tail_dropped": bool(test and test.tail_dropped),
            "focal_copy_dropped": bool(test and test.focal_copy_dropped)}


def score_junit_tests(items: list[tuple[FocalClass, str]], *, timeout: float = 3.0, workers: int = 2,
                      backend=None) -> list[dict]:
    """One verdict (see the module docstring) per ``(focal class, test text)``, in order. The test text is
    made runnable by :func:`~peftlab.tasks.java_testgen.test_class.runnable_test` first."""
    from peftlab.execution.java import run_java_batch

    tests = [runnable_test(test, focal.class_name) for focal, test in items]
    runnable = [i for i, test in enumerate(tests) if test is not None]
    firsts = dict(zip(runnable, run_java_batch([_job(items[i][0], items[i][0].source, tests[i], timeout, True)
                                                for i in runnable], workers, backend=backend)))
    mutant_runs = [(i, mutant) for i in runnable
                   if firsts[i].status == "passed" and has_assertion(tests[i].source) for mutant in items[i][0].mutants]
    outcomes = run_java_batch([_job(items[i][0], mutant, tests[i], timeout, False) for i, mutant in mutant_runs],
                              workers, backend=backend)
    killed, errors = [0] * len(items), [0] * len(items)
    for (index, _), verdict in zip(mutant_runs, outcomes, strict=True):
        killed[index] += _killed(verdict)
        errors[index] += verdict.status == "error"
    verdicts = []
    for index, (focal, _) in enumerate(items):
        total = len(focal.mutants)
        first, test = firsts.get(index), tests[index]
        if first is None:
            verdicts.append(_invalid(total, "the answer holds no code", None))
            continue
        if not first.compiled:
            status = "invalid" if first.compiled is False else "error"
            verdicts.append(_invalid(total, first.reason, test, status))
            continue
        passes = first.status == "passed"
        if passes and not has_assertion(test.source):
            reason = "passed, but asserts nothing: it kills no mutant"
        else:
            reason = first.reason
        verdicts.append({"compiles": True, "passes": passes, **_coverage(first), "mutants": total,
                         "killed": killed[index], "mutant_errors": errors[index],
                         "mutation_score": killed[index] / total if total else 0.0,
                         "tests_passed": first.tests_passed, "tests_total": first.tests_total,
                         "status": "passed" if passes else first.status, "reason": reason,
                         **_shape(test)})
    return verdicts
