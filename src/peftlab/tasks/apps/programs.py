"""How an APPS answer runs: a whole program (standard input to standard output) or a class/function to
call (``fn_name``), turned into a module whose entry point the harness calls once per test case, and the
``check(candidate)`` module holding the problem's input/output pairs.

The answer is kept as a string and run with ``exec`` on each call, so a program that reads its input at
import time gets that test case's input; only this file's wrapper, never the answer, decides what a call
returns to the trusted side.
"""

from __future__ import annotations

RUN_STDIN = '''
import io as _io
import sys as _sys

_ANSWER = {answer!r}


def _apps_run(stdin_text):
    """The answer run as __main__ on stdin_text; what it wrote to standard output."""
    # text streams over bytes, so that answers using sys.stdin.buffer / sys.stdout.buffer work too
    writer = _io.TextIOWrapper(_io.BytesIO(), encoding="utf-8", write_through=True)
    saved = _sys.stdin, _sys.stdout
    _sys.stdin = _io.TextIOWrapper(_io.BytesIO(stdin_text.encode()), encoding="utf-8")
    _sys.stdout = writer
    try:
        exec(compile(_ANSWER, "<answer>", "exec"), {{"__name__": "__main__"}})
    except SystemExit:
        pass
    finally:
        _sys.stdin, _sys.stdout = saved
    writer.flush()
    return writer.detach().getvalue().decode("utf-8", "replace")  # detach: the bytes stay open
'''

RUN_CALL = '''
_ANSWER = {answer!r}
_namespace = {{"__name__": "answer"}}
exec(compile(_ANSWER, "<answer>", "exec"), _namespace)


def _apps_call(*args):
    """LeetCode style: Solution().{fn_name}(*args) where the answer defines the class, else {fn_name}(*args)."""
    if isinstance(_namespace.get("Solution"), type):
        return getattr(_namespace["Solution"](), {fn_name!r})(*args)
    return _namespace[{fn_name!r}](*args)
'''

# Trusted comparison, in the tests module: APPS's own checker compares whitespace-separated tokens line
# by line, accepting floats that agree closely, and for calls a list-wrapped expected value.
COMPARE = '''
def _lines(text):
    return [line.split() for line in str(text).strip().splitlines() if line.strip()]


def _token_equal(got, want):
    if got == want:
        return True
    try:
        return abs(float(got) - float(want)) <= 1e-6 * max(1.0, abs(float(want)))
    except ValueError:
        return False


def _same_output(got, want):
    got, want = _lines(got), _lines(want)
    return len(got) == len(want) and all(
        len(g) == len(w) and all(_token_equal(a, b) for a, b in zip(g, w)) for g, w in zip(got, want))


def _plain(value):
    return [_plain(item) for item in value] if isinstance(value, (list, tuple)) else value


def _same_value(got, want):
    got = _plain(got)
    return got == want or (isinstance(want, list) and len(want) == 1 and got == want[0])

'''


def _text(value) -> str:
    """APPS stores a stdin/stdout case as a string or as a list of lines."""
    return "\n".join(map(str, value)) + "\n" if isinstance(value, list) else str(value)


def entry_point(fn_name: str | None) -> str:
    """The function of the :func:`runnable` module that the harness calls with each test case."""
    return "_apps_call" if fn_name else "_apps_run"


def runnable(answer: str, fn_name: str | None) -> str:
    """The module that runs ``answer``."""
    if fn_name:
        return RUN_CALL.format(answer=answer, fn_name=fn_name)
    return RUN_STDIN.format(answer=answer)


def tests_module(inputs: list, outputs: list, fn_name: str | None) -> str:
    """``check(candidate)``: one assert per input/output pair (each one test case for the harness)."""
    lines = [COMPARE, "def check(candidate):"]
    for given, wanted in zip(inputs, outputs, strict=True):
        if fn_name:
            lines.append(f"    assert _same_value(candidate(*{given!r}), {wanted!r})")
        else:
            lines.append(f"    assert _same_output(candidate({_text(given)!r}), {_text(wanted)!r})")
    if len(lines) == 2:
        lines.append("    raise AssertionError('no test cases')")
    return "\n".join(lines) + "\n"
