"""Program repair in Java (task java-repair): every QuixBugs Java bug fails its tests and its fix passes; what
is plausible, an exact fix, compiling; the bring-your-own Java bug format; answers cut to their class; the
HumanEval-X split and execution-validated training bugs."""

from __future__ import annotations

import collections
import json
import re

import pytest

from peftlab.config import load_config
from peftlab.errors import UserError
from peftlab.execution.java import JavaJob, run_java_batch
from peftlab.tasks import get_task
from peftlab.tasks.java_repair.data import candidate_program, in_test_half, java_job, read_java_bugs
from peftlab.tasks.java_repair.quixbugs import DROPPED_TESTS, quixbugs_java_bugs
from peftlab.tasks.java_repair.source import declaration_tokens, source_path


def _java_available() -> bool:
    from peftlab.execution.java.toolchain import toolchain

    try:
        toolchain()
    except UserError:
        return False
    return True


needs_java = pytest.mark.skipif(not _java_available(), reason="no Java toolchain (JDK 17-23, JUnit 4, JaCoCo)")

MAX_OF = """package demo;

import java.util.List;

public class MaxOf {
    public static int max(int a, int b) {
        return a < b ? a : b;
    }
}
"""
MAX_OF_TEST = """package demo;

import org.junit.Test;
import static org.junit.Assert.assertEquals;

public class MaxOfTest {
    @Test public void first() { assertEquals(3, MaxOf.max(3, 2)); }
    @Test public void second() { assertEquals(5, MaxOf.max(1, 5)); }
}
"""
# tests that the buggy version passes too: only the identity rule keeps it from being "plausible". The
# classes are public: the runner loads tests and program in two class loaders, so package access fails.
WEAK = {"id": "weak", "buggy": "public class Twice { public static int of(int x) { return x + x + 0; } }\n",
        "tests": "public class Main { public static void main(String[] a) { if (Twice.of(2) != 4) "
                 "throw new AssertionError(); } }\n", "run": "Main", "mode": "main"}


def _bug_file(tmp_path, rows) -> str:
    path = tmp_path / "bugs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def _task(*extra):
    return get_task("java-repair", load_config(None, ["task=java-repair", *extra]))


@needs_java
def test_every_quixbugs_java_bug_fails_and_its_fix_passes():
    bugs, excluded = quixbugs_java_bugs()
    assert len(bugs) == 40 and len({bug["id"] for bug in bugs}) == 40
    assert excluded == {f"{name}::{test}": why for name, tests in DROPPED_TESTS.items() for test, why in tests.items()}
    # each buggy program alone, as a candidate runs; the 40 fixes together in one JVM (a fix cannot make
    # another's test fail, and one run instead of 40 halves the test's time)
    tests, support = ({path: text for bug in bugs for path, text in bug[key].items()} for key in ("tests", "support"))
    fixes = JavaJob(program={source_path(bug["buggy"]): bug["fixed"] for bug in bugs}, tests=tests, support=support,
                    run=tuple(name for bug in bugs for name in bug["run"]), timeout=60.0)
    *buggy, fixed = run_java_batch([*(java_job(bug, bug["buggy"], timeout=3.0) for bug in bugs), fixes], workers=2)
    # a timeout is a failure: BITCOUNT, FIND_FIRST_IN_SORTED and SQRT loop forever on some input
    assert [(b["id"], v.status) for b, v in zip(bugs, buggy) if v.status not in ("failed", "timeout")] == []
    assert [b["id"] for b, v in zip(bugs, buggy) if not v.compiled] == []
    assert [(case["name"], case["reason"]) for case in fixed.cases if case["status"] != "passed"] == []
    assert fixed.status == "passed", fixed.reason
    per_program = collections.Counter(re.search(r"\.(\w+)_TEST\)$", case["name"]).group(1) for case in fixed.cases)
    assert set(per_program) == {bug["id"].split("/")[1] for bug in bugs} and min(per_program.values()) >= 3
    assert [v.tests_total for v in buggy] == [per_program[bug["id"].split("/")[1]] for bug in bugs]


def test_quixbugs_java_problems_show_the_class_without_its_package():
    task = _task("data.test_size=2")
    problems = task.load("test")
    assert [p["id"] for p in problems] == ["quixbugs-java/BITCOUNT", "quixbugs-java/BREADTH_FIRST_SEARCH"]
    first = problems[0]
    assert "package" not in first["instruction"] and "public class BITCOUNT" in first["instruction"]
    assert "n = (n & (n - 1));" in first["reference"] and "package" not in first["reference"]
    assert task.prompt(first) == f"### Buggy class:\n{first['instruction']}\n### Fixed class:\n"
    assert "```java\n" in task.user_message(first) and task.answer_prefix(first) == "```java\n"


