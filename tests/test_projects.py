"""Mined projects (peftlab.projects): the function -> tests map of a fixture project against a hand-written
one, running records with other bodies, the project tree left untouched, and bad input."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from peftlab.errors import UserError
from peftlab.projects.functions import body_of_solution, called_names, emptied_body, functions_of, trim_body
from peftlab.projects.tested_functions import mine_project
from peftlab.projects.bodies import run_bodies

PROJECT = Path(__file__).parent / "fixtures" / "tested_project"
ARITH, TEXT, GEOMETRY = "tests/test_arith.py", "tests/test_text.py", "tests/test_geometry.py"

# Written by hand from the fixture's source: which kept test executes which function, and whether the
# test's own body calls it (direct) or only reaches it through another function.
EXPECTED_MAP = {
    "calc.arith:add": {f"{ARITH}::test_add": True, f"{ARITH}::test_mul": False, f"{ARITH}::test_square": False},
    "calc.arith:mul": {f"{ARITH}::test_mul": True, f"{ARITH}::test_square": False},
    "calc.arith:square": {f"{ARITH}::test_square": True},
    "calc.text:Counter.__init__": {f"{TEXT}::CounterTest::test_counts": True},
    "calc.text:Counter.add": {f"{TEXT}::CounterTest::test_counts": True},
    "calc.text:Counter.most_common": {f"{TEXT}::CounterTest::test_counts": True},
    "calc.text:shout": {f"{TEXT}::ShoutTest::test_shout": True},
    "calc.geometry:area": {f"{GEOMETRY}::test_area": True},
    "calc.geometry:perimeter": {f"{GEOMETRY}::test_perimeter": True},
}


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    before = _tree_digest(PROJECT)
    project = mine_project(str(PROJECT), cache_root=cache)
    assert _tree_digest(PROJECT) == before, "mining wrote to the project tree"
    return project


def test_function_to_tests_map_equals_the_hand_written_one(mined):
    found = {r["id"]: {t["id"]: t["direct"] for t in r["tests"]} for r in mined.records}
    assert found == EXPECTED_MAP
    card = mined.card
    assert card["tests"]["total"] == 11 and card["tests"]["kept"] == 9
    dropped = card["tests"]["dropped"]
    assert set(dropped) == {"failed", "flaky"}
    assert dropped["failed"]["count"] == 1 and dropped["failed"]["examples"][0]["id"] == f"{ARITH}::test_wrong"
    assert dropped["flaky"]["count"] == 1 and dropped["flaky"]["examples"][0]["id"] == f"{ARITH}::test_flaky"
    # parse_int's only test asserts nothing: a raising body passes it. record_word's test only checks that
    # it returns None, which a body of `pass` does too. Neither is a record.
    assert card["functions"] == {"executed_by_kept_tests": 11, "records": 9, "with_direct_test": 9,
                                 "rejected": {"original fails alone": 0, "raise body passes": 1, "pass body passes": 1,
                                              "not attested": 0}}


def test_splits_are_by_module_and_reproducible(mined, tmp_path):
    modules = {name: {r["module"] for r in mined.split(name)} for name in ("train", "validation", "test")}
    assert all(modules.values())
    assert not (modules["train"] & modules["test"]) and not (modules["train"] & modules["validation"])
    assert not (modules["validation"] & modules["test"])
    again = mine_project(str(PROJECT), cache_root=tmp_path, force=True)
    assert [(r["id"], r["split"]) for r in again.records] == [(r["id"], r["split"]) for r in mined.records]
    assert mined.card["counts"] == {name: len(mined.split(name)) for name in ("train", "validation", "test")}


def test_original_bodies_pass_and_emptied_ones_fail(mined):
    records = mined.records
    items = ([(r, None) for r in records] + [(r, emptied_body(r)) for r in records]
             + [(r, " " * r["body_indent"] + "pass\n") for r in records])
    before = _tree_digest(PROJECT)
    verdicts = run_bodies(mined.tree, items, timeout=5.0)
    assert _tree_digest(PROJECT) == before, "scoring wrote to the project tree"
    n = len(records)
    for record, verdict in zip(records, verdicts[:n]):
        assert verdict["status"] == "passed", (record["id"], verdict)
        assert verdict["tests_passed"] == verdict["tests_total"] == len(record["tests"])
    for record, verdict in zip(records * 2, verdicts[n:]):
        assert verdict["status"] == "failed", (record["id"], verdict)
        assert verdict["tests_passed"] < verdict["tests_total"]


def test_candidates_that_call_the_original_or_tamper_do_not_pass(mined):
    by_id = {r["id"]: r for r in mined.records}
    add, square = by_id["calc.arith:add"], by_id["calc.arith:square"]
    rewrite_tests = (f"    open({ARITH!r}, 'w').write('def test_add():\\n    pass\\n')\n"
                     "    return a + b\n")
    items = [
        (add, "    return sum([a, b])\n"),  # right, in other words: passes
        (add, "    import calc.arith\n    return calc.arith.add(a, b)\n"),  # the original is gone: recursion
        (square, "    from calc.arith import square as original\n    return original(x)\n"),
        (add, "    import os\n    os._exit(0)\n"),  # ends pytest before any verdict
        (add, "    while True:\n        pass\n"),  # stopped by the per-test limit
        (add, "    result = a - b\n    return result\n"),  # as long as the original: no stale bytecode runs
        (add, rewrite_tests),  # passes its own run (it is right) but must not change the next job's tests
        (add, emptied_body(add)),
    ]
    verdicts = run_bodies(mined.tree, items, timeout=2.0)
    assert [v["status"] for v in verdicts] == ["passed", "failed", "failed", "failed", "timeout", "failed", "passed",
                                               "failed"]
    assert verdicts[-1]["tests_passed"] == 0


def test_function_cutting_and_call_analysis():
    source = (PROJECT / "calc" / "text.py").read_text()
    records = {r["qualname"]: r for r in functions_of(source, "calc/text.py", "calc.text")}
    counter_add = records["Counter.add"]
    assert counter_add["header"] == '    def add(self, word):\n        """Count one more occurrence of word."""\n'
    assert counter_add["body"] == "        self.counts[word] = self.counts.get(word, 0) + 1\n"
    assert counter_add["class_header"] == "class Counter:\n"
    lines = source.splitlines()
    assert "\n".join(lines[counter_add["lines"][0] - 1:counter_add["lines"][1]]) + "\n" == (
        counter_add["header"] + counter_add["body"])
    assert trim_body(counter_add, "        return 1\n\n    def other(self):\n        pass\n") == "        return 1\n"
    assert body_of_solution(counter_add, 'def add(self, w):\n    """x"""\n    return w\n') == "        return w\n"
    test_source = (PROJECT / "tests" / "test_text.py").read_text()
    assert called_names(test_source, f"{TEXT}::CounterTest::test_counts") >= {"Counter", "add", "most_common"}
    assert called_names(test_source, f"{TEXT}::CounterTest::nope") is None


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


PACKAGE = {"pkg/__init__.py": "", "pkg/mod.py": 'def f(x):\n    """Twice x."""\n    return 2 * x\n'}
BAD_TREES = {
    "no tests": (PACKAGE, "has no tests"),
    "hangs": ({**PACKAGE, "tests/conftest.py": "while True:\n    pass\n",
               "tests/test_mod.py": "from pkg.mod import f\n\ndef test_f():\n    assert f(1) == 2\n"},
              "did not finish within 3 s"),
    "syntax error": ({**PACKAGE, "pkg/broken.py": "def f(:\n", "tests/test_mod.py": "def test_f():\n    pass\n"},
                     "syntax error in pkg/broken.py, line 1"),
}


@pytest.mark.parametrize("case", list(BAD_TREES))
def test_bad_projects_fail_in_one_line_and_cache_nothing(case, tmp_path):
    files, message = BAD_TREES[case]
    root = _write(tmp_path / "project", files)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=message) as caught:
        mine_project(str(root), cache_root=cache, suite_seconds=3.0, timeout=2.0)
    assert "\n" not in str(caught.value)
    assert not (cache / "projects").exists() or not any((cache / "projects").iterdir())


def test_a_missing_source_package_fails_in_one_line_and_caches_nothing(tmp_path):
    def no_such_package(requirement, dest):
        raise UserError(f"could not download {requirement}: ERROR: No matching distribution found")

    with pytest.raises(UserError, match="could not download nosuchpackage==1.0"):
        mine_project("nosuchpackage==1.0", cache_root=tmp_path, download=no_such_package)
    assert not (tmp_path / "projects").exists()
    assert not [p for p in (tmp_path / "sources").iterdir() if not p.name.startswith(".")]


@pytest.mark.parametrize("argument, message", [
    ("/no/such/dir", "source directory not found: /no/such/dir"),
    ("nosuchpkg", "needs an exact pin"),
])
def test_cli_bad_project_is_one_line(argument, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "peftlab.cli", "data", "mine", argument, "--tokenizer", ""],
                            capture_output=True, text=True, env={"PEFTLAB_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
