"""java-testgen, executed (peftlab.tasks.java_testgen): generated JUnit 4 tests compiled and run against a focal
class; compiles, passes, JaCoCo coverage of the focal method (checked against JaCoCo's own agent and report),
mutation score; tests that try to inflate a score; the test text made runnable; the task around it."""

from __future__ import annotations

import os
import subprocess
import textwrap
import xml.etree.ElementTree as ElementTree
import zipfile

import pytest

from peftlab.config import load_config
from peftlab.errors import UserError
from peftlab.tasks import get_task
from peftlab.tasks.java_testgen import JavaTestGeneration
from peftlab.tasks.java_testgen.focal import focal_instruction
from peftlab.tasks.java_testgen.junit_scoring import RELEASE, FocalClass, accessible, score_junit_tests
from peftlab.tasks.java_testgen.test_class import extract_test, has_assertion, runnable_test

FOCAL = textwrap.dedent("""\
    import java.util.*;

    class Solution {
        public int sumOfEvens(List<Integer> numbers) {
            int total = 0;
            for (int n : numbers) {
                if (n % 2 == 0) {
                    total += n;
                }
            }
            return total;
        }

        public String unrelated(int x) {
            return x > 0 ? "positive" : "not positive";
        }
    }
""")
# Behaviour-changing by construction (each fails the complete test below), as the datasets' mutants are.
MUTANTS = (FOCAL.replace("n % 2 == 0", "n % 2 == 1"), FOCAL.replace("total += n", "total -= n"),
           FOCAL.replace("int total = 0", "int total = 1"))
SUM = FocalClass("fixture/0", FOCAL, "Solution", "sumOfEvens", MUTANTS, reference="")


def _test_class(body: str, imports: str = "") -> str:
    return f"{imports}public class SolutionTest {{\n{textwrap.indent(textwrap.dedent(body), '    ')}}}\n"


COMPLETE = _test_class("""\
    @Test
    public void sumsTheEvenNumbers() {
        assertEquals(6, new Solution().sumOfEvens(Arrays.asList(1, 2, 3, 4)));
    }

    @Test
    public void anEmptyListSumsToZero() {
        assertEquals(0, new Solution().sumOfEvens(new ArrayList<>()));
    }
""")
NO_ASSERTION = _test_class("""\
    @Test
    public void callsOnly() {
        new Solution().sumOfEvens(Arrays.asList(1, 2, 3, 4));
    }
""")
ONLY_ODD = _test_class("""\
    @Test
    public void oddNumbersSumToZero() {
        assertEquals(0, new Solution().sumOfEvens(Arrays.asList(1, 3)));
    }
""")
DOES_NOT_COMPILE = _test_class("""\
    @Test
    public void callsAMethodThatIsNotThere() {
        assertEquals(6, new Solution().sumOfAll(Arrays.asList(1, 2, 3)));
    }
""")
FAILS_ON_CORRECT = COMPLETE.replace("assertEquals(6,", "assertEquals(7,")
SWALLOWS = _test_class("""\
    @Test
    public void swallowsEveryFailure() {
        try {
            assertEquals(6, new Solution().sumOfEvens(Arrays.asList(1, 2, 3, 4)));
            assertEquals(0, new Solution().sumOfEvens(new ArrayList<>()));
        } catch (Throwable ignored) {
        }
    }

    @Test
    public void swallowsAssertionErrors() {
        try {
            assertEquals(6, new Solution().sumOfEvens(Arrays.asList(1, 2, 3, 4)));
        } catch (AssertionError ignored) {
        }
    }
""")
EXITS = {
    "exit in a test": COMPLETE.replace("assertEquals(0, new", "System.exit(0);\n        assertEquals(0, new"),
    "halt in a test": COMPLETE.replace("assertEquals(0, new", "Runtime.getRuntime().halt(0);\n        assertEquals(0, new"),
    "exit while the class loads": COMPLETE.replace("public class SolutionTest {",
                                                   "public class SolutionTest {\n    static { System.exit(0); }"),
}
# Tell a mutant from the original by its text: it needs the source (or the class's bytes) from disk.
READS_THE_SOURCE = _test_class("""\
    @Test
    public void readsTheFocalSource() throws Exception {
        String source = new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get("Solution.java")));
        assertTrue(source.contains("n % 2 == 0") && source.contains("total += n") && source.contains("total = 0"));
    }
""")
READS_OR_GIVES_UP = _test_class("""\
    @Test
    public void readsTheFocalSourceIfItCan() {
        String source;
        try {
            source = new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get("Solution.java")));
        } catch (Throwable denied) {
            return;
        }
        assertTrue(source.contains("n % 2 == 0") && source.contains("total += n") && source.contains("total = 0"));
    }
""")
READS_THE_CLASS_BYTES = _test_class("""\
    @Test
    public void readsTheClassFile() {
        assertNotNull(Solution.class.getResourceAsStream("Solution.class"));
    }

    @Test
    public void readsTheClassFileThroughTheTestLoader() {
        assertNotNull(getClass().getClassLoader().getResource("Solution.class"));
    }
""")
# Coverage belongs to the focal class: setting JaCoCo's probes from the test is refused.
SETS_THE_PROBES = ONLY_ODD.replace(
    "    @Test\n    public void oddNumbersSumToZero",
    "    @Test\n    public void setsEveryProbe() {\n        try {\n"
    "            java.util.Arrays.fill(PeftlabJavaRunner.Probes.probes(0L, \"Solution\", 64), true);\n"
    "        } catch (Throwable refused) {\n        }\n    }\n\n    @Test\n    public void oddNumbersSumToZero")


