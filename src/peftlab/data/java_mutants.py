"""Single-site mutants of Java source, the Java counterpart of :mod:`peftlab.data.mutants`: the injected bugs
of HumanEval-X Java (``tasks/humaneval_x_java/bugs.py``) start here.

::

    mutants(source, *, method=None, limit=20, seed=0) -> list[JavaMutant]
    tokenize(source) -> list[Token]           every character in one token (comments and literals whole)
    method_body(tokens, method) -> (i, j)     indices of the method's ``{`` and ``}`` among the code tokens
    OPERATORS                                 the operator names, in the order sites at one place are listed

Operators: ``arithmetic`` (binary ``+``/``-``, ``*``/``/``, ``%`` -> ``*``, and the same in ``+=`` ...),
``comparison`` (``<``/``<=``, ``>``/``>=``, ``==``/``!=``), ``boolean`` (``&&``/``||``), ``constant`` (a
decimal integer literal n -> n+1, ``true``/``false`` swapped), ``negate`` (the condition of an ``if`` or
``while`` negated), ``increment`` (``++``/``--``) and ``delete`` (an expression statement -- an assignment,
a call, an increment -- removed, with its line when it stands alone on it). A plain-Python tokenizer finds
the sites, so comments, string and char literals are never mutated, and the angle brackets of type
arguments (``List<Integer>``, ``new ArrayList<>()``) are not comparisons. With ``method`` only that
method's body is mutated (the first declaration of that name). Sites are listed in source order; more
sites than ``limit``: a seeded sample, in source order. Mutants whose text equals the original or an
earlier mutant's are dropped. Nothing here compiles a mutant: a type error (``-`` on strings) is possible,
and whoever runs the mutants finds it (``javac`` rejects it).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

OPERATORS = ("arithmetic", "comparison", "boolean", "constant", "negate", "increment", "delete")

_TOKEN = re.compile(r"""
 (?P<space>\s+)
