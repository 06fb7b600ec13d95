"""peftlab.pyparse: ast.parse under one process-wide lock (CPython 3.11's AST conversion is not thread-safe)."""

import ast
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from peftlab import pyparse

SOURCE = Path(__file__).parents[1] / "src" / "peftlab"
NESTED = "def f(x):\n" + "".join(f"{'    ' * (i + 1)}if x > {i}:\n" for i in range(30)) + "    " * 31 + "return [x]\n"


def test_parse_gives_ast_parse_s_tree_and_errors():
    assert ast.dump(pyparse.parse(NESTED)) == ast.dump(ast.parse(NESTED))
    assert ast.dump(pyparse.parse("1 + 2", mode="eval")) == ast.dump(ast.parse("1 + 2", mode="eval"))
    with pytest.raises(SyntaxError) as error:
        pyparse.parse("def (:\n", filename="broken.py")
    assert error.value.filename == "broken.py"


def test_a_parse_waits_while_another_holds_the_lock():
    done = threading.Event()
    worker = threading.Thread(target=lambda: (pyparse.parse(NESTED), done.set()))
    with pyparse.LOCK:
        worker.start()
        assert not done.wait(0.3), "the parse ran while the lock was held"
    worker.join(5)
    assert done.is_set()


def test_many_threads_parsing_at_once_all_get_the_right_tree():
    expected = ast.dump(ast.parse(NESTED))
    with ThreadPoolExecutor(8) as pool:
        dumps = list(pool.map(lambda _: ast.dump(pyparse.parse(NESTED)), range(400)))
    assert dumps == [expected] * 400


def test_no_module_in_the_parent_process_calls_ast_parse_directly():
    # The sandboxed runner is single-threaded and standard-library only; everything else goes through the lock.
    allowed = {SOURCE / "pyparse.py", SOURCE / "execution" / "runner.py"}
    offenders = [
        f"{path.relative_to(SOURCE)}:{number}"
        for path in sorted(SOURCE.rglob("*.py"))
        if path not in allowed
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bast\.parse\(|PyCF_ONLY_AST", line)
    ]
    assert offenders == []