@pytest.fixture(scope="module")
def java():
    from peftlab.execution.java.toolchain import toolchain

    try:
        return toolchain()
    except UserError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def verdicts(java):
    """Every fixture test scored in one batch (one JVM per run, two at a time)."""
    named = {"complete": COMPLETE, "no assertion": NO_ASSERTION, "only odd": ONLY_ODD,
             "does not compile": DOES_NOT_COMPILE, "fails on correct": FAILS_ON_CORRECT, "swallows": SWALLOWS,
             **EXITS, "reads the source": READS_THE_SOURCE, "reads or gives up": READS_OR_GIVES_UP,
             "reads the class bytes": READS_THE_CLASS_BYTES, "sets the probes": SETS_THE_PROBES, "empty": "  \n"}
    found = score_junit_tests([(SUM, test) for test in named.values()], timeout=5.0)
    return dict(zip(named, found, strict=True))


def test_a_complete_test_covers_the_focal_method_and_kills_every_mutant(verdicts):
    v = verdicts["complete"]
    assert (v["compiles"], v["passes"], v["status"], v["tests_passed"], v["tests_total"]) == (True, True, "passed", 2, 2)
    assert (v["line_coverage"], v["branch_coverage"]) == (1.0, 1.0)
    assert (v["lines_covered"], v["lines_total"], v["branches_covered"], v["branches_total"]) == (6, 6, 4, 4)
    assert (v["mutants"], v["killed"], v["mutation_score"]) == (3, 3, 1.0)


def test_a_test_without_assertions_covers_but_kills_nothing(verdicts):
    v = verdicts["no assertion"]
    assert v["passes"] and v["line_coverage"] == 1.0 and v["branch_coverage"] == 1.0
    assert (v["killed"], v["mutation_score"]) == (0, 0.0) and "asserts nothing" in v["reason"]


def test_partial_coverage_counts_the_focal_method_only(verdicts):
    v = verdicts["only odd"]  # the even branch is never taken; `unrelated` is not the focal method
    assert v["passes"] and (v["lines_covered"], v["lines_total"], v["branches_covered"], v["branches_total"]) == (5, 6, 3, 4)
    assert v["killed"] == 2  # `total -= n` is on the line it never reaches


def test_a_test_that_does_not_compile_is_invalid_and_scores_nothing(verdicts):
    v = verdicts["does not compile"]
    assert (v["compiles"], v["passes"], v["status"]) == (False, False, "invalid")
    assert "cannot find symbol" in v["reason"]
    assert v["line_coverage"] == v["branch_coverage"] == v["mutation_score"] == 0.0 and v["killed"] == 0
    assert verdicts["empty"]["status"] == "invalid" and not verdicts["empty"]["compiles"]


def test_a_test_failing_on_the_correct_class_does_not_pass_and_kills_nothing(verdicts):
    v = verdicts["fails on correct"]
    assert v["compiles"] and not v["passes"] and v["status"] == "failed" and "expected:<7> but was:<6>" in v["reason"]
    assert (v["killed"], v["mutation_score"]) == (0, 0.0)  # though `total = 1` would make it pass
    assert v["line_coverage"] == 1.0  # what it ran is still covered


