"""Drop mined training items that duplicate a benchmark solution (HumanEval, MBPP).

A model fine-tuned on a verbatim or lightly edited copy of a benchmark solution scores on memory, not
skill, so the miner's records are checked against every benchmark reference before they are written.

The rule (docs/mining.md says why):

* **Unit**: the body of each outermost function (methods of classes included), without its docstring;
  the signature, decorators and the function's name are not compared, so renaming the function or
  retyping its parameters does not hide a copy. Code without a function is one unit (the whole module).
* **Normalisation** (``tokenize``): comments, blank lines and whitespace dropped; indentation kept as
  INDENT/DEDENT/NEWLINE markers; string literals canonicalised (``'a'`` == ``"a"``); the function's
  *local* names (parameters, assigned names, loop/with/except targets) renamed ``v0, v1, ...`` in order
  of first use, so a consistent variable rename does not hide a copy. Globals, attributes, builtins and
  keywords are kept: ``len(v0)`` and ``sum(v0)`` stay different.
* **Exact duplicate**: identical normalised token sequence (any length).
* **Near duplicate**: Jaccard similarity of the sets of token 5-grams >= 0.7, computed exactly through an
  inverted index (only references sharing a 5-gram are scored). Units shorter than 5 tokens are only
  ever compared exactly.

API::

    normalise(code) -> list[tuple[str, ...]]          normalised token sequence of each unit
    similarity(code_a, code_b, ngram=5) -> float      best 5-gram Jaccard over unit pairs
    ContaminationIndex(references, ngram=5, threshold=0.7)
        references: iterable of (benchmark_id, code); .match(code) -> Match | None
    drop_contaminated(records, index, code_key="reference") -> (kept, report)
    joined_code(prompt, solution) -> str | None         prompt + solution where they parse as one program
    overlap(train, test) -> dict                        training items that copy a test item's solution
"""

from __future__ import annotations

import ast
import io
import keyword
import re
import symtable
import textwrap
import tokenize
import warnings
from collections.abc import Iterable
from typing import NamedTuple

from peftlab import pyparse

DEFAULT_NGRAM = 5
DEFAULT_THRESHOLD = 0.7  # one or two token edits in a 50-token body; unrelated real code stays < 0.45

_DROPPED = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
_MARKERS = {tokenize.NEWLINE: "<NEWLINE>", tokenize.INDENT: "<INDENT>", tokenize.DEDENT: "<DEDENT>"}
_FALLBACK_TOKEN = re.compile(r"\w+|[^\w\s]")


class Match(NamedTuple):
    benchmark_id: str
    similarity: float  # 1.0 for an exact duplicate
    exact: bool


# --------------------------------------------------------------------------------------------- normalise

def _outermost_functions(node: ast.AST):
    """Functions not nested in another function (a nested one is part of its parent's body)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield child
        elif not isinstance(child, ast.Lambda):
            yield from _outermost_functions(child)


def _is_docstring(statement: ast.stmt) -> bool:
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str))


def _local_names(source: str) -> dict[tuple[str, int], set[str]]:
    """(function name, def line) -> the names bound in that function or any scope nested in it: what a
    copier can rename without changing the code's meaning. ``symtable`` is the compiler's own scope
    analysis (parameters, assignments, loop/with/except targets, imports; not global/nonlocal names),
    and several times faster than walking the AST for them."""
    found: dict[tuple[str, int], set[str]] = {}

    def bound(table) -> set[str]:
        names = {symbol.get_name() for symbol in table.get_symbols() if symbol.is_local()}
        for child in table.get_children():
            names |= bound(child)
        return names

    def visit(table) -> None:
        for child in table.get_children():
            if child.get_type() == "function":
                found[(child.get_name(), child.get_lineno())] = bound(child)
            else:
                visit(child)  # classes: their methods are units too

    visit(symtable.symtable(source, "<code>", "exec"))
    return found


def _units(tree: ast.Module, source: str) -> list[tuple[tuple[int, int], tuple[int, int], set[str]]]:
    """(start, end, local names) of each unit: function bodies after the docstring, else the module."""
    units = []
    local = _local_names(source)
    for function in _outermost_functions(tree):
        body = function.body[1:] if _is_docstring(function.body[0]) else function.body
        if body:
            units.append(((body[0].lineno, body[0].col_offset), (function.end_lineno, function.end_col_offset),
                          local.get((function.name, function.lineno), set())))
    if not units:
        body = tree.body[1:] if tree.body and _is_docstring(tree.body[0]) else tree.body
        if body:
            units.append(((body[0].lineno, body[0].col_offset), (body[-1].end_lineno, body[-1].end_col_offset),
                          set()))
    return units


def _canonical_string(text: str) -> str:
    """One spelling per string value: quotes, prefixes and escapes do not matter (f-strings stay raw)."""
    if text[0] in "'\"" and "\\" not in text:  # the common case, without literal_eval's compile
        quote = 3 if text[:3] in ('"""', "'''") and len(text) >= 6 else 1
        return repr(text[quote:-quote])
    try:
        return repr(ast.literal_eval(pyparse.parse(text, mode="eval")))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def normalise(code: str) -> list[tuple[str, ...]]:
    """The normalised token sequence of each unit of ``code`` (see the module docstring).

    Code that does not parse (a fragment, Python 2) is one unit of raw word/punctuation tokens, so it
    can still match an identical copy.
    """
    with warnings.catch_warnings():  # mined code is full of "invalid escape sequence" warnings
        warnings.simplefilter("ignore")
        return _normalise(code)


