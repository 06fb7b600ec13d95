"""java-testgen's built-in training data (peftlab.tasks.java_testgen.training): HumanEval-X Java's own tests
rewritten as JUnit 4 classes, the halves that keep training and scoring apart, and (with Java) that the
rewritten tests compile, pass on the canonical solution and kill every kept mutant."""

from __future__ import annotations

import textwrap

import pytest

from peftlab.config import load_config
from peftlab.errors import UserError
from peftlab.tasks import get_task
from peftlab.tasks.java_repair.data import in_test_half
from peftlab.tasks.java_testgen import JavaTestGeneration
from peftlab.tasks.java_testgen.main_to_junit import junit_from_main
from peftlab.tasks.java_testgen.training import training_card, training_records

MAIN = textwrap.dedent("""\
    public class Main {
        public static void main(String[] args) throws Exception {
            Solution s = new Solution();
            List<Boolean> correct = Arrays.asList(
                    s.isEven(4),
                    !s.isEven(3),
                    !s.isEven(3) == true,
                    s.half(Arrays.asList(2, 4)).equals(Arrays.asList(1, 2))
            );
            if (correct.contains(false)) {
                throw new AssertionError();
            }
        }
    }
""")
ROUND_TRIP = textwrap.dedent("""\
    public class Main {
        static Random rand = new Random(42);
        public static void main(String[] args) {
            Solution s = new Solution();
            for (int i = 0; i < 10; i++) {
                if (s.decode(s.encode("a" + i)) == null) {
                    throw new AssertionError();
                }
            }
        }
    }
""")


def _problem(test: str, entry_point: str = "isEven") -> dict:
    return {"id": "fixture/1", "test": test, "entry_point": entry_point, "imports": "import java.util.*;\n"}


def test_each_check_becomes_its_own_junit_test_method():
    test = junit_from_main(_problem(MAIN))
    assert test.startswith("import java.util.*;\n\nimport org.junit.Test;\nimport static org.junit.Assert.*;\n")
    body = test[test.index("public class SolutionTest {"):]
    # the one setup statement becomes a field, so each method is one check (a cut generation keeps whole methods)
    assert body.splitlines()[1:5] == ["    private final Solution s = new Solution();", "",
                                      "    @Test", "    public void testIsEven1() throws Exception {"]
    assert body.count("@Test") == 4 and body.count("Solution s = new Solution();") == 1
    assert "    public void testIsEven1() throws Exception {\n        assertTrue(s.isEven(4));\n    }\n" in body
    assert "    public void testIsEven2() throws Exception {\n        assertFalse(s.isEven(3));\n    }\n" in body
    # `!a == b` is `(!a) == b`: negating it away would change the check
    assert "        assertTrue(!s.isEven(3) == true);\n" in body
    assert "        assertTrue(s.half(Arrays.asList(2, 4)).equals(Arrays.asList(1, 2)));\n" in body
    assert "correct" not in body and "AssertionError" not in body and "class Main" not in body
    assert body.count("{") == body.count("}") and body.endswith("    }\n}\n")


def test_setup_beyond_the_solution_opens_every_method_and_a_trailing_loop_is_the_last():
    main = MAIN.replace("Solution s = new Solution();", "Solution s = new Solution();\n        int n = 4;").replace(
        "throw new AssertionError();\n        }", "throw new AssertionError();\n        }\n        assert n == 4;")
    body = junit_from_main(_problem(main))
    assert body.count("@Test") == 5 and body.count("        Solution s = new Solution();\n        int n = 4;\n") == 5
    assert "    public void testIsEven5() throws Exception {\n        Solution s = new Solution();\n" \
           "        int n = 4;\n        assert n == 4;\n    }\n}\n" in body


def test_a_test_without_the_checks_list_keeps_its_body():
    test = junit_from_main(_problem(ROUND_TRIP, "encode"))
    assert "    static Random rand = new Random(42);\n\n    @Test\n    public void testEncode() {" in test
    assert "throw new AssertionError();" in test and "assert" not in test.replace("AssertionError", "").replace(
        "import static org.junit.Assert.*;", "")
    with pytest.raises(ValueError, match="not a `public class Main`"):
        junit_from_main(_problem("class Main {}"))


def test_the_training_halves_share_no_problem_with_the_scored_half():
    card = training_card()
    assert card["counts"] == {"train": 69, "validation": 9}
    assert card["style"] == {"asserts": 76, "main body": 2}
    trained = set(card["problem_ids"]["train"]) | set(card["problem_ids"]["validation"])
    assert len(trained) == 78 and not any(in_test_half(problem_id) for problem_id in trained)
    record = training_records("validation")[0]
    assert record["reference"].count("@Test") > 1 and record["focal_method"] in record["reference"]
    assert record["instruction"].startswith(f"// Focal method: Solution.{record['focal_method']}\n")

    def task(name, *overrides):
        return get_task(name, load_config(None, [f"task={name}", *overrides]))

    testgen = task("java-testgen")
    scored = {problem["id"] for problem in testgen.load("test")}
    codegen = {p["id"] for p in task("humaneval-x-java", "data.problems=test-half").load("test")}
    assert len(scored) == 86 and scored == codegen and not scored & trained
    assert len(task("humaneval-x-java").load("test")) == 164
    assert [r["id"] for r in testgen.load("train")] == card["problem_ids"]["train"]
    assert testgen.prepare_data(None)["counts"] == card["counts"]
    # the record's reference starts as the prompt ends (the head), so the training target is the rest
    assert record["reference"].startswith(testgen.head(record)) and testgen.head(record).endswith(
        "public class SolutionTest {\n")
    assert testgen.response(record) == record["reference"][len(testgen.head(record)):]
    assert testgen.answer_prefix(record) == "```java\n" + testgen.head(record)
    assert JavaTestGeneration.chat_stop == ("\n```",)
    with pytest.raises(UserError, match="data.focal=source scores the test split of data.loader=methods2test"):
        task("java-testgen", "data.focal=source").load("test")


@pytest.fixture(scope="module")
def java():
    from peftlab.execution.java.toolchain import toolchain

    try:
        toolchain()
    except UserError as missing:
        pytest.skip(str(missing))


def test_the_rewritten_tests_pass_and_kill_every_kept_mutant(java):
    """A sample across the shapes (the checks list, the two round trips, a `throws` clause); the bench
    script checks all 164 (bench/results/java-testgen-training.json)."""
    from peftlab.tasks.java_testgen.focal import humaneval_x_focal
    from peftlab.tasks.java_testgen.junit_scoring import score_junit_tests

    wanted = ("Java/0", "Java/12", "Java/32", "Java/162")
    focal = [f for f in humaneval_x_focal() if f.id in wanted]
    found = score_junit_tests([(f, f.reference) for f in focal], timeout=10.0)
    assert [f.id for f in focal] == list(wanted)
    for f, verdict in zip(focal, found, strict=True):
        assert verdict["passes"] and verdict["line_coverage"] > 0.5 and f.mutants, (f.id, verdict["reason"])
        assert verdict["killed"] == len(f.mutants), f.id
