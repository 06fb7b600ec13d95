"""HumanEval-X Java: the vendored problems, the program a completion forms, its post-processing, the Java
mutants, the injected bugs, and (where Java is installed) the sandbox verdicts and the task's evaluation."""

from __future__ import annotations

import pytest

from peftlab.config import load_config
from peftlab.data.java_mutants import OPERATORS, code_tokens, mutants, type_argument_brackets
from peftlab.errors import UserError
from peftlab.tasks import TASKS, get_task
from peftlab.tasks.humaneval_x_java import HumanEvalXJava, bugs, data


def _java():
    from peftlab.execution.java.toolchain import toolchain

    try:
        toolchain()
    except UserError as error:
        pytest.skip(f"no Java here: {error}")


@pytest.fixture(scope="module")
def problems():
    return {p["id"]: p for p in data.problems()}


def _task(*overrides):
    return get_task("humaneval-x-java", load_config(None, ["task=humaneval-x-java", *overrides]))


# --- data ---------------------------------------------------------------------------------------------

def test_the_164_problems_load_with_their_entry_points(problems):
    assert len(problems) == data.PROBLEMS == 164
    assert list(problems)[:2] == ["Java/0", "Java/1"] and list(problems)[-1] == "Java/163"
    assert problems["Java/0"]["entry_point"] == "hasCloseElements"
    assert problems["Java/32"]["entry_point"] == "findZero"  # the prompt also declares poly() before it
    for problem in problems.values():
        assert problem["prompt"].rstrip().endswith("{")
        assert f" {problem['entry_point']}(" in problem["prompt"].rstrip().splitlines()[-1]
        assert problem["imports"].startswith("import ") and "class Main" in problem["test"]


def test_a_damaged_data_file_is_one_line(monkeypatch):
    monkeypatch.setattr(data, "SHA256", "0" * 64)
    with pytest.raises(UserError, match=r"^the HumanEval-X Java data file .*\(damaged or replaced; reinstall peftlab\)$"):
        data._read()


def test_the_task_is_registered_and_evaluation_only():
    assert TASKS["humaneval-x-java"] is HumanEvalXJava
    task = _task("data.test_size=2")
    assert [p["id"] for p in task.load("test")] == ["Java/0", "Java/1"]
    with pytest.raises(UserError, match="only a test split"):
        task.load("train")
    problem = task.load("test")[0]
    assert task.prompt(problem) == problem["instruction"] and problem["instruction"].endswith("{\n")
    assert task.answer_prefix(problem) == "```java\n" + problem["instruction"]
    assert "Java method" in task.user_message(problem)
    assert task.reference_code(problem) == problem["instruction"] + problem["reference"]


# --- post-processing and the program ------------------------------------------------------------------

def test_every_canonical_solution_is_its_own_postprocessed_completion(problems):
    task = _task()
    for problem in problems.values():
        assert data.complete_method(problem["canonical_solution"]) == problem["canonical_solution"]
        # the stop string "\n}" takes the class's brace along, and complete_method puts it back
        assert task.postprocess(problem["canonical_solution"] + "\n\npublic class Main {\n}\n") \
            == problem["canonical_solution"]


@pytest.mark.parametrize("completion, expected", [
    # cut where the class closes, whatever follows
    ("        return 1;\n    }\n}\n\npublic class Main {\n    x\n}\n", "        return 1;\n    }\n}"),
    # a stop string took the class's brace: put back
    ("        return 1;\n    }", "        return 1;\n    }\n}"),
    # the body ran out (max tokens, or a stop at a column-0 brace): both braces appended
    ("        return 1;\n", "        return 1;\n    }\n}"),
    ("", "\n    }\n}"),
    # helper methods after the entry method are kept
    ("        return g();\n    }\n    int g() {\n        return 2;\n    }\n}\nprose",
     "        return g();\n    }\n    int g() {\n        return 2;\n    }\n}"),
    # braces in literals and comments do not count
    ('        String s = "}}"; char c = \'}\'; // }\n        return 1; /* } */\n    }\n}\nx',
     '        String s = "}}"; char c = \'}\'; // }\n        return 1; /* } */\n    }\n}'),
    # a block comment cut short is closed before the braces
    ("        return 1; /* because", "        return 1; /* because */\n    }\n}"),
    # a whole class (a chat answer, say) is cut where it closes
    ("import java.util.*;\n\nclass Solution {\n    public int f() {\n        return 1;\n    }\n}\nThis works.",
     "import java.util.*;\n\nclass Solution {\n    public int f() {\n        return 1;\n    }\n}"),
    # the method's declaration repeated: one level more
    ("    public int f(int x) {\n        return x;\n    }\n}\n\nclass Main {}",
     "    public int f(int x) {\n        return x;\n    }\n}"),
    # a local class first (Java/75's canonical solution does this) is a body, not a whole program
    ("        class P {\n            int v() { return 1; }\n        }\n        return new P().v() == 1;\n    }\n}\n.",
     "        class P {\n            int v() { return 1; }\n        }\n        return new P().v() == 1;\n    }\n}"),
])
def test_complete_method(completion, expected):
    assert data.complete_method(completion) == expected


