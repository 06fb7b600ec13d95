"""A generated JUnit 4 test as the file the Java runner compiles: extracted from the model's text, then made
runnable against one focal class.

::

    extract_test(completion, stops) -> str          the code of the answer (fenced or not), imports added
    runnable_test(text, focal_class) -> RunnableTest | None   package, wrapper class, file name, classes to run
    has_assertion(test) -> bool                     whether the test checks anything
    mask(source) -> str                             comments and literals blanked, same length

Nothing here can make a test pass: every change either adds what the request said is there (JUnit's imports,
the focal class's package) or removes text (prose, a cut-off member). Whether the result compiles is a score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from peftlab.tasks.postprocess import cut_at_stop

IMPORTS = ("import org.junit.*;", "import static org.junit.Assert.*;", "import java.util.*;")
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
# Where Java code starts in an unfenced answer: what a test file or a bare test method begins with.
_CODE_START = re.compile(r"^\s*(@|//|/\*|(import|package|public|protected|private|final|abstract|class|static|void)\b)")
_TYPE = re.compile(r"\b(class|interface|enum|record)\s+([A-Za-z_$][\w$]*)")
_PACKAGE = re.compile(r"^[ \t]*package\s+[\w.]+\s*;[ \t]*\n?", re.MULTILINE)
_IMPORT = re.compile(r"^[ \t]*import\s+(static\s+)?[\w.]+(\.\*)?\s*;[ \t]*\n?", re.MULTILINE)
_ASSERTION = re.compile(r"\b(assert[A-Z]\w*|fail)\s*\(|\bassert\b|\bthrow\b|\bexpected\s*=|\.expect\w*\s*\(")


def mask(source: str) -> str:
    """``source`` with comments and string/char literals (text blocks too) blanked to spaces, newlines kept,
    so that braces, keywords and positions can be read from it without a parser."""
    out = list(source)
    i, n = 0, len(source)

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        if source.startswith("//", i):
            end = source.find("\n", i)
            end = n if end == -1 else end
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            end = n if end == -1 else end + 2
        elif source.startswith('"""', i):
            end = source.find('"""', i + 3)
            end = n if end == -1 else end + 3
        elif source[i] in "\"'":
            quote, end = source[i], i + 1
            while end < n and source[end] != quote and source[end] != "\n":
                end += 2 if source[end] == "\\" else 1
            end = min(end + 1, n)
            blank(i + 1, end - 1)  # the quotes stay: a literal is still a token
            i = end
            continue
        else:
            i += 1
            continue
        blank(i, end)
        i = end
    return "".join(out)


def _depths(masked: str) -> list[int]:
    """The brace depth after each character."""
    depth, found = 0, []
    for char in masked:
        depth += (char == "{") - (char == "}")
        found.append(depth)
    return found


def _matching_brace(masked: str, start: int) -> int:
    """The index of the ``}`` closing the ``{`` at ``start``, or -1 when the text ends first."""
    depth = 0
    for index in range(start, len(masked)):
        depth += (masked[index] == "{") - (masked[index] == "}")
        if depth == 0:
            return index
    return -1


@dataclass(frozen=True)
class TopLevelType:
    name: str
    public: bool
    body: str
    """The text between its braces (empty when unclosed)."""
    start: int
    """Where its declaration starts (its modifiers and annotations included)."""
    end: int
    """Just after its closing brace (the text's end when unclosed)."""


def top_level_types(source: str) -> list[TopLevelType]:
    """The classes (interfaces, enums, records) declared at the top of a compilation unit, in order."""
    masked = mask(source)
    depths = _depths(masked)
    found = []
    for match in _TYPE.finditer(masked):
        if match.start() and depths[match.start() - 1] != 0:
            continue
        opening = masked.find("{", match.end())
        closing = _matching_brace(masked, opening) if opening != -1 else -1
        head_start = max(masked.rfind(";", 0, match.start()), masked.rfind("}", 0, match.start())) + 1
        public = re.search(r"\bpublic\b", masked[head_start:match.start()]) is not None
        found.append(TopLevelType(match.group(2), public, source[opening + 1:closing] if closing != -1 else "",
                                  head_start, closing + 1 if closing != -1 else len(source)))
    return found


def has_assertion(test: str) -> bool:
    """Whether the test checks anything: an ``assert*``/``fail`` call (JUnit, Hamcrest), an ``assert``
    statement, a ``throw``, ``@Test(expected = ...)`` or an ``ExpectedException`` rule. Comments and string
    literals do not count."""
    return _ASSERTION.search(mask(test)) is not None


def _leading_prose_dropped(text: str) -> str:
    """From the first line that starts like Java code (all of it when none does)."""
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), 0)
    return "\n".join(lines[first:])


