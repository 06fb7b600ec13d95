"""Mine a code-generation dataset from a Python source tree.

Each module- or class-level function with a natural-language docstring becomes one record:

* ``instruction``: the docstring's text, then the signature;
* ``reference``: the function's source with the docstring removed (dedented);
* ``meta``: file (relative to the source root), qualified name, line.

Records are filtered (docstring and body length, trivial bodies), exact duplicates removed, and split into
train/validation/test **by source file**, so no file contributes to two splits.
"""

from __future__ import annotations

import ast
import random
import sys
import sysconfig
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from peftlab import pyparse
from peftlab.errors import UserError

# A fixed, listed set of pure-Python standard-library modules: real, documented code nobody here wrote,
# present on every machine. Paths are relative to the interpreter's stdlib directory.
DEFAULT_STDLIB_MODULES = (
    "argparse.py", "ast.py", "base64.py", "bisect.py", "calendar.py", "cmd.py", "codecs.py", "colorsys.py",
    "configparser.py", "contextlib.py", "copy.py", "csv.py", "dataclasses.py", "datetime.py", "difflib.py",
    "dis.py", "email", "enum.py", "filecmp.py", "fnmatch.py", "fractions.py", "ftplib.py", "functools.py",
    "gettext.py", "glob.py", "gzip.py", "heapq.py", "hmac.py", "html", "http", "imaplib.py", "inspect.py",
    "ipaddress.py", "json", "locale.py", "logging", "mailbox.py", "mimetypes.py", "netrc.py", "ntpath.py",
    "nntplib.py", "numbers.py", "operator.py", "optparse.py", "pathlib.py", "pickle.py", "pickletools.py",
    "pkgutil.py", "platform.py", "plistlib.py", "poplib.py", "posixpath.py", "pprint.py", "pydoc.py",
    "quopri.py", "random.py", "reprlib.py", "sched.py", "secrets.py", "selectors.py", "shlex.py", "shutil.py",
    "smtplib.py", "socketserver.py", "statistics.py", "string.py", "subprocess.py", "tabnanny.py",
    "tarfile.py", "tempfile.py", "textwrap.py", "threading.py", "timeit.py", "tokenize.py", "trace.py",
    "traceback.py", "typing.py", "unittest", "urllib", "uuid.py", "warnings.py", "weakref.py", "wave.py",
    "xml/dom", "zipfile.py", "zipapp.py",
)


@dataclass(frozen=True)
class MiningOptions:
    min_doc_words: int = 4
    max_doc_chars: int = 600
    min_body_lines: int = 2
    max_body_lines: int = 25
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def default_source_files() -> tuple[Path, list[Path]]:
    """The default source: the listed stdlib modules of the running interpreter (missing ones skipped)."""
    root = stdlib_root()
    files: list[Path] = []
    for entry in DEFAULT_STDLIB_MODULES:
        path = root / entry
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*.py")) if "test" not in p.relative_to(root).parts)
        elif path.is_file():
            files.append(path)
    return root, files


def _is_trivial(body: list[ast.stmt]) -> bool:
    """A body that only passes, holds ``...`` or raises NotImplementedError teaches nothing."""
    for statement in body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue
        if isinstance(statement, ast.Raise) and "NotImplementedError" in ast.unparse(statement):
            continue
        return False
    return True


def _is_natural_language(doc: str, options: MiningOptions) -> bool:
    first_paragraph = doc.split("\n\n")[0]
    words = [word for word in first_paragraph.split() if any(ch.isalpha() for ch in word)]
    return len(words) >= options.min_doc_words and len(doc) <= options.max_doc_chars and ">>>" not in first_paragraph


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Module-level functions and methods of module-level classes, with qualified names."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{item.name}", item


def _record(lines: list[str], name: str, function, rel: str, options: MiningOptions) -> dict | None:
    doc = (ast.get_docstring(function, clean=True) or "").strip()
    if not doc or not _is_natural_language(doc, options):
        return None
    body = function.body[1:]
    if not body or _is_trivial(body):
        return None
    doc_node = function.body[0]
    if doc_node.lineno <= function.lineno:  # docstring on the def line: cannot cut it out by lines
        return None
    signature = textwrap.dedent("\n".join(lines[function.lineno - 1 : doc_node.lineno - 1])).strip()
    body_lines = lines[doc_node.end_lineno : function.end_lineno]
    body_code = [line for line in body_lines if line.strip()]
    if not options.min_body_lines <= len(body_code) <= options.max_body_lines:
        return None
    start = function.decorator_list[0].lineno if function.decorator_list else function.lineno
    code = lines[start - 1 : doc_node.lineno - 1] + body_lines
    reference = textwrap.dedent("\n".join(code)).strip("\n")
    return {
        "instruction": f"{doc}\n\n{signature}",
        "reference": reference,
        "meta": {"file": rel, "name": name, "line": function.lineno},
    }


class SkippedFile(Exception):
    """A source file that cannot be mined; the message is the reason counted in the dataset card."""


