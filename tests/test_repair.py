"""Program repair (task repair): every HumanEval injected bug fails its tests and its known fix passes; what
is never plausible; the bring-your-own bug format; execution-validated training bugs from a mined project."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from peftlab.config import load_config
from peftlab.errors import UserError
from peftlab.execution import harness
from peftlab.tasks import get_task
from peftlab.tasks.repair.data import humaneval_bugs, read_bugs
from peftlab.tasks.repair.training import build_training_bugs

PROJECT = Path(__file__).parent / "fixtures" / "tested_project"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PEFTLAB_CACHE", str(directory))
        yield directory


def test_every_humaneval_bug_fails_and_its_fix_passes(cache):
    bugs = humaneval_bugs()
    assert len(bugs) == 164, "every problem has at least one behaviour-changing mutant"
    jobs = [{"program": program, "entry_point": b["entry_point"], "tests": b["tests"], "setup": b["setup"],
             "timeout": 5.0} for b in bugs for program in (b["buggy"], b["fixed"])]
    verdicts = harness.run_batch(jobs)
    buggy, fixed = verdicts[0::2], verdicts[1::2]
    assert [b["id"] for b, v in zip(bugs, buggy) if v.status == "passed"] == []
    assert [b["id"] for b, v in zip(bugs, fixed) if v.status != "passed"] == []
    operators = collections.Counter(b["operator"] for b in bugs)
    assert set(operators) <= {"arithmetic", "comparison", "boolean", "constant", "negate", "delete"}
    assert len(operators) >= 5


def test_every_quixbugs_bug_fails_and_its_fix_passes():
    from peftlab.tasks.repair.quixbugs import GRAPH_PROGRAMS, quixbugs_bugs

    bugs, excluded = quixbugs_bugs()
    assert len(bugs) == 31 and len(bugs) + len(GRAPH_PROGRAMS) == 40
    assert set(excluded) == {*GRAPH_PROGRAMS, "knapsack::test_9", "levenshtein::test_3"}
    jobs = [{"program": program + b.get("suffix", ""), "entry_point": b.get("call", b["entry_point"]),
             "tests": b["tests"], "setup": "", "timeout": 5.0} for b in bugs for program in (b["buggy"], b["fixed"])]
    verdicts = harness.run_batch(jobs)
    assert [b["id"] for b, v in zip(bugs, verdicts[0::2]) if v.status == "passed"] == []
    assert [(b["id"], v.reason) for b, v in zip(bugs, verdicts[1::2]) if v.status != "passed"] == []
    assert all(v.tests_total >= 3 for v in verdicts)


def _task(*extra):
    return get_task("repair", load_config(None, ["task=repair", "data.test_size=3", *extra]))


def test_the_bug_itself_an_empty_function_and_a_test_reader_are_never_plausible(cache):
    task = _task()
    problems = task.load("test")
    bugs = {b["id"]: b for b in task.bugs("test")}
    rows = []
    for problem in problems:
        bug = bugs[problem["id"]]
        entry = bug["entry_point"]
        rows += [
            {"task_id": problem["id"], "solution": bug["buggy"], "kind": "buggy"},
            {"task_id": problem["id"], "solution": f"def {entry}(*args):\n    pass\n", "kind": "empty"},
            {"task_id": problem["id"], "kind": "reads tests",
             "solution": f"def {entry}(*args):\n    import glob\n    for path in glob.glob('**/*', recursive=True):\n"
                         "        open(path).read()\n    raise AssertionError('no test file to read')\n"},
            {"task_id": problem["id"], "solution": bug["fixed"], "kind": "fix"},
        ]
    evaluation = task.evaluate(rows)
    verdicts = evaluation.files["verdicts.jsonl"]
    assert {v["kind"] for v in verdicts if v["passed"]} == {"fix"}
    assert all(v["passed"] and v["exact_fix"] for v in verdicts if v["kind"] == "fix")
    assert all(v["identical_to_buggy"] for v in verdicts if v["kind"] == "buggy")
    assert evaluation.metrics["plausible@1"] == pytest.approx(0.25)
    assert evaluation.metrics["exact_fix@4"] == 1.0 and evaluation.metrics["compiles@1"] == 1.0


def test_a_bug_whose_tests_are_too_weak_is_still_not_fixed_by_itself(tmp_path, cache):
    bug = {"id": "weak", "entry_point": "f", "buggy": "def f(x):\n    return x - 1\n",
           "fixed": "def f(x):\n    return x + 1\n", "tests": "def check(candidate):\n    assert candidate(0) is not None\n"}
    path = tmp_path / "bugs.jsonl"
    path.write_text(json.dumps(bug) + "\n")
    task = _task(f"data.bugs={path}")
    evaluation = task.evaluate([{"id": "weak", "candidates": [bug["buggy"], "def f(x):\n    return 1 + x\n"]}])
    verdicts = evaluation.files["verdicts.jsonl"]
    assert [v["passed"] for v in verdicts] == [False, True]  # the buggy copy passes the tests, yet is no fix
    assert [v["exact_fix"] for v in verdicts] == [False, False]  # 1 + x is not the known fix's AST


def test_plausible_at_1_5_and_10_from_ten_candidates(tmp_path, cache):
    bug = {"id": "one", "entry_point": "f", "buggy": "def f(x):\n    return x - 1\n",
           "fixed": "def f(x):\n    return x + 1\n", "tests": "def check(candidate):\n    assert candidate(1) == 2\n"}
    path = tmp_path / "bugs.jsonl"
    path.write_text(json.dumps(bug) + "\n")
    candidates = [bug["fixed"]] + [f"def f(x):\n    return x + {n}\n" for n in range(2, 11)]  # 1 fix in 10
    metrics = _task(f"data.bugs={path}").evaluate([{"id": "one", "candidates": candidates}]).metrics
    assert metrics["plausible@1"] == pytest.approx(0.1) and metrics["plausible@5"] == pytest.approx(0.5)
    assert metrics["plausible@10"] == 1.0 and metrics["exact_fix@5"] == pytest.approx(0.5)
    assert "plausible@5" in metrics["metric_specs"]


@pytest.mark.parametrize("row, message", [
    ({"id": "a", "buggy": "def g():\n    pass\n", "tests": "def check(candidate):\n    pass\n", "entry_point": "f"},
     "does not define f"),
    ({"id": "a", "buggy": "def f():\n    pass\n", "tests": "assert True\n", "entry_point": "f"}, r"must define check\(candidate\)"),
    ({"id": "a", "buggy": "def f():\n    pass\n", "entry_point": "f"}, "tests"),
])
def test_bad_bug_files_are_one_line(row, message, tmp_path):
    path = tmp_path / "bugs.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match=message) as caught:
        read_bugs(path)
    assert "\n" not in str(caught.value)


def test_training_bugs_are_execution_validated_with_a_card(cache):
    from peftlab.tasks.mined_projects import mined_project

    project = mined_project(str(PROJECT))
    bugs, card = build_training_bugs(project, per_function=3)
    # 9 tested functions, less `perimeter` (2 * (a + b)): MBPP/112's solution, dropped by the contamination check
    assert [item["benchmark_id"] for item in project.card["filtered"]["items"]] == ["MBPP/112"]
    assert card["functions"] == 8 and card["injected"] >= 2 * card["functions"]  # 17 seen, of at most 24
    assert card["kept"] == len(bugs) and 0 < card["kept_share"] <= 1.0
    assert sum(card["operators_kept"].values()) == len(bugs)
    assert set(card["counts"]) <= {"train", "validation", "test"} and card["build_seconds"] > 0
    assert all(bug["buggy"] != bug["fixed"] and bug["failing_test"] for bug in bugs)
    # every kept bug really fails its function's tests; the injected ones that pass are out
    by_id = {r["id"]: r for r in project.records}
    from peftlab.projects.functions import body_of_solution
    from peftlab.projects.bodies import run_bodies

    verdicts = run_bodies(project.tree, [(by_id[b["id"].rsplit("/", 1)[0]], body_of_solution(
        by_id[b["id"].rsplit("/", 1)[0]], b["buggy"])) for b in bugs])
    assert all(v["status"] != "passed" for v in verdicts)


PATCH = """diff --git a/{file} b/{file}
index 1111111..2222222 100644
--- a/{file}
+++ b/{file}
@@ -10,5 +10,5 @@ def area(width, height):
     if width < 0:
         raise ValueError(width)