def test_swallowing_failures_passes_but_kills_nothing(verdicts):
    v = verdicts["swallows"]
    assert v["passes"] and v["line_coverage"] == 1.0 and (v["killed"], v["mutation_score"]) == (0, 0.0)


@pytest.mark.parametrize("name", sorted(EXITS))
def test_exiting_early_is_denied_and_fails(verdicts, name):
    v = verdicts[name]
    assert v["compiles"] and not v["passes"] and v["status"] == "failed", v
    assert '"exitVM.0"' in v["reason"] or "ExceptionInInitializerError" in v["reason"]
    assert v["mutation_score"] == 0.0


def test_a_test_cannot_read_the_focal_source_or_its_class_file(verdicts):
    read = verdicts["reads the source"]
    assert not read["passes"] and "AccessControlException" in read["reason"] and read["mutation_score"] == 0.0
    gives_up = verdicts["reads or gives up"]  # passes on the original only because it learned nothing
    assert gives_up["passes"] and gives_up["killed"] == 0
    bytes_ = verdicts["reads the class bytes"]
    assert not bytes_["passes"] and bytes_["tests_passed"] == 0 and bytes_["tests_total"] == 2


def test_a_test_cannot_set_the_coverage_probes(verdicts):
    honest, cheat = verdicts["only odd"], verdicts["sets the probes"]
    assert cheat["passes"]
    assert (cheat["lines_covered"], cheat["branches_covered"]) == (honest["lines_covered"], honest["branches_covered"])


JACOCO_XML = textwrap.dedent("""\
    import java.io.*;
    import org.jacoco.core.analysis.*;
    import org.jacoco.core.tools.ExecFileLoader;
    import org.jacoco.report.IReportVisitor;
    import org.jacoco.report.xml.XMLFormatter;

    public class JacocoXml {  // JaCoCo's own XML report of an agent's .exec over a folder of class files
        public static void main(String[] args) throws Exception {
            ExecFileLoader loader = new ExecFileLoader();
            loader.load(new File(args[0]));
            CoverageBuilder builder = new CoverageBuilder();
            new Analyzer(loader.getExecutionDataStore(), builder).analyzeAll(new File(args[1]));
            try (OutputStream out = new FileOutputStream(args[2])) {
                IReportVisitor visitor = new XMLFormatter().createVisitor(out);
                visitor.visitInfo(loader.getSessionInfoStore().getInfos(), loader.getExecutionDataStore().getContents());
                visitor.visitBundle(builder.getBundle("fixture"), null);
                visitor.visitEnd();
            }
        }
    }
""")


def _jar(name: str) -> str:
    """A jar of the Java library folders the toolchain searches (the test skips where one is missing)."""
    from peftlab.execution.java import toolchain

    folders = [d for d in os.environ.get("PEFTLAB_JAVA_LIBS", "").split(os.pathsep) if d] + list(toolchain.JAR_DIRS)
    found = next((os.path.join(d, name) for d in folders if os.path.isfile(os.path.join(d, name))), None)
    if found is None:
        pytest.skip(f"{name} is not installed (Debian: libjacoco-java ships the agent and the report)")
    return found