def parse_source(path: Path) -> tuple[str, ast.Module]:
    """The text and syntax tree of one file.

    Raises:
        SkippedFile: unreadable (a dangling link, a link loop, a directory named ``*.py``), not UTF-8,
            not valid Python 3 (e.g. Python 2 code), or nested too deeply for the parser.
    """
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SkippedFile("not UTF-8") from None
    except OSError:
        raise SkippedFile("unreadable") from None
    try:
        return source, pyparse.parse(source)
    except (SyntaxError, ValueError):
        raise SkippedFile("syntax error") from None
    except (RecursionError, MemoryError):  # CPython's parser gives up on very deep nesting
        raise SkippedFile("nested too deeply") from None


def mine_file(path: Path, root: Path, options: MiningOptions) -> list[dict]:
    """Records from one file.

    Raises:
        SkippedFile: see :func:`parse_source`.
    """
    source, tree = parse_source(path)
    lines = source.splitlines()
    rel = path.relative_to(root).as_posix()
    found = (_record(lines, name, function, rel, options) for name, function in _functions(tree))
    return [record for record in found if record is not None]


def split_by_file(records: list[dict], options: MiningOptions) -> dict[str, list[dict]]:
    """Assign whole files to splits: files are shuffled with the seed, then test and validation are filled
    to their fractions of all records; the rest is train."""
    by_file: dict[str, list[dict]] = {}
    for record in records:
        by_file.setdefault(record["meta"]["file"], []).append(record)
    files = sorted(by_file)
    random.Random(options.seed).shuffle(files)
    total = len(records)
    targets = {"test": options.test_fraction * total, "validation": options.validation_fraction * total}
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for file in files:
        group = by_file[file]
        split = next((name for name, target in targets.items() if len(splits[name]) < target), "train")
        splits[split].extend(group)
    return splits


TEST_DIRECTORIES = {"test", "tests", "testing"}


def is_test_file(relative: Path) -> bool:
    """A project's own tests (``tests/``, ``test_*.py``, ``*_test.py``, ``conftest.py``): they exercise
    functions rather than document them, so mining them would teach the model to write test code. Directory
    names are matched exactly, so ``unittest`` is kept."""
    name = relative.name
    return (any(part in TEST_DIRECTORIES for part in relative.parts[:-1]) or name.startswith("test_")
            or name.endswith("_test.py") or name == "conftest.py")


def _source_files(source: Path | None, exclude_tests: bool) -> tuple[Path, list[Path], dict]:
    if source is None:
        root, files = default_source_files()
        return root, files, {"kind": "stdlib", "root": str(root), "modules": list(DEFAULT_STDLIB_MODULES)}
    if not source.is_dir():
        raise UserError(f"source directory not found: {source}")
    files = sorted(source.rglob("*.py"))
    if exclude_tests:
        files = [path for path in files if not is_test_file(path.relative_to(source))]
    return source, files, {"kind": "directory", "root": str(source), "tests_excluded": exclude_tests}


def mine(source: Path | None | list, options: MiningOptions, *, exclude_tests: bool = True,
         filter_records: Callable[[list[dict]], tuple[list[dict], dict]] | None = None,
         ) -> tuple[dict[str, list[dict]], dict]:
    """Mine ``source`` (None: the default stdlib modules; or a list of such sources, merged) and return
    ``(splits, card)``.

    With several sources, each record's ``meta.file`` is prefixed with its source's position (``0/``, ``1/``)
    so files of different sources never share a name in the split by file. ``filter_records`` runs on the
    deduplicated records before the split (the contamination check) and returns the kept records and a
    report for the card's ``filtered`` entry.

    Raises:
        UserError: a source directory does not exist, or no function survives the filters.
    """
    sources = source if isinstance(source, list) else [source]
    records: list[dict] = []
    seen: set[str] = set()
    skipped: dict[str, int] = {}
    descriptions, scanned = [], 0
    for position, one in enumerate(sources):
        root, files, description = _source_files(one, exclude_tests)
        descriptions.append(description)
        scanned += len(files)
        for path in files:
            try:
                mined = mine_file(path, root, options)
            except SkippedFile as reason:
                skipped[str(reason)] = skipped.get(str(reason), 0) + 1
                continue
            for record in mined:
                key = record["reference"].strip()
                if key in seen:
                    continue
                seen.add(key)
                if len(sources) > 1:
                    record["meta"]["file"] = f"{position}/{record['meta']['file']}"
                records.append(record)
    filtered = None
    if filter_records is not None:
        records, filtered = filter_records(records)
    if not records:
        where = ", ".join(d["root"] for d in descriptions)
        raise UserError(f"no function with a natural-language docstring survived the filters in {where}")
    splits = split_by_file(records, options)
    for name, split in splits.items():
        for index, record in enumerate(split):
            record["id"] = f"{name}-{index:05d}"
    source_desc = descriptions[0] if len(descriptions) == 1 else descriptions
    card = {
        "source": source_desc,
        "python_version": sys.version.split()[0],
        "files_scanned": scanned,
        "files_skipped": dict(sorted(skipped.items())),
        "counts": {name: len(split) for name, split in splits.items()},
        **({"filtered": filtered} if filtered is not None else {}),
        "options": asdict(options),
        "seed": options.seed,
    }
    return splits, card
