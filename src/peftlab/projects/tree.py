"""A project's source tree as the sandbox receives it: every file (read once, never written), which of
them are importable source modules and which are test files, where imports resolve from, and one hash.

::

    read_tree(root) -> ProjectTree      raises UserError: no such directory, too big, no tests, a syntax error
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from peftlab import pyparse
from peftlab.data.documented_functions import is_test_file
from peftlab.errors import UserError

SKIPPED_DIRECTORIES = {".git", ".hg", ".svn", ".tox", ".nox", ".venv", "venv", ".eggs", "node_modules",
                       "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd", ".o")
MAX_TREE_BYTES = 48 << 20  # what the sandbox gets a copy of, once per batch of test runs
NOT_MODULES = {"setup.py", "conftest.py", "noxfile.py", "fabfile.py"}


@dataclass(frozen=True)
class ProjectTree:
    root: Path
    files: dict[str, bytes]
    """Every file under ``root`` (POSIX relative path -> bytes), build and VCS directories left out."""
    modules: dict[str, str]
    """Source modules that can be mined: relative path -> dotted module name."""
    test_files: tuple[str, ...]
    """Files pytest collects by default (``test_*.py``, ``*_test.py``) under the project's test paths."""
    import_roots: tuple[str, ...]
    """Directories (relative; ``.`` for the root) put first on ``sys.path`` when the tests run."""
    sha256: str
    """Of every path and content: the mined project's cache key."""

    def text(self, rel: str) -> str:
        return self.files[rel].decode("utf-8")


def _walk(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRECTORIES and not d.endswith(".egg-info"))
        for name in sorted(names):
            path = Path(directory, name)
            if name.endswith(SKIPPED_SUFFIXES) or path.is_symlink() or not path.is_file():
                continue
            content = path.read_bytes()
            total += len(content)
            if total > MAX_TREE_BYTES:
                raise UserError(f"project {root} holds over {MAX_TREE_BYTES >> 20} MiB of files; "
                                "mine a smaller tree (its package and tests)")
            files[path.relative_to(root).as_posix()] = content
    return files


def _import_roots(files: dict[str, bytes]) -> tuple[str, ...]:
    """``src`` for a src-layout project (a package under ``src/``), else the root."""
    has_src_package = any(PurePosixPath(rel).parts[:1] == ("src",) and rel.endswith("/__init__.py")
                          and len(PurePosixPath(rel).parts) == 3 for rel in files)
    return ("src",) if has_src_package else (".",)


def _module_name(rel: str, import_root: str, files: dict[str, bytes]) -> str | None:
    """Dotted name if ``rel`` is importable from ``import_root`` (every directory on the way a package)."""
    path = PurePosixPath(rel)
    base = PurePosixPath(import_root)
    if import_root != "." and base not in path.parents:
        return None
    parts = path.relative_to(base).with_suffix("").parts if import_root != "." else path.with_suffix("").parts
    prefix = "" if import_root == "." else import_root + "/"
    for depth in range(1, len(parts)):
        if f"{prefix}{'/'.join(parts[:depth])}/__init__.py" not in files:
            return None
    if not all(part.isidentifier() for part in parts):
        return None
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_collected_test(rel: str) -> bool:
    name = PurePosixPath(rel).name
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def read_tree(root: Path) -> ProjectTree:
    """Read the project at ``root``. Raises UserError for a missing directory, a tree over
    MAX_TREE_BYTES, one without test files or source modules, or a source module that does not parse."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"project directory not found: {root}")
    files = _walk(root)
    roots = _import_roots(files)
    tests = tuple(rel for rel in files if _is_collected_test(rel))
    if not tests:
        raise UserError(f"project {root} has no tests: no test_*.py or *_test.py file")
    modules = {}
    for rel in files:
        if not rel.endswith(".py") or is_test_file(Path(rel)) or PurePosixPath(rel).name in NOT_MODULES:
            continue
        name = next((n for r in roots if (n := _module_name(rel, r, files))), None)
        if name is None:
            continue
        try:
            pyparse.parse(files[rel], filename=rel)
        except SyntaxError as error:
            raise UserError(f"project {root}: syntax error in {rel}, line {error.lineno}: {error.msg}") from None
        except ValueError as error:  # null bytes
            raise UserError(f"project {root}: {rel} is not Python source ({error})") from None
        modules[rel] = name
    if not modules:
        raise UserError(f"project {root} has no importable source module (a package with __init__.py, "
                        "at the root or under src/)")
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
    return ProjectTree(root, files, modules, tests, roots, digest.hexdigest())