def test_postprocess_takes_the_code_of_a_chat_answer():
    task = _task()
    task.chat = True
    assert task.postprocess("        return 1;\n    }\n}\n```\nThe method returns one.") == "        return 1;\n    }\n}"
    fenced = "Here it is:\n```java\nclass Solution {\n    public int f() {\n        return 1;\n    }\n}\n```\nDone."
    assert task.postprocess(fenced) == "class Solution {\n    public int f() {\n        return 1;\n    }\n}"


def test_program_forms_the_solution_source(problems):
    problem = problems["Java/0"]
    assert data.program(problem, "        return false;\n    }\n}") == problem["prompt"] + "        return false;\n    }\n}"
    whole = "class Solution {\n    public boolean hasCloseElements(List<Double> n, double t) {\n        return false;\n    }\n}"
    assert data.program(problem, whole) == problem["imports"] + "\n" + whole
    assert data.program(problem, "import java.util.*;\n" + whole) == "import java.util.*;\n" + whole
    repeated = "    public boolean hasCloseElements(List<Double> numbers, double threshold) {\n        return false;\n    }\n}"
    assert data.program(problem, repeated) == problem["prompt"] + "        return false;\n    }\n}"


def test_the_job_makes_solution_public_and_compiles_main_after_the_imports(problems):
    problem = problems["Java/0"]
    job = data.test_job(problem, data.program(problem, problem["canonical_solution"]), timeout=4)
    assert job.mode == "main" and job.run == ("Main",) and job.timeout == 4.0
    assert "\npublic class Solution {" in job.program["Solution.java"]
    assert job.tests["Main.java"] == problem["imports"] + "\n" + problem["test"]
    source = "// class Solution in a comment\nimport java.util.*;\nclass Solution {\n    class Solution2 {}\n}\n"
    assert data.make_public(source) == source.replace("\nclass Solution {", "\npublic class Solution {")
    assert data.make_public("public class Solution {}") == "public class Solution {}"
    assert data.make_public("final class Solution {}") == "public final class Solution {}"  # public goes first
    assert data.make_public("public final class Solution {}") == "public final class Solution {}"


# --- mutants ------------------------------------------------------------------------------------------

SNIPPET = """class A {
    int g() { return 1 + 1; }
    int f(int a, int b) {
        // a + b < 2
        String s = "x - y";
        if (a < b && b != 0) {
            a += 2;
        }
        return a * b;
    }
}
"""


def _described(found):
    return [(m.operator, m.line, m.original.strip(), m.replacement) for m in found]


def test_mutants_of_a_method_exactly():
    found = mutants(SNIPPET, method="f")
    assert _described(found) == [
        ("negate", 6, "(a < b && b != 0)", "(!(a < b && b != 0))"),
        ("comparison", 6, "<", "<="),
        ("boolean", 6, "&&", "||"),
        ("comparison", 6, "!=", "=="),
        ("constant", 6, "0", "1"),
        ("delete", 7, "a += 2;", ""),
        ("arithmetic", 7, "+=", "-="),
        ("constant", 7, "2", "3"),
        ("arithmetic", 9, "*", "/"),
    ]
    for mutant in found:  # each is the original with one span replaced
        assert mutant.source == SNIPPET[:mutant.offset] + mutant.replacement + SNIPPET[mutant.offset + len(mutant.original):]
    deleted = next(m for m in found if m.operator == "delete")
    assert deleted.original == "            a += 2;\n" and "a += 2" not in deleted.source  # its line goes along


