"""Scoring generated tests (peftlab.tasks.testgen.generated_tests): validity, pass, coverage of the focal function
(checked against coverage.py's own command line), mutation score, and hostile tests."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from peftlab.data.mutants import OPERATORS, mutants
from peftlab.tasks.testgen.generated_tests import FocalProblem, focal_coverage, has_assertion, score_tests
from peftlab.tasks.testgen.data import behaviour_changing

CLAMP = textwrap.dedent('''\
    def clamp(x, low, high):
        """x limited to [low, high]."""
        if x < low:
            return low
        if x > high:
            return high
        return x
''')
# The reference the mutants are filtered with (as HumanEval's own tests are for HumanEval).
CLAMP_REFERENCE = textwrap.dedent('''\
    def check(candidate):
        assert candidate(-5, 0, 10) == 0
        assert candidate(15, 0, 10) == 10
        assert candidate(5, 0, 10) == 5
        assert candidate(0, 0, 10) == 0
        assert candidate(10, 0, 10) == 10
''')
COMPLETE = textwrap.dedent('''\
    import pytest


    def test_below_and_above():
        assert clamp(-1, 0, 3) == 0
        assert clamp(7, 0, 3) == 3


    def test_inside_and_edges():
        for value in (0, 1, 3):
            assert clamp(value, 0, 3) == value
''')
NO_ASSERT = "def test_calls_only():\n    clamp(-1, 0, 3)\n    clamp(7, 0, 3)\n    clamp(1, 0, 3)\n"
SYNTAX_ERROR = "def test_broken(:\n    assert clamp(1, 0, 3) == 1\n"
WRONG = "def test_wrong():\n    assert clamp(-1, 0, 3) == 0\n    assert clamp(1, 0, 3) == 2\n"


@pytest.fixture(scope="module")
def clamp_problem():
    kept = behaviour_changing([(CLAMP, "clamp", CLAMP_REFERENCE, "")])[0]
    assert kept and len(kept) < len(mutants(CLAMP, "clamp")), "the equivalent mutants (< vs <=) are filtered"
    return FocalProblem(CLAMP, "clamp", tuple(m["source"] for m in kept))


def test_the_four_fixture_cases(clamp_problem):
    complete, no_assert, syntax, wrong = score_tests(
        [(clamp_problem, t) for t in (COMPLETE, NO_ASSERT, SYNTAX_ERROR, WRONG)], timeout=3.0)
    total = len(clamp_problem.mutants)
    assert complete == {**complete, "valid": True, "passed": True, "line_coverage": 1.0, "branch_coverage": 1.0,
                        "killed": total, "mutation_score": 1.0}
    assert no_assert == {**no_assert, "valid": True, "passed": True, "line_coverage": 1.0, "branch_coverage": 1.0,
                         "killed": 0, "mutation_score": 0.0}
    assert syntax == {**syntax, "valid": False, "passed": False, "line_coverage": 0.0, "killed": 0}
    # fails on the correct function: not passing, kills nothing, keeps the coverage it reached: 4 of the 5
    # statements (not `return high`), 3 of the 4 branches (not x > high taken)
    assert wrong == {**wrong, "valid": True, "passed": False, "killed": 0, "mutation_score": 0.0,
                     "line_coverage": 0.8, "branch_coverage": 0.75}


# Ten (focal, test) cases for the cross-check against `coverage run --branch` + `coverage json`.
GRADE = textwrap.dedent('''\
    def grade(score):
        """A letter for a score out of 100."""
        if score >= 90:
            return "A"
        elif score >= 75:
            return "B"
        for cutoff, letter in ((50, "C"), (30, "D")):
            if score >= cutoff:
                return letter
        return "F"
''')
COUNT = textwrap.dedent('''\
    def count_vowels(text):
        """How many vowels text has."""
        total = 0
        for ch in text.lower():
            if ch in "aeiou":
                total += 1
        return total if total else 0
''')
COVERAGE_CASES = [
    (CLAMP, "clamp", COMPLETE), (CLAMP, "clamp", NO_ASSERT), (CLAMP, "clamp", WRONG),
    (CLAMP, "clamp", "def test_one():\n    assert clamp(5, 0, 10) == 5\n"),
    (GRADE, "grade", "def test_a():\n    assert grade(95) == 'A'\n"),
    (GRADE, "grade", "def test_c():\n    assert grade(60) == 'C'\n    assert grade(80) == 'B'\n"),
    (GRADE, "grade", "def check(candidate):\n    assert candidate(10) == 'F'\n    assert candidate(35) == 'D'\n"),
    (COUNT, "count_vowels", "def test_empty():\n    assert count_vowels('') == 0\n"),
    (COUNT, "count_vowels", "def test_word():\n    assert count_vowels('Banana') == 3\n"),
    (COUNT, "count_vowels", "import unittest\n\nclass T(unittest.TestCase):\n    def test_x(self):\n"
                            "        self.assertEqual(count_vowels('xyz'), 0)\n"),
]

DIRECT_RUNNER = textwrap.dedent('''\
    import sys, unittest
    import focal_module
    namespace = {"__name__": "__peftlab_test__", **{k: v for k, v in vars(focal_module).items() if callable(v)}}
    exec(compile(open("the_test.py").read(), "the_test.py", "exec"), namespace)
    for name, value in list(namespace.items()):
        try:
            if isinstance(value, type) and issubclass(value, unittest.TestCase) and value is not unittest.TestCase:
                unittest.TextTestRunner(stream=open("/dev/null", "w")).run(unittest.makeSuite(value))
            elif callable(value) and getattr(value, "__module__", None) == "__peftlab_test__":
                if name.startswith("test"):
                    value()
                elif name == "check":
                    value(getattr(focal_module, sys.argv[1]))
        except Exception:
            pass
''')


def test_coverage_agrees_with_coverage_command_line(tmp_path):
    verdicts = score_tests([(FocalProblem(source, entry), test) for source, entry, test in COVERAGE_CASES],
                           timeout=3.0)
    for number, ((source, entry, test), verdict) in enumerate(zip(COVERAGE_CASES, verdicts)):
        work = tmp_path / f"case{number}"
        work.mkdir()
        (work / "focal_module.py").write_text(source)
        (work / "the_test.py").write_text(test)
        (work / "direct.py").write_text(DIRECT_RUNNER)
        subprocess.run([sys.executable, "-m", "coverage", "run", "--branch", "--include=focal_module.py",
                        "direct.py", entry], cwd=work, check=True, capture_output=True, timeout=60)
        subprocess.run([sys.executable, "-m", "coverage", "json", "-o", "cov.json"], cwd=work, check=True,
                       capture_output=True, timeout=60)
        report = json.loads((work / "cov.json").read_text())["files"]["focal_module.py"]
        line, branch, statements, branches = focal_coverage(report, source, entry)
        assert statements > 0
        assert (verdict["line_coverage"], verdict["branch_coverage"]) == pytest.approx((line, branch)), number


HONEST = "def test_honest():\n    assert clamp(-1, 0, 3) == 0\n    assert clamp(1, 0, 3) == 1\n"
HOSTILE = {
    "infinite loop": HONEST + "\n\ndef test_loop():\n    while True:\n        pass\n",
    "fork": "import os\n\n" + HONEST + "\n\ndef test_fork():\n    for _ in range(50):\n        try:\n"
            "            os.fork()\n        except OSError:\n            pass\n",
    "writes outside": HONEST + "\n\ndef test_write():\n    open('/etc/peftlab-was-here', 'w').write('x')\n",
    "sys.exit(0)": "import sys\n\n" + HONEST.replace("    assert clamp(1", "    sys.exit(0)\n    assert clamp(1"),
    "tracer": "import sys\n\ndef _every_line(frame, event, arg):\n    return _every_line\n\nsys.settrace(_every_line)\n"
              "try:\n    import coverage\n    coverage.Coverage.current() and coverage.Coverage.current().stop()\n"
              "except Exception:\n    pass\n\n" + HONEST,
    "mutant loader": "import os, sys\n\n" + HONEST + "\n\ndef test_detects_mutants():\n"
                     "    # passes on the original, fails on anything else, if it could see the code under test\n"
                     "    for path in os.listdir('.'):\n        if path.endswith('.py') and 'clamp' in open(path).read():\n"
                     "            assert 'x < low' in open(path).read() and 'x > high' in open(path).read()\n"
                     "    code = getattr(clamp, '__code__', None)\n"
                     "    assert code is None or 'low' in code.co_varnames or True\n",
}


def test_hostile_tests_never_score_above_honest_execution(clamp_problem):
    names = list(HOSTILE)
    verdicts = score_tests([(clamp_problem, HONEST)] + [(clamp_problem, HOSTILE[n]) for n in names], timeout=3.0)
    honest = verdicts[0]
    assert honest["passed"] and 0 < honest["killed"] < len(clamp_problem.mutants)
    for name, verdict in zip(names, verdicts[1:]):
        for key in ("line_coverage", "branch_coverage", "killed", "mutation_score"):
            assert verdict[key] <= honest[key] + 1e-9, (name, key, verdict)
        assert not (verdict["passed"] and name in ("infinite loop", "sys.exit(0)", "writes outside")), name


def test_has_assertion_and_operator_list():
    assert has_assertion(COMPLETE) and has_assertion("def t(self):\n    self.assertEqual(1, 1)\n")
    assert not has_assertion(NO_ASSERT) and not has_assertion(SYNTAX_ERROR)
    found = {m.operator for m in mutants(GRADE + COUNT, "grade")} | {m.operator for m in mutants(COUNT, "count_vowels")}
    assert found == set(OPERATORS) - {"boolean"}
    assert {m.operator for m in mutants("def f(a, b):\n    return a and b\n", "f")} == {"boolean", "delete"}


def test_evaluate_external_tests_per_sample_rows(tmp_path, monkeypatch, capsys):
    """`peftlab evaluate --task testgen --predictions FILE`: rows {task_id, test, ...extra} from any tool,
    one verdict row per sample with the extra keys carried through."""
    from tests.conftest import run_cli_in_process

    monkeypatch.setenv("PEFTLAB_CACHE", str(tmp_path / "cache"))
    from peftlab.tasks.humaneval import load_problems

    first, second = list(load_problems().values())[:2]
    rows = [{"task_id": first["task_id"], "test": first["test"], "tool": "reference"},
            {"task_id": first["task_id"], "test": "def test_nothing():\n    pass\n", "tool": "empty"},
            {"task_id": second["task_id"], "test": "def test_broken(:\n", "tool": "broken"}]
    predictions = tmp_path / "tests.jsonl"
    predictions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, out, err = run_cli_in_process(monkeypatch, capsys, "evaluate", "--task", "testgen", "--predictions",
                                        str(predictions), "--partial", "-o", str(tmp_path / "run"),
                                        "data.test_size=2")
    assert code == 0, err
    verdicts = [json.loads(line) for line in (tmp_path / "run" / "verdicts.jsonl").read_text().splitlines()]
    assert [v["tool"] for v in verdicts] == ["reference", "empty", "broken"]
    assert verdicts[0]["passed"] and verdicts[0]["mutation_score"] == 1.0 and verdicts[0]["line_coverage"] == 1.0
    assert verdicts[1]["passed"] and verdicts[1]["killed"] == 0 and verdicts[1]["line_coverage"] == 0.0
    assert not verdicts[2]["valid"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_valid_best"] == 0.5 and metrics["mutation_best"] == 0.5 and metrics["mutation_mean"] == 0.25


def test_training_targets_are_plain_pytest_bodies():
    from peftlab.projects.tree import read_tree
    from peftlab.tasks.testgen.data import pytest_body

    files = read_tree(Path(__file__).parent / "fixtures" / "tested_project").files
    assert pytest_body(files, "tests/test_text.py::CounterTest::test_counts") == (
        "    counter = Counter()\n    for word in ('a', 'b', 'a'):\n        counter.add(word)\n"
        "    assert counter.most_common() == 'a'\n")
    assert pytest_body(files, "tests/test_arith.py::test_add") == "    assert add(2, 3) == 5\n"
    assert pytest_body(files, "tests/test_text.py::CounterTest::nope") is None
    unittest_style = {"t.py": b"import unittest\nclass T(unittest.TestCase):\n    def test_x(self):\n"
                              b"        with self.assertRaises(ValueError):\n            int('x')\n"
                              b"        self.assertTrue(1)\n        self.helper()\n    def test_y(self):\n"
                              b"        self.assertAlmostEqual(0.1 + 0.2, 0.3)\n"}
    assert pytest_body(unittest_style, "t.py::T::test_x") is None  # self.helper() has no plain form
    assert pytest_body(unittest_style, "t.py::T::test_y") == "    assert round(0.1 + 0.2 - 0.3, 7) == 0\n"


def test_an_unfinished_last_statement_is_dropped_but_nothing_else_is_repaired():
    from peftlab.tasks.testgen import drop_unfinished_tail

    assert drop_unfinished_tail("def test_x():\n    assert f(1) == 2\n    assert f([1, 2") == (
        "def test_x():\n    assert f(1) == 2\n", 1)
    assert drop_unfinished_tail("def test_x(:\n    assert f(1) == 2\n") == ("def test_x(:\n    assert f(1) == 2\n", 0)
    assert drop_unfinished_tail("def test_x():\n    assert f(1) == 2\n") == ("def test_x():\n    assert f(1) == 2\n", 0)