def test_tokens_ignore_whitespace_comments_package_and_imports():
    one = "package a;\nimport java.util.*;\nclass A { int f() { return 1+2; } }"
    two = "// the fix\nimport java.util.List;\nclass A {\n  /* sum */ int f() {\n    return 1 + 2;\n  }\n}\n"
    assert declaration_tokens(one) == declaration_tokens(two)
    assert declaration_tokens("class A { int x = a - -b; }") != declaration_tokens("class A { int x = a--b; }")
    assert declaration_tokens('class A { String s = "a  b"; }') != declaration_tokens('class A { String s = "a b"; }')
    assert source_path(MAX_OF) == "demo/MaxOf.java" and source_path("class A {}\nclass B {}") == "A.java"


@pytest.mark.parametrize("answer, expected", [
    ("Here is the fixed class:\n```java\npublic class A {\n    int f() { return 1; }\n}\n```\nThe bug was ...",
     "public class A {\n    int f() { return 1; }\n}\n"),
    ("The fix:\n\nimport java.util.*;\n\npublic class A {\n    String s = \"}\";\n}\n\nThis works because }",
     "import java.util.*;\n\npublic class A {\n    String s = \"}\";\n}\n"),
    ("class A { }\nclass B { }\n### Buggy class:\nclass C {}", "class A { }\nclass B { }\n"),
    ("public class A {\n    int f() {", "public class A {\n    int f() {\n"),  # cut off: kept, it will not compile
])
def test_postprocess_extracts_the_class(answer, expected):
    assert _task().postprocess(answer) == expected


def test_postprocess_in_the_chat_format_stops_at_the_closing_fence():
    task = _task()
    task.chat = True
    assert task.postprocess("class A {\n}\n```\nExplanation: ...") == "class A {\n}\n"


def test_the_program_run_gets_the_bugs_package_and_imports():
    bug = {"buggy": MAX_OF}
    program = candidate_program(bug, "package elsewhere;\npublic class MaxOf { }\n")
    assert program.startswith("package demo;\nimport java.util.List;\n") and "elsewhere" not in program


@needs_java
def test_scores_of_hand_written_candidates(tmp_path):
    fixed = MAX_OF.replace("a < b ? a : b", "a > b ? a : b")
    rows = [{"id": "max", "buggy": MAX_OF, "fixed": fixed, "tests": {"demo/MaxOfTest.java": MAX_OF_TEST},
             "run": ["demo.MaxOfTest"], "operator": "comparison"}, WEAK]
    task = _task(f"data.bugs={_bug_file(tmp_path, rows)}")
    exact = "public class MaxOf {\n  // fixed\n  public static int max(int a, int b) { return a > b ? a : b; }\n}\n"
    another = fixed.replace("a > b ? a : b", "Math.max(a, b)")
    broken = fixed.replace("a > b ? a : b;", "a > b ? a : b")
    renamed = fixed.replace("max(int", "maximum(int")
    twice = WEAK["buggy"].replace("x + x + 0", "2 * x")
    evaluation = task.evaluate([{"id": "max", "candidates": [exact, another, broken, renamed]},
                                {"id": "weak", "candidates": [WEAK["buggy"], twice]}])
    verdicts = {(row["task_id"], row["candidate"]): row for row in evaluation.files["verdicts.jsonl"]}
    flags = {key: (row["passed"], row["exact_fix"], row["compiles"]) for key, row in verdicts.items()}
    assert flags == {("max", 0): (True, True, True), ("max", 1): (True, False, True),
                     ("max", 2): (False, False, False), ("max", 3): (False, False, False),
                     ("weak", 0): (False, False, True), ("weak", 1): (True, False, True)}
    assert verdicts[("weak", 0)]["reason"] == "identical to the buggy code"
    assert "does not compile" in verdicts[("max", 2)]["reason"]
    metrics = evaluation.metrics
    assert metrics["plausible@1"] == pytest.approx((2 / 4 + 1 / 2) / 2)
    assert metrics["compiles@1"] == pytest.approx((2 / 4 + 1) / 2)  # a renamed method: the tests do not compile
    assert "exact_fix@1" not in metrics  # the weak bug has no known fix: no mean over some bugs only
    assert evaluation.scored[0]["scores"]["exact_fix@1"] == pytest.approx(1 / 4)
    assert metrics["plausible@1_by_operator"] == {"comparison": 0.5, "unknown": 0.5}
    assert {"plausible@1", "compiles@1", "plausible@2"} <= set(metrics["metric_specs"])


def test_bring_your_own_java_bugs(tmp_path):
    rows = [{"id": "max", "buggy": MAX_OF, "tests": MAX_OF_TEST, "run": "demo.MaxOfTest", "fixed": MAX_OF}, WEAK]
    bugs = read_java_bugs(_bug_file(tmp_path, rows))
    assert bugs[0]["tests"] == {"demo/MaxOfTest.java": MAX_OF_TEST} and bugs[0]["run"] == ["demo.MaxOfTest"]
    assert bugs[0]["mode"] == "junit" and bugs[0]["support"] == {} and bugs[1]["mode"] == "main"


