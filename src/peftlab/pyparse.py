"""``ast.parse`` that several threads may call at once.

CPython 3.11 keeps the recursion-depth counter of its C-AST to Python-object conversion in per-interpreter
state, shared by every thread. When the GIL passes to another thread in the middle of a conversion (a
finaliser or allocation can release it) and that thread parses too, the first thread finds a different
depth at the end and raises ``SystemError: AST constructor recursion depth mismatch`` (python/cpython
gh-106905 and the reports linked there). peftlab parses candidates and tests from worker threads (the
execution pool, the generated-test scorer), and a clean-clone CI run failed on it once. One process-wide
lock around the parse removes the race at no measurable cost: parsing is microseconds beside a sandboxed run.

The sandboxed runner (:mod:`peftlab.execution.runner`) is single-threaded and standard-library only, so it
calls :func:`ast.parse` directly; code in the parent process uses :func:`parse` or holds :data:`LOCK`.
"""

from __future__ import annotations

import ast
import threading

LOCK = threading.Lock()


def parse(source: str, filename: str = "<unknown>", mode: str = "exec") -> ast.Module:
    """:func:`ast.parse` under the process-wide :data:`LOCK` (same arguments, same result, same errors)."""
    with LOCK:
        return ast.parse(source, filename=filename, mode=mode)