def _jacoco_report_counts(java, tmp_path, focal: FocalClass, test: str) -> dict:
    """Line and branch counters of the focal method in JaCoCo's XML report, for the same sources compiled by
    javac and run by JUnitCore under the standard JaCoCo agent (shipped inside org.jacoco.agent.jar)."""
    jars = {name: _jar(name) for name in ("junit4.jar", "hamcrest-core.jar", "org.jacoco.core.jar",
                                          "org.jacoco.report.jar", "org.jacoco.agent.jar", "asm.jar", "asm-commons.jar",
                                          "asm-tree.jar")}
    with zipfile.ZipFile(jars["org.jacoco.agent.jar"]) as archive:
        archive.extract("jacocoagent.jar", tmp_path)
    prepared = runnable_test(test, focal.class_name)
    sources, classes = tmp_path / "src", tmp_path / "classes"
    sources.mkdir()
    (sources / focal.path).write_text(accessible(focal.source, focal.class_name))  # what the runner compiles
    (sources / prepared.path).write_text(prepared.source)
    classpath = ":".join([str(classes), jars["junit4.jar"], jars["hamcrest-core.jar"]])
    subprocess.run([java.javac, "-g", "-proc:none", "-nowarn", "--release", str(RELEASE), "-encoding", "UTF-8", "-d",
                    str(classes), "-cp", classpath, str(sources / focal.path), str(sources / prepared.path)], check=True)
    execution = tmp_path / "jacoco.exec"
    subprocess.run([java.java, f"-javaagent:{tmp_path / 'jacocoagent.jar'}=destfile={execution}", "-cp", classpath,
                    "org.junit.runner.JUnitCore", *prepared.run], check=True, capture_output=True)
    (tmp_path / "JacocoXml.java").write_text(JACOCO_XML)
    report_path = ":".join(jars[j] for j in ("org.jacoco.core.jar", "org.jacoco.report.jar", "asm.jar",
                                             "asm-commons.jar", "asm-tree.jar"))
    subprocess.run([java.javac, "-d", str(tmp_path / "tool"), "-cp", report_path, str(tmp_path / "JacocoXml.java")],
                   check=True)
    (only_focal := tmp_path / "focal-classes").mkdir()
    (only_focal / f"{focal.class_name}.class").write_bytes((classes / f"{focal.class_name}.class").read_bytes())
    subprocess.run([java.java, "-cp", f"{tmp_path / 'tool'}:{report_path}", "JacocoXml", str(execution),
                    str(only_focal), str(tmp_path / "report.xml")], check=True)
    method = next(m for m in ElementTree.parse(tmp_path / "report.xml").iter("method") if m.get("name") == focal.method)
    counters = {c.get("type"): (int(c.get("covered")), int(c.get("missed"))) for c in method.iter("counter")}
    (lines, lines_missed), (branches, branches_missed) = counters["LINE"], counters.get("BRANCH", (0, 0))
    return {"lines_covered": lines, "lines_total": lines + lines_missed, "branches_covered": branches,
            "branches_total": branches + branches_missed}


COUNTS = ("lines_covered", "lines_total", "branches_covered", "branches_total")
# Java 16/17 constructs (HumanEval-X's solutions have them): an instanceof pattern, switch rules, a text block.
MODERN = FocalClass("fixture/1", textwrap.dedent('''\
    class Solution {
        public String describe(Object value, int size) {
            if (value instanceof String text && !text.isEmpty()) {
                return "text " + text;
            }
            return switch (size) {
                case 0 -> "none";
                case 1, 2 -> "few";
                default -> """
                    many""".strip();
            };
        }
    }
'''), "Solution", "describe")
MODERN_TEST = _test_class("""\
    @Test
    public void describesSome() {
        assertEquals("text a", new Solution().describe("a", 0));
        assertEquals("none", new Solution().describe(null, 0));
        assertEquals("many", new Solution().describe(7, 5));
    }
""")


@pytest.mark.parametrize("name, test", [("complete", COMPLETE), ("only odd", ONLY_ODD)])
def test_coverage_equals_jacoco_s_own_report(java, verdicts, tmp_path, name, test):
    ours = {key: verdicts[name][key] for key in COUNTS}
    assert ours == _jacoco_report_counts(java, tmp_path, SUM, test)


def test_coverage_of_java_17_code_equals_jacoco_s_own_report(java, tmp_path):
    (verdict,) = score_junit_tests([(MODERN, MODERN_TEST)], timeout=5.0)
    assert verdict["passes"] and 0 < verdict["branches_covered"] < verdict["branches_total"], verdict
    assert {key: verdict[key] for key in COUNTS} == _jacoco_report_counts(java, tmp_path, MODERN, MODERN_TEST)


# ---------------------------------------------------------------------------------- the test text