GOOD = {"id": "g", "buggy": MAX_OF, "tests": MAX_OF_TEST, "run": ["demo.MaxOfTest"]}


@pytest.mark.parametrize("bad, message", [
    ({"id": "b", "buggy": MAX_OF, "tests": MAX_OF_TEST}, r":2: missing key\(s\) run"),
    ({**GOOD, "id": "b", "buggy": "int f() { return 1; }"}, r":2 \(b\): 'buggy' declares no class"),
    ({**GOOD, "id": "b", "tests": {"MaxOfTest.txt": MAX_OF_TEST}}, r":2 \(b\): 'tests' must map file paths"),
    ({**GOOD, "id": "b", "tests": {}}, r":2 \(b\): 'tests' must be a non-empty object"),
    ({**GOOD, "id": "b", "run": []}, r":2 \(b\): 'run' must name the test classes"),
    ({**GOOD, "id": "b", "mode": "gradle"}, r":2 \(b\): 'mode' must be one of junit, main, got 'gradle'"),
    ({**GOOD, "id": "b", "fixed": 3}, r":2 \(b\): 'fixed' must be a string"),
    ({**GOOD, "id": "b", "support": {"Node.java": 1}}, r":2 \(b\): 'support' must map file paths"),
    ({**GOOD, "id": 7}, r":2: 'id' must be str"),
    (GOOD, r":2: id 'g' appears more than once"),
])
def test_a_bad_java_bug_row_is_one_line_naming_it(tmp_path, bad, message):
    with pytest.raises(UserError) as raised:
        read_java_bugs(_bug_file(tmp_path, [GOOD, bad]))
    assert "\n" not in str(raised.value) and re.search(message, str(raised.value)), str(raised.value)


def test_an_unknown_test_set_is_one_line(tmp_path):
    with pytest.raises(UserError, match="data.bugs=nosuch: not quixbugs, humaneval-x or an existing JSONL file"):
        _task("data.bugs=nosuch").load("test")


def test_the_humaneval_x_test_half_is_fixed():
    ids = [f"Java/{n}" for n in range(164)]
    held_out = [i for i in ids if in_test_half(i)]
    assert len(held_out) == 86 and held_out[:3] == ["Java/1", "Java/2", "Java/3"]  # docs/repair.md says so


def test_training_bugs_come_from_the_problems_outside_the_test_half(monkeypatch):
    from peftlab.tasks.java_repair import training

    def fake(per_problem):
        assert per_problem == training.PER_PROBLEM
        return [{"id": f"Java/{n}/bug{rank}", "problem_id": f"Java/{n}", "operator": "constant"}
                for n in range(40) for rank in range(2)]
    monkeypatch.setattr(training, "humaneval_x_bugs", fake)
    train, validation = training.training_bugs("train"), training.training_bugs("validation")
    assert train and validation and all(b["split"] == "train" for b in train)
    used = {b["problem_id"] for b in train + validation}
    assert not any(in_test_half(i) for i in used)
    assert {b["problem_id"] for b in train}.isdisjoint(b["problem_id"] for b in validation)
    assert used == {f"Java/{n}" for n in range(40) if not in_test_half(f"Java/{n}")}
    card = training.training_card()
    assert card["counts"] == {"train": len(train), "validation": len(validation)}
    assert card["operators"] == {"constant": len(train) + len(validation)}
    assert card["problems"] == {"train": len(train) // 2, "validation": len(validation) // 2}


def test_training_problems_never_meet_the_humaneval_x_test_half():
    from peftlab.tasks.java_repair.training import split_of

    splits = {f"Java/{n}": split_of(f"Java/{n}") for n in range(164)}
    assert all((split is None) == in_test_half(i) for i, split in splits.items())
    assert list(splits.values()).count("validation") == 9 and list(splits.values()).count("train") == 69


@needs_java
def test_humaneval_x_bugs_are_split_between_test_and_training():
    from peftlab.tasks.java_repair.data import humaneval_x_test_bugs
    from peftlab.tasks.java_repair.training import training_card

    test = humaneval_x_test_bugs()
    assert test and all(in_test_half(bug["problem_id"]) for bug in test)
    assert len({bug["problem_id"] for bug in test}) == len(test)  # one bug per problem
    assert all(bug["mode"] == "main" and bug["run"] == ["Main"] for bug in test)
    card = training_card()
    assert {i for ids in card["problem_ids"].values() for i in ids}.isdisjoint(bug["problem_id"] for bug in test)
    # every scored bug, re-checked here as its build checked it: the bug fails its problem's test, the fix passes
    verdicts = run_java_batch([java_job(bug, program, timeout=5.0) for bug in test
                               for program in (bug["buggy"], bug["fixed"])], workers=2)
    statuses = [(bug["id"], buggy.status, fixed.status) for bug, buggy, fixed in zip(test, verdicts[::2], verdicts[1::2])]
    assert [row for row in statuses if row[1:] != ("failed", "passed")] == [] and len(statuses) >= 80