def _normalise(code: str) -> list[tuple[str, ...]]:
    source = textwrap.dedent(code)
    first_line = next((line for line in source.splitlines() if line.strip()), "")
    if first_line[:1] in (" ", "\t"):
        # Still indented: a method whose body holds a less-indented string line cannot be dedented.
        # Nesting it in a block makes it parse; positions move consistently for tokens and tree.
        source = "if True:\n" + source
    try:
        tree = pyparse.parse(source)
        units = _units(tree, source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, ValueError, tokenize.TokenError, RecursionError, MemoryError):
        words = tuple(_FALLBACK_TOKEN.findall(source))
        return [words] if words else []
    result = []
    for start, end, local in units:
        renamed: dict[str, str] = {}
        out: list[str] = []
        previous = ""
        for token in tokens:
            if not start <= token.start < end or token.type in _DROPPED:
                continue
            if token.type in _MARKERS:
                text = _MARKERS[token.type]
            elif token.type == tokenize.STRING:
                text = _canonical_string(token.string)
            elif (token.type == tokenize.NAME and token.string in local and previous != "."
                  and not keyword.iskeyword(token.string)):
                text = renamed.setdefault(token.string, f"v{len(renamed)}")
            else:
                text = token.string
            out.append(text)
            previous = token.string
        if out:
            result.append(tuple(out))
    return result


def _shingles(tokens: tuple[str, ...], ngram: int) -> frozenset[int]:
    # Hashes, not tuples: far less memory, and the index (hence the hash seed) lives in one process.
    return frozenset(hash(tokens[i:i + ngram]) for i in range(len(tokens) - ngram + 1))


def _jaccard(a: frozenset, b: frozenset) -> float:
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared) if a or b else 0.0


def similarity(code_a: str, code_b: str, ngram: int = DEFAULT_NGRAM) -> float:
    """The best n-gram Jaccard similarity between any unit of ``code_a`` and any unit of ``code_b``
    (1.0 when some pair is an exact duplicate)."""
    best = 0.0
    for a in normalise(code_a):
        for b in normalise(code_b):
            if a == b:
                return 1.0
            if len(a) >= ngram and len(b) >= ngram:
                best = max(best, _jaccard(_shingles(a, ngram), _shingles(b, ngram)))
    return best


# ------------------------------------------------------------------------------------------------- index