-    return width + height
+    return width * height
 
"""
SECOND_HUNK = """@@ -40,3 +40,3 @@ def other():
-    return 1
+    return 2
"""


def _fake_tests4py(requirement, dest):
    """A tests4py-shaped sdist: one patch that is a one-hunk Python fix, and three that are not."""
    import io
    import tarfile

    patches = {"calc/bug_1": PATCH.format(file="calc/geometry.py"),
               "calc/bug_2": PATCH.format(file="calc/geometry.py") + SECOND_HUNK,  # two hunks
               "calc/bug_3": PATCH.format(file="docs/index.rst"),  # not Python
               "tool/bug_1": PATCH.format(file="a.py") + PATCH.format(file="b.py")}  # two files
    with tarfile.open(dest / "tests4py-1.0.0.tar.gz", "w:gz") as archive:
        for where, text in patches.items():
            data = text.encode()
            info = tarfile.TarInfo(f"tests4py-1.0.0/src/tests4py/projects/resources/{where}/fix.patch")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_bugsinpy_one_hunk_fixes_become_static_training_pairs(cache, monkeypatch):
    from peftlab.tasks.repair import bugsinpy

    pairs, card = bugsinpy.bugsinpy_pairs(download=_fake_tests4py)
    assert card["patches"] == 4 and card["pairs"] == 1 and card["per_project"] == {"calc": 1}
    (pair,) = pairs
    assert pair["id"] == "bugsinpy/calc/bug_1" and pair["context"] == "def area(width, height):"
    assert pair["buggy"] == "if width < 0:\n    raise ValueError(width)\nreturn width + height\n"
    assert pair["fixed"] == "if width < 0:\n    raise ValueError(width)\nreturn width * height\n"

    monkeypatch.setattr(bugsinpy, "bugsinpy_pairs", lambda download=None: (pairs, card))
    with_pairs = _task(f"data.project={PROJECT}", "data.bugsinpy=true")
    train = with_pairs.load("train")
    assert "bugsinpy/calc/bug_1" in [p["id"] for p in train]
    (static,) = [p for p in train if p["id"] == "bugsinpy/calc/bug_1"]
    assert static["instruction"] == pair["buggy"] and static["reference"] == pair["fixed"]
    plain = _task(f"data.project={PROJECT}").load("train")
    assert len(train) == len(plain) + 1 and {p["id"] for p in plain} < {p["id"] for p in train}
    for split in ("validation", "test"):  # static pairs train only
        assert not any(p["id"].startswith("bugsinpy/") for p in with_pairs.load(split))
