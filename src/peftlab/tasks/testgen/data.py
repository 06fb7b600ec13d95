"""The testgen task's data: HumanEval as focal functions with their behaviour-changing mutants, and
training pairs (focal function -> one of its direct tests) from a mined project.

::

    humaneval_focal(task_ids=None) -> dict[id, dict]     {focal, entry_point, reference, mutants}
    mined_pairs(project, split) -> list[dict]            {id, focal, entry_point, reference, response}
    pytest_body(files, node_id) -> str | None           a test's body as a plain pytest function's
    test_source(tree, node_id) -> str | None             a test as a standalone text (imports it uses + code)
"""

from __future__ import annotations

import ast
import copy
import json
import os
import tempfile
import textwrap
from pathlib import Path

from peftlab import pyparse
from peftlab.data.mutants import mutants
from peftlab.execution import harness
from peftlab.projects.functions import prompt_context
from peftlab.projects.tested_functions import MinedProject
from peftlab.tasks import humaneval

MUTANTS_PER_FUNCTION = 20
MUTANTS_VERSION = 1  # bump when mutants.py changes what it generates


def _cache_file() -> Path:
    from peftlab.cache import cache_dir

    return cache_dir() / "testgen" / f"humaneval-mutants-v{MUTANTS_VERSION}.json"


def write_cache(path: Path, data: dict) -> None:
    """Write a JSON cache file atomically through a unique temporary file (processes may build it at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def behaviour_changing(problems: list[tuple[str, str, str, str]], workers: int = 2) -> list[list[dict]]:
    """For each ``(source, entry_point, check_tests, setup)``: its single-site mutants that fail the
    reference tests (a ``check(candidate)`` run by the HumanEval harness); the others may be equivalent.
    Each as ``{operator, line, description, source}``."""
    candidates = [(index, mutant) for index, (source, entry_point, _, _) in enumerate(problems)
                  for mutant in mutants(source, entry_point, limit=MUTANTS_PER_FUNCTION)]
    jobs = [{"program": m.source, "entry_point": problems[i][1], "tests": problems[i][2], "setup": problems[i][3],
             "timeout": 3.0} for i, m in candidates]
    kept: list[list[dict]] = [[] for _ in problems]
    for (index, mutant), verdict in zip(candidates, harness.run_batch(jobs, workers)):
        if verdict.status in ("failed", "timeout"):
            kept[index].append({"operator": mutant.operator, "line": mutant.line,
                                "description": mutant.description, "source": mutant.source})
    return kept


def humaneval_mutants(problems: dict[str, dict], workers: int = 2) -> dict[str, list[dict]]:
    """Per task id, the behaviour-changing mutants of the canonical solution (:func:`behaviour_changing`,
    HumanEval's own tests as the reference); computed once per problem, then cached."""
    path = _cache_file()
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = {}
    missing = [task_id for task_id in problems if task_id not in cached]
    if missing:
        found = behaviour_changing([(problems[t]["prompt"] + problems[t]["canonical_solution"],
                                     problems[t]["entry_point"], problems[t]["test"], problems[t]["prompt"])
                                    for t in missing], workers)
        cached.update(zip(missing, found))
        write_cache(path, cached)
    return {task_id: cached[task_id] for task_id in problems}


def humaneval_focal(task_ids: list[str] | None = None, workers: int = 2) -> dict[str, dict]:
    """HumanEval problems as focal functions: the prompt and canonical solution are the code under test,
    the problem's ``check`` is the reference test."""
    problems = humaneval.load_problems()
    chosen = {t: problems[t] for t in (task_ids or list(problems))}
    found = humaneval_mutants(chosen, workers)
    return {task_id: {"id": task_id, "focal": p["prompt"] + p["canonical_solution"], "entry_point": p["entry_point"],
                      "reference": p["test"].strip() + "\n", "mutants": [m["source"] for m in found[task_id]],
                      "operators": [m["operator"] for m in found[task_id]]}
            for task_id, p in chosen.items()}


_COMPARE = {"assertEqual": ast.Eq, "assertNotEqual": ast.NotEq, "assertIs": ast.Is, "assertIsNot": ast.IsNot,
            "assertIn": ast.In, "assertNotIn": ast.NotIn, "assertLess": ast.Lt, "assertLessEqual": ast.LtE,
            "assertGreater": ast.Gt, "assertGreaterEqual": ast.GtE, "assertListEqual": ast.Eq,
            "assertDictEqual": ast.Eq, "assertTupleEqual": ast.Eq, "assertSetEqual": ast.Eq,
            "assertCountEqual": None}


class _PlainAsserts(ast.NodeTransformer):
    """``self.assertEqual(a, b)`` -> ``assert a == b`` and the like; ``with self.assertRaises(E):`` ->
    ``with pytest.raises(E):``. What it cannot turn into plain code keeps ``self``, and the test is skipped."""

    uses_pytest = False

    def visit_Expr(self, node: ast.Expr):
        call = node.value
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name) and call.func.value.id == "self"):
            return self.generic_visit(node)
        name, args = call.func.attr, call.args
        test = None
        if name in _COMPARE and len(args) >= 2:
            op = _COMPARE[name]
            test = (ast.Compare(ast.Call(ast.Name("sorted"), [args[0]], []), [ast.Eq()],
                                [ast.Call(ast.Name("sorted"), [args[1]], [])]) if op is None
                    else ast.Compare(args[0], [op()], [args[1]]))
        elif name in ("assertTrue", "assertFalse", "assertIsNone", "assertIsNotNone") and args:
            test = {"assertTrue": args[0], "assertFalse": ast.UnaryOp(ast.Not(), args[0]),
                    "assertIsNone": ast.Compare(args[0], [ast.Is()], [ast.Constant(None)]),
                    "assertIsNotNone": ast.Compare(args[0], [ast.IsNot()], [ast.Constant(None)])}[name]
        elif name == "assertAlmostEqual" and len(args) >= 2:
            test = ast.Compare(ast.Call(ast.Name("round"), [ast.BinOp(args[0], ast.Sub(), args[1]), ast.Constant(7)],
                                        []), [ast.Eq()], [ast.Constant(0)])
        return ast.copy_location(ast.Assert(test, None), node) if test is not None else node

    def visit_withitem(self, node: ast.withitem):
        call = node.context_expr
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "assertRaises"
                and isinstance(call.func.value, ast.Name) and call.func.value.id == "self"):
            self.uses_pytest = True
            node.context_expr = ast.Call(ast.Attribute(ast.Name("pytest"), "raises"), call.args, call.keywords)
        return node


