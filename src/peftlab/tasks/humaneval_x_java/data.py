"""HumanEval-X Java: the 164 problems from the vendored, hash-checked file; the program a completion forms;
the sandbox job that tests a program; the completion's post-processing.

::

    problems() -> list[dict]
        In dataset order (Java/0 ... Java/163); each: id (= task_id), prompt, declaration, canonical_solution,
        test, example_test, entry_point (the method the prompt ends with), imports (the prompt's import
        lines). Raises UserError (one line) for a missing or damaged file.
    program(problem, completion) -> str            the whole ``Solution`` source
    tests_source(problem) -> str                   Main.java: the prompt's imports, then the test
    main_job(program_source, tests, *, timeout=DEFAULT_TIMEOUT) -> JavaJob   tests: Main.java's source
    test_job(problem, program_source, *, timeout=DEFAULT_TIMEOUT) -> JavaJob
    complete_method(text) -> str                   a continuation cut where the class closes, braces completed

The file is byte-for-byte HumanEval-X's ``humaneval_java.jsonl.gz`` (NOTICE says where from); the hash is
checked on the decompressed bytes. Nothing here needs Java: running a job does
(:func:`peftlab.execution.java.run_java`, which raises UserError in one line where Java is missing).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
import zlib
from importlib import resources

from peftlab.data.java_mutants import code_tokens, tokenize
from peftlab.errors import UserError
from peftlab.execution.java.job import JavaJob

DATA_FILE = "humaneval_java.jsonl.gz"
SHA256 = "2157a77a6ff808020adc20142228b4ff698048c0696b33110786400c47c5d79c"  # the JSONL, uncompressed
PROBLEMS = 164
DEFAULT_TIMEOUT = 5.0
"""Seconds for a problem's test (its ``main``); the harness adds the JVM start and the compile on top."""
CLASS_NAME = "Solution"  # every HumanEval-X Java prompt declares `class Solution`
_SIGNATURE = re.compile(r"(\w+)\s*\([^()]*\)\s*(?:throws\s+[\w.,\s]+)?\{\s*$")
_DECLARATION = re.compile(r"^\s*(?:(?:public|private|protected|static|final|synchronized)\s+)+[^;=]*\)\s*"
                          r"(?:throws\s+[\w.,\s]+)?\{\s*$")


def _read() -> bytes:
    try:
        raw = resources.files(__package__).joinpath(DATA_FILE).read_bytes()
        data = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"the HumanEval-X Java data file {DATA_FILE} is unreadable ({exc}); reinstall peftlab") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise UserError(f"the HumanEval-X Java data file {DATA_FILE} has sha256 {digest[:16]}..., expected "
                        f"{SHA256[:16]}... (damaged or replaced; reinstall peftlab)")
    return data


