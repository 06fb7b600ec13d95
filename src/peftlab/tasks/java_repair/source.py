"""Reading Java source text without a Java parser: tokens without comments, the package and imports of a
compilation unit, its top-level type names, and the class a model's answer holds.

::

    tokens(source) -> list[str]            comments and whitespace dropped, literals whole
    declaration_tokens(source) -> list[str]   the same after the package and import declarations
    package_of(source) -> str              ''  for the default package
    imports_of(source) -> str              the import declarations, one per line
    without_package(source) -> str
    top_level_types(source) -> [(name, public)]   the top-level classes, interfaces, enums, records
    source_path(source) -> str             ``pkg/Name.java`` for the public (else first) top-level type
    extract_class(text) -> str             an answer's Java code: leading prose and trailing prose dropped

The tokens are :mod:`peftlab.data.java_mutants`' (comments, text blocks, string and char literals whole, the
longest operator), so two sources equal modulo whitespace and comments give equal token lists.
"""

from __future__ import annotations

import re

from peftlab.data.java_mutants import code_tokens, matching, tokenize

TYPE_KEYWORDS = ("class", "interface", "enum", "record")
MODIFIERS = ("public", "protected", "private", "abstract", "final", "static", "strictfp", "sealed", "non-sealed")
# What a line of Java (not prose) can start with at the top level of a compilation unit.
_JAVA_START = re.compile(r"(?:package|import)\s|@\w|/[/*]|;|(?:(?:%s)\s+)*(?:@interface|%s)\s"
                         % ("|".join(MODIFIERS), "|".join(TYPE_KEYWORDS)))


def tokens(source: str) -> list[str]:
    return [token.text for token in code_tokens(source)]


def _header(source: str) -> tuple[list[tuple[str, int, int, str]], list]:
    """The ``package`` and ``import`` declarations at the start of ``source`` as (keyword, start, end, the
    dotted name), and the code tokens after them."""
    code, found, index = code_tokens(source), [], 0
    while index < len(code) and code[index].text in ("package", "import"):
        close = next((i for i in range(index, len(code)) if code[i].text == ";"), len(code) - 1)
        found.append((code[index].text, code[index].start, code[close].end,
                      "".join(token.text for token in code[index + 1:close])))
        index = close + 1
    return found, code[index:]


def declaration_tokens(source: str) -> list[str]:
    """The tokens of the type declarations: what repair compares, since the program run gets the bug's own
    package and imports whatever the answer declares (docs/repair.md, "Java")."""
    return [token.text for token in _header(source)[1]]


def package_of(source: str) -> str:
    return next((name for keyword, _, _, name in _header(source)[0] if keyword == "package"), "")


def imports_of(source: str) -> str:
    return "".join(source[start:end] + "\n" for keyword, start, end, _ in _header(source)[0] if keyword == "import")


def without_package(source: str) -> str:
    found = next(((start, end) for keyword, start, end, _ in _header(source)[0] if keyword == "package"), None)
    if found is None:
        return source
    return (source[:found[0]] + source[found[1]:].lstrip("\n")).lstrip("\n")


def top_level_types(source: str) -> list[tuple[str, bool]]:
    """(name, declared public) of each top-level type, in order."""
    found, depth, previous = [], 0, []
    for token in code_tokens(source):
        kind, text = token.kind, token.text
        if text == "{":
            depth += 1
        elif text == "}":
            depth -= 1
        elif depth == 0 and kind == "word" and previous and previous[-1] in TYPE_KEYWORDS \
                and (len(previous) < 2 or previous[-2] != "."):  # not ``Foo.class``
            found.append((text, "public" in previous[-4:]))
        previous = (previous + [text])[-6:]
    return found


def source_path(source: str) -> str | None:
    """Where javac expects ``source``: its package as folders, then its public top-level type (else its first
    one); None when it declares no type."""
    types = top_level_types(source)
    if not types:
        return None
    name = next((name for name, public in types if public), types[0][0])
    package = package_of(source)
    return f"{package.replace('.', '/')}/{name}.java" if package else f"{name}.java"


def extract_class(text: str) -> str:
    """The Java code of an answer (fences already stripped): from the first line that starts a compilation
    unit (a package, import, annotation, comment or type declaration) to the end of the last top-level type
    declaration that is followed only by further Java, so that prose before or after the code goes. Text
    with no such line is returned as it is (it will not compile)."""
    lines = text.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if _JAVA_START.match(line.lstrip())), None)
    if first is None:
        return text
    code = "".join(lines[first:])
    depth, end = 0, None
    for token in tokenize(code):
        if token.kind == "op" and token.text == "{":
            depth += 1
        elif token.kind == "op" and token.text == "}":
            depth -= 1
            if depth == 0:
                end = token.end
                rest = code[end:].lstrip()
                if rest and not _JAVA_START.match(rest):
                    break
    return code if end is None else code[:end]


def block_end(source: str, start: int) -> int:
    """The index just past the ``}`` that closes the first ``{`` at or after ``start`` (comments and literals
    skipped). Raises ValueError when there is none or the braces do not balance."""
    code = code_tokens(source)
    opening = next((i for i, token in enumerate(code) if token.start >= start and token.text == "{"), None)
    if opening is None:
        raise ValueError("no block")
    return code[matching(code, opening)].end