def test_a_fenced_chat_answer_is_extracted_with_junit_s_imports():
    answer = ("Here is a test class:\n```java\nimport org.junit.Test;\n\npublic class SolutionTest {\n"
              "    @Test\n    public void t() {\n        assertEquals(\"}\", new Solution().f(\"{\"));\n    }\n}\n"
              "```\nIt checks the braces.")
    text = extract_test(answer, [])
    assert text.startswith("import org.junit.*;\nimport static org.junit.Assert.*;\nimport java.util.*;\n")
    assert text.rstrip().endswith("}") and "It checks" not in text and "Here is" not in text
    assert extract_test(text, []) == text  # once is enough
    prepared = runnable_test(text, "Solution")
    assert (prepared.path, prepared.run, prepared.wrapped) == ("SolutionTest.java", ("SolutionTest",), False)
    assert extract_test("I cannot write that.", []).strip().endswith("I cannot write that.")  # left to javac


def test_bare_test_methods_are_wrapped_and_a_cut_off_tail_dropped():
    methods2test_style = ("@Test\npublic void sums() {\n    assertEquals(6, new Solution().sumOfEvens(Arrays.asList(2, 4)));\n"
                          "}\n\n@Test\npublic void cutOff() {\n    assertEquals(0, new Sol")
    prepared = runnable_test(methods2test_style, "Solution")
    assert prepared.wrapped and prepared.tail_dropped and prepared.run == ("SolutionTest",)
    assert "cutOff" not in prepared.source and prepared.source.rstrip().endswith("}\n}")
    in_a_class = "public class T {\n    @Test public void a() { assertTrue(true); }\n    @Test public void b() { int x = 1;\n"
    closed = runnable_test(in_a_class, "Solution")
    assert closed.tail_dropped and "void b" not in closed.source and closed.source.count("{") == closed.source.count("}")


def test_a_repeated_focal_class_is_removed_so_the_dataset_s_class_is_tested():
    answer = FOCAL.replace("return total;", "return 6;") + "\n" + COMPLETE  # its own copy, and a wrong one
    prepared = runnable_test(answer, "Solution")
    assert prepared.focal_copy_dropped and "return 6;" not in prepared.source and "class Solution " not in prepared.source
    assert prepared.run == ("SolutionTest",) and "import java.util.*;" in prepared.source


def test_the_test_is_put_in_the_focal_class_s_package():
    prepared = runnable_test("package com.example;\nimport org.junit.Test;\npublic class GcdTest {\n"
                             "    @Test public void t() { assertEquals(1, GCD.gcd(3, 4)); }\n}\n", "java_programs.GCD")
    assert prepared.source.startswith("package java_programs;\n") and "com.example" not in prepared.source
    assert (prepared.path, prepared.run) == ("java_programs/GcdTest.java", ("java_programs.GcdTest",))


def test_assertions_are_read_from_code_not_comments_or_strings():
    assert has_assertion("assertEquals(1, f());") and has_assertion("assertThat(x, is(1));")
    assert has_assertion("@Test(expected = IllegalArgumentException.class)") and has_assertion("fail();")
    assert not has_assertion('// assertEquals(1, f())\nString s = "fail(";\nf();')


def test_the_focal_class_is_made_public_without_changing_its_lines():
    made = accessible(FOCAL, "Solution")
    assert "public class Solution {" in made and made.count("\n") == FOCAL.count("\n")
    assert accessible(made, "Solution") == made


# ----------------------------------------------------------------------------------------- the task


def _task(*overrides):
    return get_task("java-testgen", load_config(None, ["task=java-testgen", *overrides]))


def test_the_test_set_option_and_its_defaults(tmp_path):
    assert _task().test_set() == "humaneval-x"
    assert _task("data.loader=methods2test").test_set() == "source"
    assert _task("data.loader=methods2test", "data.focal=quixbugs").test_set() == "quixbugs"
    with pytest.raises(UserError, match="bad value for 'data.focal'"):
        _task("data.focal=defects4j")
    assert _task("data.focal=quixbugs").load("train")[0]["focal_class"] == "Solution"  # built in: HumanEval-X
    assert JavaTestGeneration.test_set_options == ("focal",)


@pytest.fixture
def fixture_task(monkeypatch):
    task = _task("data.focal=humaneval-x", "execution.timeout=5")
    monkeypatch.setattr(task, "_focal_classes", {SUM.id: SUM}, raising=False)
    return task


