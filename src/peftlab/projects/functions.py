"""Functions of a source module as mined records, and how a candidate body replaces one.

::

    functions_of(source, file, module) -> list[dict]    module-level functions and methods of its classes
    substitute(source, record, body) -> str             the module with the function's body replaced
    emptied_body(record) -> str                         ``raise NotImplementedError`` at the body's indent
    prompt_context(record, chars) -> str                the module context shown above the function
    trim_body(record, completion) -> str                a generated body cut where the function ends
    body_of_solution(record, solution) -> str           the body of a whole-function answer
    called_names(test_source, node_id) -> set[str] | None   names the test function's body calls
    is_direct(record, called) -> bool                   whether such a test focuses on the record

A record cuts the function into ``header`` (decorators, ``def`` line(s) and docstring, verbatim) and
``body`` (every line after it to the function's end, verbatim, comments included): ``header + body`` is the
original text, and substitution is a replacement of the body's lines, so line numbers above the function
never move. Functions whose body starts on the ``def`` line, or that have no body after the docstring, are
not records.
"""

from __future__ import annotations

import ast
import textwrap

from peftlab import pyparse

CONTEXT_ITEM_CHARS = 400  # one module-level definition shown in a prompt's context, at most


def _definitions(tree: ast.Module):
    """(qualified name, node, enclosing class or None) for module-level functions and their classes' methods."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node, None
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{item.name}", item, node


def _names_used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.value.id for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}


def _bound_names(statement: ast.stmt) -> set[str]:
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Assign, ast.AnnAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _stub(statement: ast.stmt, lines: list[str]) -> str:
    """A module-level definition as context: imports and assignments verbatim, a function or class as its
    header and docstring (its body is not the prompt's business)."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        body = statement.body
        doc = body[0] if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                                                ast.Constant) else None
        end = doc.end_lineno if doc is not None else body[0].lineno - 1
        if end < statement.lineno:
            end = statement.lineno
        text = "\n".join(lines[statement.lineno - 1:end]).rstrip()
        indent = " " * (statement.col_offset + 4)
        return f"{text}\n{indent}..." if len(text) <= CONTEXT_ITEM_CHARS else text[:CONTEXT_ITEM_CHARS]
    text = "\n".join(lines[statement.lineno - 1:statement.end_lineno])
    return text if len(text) <= CONTEXT_ITEM_CHARS else ""


def _context(tree: ast.Module, function: ast.AST, lines: list[str], own: ast.AST) -> list[str]:
    """Module-level statements binding a name the function uses, in file order (its own definition out)."""
    used = _names_used(function)
    items = []
    for statement in tree.body:
        if statement is own or not (_bound_names(statement) & used):
            continue
        if (text := _stub(statement, lines)):
            items.append(text)
    return items


def functions_of(source: str, file: str, module: str) -> list[dict]:
    """Every module-level function and method of a module-level class of ``source`` that can be a record."""
    tree = pyparse.parse(source)
    lines = source.splitlines()
    records = []
    for qualname, node, cls in _definitions(tree):
        docstring = ast.get_docstring(node, clean=True)
        body = node.body[1:] if docstring is not None else node.body
        if not body or body[0].lineno <= node.lineno:
            continue
        header_end = node.body[0].end_lineno if docstring is not None else body[0].lineno - 1
        if body[0].lineno <= header_end:  # a statement on the docstring's last line
            continue
        start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        signature_end = (node.body[0].lineno - 1) if docstring is not None else header_end
        signature = textwrap.dedent("\n".join(lines[start - 1:max(signature_end, node.lineno)])).strip()
        class_header = "\n".join(lines[cls.lineno - 1:cls.body[0].lineno - 1]) + "\n" if cls is not None else ""
        records.append({
            "id": f"{module}:{qualname}", "module": module, "qualname": qualname, "file": file,
            "lines": [start, node.end_lineno], "header_end": header_end, "def_indent": node.col_offset,
            "body_indent": body[0].col_offset, "signature": signature, "docstring": docstring or "",
            "header": "\n".join(lines[start - 1:header_end]) + "\n",
            "body": "\n".join(lines[header_end:node.end_lineno]) + "\n",
            "class_header": class_header,
            "context": _context(tree, node, lines, cls if cls is not None else node),
        })
    return records


def prompt_context(record: dict, chars: int) -> str:
    """The record's context items, in file order, while they fit in ``chars``; blank lines after them."""
    kept, used = [], 0
    for item in record["context"]:
        if used + len(item) + 1 > chars:
            break
        kept.append(item)
        used += len(item) + 1
    return "\n".join(kept) + "\n\n\n" if kept else ""


def substitute(source: str, record: dict, body: str) -> str:
    """``source`` with the record's body lines replaced by ``body`` (text at the function's indentation)."""
    lines = source.splitlines(keepends=True)
    end = record["lines"][1]
    if body and not body.endswith("\n"):
        body += "\n"
    return "".join(lines[:record["header_end"]]) + body + "".join(lines[end:])


def emptied_body(record: dict) -> str:
    return " " * record["body_indent"] + "raise NotImplementedError\n"


def trim_body(record: dict, completion: str) -> str:
    """The generated body up to the first non-blank line indented no deeper than the ``def``: what follows
    is the model going on with the module, not the function."""
    kept = []
    for line in completion.splitlines():
        if line.strip() and len(line) - len(line.lstrip()) <= record["def_indent"]:
            break
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def body_of_solution(record: dict, solution: str) -> str:
    """The body of a whole-function answer (EvalPlus's ``solution``), re-indented to the record's body: the
    record's own header is kept, so a changed signature or docstring is ignored. Text that does not parse as a
    function is returned indented as it is, which then fails to import, as it should."""
    text = textwrap.dedent(solution)
    indent = " " * record["body_indent"]
    try:
        tree = pyparse.parse(text)
        function = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    except (SyntaxError, ValueError, StopIteration):
        return textwrap.indent(text, indent) or indent + "pass\n"
    has_doc = ast.get_docstring(function) is not None and len(function.body) > 1
    first = function.body[1] if has_doc else function.body[0]
    lines = text.splitlines()
    start = (function.body[0].end_lineno if has_doc else first.lineno - 1)
    if first.lineno <= function.lineno:  # body on the def line
        return indent + ast.unparse(first).replace("\n", "\n" + indent) + "\n"
    body = textwrap.dedent("\n".join(lines[start:function.end_lineno]))
    return textwrap.indent(body, indent) + "\n"


def called_names(test_source: str, node_id: str) -> set[str] | None:
    """Names the body of the test function ``node_id`` (``path::[Class::]name[params]``) calls, as plain
    names or attributes (``f(x)``, ``mod.f(x)``, ``obj.m()``). None when the test function is not found in the source."""
    parts = node_id.split("[", 1)[0].split("::")[1:]
    if not parts:
        return None
    scope: list[ast.stmt] = pyparse.parse(test_source).body
    found = None
    for index, name in enumerate(parts):
        found = next((n for n in scope if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.name == name), None)
        if found is None:
            return None
        if index < len(parts) - 1:
            scope = found.body if isinstance(found, ast.ClassDef) else []
    if not isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    names: set[str] = set()
    for node in ast.walk(found):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                names.add(node.func.id)
            elif isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
    return names


def is_direct(record: dict, called: set[str]) -> bool:
    """Whether a test that calls ``called`` focuses on the record: it calls the function by name, or, for
    ``__init__``, the class."""
    *owner, name = record["qualname"].split(".")
    return name in called or (name == "__init__" and bool(owner) and owner[-1] in called)