def _find_test(files: dict[str, bytes], node_id: str):
    """(module tree, source lines, enclosing class or None, function node) of ``node_id``, or None."""
    path, *parts = node_id.split("[", 1)[0].split("::")
    if path not in files or not parts:
        return None
    source = files[path].decode("utf-8")
    tree = pyparse.parse(source)
    scope, cls, found = tree.body, None, None
    for index, name in enumerate(parts):
        found = next((n for n in scope if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.name == name), None)
        if found is None:
            return None
        if isinstance(found, ast.ClassDef) and index < len(parts) - 1:
            cls, scope = found, found.body
    if not isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    return tree, source.splitlines(), cls, found


def pytest_body(files: dict[str, bytes], node_id: str) -> str | None:
    """The body of test ``node_id`` as the body of a plain pytest function (unittest assertions turned into
    ``assert`` statements), indented four spaces; None if it is not found or still needs ``self``."""
    found = _find_test(files, node_id)
    if found is None:
        return None
    function = found[3]
    rewriter = _PlainAsserts()
    body = [rewriter.visit(copy.deepcopy(statement)) for statement in function.body]
    module = ast.fix_missing_locations(ast.Module(body, []))
    if any(isinstance(n, ast.Name) and n.id == "self" for n in ast.walk(module)):
        return None
    text = ast.unparse(module)
    if rewriter.uses_pytest:
        text = "import pytest\n" + text
    return textwrap.indent(text, "    ") + "\n"


def test_source(files: dict[str, bytes], node_id: str) -> str | None:
    """The test ``node_id`` as a standalone text: the test file's imports that it uses, then the test
    function (a unittest method inside its class, with ``import unittest``). None if it cannot be found."""
    located = _find_test(files, node_id)
    if located is None:
        return None
    tree, lines, cls, found = located
    start = found.decorator_list[0].lineno if found.decorator_list else found.lineno
    code = textwrap.dedent("\n".join(lines[start - 1:found.end_lineno]))
    used = {n.id for n in ast.walk(found) if isinstance(n, ast.Name)} | {
        n.value.id for n in ast.walk(found) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    if cls is not None:
        bases = ", ".join(ast.unparse(b) for b in cls.bases) or "object"
        code = f"class {cls.name}({bases}):\n" + textwrap.indent(code, "    ")
        used |= {n.id for b in cls.bases for n in ast.walk(b) if isinstance(n, ast.Name)}
    imports = []
    for statement in tree.body:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            bound = {(a.asname or a.name).split(".")[0] for a in statement.names}
            if bound & used:
                imports.append(ast.unparse(statement))
    return ("\n".join(imports) + "\n\n\n" if imports else "") + code.rstrip() + "\n"


def mined_pairs(project: MinedProject, split: str, context_chars: int = 1024) -> list[dict]:
    """One pair per record of ``split`` with a direct test that reads as a plain pytest function: the
    function (with its module context) and that test (``reference``: as written, standalone; ``response``:
    its body as a pytest function's, the training target after the task's ``def test_<name>():`` head)."""
    pairs = []
    for record in project.split(split):
        direct = [test["id"] for test in record["tests"] if test["direct"]]
        found = next(((d, body) for d in direct if (body := pytest_body(project.tree.files, d))), None)
        if found is None:
            continue
        text = test_source(project.tree.files, found[0])
        focal = prompt_context(record, context_chars) + record.get("class_header", "") + record["header"] \
            + record["body"]
        pairs.append({"id": record["id"], "focal": focal, "entry_point": record["qualname"], "reference": text,
                      "response": found[1]})
    return pairs