|(?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))
|(?P<string>\"\"\".*?(?:\"\"\"|\Z)|"(?:\\.|[^"\\\n])*(?:"|(?=\n)|\Z))
|(?P<char>'(?:\\.|[^'\\\n])*(?:'|(?=\n)|\Z))
|(?P<number>0[xX][0-9a-fA-F_]+[lL]?|0[bB][01_]+[lL]?
    |(?:\d[\d_]*(?:\.(?!\.)[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?[fFdDlL]?)
|(?P<word>[A-Za-z_$][\w$]*)
|(?P<op>>>>=|<<=|>>=|>>>|\.\.\.|->|::|\+\+|--|&&|\|\||[=!<>+\-*/%&|^]=|<<|>>|.)
""", re.S | re.X)

KEYWORDS = frozenset("""abstract assert boolean break byte case catch char class const continue default do double
    else enum extends final finally float for goto if implements import instanceof int interface long native
    new package private protected public return short static strictfp super switch synchronized this throw
    throws transient try void volatile while var yield record true false null""".split())
_VALUES = frozenset({"this", "super", "true", "false", "null"})  # keywords that end an operand
_NOT_IN_TYPES = KEYWORDS - {"int", "long", "double", "float", "boolean", "char", "byte", "short"}  # int[] is a type
_SWAPS = {
    "arithmetic": {"+": "-", "-": "+", "*": "/", "/": "*", "%": "*", "+=": "-=", "-=": "+=", "*=": "/=",
                   "/=": "*=", "%=": "*="},
    "comparison": {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="},
    "boolean": {"&&": "||", "||": "&&"},
    "increment": {"++": "--", "--": "++"},
}
_ASSIGN = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>=", ">>>="})
_CLOSERS = {">": 1, ">>": 2, ">>>": 3}
INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Token:
    kind: str
    """``space``, ``comment``, ``string`` (text blocks too), ``char``, ``number``, ``word`` or ``op``."""
    text: str
    start: int
    line: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True)
class JavaMutant:
    operator: str
    line: int
    """1-based line of the mutated text in the original source."""
    original: str
    """The replaced text, exactly (a ``delete`` of a statement alone on its line includes that line)."""
    replacement: str
    source: str
    """The whole mutated source."""
    offset: int
    """Where ``original`` starts in the original source: ``source == original_source[:offset] +
    replacement + original_source[offset + len(original):]``."""


def tokenize(source: str) -> list[Token]:
    """Every character of ``source`` in one token; an unterminated comment or literal (a truncated
    completion) runs to the end of its line (a string) or of the text (a block comment)."""
    tokens, line = [], 1
    for match in _TOKEN.finditer(source):
        tokens.append(Token(match.lastgroup, match.group(), match.start(), line))
        line += match.group().count("\n")
    return tokens


def code_tokens(source: str) -> list[Token]:
    """The tokens that are code: no whitespace, no comments."""
    return [t for t in tokenize(source) if t.kind not in ("space", "comment")]


def matching(code: list[Token], index: int) -> int:
    """The index of the bracket that closes ``code[index]`` (``(``, ``[`` or ``{``); ValueError if none."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    depth, opener = 0, code[index].text
    for j in range(index, len(code)):
        if code[j].text == opener:
            depth += 1
        elif code[j].text == pairs[opener]:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced {opener!r} at line {code[index].line}")


def method_body(code: list[Token], method: str) -> tuple[int, int]:
    """Indices in ``code`` of the ``{`` and ``}`` of the first declaration of ``method`` (a name followed by
    its parameters, an optional ``throws`` clause and a body; not a call, not ``new``). ValueError if none."""
    for i, token in enumerate(code[:-1]):
        if token.text != method or code[i + 1].text != "(" or (i and code[i - 1].text in (".", "new")):
            continue
        j = matching(code, i + 1) + 1
        if j < len(code) and code[j].text == "throws":
            while j < len(code) and code[j].text not in ("{", ";"):
                j += 1
        if j < len(code) and code[j].text == "{":
            return j, matching(code, j)
    raise ValueError(f"no method {method!r} with a body in the source")


def type_argument_brackets(code: list[Token]) -> set[int]:
    """Indices of the ``<``/``>`` tokens that bracket type arguments or parameters, not comparisons: a ``<``
    whose tokens up to the matching ``>`` could all be part of a type (names, ``.``, ``,``, ``[]``, a ``?``
    right after ``<`` or ``,``, ``extends``/``super``). ``a < b && c > d`` breaks at ``&&``."""
    found: set[int] = set()
    for i, token in enumerate(code):
        if token.text != "<" or i in found:
            continue
        depth, brackets = 0, []
        for j in range(i, len(code)):
            text, kind = code[j].text, code[j].kind
            if text == "<":
                depth += 1
            elif text in _CLOSERS:
                depth -= _CLOSERS[text]
            elif text == "?" and code[j - 1].text not in ("<", ","):
                break
            elif not (text in (".", ",", "[", "]", "?", "extends", "super")
                      or kind == "word" and text not in _NOT_IN_TYPES):
                break
            if text == "<" or text in _CLOSERS:
                brackets.append(j)
            if depth <= 0:
                if depth == 0:
                    found.update(brackets)
                break
    return found


def _ends_operand(token: Token) -> bool:
    """Whether ``token`` can end an operand, so that an operator after it is binary (``a - b``, not ``-b``)."""
    if token.kind in ("number", "string", "char"):
        return True
    if token.kind == "word":
        return token.text not in KEYWORDS or token.text in _VALUES
    return token.text in (")", "]")


def _line_span(source: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` widened to whole lines when only whitespace shares them (a deleted statement takes
    its line along, so the bug leaves no blank line behind)."""
    head = source.rfind("\n", 0, start) + 1
    tail = source.find("\n", end)
    tail = len(source) if tail == -1 else tail
    if source[head:start].strip() or source[end:tail].strip():
        return start, end
    return head, min(tail + 1, len(source))


def _statements(code: list[Token], first: int, last: int):
    """``(i, j)`` for each statement ``code[i..j]`` (``j`` its ``;``) directly in a block between ``first``
    and ``last``, including nested blocks (not the ``;`` of a ``for`` header, not the parts of a lambda)."""
    stack, start = [("{", first + 1)], first + 1
    for j in range(first + 1, last):
        text = code[j].text
        if text in ("(", "["):
            stack.append((text, start))
        elif text in (")", "]") and len(stack) > 1:
            stack.pop()
        elif text == "{":
            stack.append(("{", start))
            start = j + 1
        elif text == "}" and len(stack) > 1:
            _, saved = stack.pop()
            # a block statement ends here; a lambda's or an anonymous class's body continues its statement
            start = j + 1 if stack[-1][0] == "{" else saved
        elif text == ";" and stack[-1][0] == "{":
            yield start, j
            start = j + 1


def _deletable(statement: list[Token]) -> bool:
    """An expression statement whose removal leaves valid code: an assignment, a call or an increment (not a
    declaration, ``return``, ``break`` or control flow)."""
    if len(statement) < 3:
        return False
    head, second = statement[0], statement[1]
    if head.text in ("++", "--"):
        return True
    if head.kind != "word" or (head.text in KEYWORDS and head.text != "this"):
        return False
    if second.text == "[" and statement[2].text == "]":
        return False  # int[] a = ...
    return second.text in _ASSIGN or second.text in (".", "(", "++", "--", "[")


def _sites(source: str, code: list[Token], first: int, last: int) -> list[tuple[int, int, str, str]]:
    """``(start, end, operator, replacement)`` for every site between ``code[first]`` and ``code[last]``."""
    generic = type_argument_brackets(code)
    sites = []
    for i in range(first + 1, last):
        token, before, after = code[i], code[i - 1], code[i + 1]
        text = token.text
        if token.kind == "op":
            for operator, swaps in _SWAPS.items():
                if text not in swaps or (operator == "comparison" and i in generic):
                    continue
                if operator == "arithmetic":
                    binary = text.endswith("=") or _ends_operand(before)
                    concatenation = text in ("+", "+=") and "string" in (before.kind, after.kind)
                    if not binary or concatenation:
                        continue
                sites.append((token.start, token.end, operator, swaps[text]))
        elif token.kind == "number" and re.fullmatch(r"(0|[1-9][\d_]*)([lL]?)", text):
            value, suffix = int(text.rstrip("lL").replace("_", "")), text[len(text.rstrip("lL")):]
            if suffix or value < INT_MAX:
                sites.append((token.start, token.end, "constant", f"{value + 1}{suffix}"))
        elif text in ("true", "false"):
            sites.append((token.start, token.end, "constant", "false" if text == "true" else "true"))
        elif text in ("if", "while") and after.text == "(":
            close = code[matching(code, i + 1)]
            condition = source[after.start:close.end]
            sites.append((after.start, close.end, "negate", f"(!{condition})"))
    for i, j in _statements(code, first, last):
        if _deletable(code[i:j + 1]):
            start, end = _line_span(source, code[i].start, code[j].end)
            sites.append((start, end, "delete", ""))
    return sorted(sites, key=lambda site: (site[0], OPERATORS.index(site[2])))


def mutants(source: str, *, method: str | None = None, limit: int = 20, seed: int = 0) -> list[JavaMutant]:
    """Single-site mutants of ``source`` (of ``method``'s body only, when given); see the module docstring.
    Raises ValueError for unbalanced brackets or no such method."""
    code = code_tokens(source)
    if method is None:
        edge = Token("op", "", 0, 1)
        code = [edge, *code, Token("op", "", len(source), source.count("\n") + 1)]
        first, last = 0, len(code) - 1
    else:
        first, last = method_body(code, method)
    sites = _sites(source, code, first, last)
    if len(sites) > limit:
        chosen = set(random.Random(seed).sample(range(len(sites)), limit))
        sites = [site for index, site in enumerate(sites) if index in chosen]
    seen, found = {source}, []
    for start, end, operator, replacement in sites:
        text = source[:start] + replacement + source[end:]
        if text in seen:
            continue
        seen.add(text)
        original = source[start:end]
        # the line of the mutated code itself (a deleted line's span starts at its indentation)
        line = source.count("\n", 0, start + len(original) - len(original.lstrip())) + 1
        found.append(JavaMutant(operator, line, original, replacement, text, start))
    return found