def _closed(text: str) -> tuple[str, bool]:
    """Text after the last top-level ``}`` (prose) cut. Text whose braces do not close (a completion cut by
    ``generation.max_new_tokens``) cut back to the end of its last complete member, and the class it was in
    closed again. Returns (text, whether an unfinished tail was dropped)."""
    masked = mask(text)
    depths = _depths(masked)
    if not depths or depths[-1] <= 0:
        ends = [i for i, char in enumerate(masked) if char == "}" and depths[i] == 0]
        return (text[:ends[-1] + 1] if ends else text.rstrip()) + "\n", False
    opening = max(i for i, char in enumerate(masked) if char == "{" and depths[i] == 1)
    head = masked[max(masked.rfind(";", 0, opening), masked.rfind("}", 0, opening)) + 1:opening]
    level = 1 if _TYPE.search(head) else 0  # in a class a member ends at depth 1; bare methods end at 0
    ends = [i for i, char in enumerate(masked) if char == "}" and depths[i] == level and (i > opening or not level)]
    if not ends:
        return text, False
    return text[:ends[-1] + 1].rstrip() + "\n" + "}\n" * level, True


def with_imports(text: str) -> str:
    """JUnit 4's and java.util's imports, each unless the text has that very line (after a package line)."""
    missing = [line for line in IMPORTS
               if not re.search(r"^\s*" + r"\s+".join(map(re.escape, line.split())), text, re.MULTILINE)]
    if not missing:
        return text
    block = "\n".join(missing) + "\n"
    package = _PACKAGE.search(mask(text))
    at = package.end() if package else 0
    return text[:at] + block + text[at:]


def extract_test(completion: str, stops: list[str]) -> str:
    """The answer's code: cut at the first stop string; of a fenced answer the first block that holds a
    ``@Test`` (else the first block); prose before the code and after its last closing brace dropped; the
    imports added (:func:`with_imports`). An empty answer stays empty (and is scored as not compiling)."""
    text = cut_at_stop(completion, stops)
    blocks = [m.group(1) for m in _FENCE.finditer(text)]
    if blocks:
        text = next((b for b in blocks if "@Test" in b), blocks[0])
    text = _leading_prose_dropped(text)
    text, _ = _closed(text)
    return with_imports(text) if text.strip() else ""


@dataclass(frozen=True)
class RunnableTest:
    path: str
    """The source's file name (``SolutionTest.java``; under the package's folder)."""
    source: str
    run: tuple[str, ...]
    """Binary names of the classes the runner runs: the top-level classes that declare a ``@Test``."""
    wrapped: bool
    """The text was bare test methods (Methods2Test's targets are), put into a class here."""
    tail_dropped: bool
    focal_copy_dropped: bool
    """The answer repeated the focal class (javac would refuse the duplicate): that copy was removed."""


def _split_imports(text: str) -> tuple[str, str]:
    masked = mask(text)
    kept, rest, at = [], [], 0
    for match in _IMPORT.finditer(masked):
        rest.append(text[at:match.start()])
        kept.append(text[match.start():match.end()].strip())
        at = match.end()
    rest.append(text[at:])
    return "".join(line + "\n" for line in kept), "".join(rest)


def runnable_test(text: str, focal_class: str) -> RunnableTest | None:
    """The test compiled against ``focal_class`` (a binary name, ``Solution`` or ``java_programs.GCD``): in
    that class's package (a package line of the model's is replaced, so the focal class is in scope without an
    import), a copy of the focal class the answer repeats removed, bare methods wrapped in ``public class
    <Focal>Test``, JUnit's imports added. None for a text with no code."""
    if not text.strip():
        return None
    text, tail_dropped = _closed(text)
    text = _PACKAGE.sub("", text)
    package, _, simple = focal_class.rpartition(".")
    copies = [t for t in top_level_types(text) if t.name == simple]
    for copy in reversed(copies):  # the test is run against the dataset's class, never its own copy
        text = text[:copy.start] + text[copy.end:]
    types = top_level_types(text)
    wrapped = not types
    if wrapped:
        imports, body = _split_imports(text)
        text = f"{imports}\npublic class {simple}Test {{\n{body.rstrip()}\n}}\n"
        types = top_level_types(text)
    text = with_imports(text)
    if package:
        text = f"package {package};\n\n{text}"
    testing = [t for t in types if "@Test" in t.body]
    main = next((t for t in types if t.public), (testing or types)[0])
    prefix = f"{package}." if package else ""
    run = tuple(prefix + t.name for t in (testing or [main]))
    folder = package.replace(".", "/") + "/" if package else ""
    return RunnableTest(f"{folder}{main.name}.java", text, run, wrapped, tail_dropped, bool(copies))
