"""QuixBugs (Python) as repair bugs, from the source distribution ``pyimprove==0.0.3`` (MIT; vendored
unchanged beside this module and checked by sha256, see NOTICE, so it works offline), which
ships the 40 buggy programs (``bugs/quixbugs/python_pytest/python_programs/``) and pytest files for 31 of
them, but no correct versions. The fixes below are this project's: each is the one-line change the QuixBugs
authors describe, applied to the shipped buggy text, and ``tests/test_repair.py`` checks that every fixed
program passes its tests and every buggy one fails.

::

    quixbugs_bugs() -> (bugs, excluded)     bugs in the bug format; excluded: {program: reason}

How the shipped tests are used: each ``test_*`` function's body becomes statements of one
``check(candidate)`` (the program's name replaced by ``candidate``), with the file's own imports except the
package path one. ``to_base``'s expected outputs are unquoted in the shipped file (``== 1F``) and are quoted.
So is ``longest_common_subsequence``'s. ``sqrt``'s expected values come from another approximation and are
compared within the call's epsilon. Two test cases whose *correct* solution cannot finish in the time limit
are dropped (DROPPED_TESTS, with the reason). ``flatten`` and ``kheapsort`` are generators compared with lists: their tests call a trusted wrapper appended
to the program (``list(...)``), as a generator cannot cross the sandbox's plain-data boundary. The nine
graph programs ship only print drivers with expected outputs in comments: they are reported as excluded.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import tarfile
from importlib import resources

from peftlab import pyparse
from peftlab.errors import UserError

SOURCE = "pyimprove==0.0.3"
ARCHIVE = "pyimprove-0.0.3.tar.gz"
ARCHIVE_SHA256 = "1a94359723c96c573dd943988d5ef13fc993b2e396eb51174af42737a2bebbc7"
PROGRAMS = "pyimprove-0.0.3/bugs/quixbugs/python_pytest/python_programs"
TESTS = "pyimprove-0.0.3/bugs/quixbugs/python_pytest"
GRAPH_PROGRAMS = ("breadth_first_search", "depth_first_search", "detect_cycle", "minimum_spanning_tree",
                  "reverse_linked_list", "shortest_path_length", "shortest_path_lengths", "shortest_paths",
                  "topological_ordering")
GENERATORS = ("flatten", "kheapsort")

# program -> (buggy line, fixed line(s)): the whole stripped line as shipped, replaced at its indentation.
FIXES = {
    "bitcount": ("n ^= n - 1", "n &= n - 1"),
    "bucketsort": ("for i, count in enumerate(arr):", "for i, count in enumerate(counts):"),
    "find_first_in_sorted": ("while lo <= hi:", "while lo < hi:"),
    "find_in_sorted": ("return binsearch(mid, end)", "return binsearch(mid + 1, end)"),
    "flatten": ("yield flatten(x)", "yield x"),
    "gcd": ("return gcd(a % b, b)", "return gcd(b, a % b)"),
    "get_factors": ("return []", "return [n]"),  # the last one: the first `return []` is for n == 1
    "hanoi": ("steps.append([start, helper])", "steps.append([start, end])"),
    "is_valid_parenthesization": ("return True", "return depth == 0"),
    "kheapsort": ("for x in arr:", "for x in arr[k:]:"),
    "knapsack": ("if weight < j:", "if weight <= j:"),
    "kth": ("return kth(above, k)", "return kth(above, k - num_lessoreq)"),
    "lcs_length": ("dp[i, j] = dp[i - 1, j] + 1", "dp[i, j] = dp[i - 1, j - 1] + 1"),
    "levenshtein": ("return 1 + levenshtein(source[1:], target[1:])", "return levenshtein(source[1:], target[1:])"),
    "lis": ("longest = length + 1", "longest = max(longest, length + 1)"),
    "longest_common_subsequence": ("return a[0] + longest_common_subsequence(a[1:], b)",
                                   "return a[0] + longest_common_subsequence(a[1:], b[1:])"),
    "max_sublist_sum": ("max_ending_here = max_ending_here + x", "max_ending_here = max(0, max_ending_here + x)"),
    "mergesort": ("if len(arr) == 0:", "if len(arr) <= 1:"),
    "next_palindrome": ("return [1] + (len(digit_list)) * [0] + [1]", "return [1] + (len(digit_list) - 1) * [0] + [1]"),
    "next_permutation": ("if perm[j] < perm[i]:", "if perm[i] < perm[j]:"),
    "pascal": ("for c in range(0, r):", "for c in range(0, r + 1):"),
    "possible_change": ("if total < 0:", "if total < 0 or not coins:"),
    "powerset": ("return [[first] + subset for subset in rest_subsets]",
                 "return rest_subsets + [[first] + subset for subset in rest_subsets]"),
    "quicksort": ("greater = quicksort([x for x in arr[1:] if x > pivot])",
                  "greater = quicksort([x for x in arr[1:] if x >= pivot])"),
    "rpn_eval": ("op(token, a, b)", "op(token, b, a)"),
    "shunting_yard": ("rpntokens.append(opstack.pop())", ("rpntokens.append(opstack.pop())", "-opstack.append(token)")),
    "sieve": ("if any(n % p > 0 for p in primes):", "if all(n % p > 0 for p in primes):"),
    "sqrt": ("while abs(x - approx) > epsilon:", "while abs(x - approx ** 2) > epsilon:"),
    "subsequences": ("return []", "return [[]]"),
    "to_base": ("result = result + alphabet[i]", "result = alphabet[i] + result"),
    "wrap": ("return lines", ("lines.append(text)", "return lines")),
}
"""A fixed line starting with ``-`` is one level (4 spaces) less indented than the buggy line."""
LAST_MATCH = {"get_factors"}  # the buggy line occurs twice: the fix is at the last one
UNQUOTED = ("to_base", "longest_common_subsequence")  # expected strings written without quotes
TOLERANT = ("sqrt",)  # expected values of another approximation: compared within the call's epsilon
DROPPED_TESTS = {
    "knapsack": {"test_9": "capacity 6404180 x 24 items: ~150M steps of the correct DP, minutes in CPython"},
    "levenshtein": {"test_3": "the correct (recursive) version takes exponential time on these 21/51 characters"},
}


def apply_fix(name: str, buggy: str) -> str:
    """The fixed program: the FIXES line replaced. Raises ValueError if the shipped text is not as expected."""
    old, new = FIXES[name]
    lines = buggy.splitlines()
    matches = [i for i, line in enumerate(lines) if line.strip() == old]
    if not matches:
        raise ValueError(f"{name}: the line {old!r} is not in the shipped program")
    index = matches[-1] if name in LAST_MATCH else matches[0]
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    replacement = []
    for text in (new,) if isinstance(new, str) else new:
        replacement.append((indent[:-4] + text[1:]) if text.startswith("-") else indent + text)
    return "\n".join(lines[:index] + replacement + lines[index + 1:]) + "\n"


class _Rename(ast.NodeTransformer):
    def __init__(self, name: str):
        self.name = name

    def visit_Name(self, node: ast.Name):
        return ast.copy_location(ast.Name("candidate", node.ctx), node) if node.id == self.name else node


def to_check(test_source: str, name: str) -> str:
    """The shipped pytest file as one ``check(candidate)`` module (quirks: see the module docstring)."""
    if name in UNQUOTED:
        test_source = re.sub(r"== ([0-9A-Za-z]+)\s*$", r"== '\1'", test_source, flags=re.MULTILINE)
    if name in TOLERANT:
        test_source = re.sub(rf"assert {name}\(\*\[(.+), (.+)\]\) == (.+)$", rf"assert abs({name}(*[\1, \2]) - \3) <= \2",
                             test_source, flags=re.MULTILINE)
    tree = pyparse.parse(test_source)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
               and not (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("bugs."))]
    body = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test") \
                and node.name not in DROPPED_TESTS.get(name, {}):
            body.extend(_Rename(name).visit(statement) for statement in node.body)
    if not body:
        raise ValueError(f"{name}: no test function in the shipped test file")
    check = ast.FunctionDef("check", ast.arguments([], [ast.arg("candidate")], None, [], [], None, []), body, [],
                            None, type_params=[])
    module = ast.Module([*imports, check], [])
    return ast.unparse(ast.fix_missing_locations(module)) + "\n"


def _archive_files() -> dict[str, str]:
    try:
        data = resources.files("peftlab.tasks.repair").joinpath(ARCHIVE).read_bytes()
    except OSError:
        raise UserError(f"the vendored {ARCHIVE} is missing; reinstall peftlab") from None
    if hashlib.sha256(data).hexdigest() != ARCHIVE_SHA256:
        raise UserError(f"the vendored {ARCHIVE} is not the pinned {SOURCE} (sha256 differs)")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read().decode("utf-8") for m in archive.getmembers()
                if m.isfile() and m.name.startswith(TESTS) and m.name.endswith(".py")}


def quixbugs_bugs() -> tuple[list[dict], dict[str, str]]:
    """The 31 QuixBugs programs with tests as bugs, and what is excluded (programs, test cases) and why.

    Raises:
        UserError: the vendored archive is missing or not the pinned one.
    """
    files = _archive_files()
    bugs, excluded = [], {name: "ships only a print driver, no assertions" for name in GRAPH_PROGRAMS}
    for name in sorted(FIXES):
        try:
            buggy, tests = files[f"{PROGRAMS}/{name}.py"], files[f"{TESTS}/{name}_test.py"]
            bug = {"id": f"quixbugs/{name}", "buggy": buggy, "fixed": apply_fix(name, buggy),
                   "tests": to_check(tests, name), "entry_point": name, "operator": "quixbugs"}
            for test, why in DROPPED_TESTS.get(name, {}).items():
                excluded[f"{name}::{test}"] = why
        except (KeyError, ValueError, SyntaxError) as error:
            raise UserError(f"{SOURCE} is not as pinned: {error}") from None
        if name in GENERATORS:
            bug["suffix"] = f"\n\ndef _peftlab_call(*args):\n    return list({name}(*args))\n"
            bug["call"] = "_peftlab_call"
        bugs.append(bug)
    return bugs, excluded