def test_prompts_show_the_focal_class_and_ask_for_a_junit_4_test_class(fixture_task):
    (problem,) = fixture_task.load("test")
    assert problem["instruction"] == focal_instruction(SUM)
    prompt = fixture_task.prompt(problem)
    assert prompt.startswith("### Instruction:\n// Focal method: Solution.sumOfEvens\nimport java.util.*;")
    # the prompt ends with the test class's start (the focal class's imports, JUnit's), which the model continues
    head = "import java.util.*;\n\nimport org.junit.Test;\nimport static org.junit.Assert.*;\n\npublic class SolutionTest {\n"
    assert fixture_task.head(problem) == head
    assert prompt.endswith("public class SolutionTest {\n}\n### Response:\n" + head)
    assert fixture_task.answer_prefix(problem) == "```java\n" + head
    request = fixture_task.user_message(problem)
    assert "JUnit 4 test class for the method `sumOfEvens`" in request and FOCAL.strip() in request
    training_record = {"id": "m", "instruction": "public class Range {}", "reference": "@Test ..."}
    assert fixture_task.user_message(training_record).startswith("Write one JUnit test method")
    assert fixture_task.head(training_record) == "" and fixture_task.response(training_record) == "@Test ..."
    assert fixture_task.response({**problem, "reference": head + "    @Test ...}\n"}) == "    @Test ...}\n"


def metrics_keys(evaluation) -> set[str]:
    return set(evaluation.metrics)


def _continuation(test_class: str) -> str:
    """What a model writes after the prompt's head: the test class's body and its closing brace."""
    return test_class.split("public class SolutionTest {\n", 1)[1]


def test_the_task_scores_candidates_like_the_python_testgen(java, fixture_task):
    answer = _continuation(COMPLETE) + "```\nThis tests both cases."  # the chat stop cuts at the fence
    assert fixture_task.postprocess(answer) == _continuation(COMPLETE).rstrip("\n")
    candidates = [fixture_task.postprocess(answer), _continuation(NO_ASSERTION)]
    evaluation = fixture_task.evaluate([{"id": SUM.id, "candidates": candidates}])
    (row,) = evaluation.scored
    assert row["scores"]["test_valid_best"] == row["scores"]["test_pass_mean"] == 1.0
    assert (row["scores"]["mutation_best"], row["scores"]["mutation_mean"]) == (1.0, 0.5)
    assert row["scores"]["line_cov_mean"] == 1.0 and "codebleu" in metrics_keys(evaluation)
    metrics = evaluation.metrics
    assert metrics["mutation_best"] == 1.0 and metrics["samples"] == 2 and metrics["mutants_per_task"] == 3
    assert {"test_valid_best", "mutation_mean", "line_cov_best"} <= set(metrics["metric_specs"])
    assert tuple(metrics["metric_specs"]["test_valid_best"]["column"]) == (3, 0)  # the Python testgen's column
    verdicts = evaluation.files["verdicts.jsonl"]
    assert [v["candidate"] for v in verdicts] == [0, 1] and verdicts[1]["killed"] == 0
    external = fixture_task.evaluate([{"task_id": SUM.id, "test": DOES_NOT_COMPILE, "tool": "randoop"}])
    assert external.files["verdicts.jsonl"][0]["tool"] == "randoop"
    assert external.scored[0]["scores"]["test_valid_best"] == 0.0
    with pytest.raises(UserError, match="not in the test split"):
        fixture_task.evaluate([{"id": "Java/999", "candidates": [COMPLETE]}])


# ------------------------------------------------------------------------- the datasets' own tests


def test_quixbugs_own_tests_pass_and_kill_the_real_bug(java, tmp_path, monkeypatch):
    from peftlab.tasks.java_repair.quixbugs import quixbugs_java_bugs
    from peftlab.tasks.java_testgen.focal import quixbugs_focal_classes

    monkeypatch.setenv("PEFTLAB_CACHE", str(tmp_path))  # the injected mutants are searched afresh
    chosen = [bug for bug in quixbugs_java_bugs()[0] if bug["id"].endswith(("/GCD", "/BITCOUNT"))]
    focal = quixbugs_focal_classes(chosen)
    assert len(focal) == 2 and all(f.mutants[0] == bug["buggy"] for f, bug in zip(focal, chosen))
    found = score_junit_tests([(f, f.reference) for f in focal], timeout=10.0)
    for f, v in zip(focal, found, strict=True):
        assert v["passes"] and v["line_coverage"] == 1.0 and len(f.mutants) >= 2, (f.id, v["reason"])
        assert v["killed"] == len(f.mutants), f.id