def test_mutants_of_the_whole_source_and_their_operators():
    assert _described(mutants(SNIPPET))[:3] == [("constant", 2, "1", "2"), ("arithmetic", 2, "+", "-"),
                                                ("constant", 2, "1", "2")]
    source = """class B {
    void h(List<Integer> xs, int n) {
        Map<String, List<Integer>> m = new HashMap<>();
        List<Integer> ys = Collections.<Integer>emptyList();
        for (int i = 0; i < n; i++) xs.add(-i);
        if (n > 1) n--;
        int k = n % 3, j = "a" + n;
        boolean t = true;
        while (!t) { this.count = 2; xs.clear(); }
        return;
    }
}
"""
    assert _described(mutants(source, method="h", limit=100)) == [
        ("constant", 5, "0", "1"), ("comparison", 5, "<", "<="), ("increment", 5, "++", "--"),
        ("negate", 6, "(n > 1)", "(!(n > 1))"), ("comparison", 6, ">", ">="), ("constant", 6, "1", "2"),
        ("increment", 6, "--", "++"),
        ("arithmetic", 7, "%", "*"), ("constant", 7, "3", "4"),
        ("constant", 8, "true", "false"),
        ("negate", 9, "(!t)", "(!(!t))"), ("delete", 9, "this.count = 2;", ""), ("constant", 9, "2", "3"),
        ("delete", 9, "xs.clear();", ""),
    ]  # no generics, unary minus, string concatenation, declarations or a loop's body statement
    assert set(OPERATORS) == {"arithmetic", "comparison", "boolean", "constant", "negate", "increment", "delete"}


def test_type_arguments_are_not_comparisons():
    code = code_tokens("Map<String, List<int[]>> m = f(a < b, c); x = a < b && c > d; y = new ArrayList<>();")
    generic = {code[i].start for i in type_argument_brackets(code)}
    text = "Map<String, List<int[]>> m = f(a < b, c); x = a < b && c > d; y = new ArrayList<>();"
    assert sorted(text[i] for i in generic) == ["<", "<", "<", ">", ">"]  # ">>" is one token
    assert text.index("a < b") + 2 not in generic


def test_mutants_are_deterministic_limited_and_distinct():
    source = "class C { int f(int x) { return x + 1 + 2 + 3 + 4 + 5; } }"
    everything = mutants(source, method="f", limit=100)
    assert len(everything) == 10
    sampled = mutants(source, method="f", limit=4, seed=3)
    assert sampled == mutants(source, method="f", limit=4, seed=3) and len(sampled) == 4
    assert [m.offset for m in sampled] == sorted(m.offset for m in sampled)
    assert len({m.source for m in everything}) == len(everything)
    # two sites that make the same program (either of two equal lines deleted): one mutant
    assert _described(mutants("class D {\n    void f() {\n        x.a();\n        x.a();\n    }\n}", method="f")) \
        == [("delete", 3, "x.a();", "")]
    with pytest.raises(ValueError, match="no method 'g'"):
        mutants(source, method="g")


# --- bugs ---------------------------------------------------------------------------------------------

def test_bugs_are_single_site_and_in_the_repair_format(problems):
    one = bugs.bugs()
    assert len({bug["problem_id"] for bug in one}) == len(one) >= 150
    for bug in one:
        problem = problems[bug["problem_id"]]
        assert bug["id"] == bug["problem_id"] + "/bug0"
        assert bug["fixed"] == problem["prompt"] + problem["canonical_solution"]
        assert bug["buggy"] != bug["fixed"] and bug["tests"] == data.tests_source(problem)
        assert bug["operator"] in OPERATORS and bug["failing_test"]
        changed = [i + 1 for i, (a, b) in enumerate(zip(bug["fixed"].splitlines(), bug["buggy"].splitlines())) if a != b]
        assert changed[0] == bug["line"]
    three = bugs.bugs(per_problem=3)
    assert len(three) > len(one) and {bug["id"] for bug in one} <= {bug["id"] for bug in three}
    with pytest.raises(UserError, match="between 1 and 3"):
        bugs.bugs(per_problem=4)


