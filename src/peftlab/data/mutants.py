"""Single-site AST mutants of one function: the mutation score of generated tests (testgen) and the injected
bugs of the repair benchmarks start here.

::

    mutants(source, function, *, limit=20, seed=0) -> list[Mutant]
    OPERATORS                                         the operator names, in the order sites are listed

Operators: ``arithmetic`` (``+``/``-``, ``*``/``//``..., also in augmented assignments), ``comparison``
(``<``/``<=``, ``==``/``!=``, ``in``/``not in``, ``is``/``is not``), ``boolean`` (``and``/``or``), ``constant``
(an integer or float plus one, ``True``/``False`` swapped, a non-empty string emptied), ``negate`` (the
condition of an ``if``, ``while``, conditional expression or ``assert`` negated) and ``delete`` (a statement
replaced by ``pass``; never a docstring). Only the named function (``name`` or ``Class.name``) is mutated.
Each mutant is the whole module, unparsed (comments and formatting are not kept); mutants whose text equals
the original or another mutant's are dropped. More sites than ``limit``: a seeded sample, in site order.
"""

from __future__ import annotations

import ast
import copy
import random
from dataclasses import dataclass

from peftlab import pyparse

OPERATORS = ("arithmetic", "comparison", "boolean", "constant", "negate", "delete")

_ARITHMETIC = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
               ast.Div: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr,
               ast.BitOr: ast.BitAnd, ast.LShift: ast.RShift, ast.RShift: ast.LShift}
_COMPARISON = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
               ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}


@dataclass(frozen=True)
class Mutant:
    operator: str
    line: int
    """Line of the mutated node in the original source."""
    description: str
    source: str
    """The whole mutated module."""


def _find(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    scope: list = tree.body
    *owners, leaf = name.split(".")
    for owner in owners:
        cls = next((n for n in scope if isinstance(n, ast.ClassDef) and n.name == owner), None)
        if cls is None:
            return None
        scope = cls.body
    return next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == leaf), None)


def _docstring(node) -> ast.stmt | None:
    body = getattr(node, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0]
    return None


def _sites(function) -> list[tuple[str, int, str]]:
    """(operator, index of the node in ast.walk order, description) for every mutable site."""
    doc = _docstring(function)
    skip = {id(n) for n in ast.walk(doc)} if doc is not None else set()
    found = []
    for index, node in enumerate(ast.walk(function)):
        if id(node) in skip or node is function:
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _ARITHMETIC:
            found.append(("arithmetic", index, f"{type(node.op).__name__} -> {_ARITHMETIC[type(node.op)].__name__}"))
        elif isinstance(node, ast.Compare):
            for position, op in enumerate(node.ops):
                if type(op) in _COMPARISON:
                    found.append(("comparison", index, f"{position}:{type(op).__name__} -> "
                                  f"{_COMPARISON[type(op)].__name__}"))
        elif isinstance(node, ast.BoolOp):
            found.append(("boolean", index, "and <-> or"))
        elif isinstance(node, ast.Constant) and not isinstance(node.value, bytes):
            value = node.value
            if isinstance(value, bool) or (isinstance(value, (int, float)) and value is not None) \
                    or (isinstance(value, str) and value):
                found.append(("constant", index, f"{value!r}"[:40]))
        if isinstance(node, (ast.If, ast.While, ast.IfExp, ast.Assert)):
            found.append(("negate", index, f"not ({ast.unparse(node.test)[:40]})"))
        if isinstance(node, ast.stmt) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.append(("delete", index, f"delete line {node.lineno}"))
    return found


def _apply(function, operator: str, index: int, description: str) -> int:
    """Mutate the node at ``index`` of ``ast.walk(function)`` in place; its original line."""
    nodes = list(ast.walk(function))
    node = nodes[index]
    if operator == "arithmetic":
        node.op = _ARITHMETIC[type(node.op)]()
    elif operator == "comparison":
        position = int(description.split(":", 1)[0])
        node.ops[position] = _COMPARISON[type(node.ops[position])]()
    elif operator == "boolean":
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif operator == "constant":
        value = node.value
        node.value = (not value if isinstance(value, bool) else "" if isinstance(value, str) else value + 1)
    elif operator == "negate":
        node.test = ast.UnaryOp(ast.Not(), node.test)
    elif operator == "delete":
        for parent in nodes:
            for field in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(parent, field, None)
                if isinstance(block, list) and any(child is node for child in block):
                    block[[child is node for child in block].index(True)] = ast.Pass()
    return getattr(node, "lineno", function.lineno)


def mutants(source: str, function: str, *, limit: int = 20, seed: int = 0) -> list[Mutant]:
    """Single-site mutants of ``function`` in ``source`` (see the module docstring). Raises ValueError if
    ``source`` does not parse or has no such function."""
    tree = pyparse.parse(source)
    target = _find(tree, function)
    if target is None:
        raise ValueError(f"no function {function!r} in the source")
    sites = [(op, index, text) for op, index, text in _sites(target)]
    if len(sites) > limit:
        sites = sorted(random.Random(seed).sample(sites, limit), key=lambda site: site[1])
    original = ast.unparse(tree)
    seen, found = {original}, []
    for operator, index, description in sites:
        mutated = copy.deepcopy(tree)
        line = _apply(_find(mutated, function), operator, index, description)
        text = ast.unparse(ast.fix_missing_locations(mutated))
        if text in seen:
            continue
        try:
            compile(text, "<mutant>", "exec")
        except (SyntaxError, ValueError):
            continue
        seen.add(text)
        found.append(Mutant(operator, line, description, text + "\n"))
    return found