class ContaminationIndex:
    """Benchmark references, indexed for exact and near-duplicate lookup of training code."""

    def __init__(self, references: Iterable[tuple[str, str]], ngram: int = DEFAULT_NGRAM,
                 threshold: float = DEFAULT_THRESHOLD):
        if ngram < 1 or not 0.0 < threshold <= 1.0:
            raise ValueError(f"need ngram >= 1 and 0 < threshold <= 1 (got {ngram}, {threshold})")
        self.ngram = ngram
        self.threshold = threshold
        self.references: dict[str, int] = {}  # benchmark name ("HumanEval") -> references indexed
        self.units = 0
        self._exact: dict[tuple[str, ...], str] = {}
        self._ids: list[str] = []
        self._sizes: list[int] = []
        self._postings: dict[int, list[int]] = {}
        for benchmark_id, code in references:
            benchmark_id = str(benchmark_id)
            benchmark = benchmark_id.split("/")[0]
            self.references[benchmark] = self.references.get(benchmark, 0) + 1
            for tokens in normalise(code):
                self.units += 1
                self._exact.setdefault(tokens, benchmark_id)  # first reference wins: deterministic
                if len(tokens) < ngram:
                    continue
                entry = len(self._ids)
                shingles = _shingles(tokens, ngram)
                self._ids.append(benchmark_id)
                self._sizes.append(len(shingles))
                for shingle in shingles:
                    self._postings.setdefault(shingle, []).append(entry)

    def match(self, code: str) -> Match | None:
        """The most similar reference if ``code`` duplicates one (exactly, or with Jaccard >= threshold).

        Ties go to the reference indexed first. Exact duplicates win over near ones.
        """
        units = normalise(code)
        for tokens in units:
            if tokens in self._exact:
                return Match(self._exact[tokens], 1.0, True)
        best: Match | None = None
        for tokens in units:
            if len(tokens) < self.ngram:
                continue
            shingles = _shingles(tokens, self.ngram)
            shared: dict[int, int] = {}
            for shingle in shingles:
                for entry in self._postings.get(shingle, ()):
                    shared[entry] = shared.get(entry, 0) + 1
            for entry in sorted(shared):
                score = shared[entry] / (len(shingles) + self._sizes[entry] - shared[entry])
                if score >= self.threshold and (best is None or score > best.similarity):
                    best = Match(self._ids[entry], score, False)
        return best

    def describe(self) -> dict:
        """The rule and what was indexed, for the data card."""
        return {
            "unit": "function body without docstring",
            "normalisation": "tokenize; comments/whitespace dropped; strings canonical; locals renamed",
            "ngram": self.ngram,
            "threshold": self.threshold,
            "references": dict(self.references),
            "units_indexed": self.units,
        }


def drop_contaminated(records: list[dict], index: ContaminationIndex,
                      code_key: str = "reference") -> tuple[list[dict], dict]:
    """Split ``records`` into the kept ones (input order) and a report of the dropped ones.

    The report: the rule (:meth:`ContaminationIndex.describe`), ``checked``, ``dropped``, ``exact``,
    ``near``, and ``items``: per dropped record its ``id`` (None before ids are assigned), ``name`` and
    ``file`` (from ``meta``), the ``benchmark_id`` matched, ``similarity`` (3 decimals) and ``kind``.
    """
    kept: list[dict] = []
    items: list[dict] = []
    for record in records:
        found = index.match(record[code_key])
        if found is None:
            kept.append(record)
            continue
        meta = record.get("meta") or {}
        items.append({"id": record.get("id"), "name": meta.get("name"), "file": meta.get("file"),
                      "benchmark_id": found.benchmark_id, "similarity": round(found.similarity, 3),
                      "kind": "exact" if found.exact else "near"})
    exact = sum(item["kind"] == "exact" for item in items)
    report = {**index.describe(), "checked": len(records), "dropped": len(items), "exact": exact,
              "near": len(items) - exact, "items": items}
    return kept, report


def joined_code(prompt: str | None, solution: str | None) -> str | None:
    """A solution as code: ``prompt + solution`` when the two parse as one program (HumanEval's signature
    and docstring, then the body), else the solution alone; None without a solution."""
    if not solution or not isinstance(solution, str) or solution == "None":
        return None
    joined = (prompt or "") + solution
    try:
        pyparse.parse(joined)
        return joined
    except (SyntaxError, ValueError):
        return solution


def overlap(train: list[tuple[str, str]], test: list[tuple[str, str]], ngram: int = DEFAULT_NGRAM,
            threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Training items (``(id, code)``) that copy, exactly or nearly, a test item's solution (``(id, code)``),
    by the same rule as the benchmark check: ``{"train_items", "test_items", "exact", "near", "items": [...]}``,
    each item ``{train_id, test_id, similarity, kind}``."""
    index = ContaminationIndex(test, ngram=ngram, threshold=threshold)
    _, report = drop_contaminated([{"id": train_id, "reference": code} for train_id, code in train], index)
    items = [{"train_id": item["id"], "test_id": item["benchmark_id"], "similarity": item["similarity"],
              "kind": item["kind"]} for item in report["items"]]
    return {"train_items": len(train), "test_items": len(test), "exact": report["exact"], "near": report["near"],
            "items": items}
