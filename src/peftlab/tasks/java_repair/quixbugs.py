"""QuixBugs (Java) as repair bugs, from the subset of the QuixBugs repository vendored beside this module
(``quixbugs-java/``, MIT, commit 4257f44; see NOTICE): the 40 buggy programs of package ``java_programs``
with their helper classes ``Node`` and ``WeightedEdge``, the 40 corrected programs of package
``correct_java_programs``, and the JUnit 4 tests of ``java_testcases/junit`` (with ``QuixFixOracleHelper``,
which formats outputs for comparison). ``tests/test_java_repair.py`` checks that every buggy program fails
at least one test and every fix passes all of them.

::

    quixbugs_java_bugs() -> (bugs, excluded)     bugs in the Java bug format; excluded: {what: reason}

The tests call ``java_programs.X``, so a fix is run as package ``java_programs`` (the corrected file's
package declaration is rewritten; its ``import java_programs.Node`` lines are then redundant, and exact-fix
ignores imports anyway). All 40 programs are kept; two test cases are dropped (DROPPED_TESTS, with the
reason). The known fix is upstream's corrected file, except where OWN_FIXES says why not.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

from peftlab.errors import UserError
from peftlab.tasks.java_repair.source import block_end, tokens

FOLDER = "quixbugs-java"
COMMIT = "4257f44"
PROGRAMS, FIXES, TESTS = "java_programs", "correct_java_programs", "java_testcases/junit"
SUPPORT = ("Node", "WeightedEdge")  # helper classes of the graph programs: the dataset's, not the candidate's
HELPER = "QuixFixOracleHelper"  # the tests' output formatter
PINNED_SHA256 = "d22986847fca5860d0016683b2aa902161ef3895270d0f3fe8834195eabe1ecd"  # digest() of the vendored files
DROPPED_TESTS = {
    "KNAPSACK": {"test_9": "the correct DP fills a 25 x 6,404,181 int table (640 MB): beyond the sandbox's "
                           "256 MB Java heap"},
    "LEVENSHTEIN": {"test_3": "upstream marks it @Ignore (the recursive fix is exponential on its 21/51 "
                              "characters); the runner counts an ignored test as not passed"},
}
# program -> (buggy line, fixed line, why upstream's corrected file is not the known fix)
OWN_FIXES = {
    "SHORTEST_PATHS": ("weight_by_edge.put(edge, update_weight);", "weight_by_node.put(edge.get(1), update_weight);",
                       "upstream's corrected file also deletes an overload the tests never call, so the one-line "
                       "fix alone would never be an exact fix"),
}


def _vendored_files() -> dict[str, str]:
    """Every vendored Java file by its path under ``quixbugs-java/``."""
    root = resources.files("peftlab.tasks.java_repair").joinpath(FOLDER)
    found = {}
    for folder in (PROGRAMS, FIXES, TESTS):
        directory = root.joinpath(*folder.split("/"))
        if not directory.is_dir():
            raise UserError(f"the vendored QuixBugs folder {FOLDER}/{folder} is missing; reinstall peftlab")
        for entry in directory.iterdir():
            if entry.name.endswith(".java"):
                found[f"{folder}/{entry.name}"] = entry.read_text(encoding="utf-8")
    return found


def digest(files: dict[str, str]) -> str:
    """sha256 over the sorted paths and texts of ``files``: what :data:`PINNED_SHA256` pins."""
    hashed = hashlib.sha256()
    for path in sorted(files):
        hashed.update(f"{path}\0{len(files[path].encode())}\0".encode() + files[path].encode())
    return hashed.hexdigest()



def drop_test(source: str, test: str) -> str:
    """The test class without method ``test`` and its annotations. Raises ValueError if it is not there."""
    found = re.search(rf"(?:[ \t]*@[\w.]+(?:\([^)]*\))?[ \t]*\n)+[ \t]*public void {re.escape(test)}\(", source)
    if found is None:
        raise ValueError(f"no test method {test}")
    return source[:found.start()] + source[block_end(source, found.end()):].lstrip(" \t")


def _own_fix(name: str, buggy: str) -> str:
    old, new, _ = OWN_FIXES[name]
    if buggy.count(old) != 1:
        raise ValueError(f"{name}: the line {old!r} is not once in the vendored program")
    return buggy.replace(old, new)


def quixbugs_java_bugs() -> tuple[list[dict], dict[str, str]]:
    """The 40 QuixBugs Java programs as bugs, and the test cases dropped (``PROGRAM::test``) and why.

    Raises:
        UserError: the vendored files are missing or not the pinned ones.
    """
    files = _vendored_files()
    if digest(files) != PINNED_SHA256:
        raise UserError(f"the vendored {FOLDER} is not the pinned QuixBugs {COMMIT} subset (sha256 differs)")
    helper = files[f"{TESTS}/{HELPER}.java"]
    bugs, excluded = [], {}
    for path in sorted(files):
        folder, _, file = path.rpartition("/")
        name = file.removesuffix(".java")
        if folder != FIXES:
            continue
        buggy, test = files[f"{PROGRAMS}/{file}"], files[f"{TESTS}/{name}_TEST.java"]
        fixed = _own_fix(name, buggy) if name in OWN_FIXES else \
            files[path].replace(f"package {FIXES};", f"package {PROGRAMS};", 1)
        for dropped, why in DROPPED_TESTS.get(name, {}).items():
            test = drop_test(test, dropped)
            excluded[f"{name}::{dropped}"] = why
        tests = {f"{TESTS}/{name}_TEST.java": test}
        used = set(tokens(buggy + fixed + test))
        if HELPER in used:
            tests[f"{TESTS}/{HELPER}.java"] = helper
        bugs.append({"id": f"quixbugs-java/{name}", "buggy": buggy, "fixed": fixed, "tests": tests,
                     "run": [f"{TESTS.replace('/', '.')}.{name}_TEST"], "mode": "junit", "operator": "quixbugs",
                     "support": {f"{PROGRAMS}/{s}.java": files[f"{PROGRAMS}/{s}.java"] for s in SUPPORT if s in used}})
    return bugs, excluded