# --- in the sandbox -----------------------------------------------------------------------------------

def test_canonical_solutions_pass_and_wrong_completions_fail(problems):
    _java()
    from peftlab.execution.java import run_java_batch

    chosen = [problems[i] for i in ("Java/0", "Java/32", "Java/75", "Java/116")]
    jobs = [data.test_job(p, data.program(p, p["canonical_solution"])) for p in chosen]
    zero = problems["Java/0"]
    jobs.append(data.test_job(zero, data.program(zero, "        return true;\n    }\n}")))
    jobs.append(data.test_job(zero, data.program(zero, "        return 1;\n    }\n}")))
    verdicts = run_java_batch(jobs, workers=2)
    assert [v.status for v in verdicts] == ["passed"] * 4 + ["failed", "failed"], [v.reason for v in verdicts]
    assert verdicts[4].compiled is True and "AssertionError" in verdicts[4].reason
    assert verdicts[5].compiled is False and "does not compile" in verdicts[5].reason


def test_the_task_evaluates_candidates(tmp_path):
    _java()
    task = _task("data.test_size=2", "execution.timeout=5")
    problems = task.load("test")
    predictions = [{"id": problems[0]["id"], "candidates": [problems[0]["reference"], "        return 1;\n    }\n}"]},
                   {"id": problems[1]["id"], "candidates": ["        return null;\n    }\n}", problems[1]["reference"]]}]
    evaluation = task.evaluate(predictions)
    metrics = evaluation.metrics
    assert metrics["pass@1"] == 0.5 and metrics["pass@2"] == 1.0 and metrics["compiles@1"] == 0.75
    assert metrics["em@2"] == 1.0 and "codebleu" in metrics and "compiles@2" in metrics["metric_specs"]
    assert [row["id"] for row in evaluation.scored] == ["Java/0", "Java/1"]
    assert evaluation.scored[0]["scores"]["compiles@1"] == 0.5
    rows = evaluation.files["verdicts.jsonl"]
    assert [(r["task_id"], r["candidate"], r["verdict"], r["compiles"]) for r in rows] == [
        ("Java/0", 0, "passed", True), ("Java/0", 1, "failed", False),
        ("Java/1", 0, "failed", True), ("Java/1", 1, "passed", True)]
    # external rows: one per sample, post-processed here
    external = [{"task_id": "Java/0", "completion": problems[0]["reference"] + "\n\npublic class Main {}\n"},
                {"task_id": "Java/1", "solution": data.program(data.problems()[1], "        return null;\n    }\n}")}]
    metrics = task.evaluate(external).metrics
    assert metrics["pass@1"] == 0.5 and "em@1" not in metrics


def test_without_java_evaluation_fails_in_one_line(monkeypatch, tmp_path):
    from peftlab.execution.java import toolchain as java_toolchain

    monkeypatch.setenv("PEFTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    java_toolchain.toolchain.cache_clear()
    try:
        task = _task("data.test_size=1")
        with pytest.raises(UserError) as raised:
            task.evaluate([{"id": "Java/0", "candidates": ["    }\n}"]}])
        assert "\n" not in str(raised.value) and "openjdk-17-jdk-headless" in str(raised.value)
    finally:
        java_toolchain.toolchain.cache_clear()


def test_every_kept_bug_fails_and_every_fix_passes():
    """The vendored bugs (one per problem) against the sandbox: ~330 runs, about a minute on 2 workers."""
    _java()
    from peftlab.execution.java import run_java_batch

    chosen = bugs.bugs(per_problem=1)
    jobs = [data.main_job(bug[side], bug["tests"]) for bug in chosen for side in ("buggy", "fixed")]
    verdicts = run_java_batch(jobs, workers=2)
    wrong = [f"{bug['id']} {side}: {verdict.status} {verdict.reason}"
             for (bug, side), verdict in zip([(b, s) for b in chosen for s in ("buggy", "fixed")], verdicts)
             if (verdict.status == "passed") != (side == "fixed") or verdict.compiled is not True]
    assert not wrong, wrong[:5]