@functools.lru_cache(maxsize=1)
def _problems() -> tuple[dict, ...]:
    found = []
    for line in _read().decode("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        last = row["prompt"].rstrip().splitlines()[-1]
        signature = _SIGNATURE.search(last)
        if signature is None:
            raise UserError(f"HumanEval-X Java {row['task_id']}: its prompt does not end with a method declaration")
        imports = "".join(text + "\n" for text in row["prompt"].splitlines() if text.startswith("import "))
        found.append({"id": row["task_id"], "prompt": row["prompt"], "declaration": row["declaration"],
                      "canonical_solution": row["canonical_solution"], "test": row["test"],
                      "example_test": row["example_test"], "entry_point": signature.group(1), "imports": imports})
    return tuple(found)


def problems() -> list[dict]:
    """The problems in dataset order (copies: a caller may change them)."""
    return [dict(problem) for problem in _problems()]


def _declares_class(text: str) -> bool:
    """Whether ``text`` is a whole program (it declares the ``Solution`` class before its first brace), not
    the continuation of a method body (whose first statement may be a local class: Java/75)."""
    code = code_tokens(text)
    for before, token in zip(code, code[1:]):
        if before.text == "{":
            return False
        if before.text == "class" and token.text == CLASS_NAME:
            return True
    return bool(code) and code[0].text == "import"


def complete_method(text: str) -> str:
    """A continuation of the prompt (which leaves the method and its class open) up to the brace that
    closes the class, or, when it ends before that, with the missing braces appended (``    }`` for the
    method, ``}`` for the class, as HumanEval-X's canonical solutions end). A whole ``Solution`` class is
    cut where it closes; a continuation that starts by repeating the method's declaration opens one more
    level (:func:`program` drops the repeated line). Braces in comments and literals do not count."""
    whole = _declares_class(text)
    first = next((line for line in text.splitlines() if line.strip()), "")
    depth = 0 if whole else (1 if _DECLARATION.match(first) else 2)
    opened = not whole
    for token in code_tokens(text):
        if token.text == "{":
            depth, opened = depth + 1, True
        elif token.text == "}":
            depth -= 1
            if depth == 0 and opened:
                return text[:token.end]
    kept = text.rstrip()
    tokens = tokenize(kept)
    if tokens and tokens[-1].kind == "comment" and tokens[-1].text.startswith("/*") \
            and (len(tokens[-1].text) < 4 or not tokens[-1].text.endswith("*/")):
        kept += " */"  # a truncated block comment would swallow the braces
    return kept + "".join("\n" + "    " * (level - 1) + "}" for level in range(depth, 0, -1))


def program(problem: dict, completion: str) -> str:
    """The whole source a completion stands for: the prompt, then the completion (HumanEval-X's form). A
    completion that is a whole ``Solution`` class replaces the prompt (the prompt's imports go first when
    it has none); one that repeats the method's declaration line loses that line."""
    if _declares_class(completion):
        starts_with_import = code_tokens(completion)[0].text == "import"
        return completion if starts_with_import else problem["imports"] + "\n" + completion
    lines = completion.split("\n")
    first = next((index for index, line in enumerate(lines) if line.strip()), None)
    if first is not None and _DECLARATION.match(lines[first]) and re.search(
            rf"\b{re.escape(problem['entry_point'])}\s*\(", lines[first]):
        completion = "\n".join(lines[first + 1:])
    return problem["prompt"] + completion


def tests_source(problem: dict) -> str:
    """Main.java: the test needs the prompt's imports (``List``, ``Arrays``, ...)."""
    return problem["imports"] + "\n" + problem["test"]


_MODIFIERS = {"final", "abstract", "strictfp"}


def make_public(source: str, name: str = CLASS_NAME) -> str:
    """``source`` with its top-level class ``name`` declared public (HumanEval-X's ``class Solution`` is not).
    Why: the runner loads the program and the tests with two class loaders (so that a program cannot reach
    its tests), which puts them in different runtime packages: a package-private class would be
    inaccessible to its tests (IllegalAccessError). Behaviour and coverage are unchanged."""
    code, depth = code_tokens(source), 0
    for index, token in enumerate(code[:-1]):
        depth += {"{": 1, "}": -1}.get(token.text, 0)
        if depth == 0 and token.text == "class" and code[index + 1].text == name:
            first = index
            while first and code[first - 1].text in _MODIFIERS:  # `final class X`: public goes first
                first -= 1
            if first and code[first - 1].text == "public":
                return source
            return source[:code[first].start] + "public " + source[code[first].start:]
    return source


def main_job(program_source: str, tests: str, *, timeout: float = DEFAULT_TIMEOUT) -> JavaJob:
    """The sandbox job that runs ``tests`` (a ``Main`` class that throws on a wrong answer) against a whole
    ``Solution`` source: one case, passed when ``main`` returns."""
    return JavaJob(program={f"{CLASS_NAME}.java": make_public(program_source)}, tests={"Main.java": tests},
                   run=("Main",), mode="main", timeout=float(timeout))


def test_job(problem: dict, program_source: str, *, timeout: float = DEFAULT_TIMEOUT) -> JavaJob:
    """:func:`main_job` with the problem's own test."""
    return main_job(program_source, tests_source(problem), timeout=timeout)
