"""Mine a project once: run its test suite under coverage.py with one context per test, map every function
to the tests that execute it, keep the functions whose tests can tell a right body from an empty one.

::

    mine_project(spec, *, seed=0, timeout=10.0, suite_seconds=600, workers=2, filter_records=None,
                 tokenizer=None, progress=print-like) -> MinedProject
    load_project(spec, *, seed=0, timeout=10.0) -> MinedProject | None     the cached result, if any

Steps (the card records each one's counts): (1) the suite runs twice on the unmodified project, once with
coverage; a test that fails, times out or is skipped in either run, or whose outcome differs between them
(flaky), is dropped. (2) A function's tests are the kept tests whose context executed a line of its body;
a test is *direct* when its own function body calls the function by name (:func:`functions.is_direct`).
(3) Every function with tests is run three times on exactly those tests: with its original body (all must
pass when run on their own), and with its body emptied to ``raise NotImplementedError`` and to ``pass`` (one
must fail each time); the survivors are the records. (4) ``filter_records`` (the contamination check) and a split by module.

Cache: ``<cache>/projects/<name>-<key>/`` holding ``records.jsonl`` and ``card.json``, where the key
hashes the tree's content, this miner's version, the seed and the per-test timeout; built in a hidden
work directory and renamed into place, so a directory there is complete.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from peftlab.data.documented_functions import MiningOptions, split_by_file
from peftlab.data.records import read_jsonl, write_json, write_jsonl
from peftlab.data.sources import ResolvedSource, resolve_source
from peftlab.errors import UserError
from peftlab.projects.execute import JobResult, TestJob, run_jobs
from peftlab.projects.functions import called_names, emptied_body, functions_of, is_direct
from peftlab.projects.bodies import run_bodies
from peftlab.projects.tree import ProjectTree, read_tree

MINER_VERSION = 3
"""Part of the cache key: bumped when what mining keeps changes (3: QuixBugs programs joined the
benchmark references that mined functions are checked against)."""
EXAMPLES_KEPT = 5  # dropped tests listed by id in the card, per reason


@dataclass
class MinedProject:
    spec: str
    directory: Path
    tree: ProjectTree
    records: list[dict]
    card: dict

    def split(self, name: str) -> list[dict]:
        return [record for record in self.records if record["split"] == name]


def _key(tree: ProjectTree, seed: int, timeout: float) -> str:
    text = json.dumps({"tree": tree.sha256, "miner": MINER_VERSION, "seed": seed, "timeout": float(timeout)})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _name(source: ResolvedSource) -> str:
    return source.spec.replace("==", "-") if source.kind == "sdist" else (Path(source.root).resolve().name or "project")


def _cache_directory(source: ResolvedSource, tree: ProjectTree, seed: int, timeout: float,
                     cache_root: Path | None) -> Path:
    if cache_root is None:
        from peftlab.cache import cache_dir

        cache_root = cache_dir()
    return Path(cache_root) / "projects" / f"{_name(source)}-{_key(tree, seed, timeout)}"


def load_project(spec: str, *, seed: int = 0, timeout: float = 10.0, cache_root: Path | None = None,
                 download=None) -> MinedProject | None:
    """The mined project of ``spec`` from the cache, or None if it was never mined with these settings.
    ``download`` fetches a source distribution (:func:`peftlab.data.sources.resolve_source`)."""
    source = resolve_source(spec, cache_root, download)
    tree = read_tree(source.root)
    directory = _cache_directory(source, tree, seed, timeout, cache_root)
    if not (directory / "card.json").is_file():
        return None
    card = json.loads((directory / "card.json").read_text(encoding="utf-8"))
    return MinedProject(source.spec, directory, tree, read_jsonl(directory / "records.jsonl"), card)


def _suite(tree: ProjectTree, timeout: float, suite_seconds: float, backend) -> tuple[JobResult, JobResult]:
    """The whole suite twice in one sandbox: with coverage, then without. UserError if it does not finish."""
    jobs = [TestJob(tree.test_files, coverage=tuple(tree.modules), deadline=suite_seconds),
            TestJob(tree.test_files, deadline=suite_seconds)]
    results, timed_out = run_jobs(tree, jobs, timeout=timeout, backend=backend)
    if timed_out or any(r.status in ("timeout", "lost") for r in results):
        raise UserError(f"the test suite of {tree.root} did not finish within {suite_seconds:g} s: a test, a "
                        "fixture or the collection hangs (tests are stopped after "
                        f"{timeout:g} s each, but not while they are imported)")
    if results[0].status == "crashed" and not results[0].outcomes:
        reason = next(iter(results[0].collect_errors.values()), "pytest ended before running a test")
        raise UserError(f"the test suite of {tree.root} could not run: {reason}")
    return results[0], results[1]


def _kept_tests(first: JobResult, second: JobResult) -> tuple[set[str], dict]:
    kept, dropped = set(), {}
    for test in sorted(set(first.outcomes) | set(second.outcomes)):
        a, b = first.outcomes.get(test, ("not run", "")), second.outcomes.get(test, ("not run", ""))
        if a[0] == b[0] == "passed":
            kept.add(test)
            continue
        reason = "flaky" if "passed" in (a[0], b[0]) else (a[0] if a[0] != "not run" else b[0])
        entry = dropped.setdefault(reason, {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < EXAMPLES_KEPT:
            entry["examples"].append({"id": test, "reason": a[1] or b[1]})
    errors = {**second.collect_errors, **first.collect_errors}
    if errors:
        dropped["collection_error"] = {"count": len(errors), "examples": [
            {"id": where, "reason": why} for where, why in list(errors.items())[:EXAMPLES_KEPT]]}
    return kept, dropped


def map_tests(tree: ProjectTree, coverage: JobResult, kept: set[str]) -> list[dict]:
    """Every function of the tree's modules with the kept tests that executed its body, direct ones marked."""
    called: dict[str, set[str] | None] = {}
    functions = []
    for rel, module in sorted(tree.modules.items()):
        lines = coverage.lines.get(rel, {})
        for record in functions_of(tree.text(rel), rel, module):
            body = range(record["header_end"] + 1, record["lines"][1] + 1)
            tests = sorted(set().union(*(lines.get(n, set()) for n in body)) & kept)
            if not tests:
                continue
            for test in tests:
                if test not in called:
                    file = test.split("::", 1)[0]
                    called[test] = called_names(tree.text(file), test) if file in tree.files else None
            record["tests"] = [{"id": t, "direct": is_direct(record, called[t] or set())} for t in tests]
            functions.append(record)
    return functions


def pass_body(record: dict) -> str:
    return " " * record["body_indent"] + "pass\n"


def _validate(tree: ProjectTree, functions: list[dict], timeout: float, workers: int, backend,
              progress) -> tuple[list[dict], dict]:
    """Keep the functions whose original body passes all their tests when run alone, and whose body
    emptied both ways (raise, pass) fails at least one: otherwise a candidate that does nothing would pass."""
    items = ([(record, None) for record in functions] + [(record, emptied_body(record)) for record in functions]
             + [(record, pass_body(record)) for record in functions])
    report = (lambda done, total: progress(f"validating: {done}/{total} runs")) if progress else None
    verdicts = run_bodies(tree, items, timeout=timeout, workers=workers, backend=backend, progress=report)
    n = len(functions)
    kept, reasons = [], {"original fails alone": 0, "raise body passes": 0, "pass body passes": 0,
                         "not attested": 0}
    for index, record in enumerate(functions):
        original, raised, passed = verdicts[index], verdicts[n + index], verdicts[2 * n + index]
        if "error" in (original["status"], raised["status"], passed["status"]):
            reasons["not attested"] += 1
        elif original["status"] != "passed":
            reasons["original fails alone"] += 1
        elif raised["status"] == "passed":
            reasons["raise body passes"] += 1
        elif passed["status"] == "passed":
            reasons["pass body passes"] += 1
        else:
            kept.append(record)
    return kept, reasons


def _write(directory: Path, records: list[dict], card: dict) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".mine-"))
    try:
        write_jsonl(work / "records.jsonl", records)
        write_json(work / "card.json", card)
        os.chmod(work, 0o755)
        if directory.exists():
            shutil.rmtree(directory)
        os.rename(work, directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def mine_project(spec: str, *, seed: int = 0, timeout: float = 10.0, suite_seconds: float = 600.0,
                 workers: int = 2, backend=None, cache_root: Path | None = None,
                 filter_records: Callable[[list[dict]], tuple[list[dict], dict]] | None = None,
                 card_extra: Callable[[dict[str, list[dict]]], dict] | None = None,
                 progress: Callable[[str], None] | None = None, force: bool = False,
                 download=None) -> MinedProject:
    """Mine ``spec`` (a directory, or ``NAME==VERSION`` of a source distribution) unless it is cached.

    Raises:
        UserError: the source cannot be resolved, the tree has no tests or a syntax error, the suite hangs
            or cannot run, or no function survives; nothing is written to the cache then.
    """
    started = time.monotonic()
    source = resolve_source(spec, cache_root, download)
    tree = read_tree(source.root)
    directory = _cache_directory(source, tree, seed, timeout, cache_root)
    if not force and (cached := load_project(spec, seed=seed, timeout=timeout, cache_root=cache_root)):
        return cached
    say = progress or (lambda message: None)
    say(f"running the test suite of {source.spec} twice ({len(tree.test_files)} test files)")
    first, second = _suite(tree, timeout, suite_seconds, backend)
    suite_done = time.monotonic()
    kept, dropped = _kept_tests(first, second)
    if not kept:
        raise UserError(f"no test of {source.spec} passes twice on the unmodified project "
                        f"({sum(d['count'] for d in dropped.values())} dropped: {', '.join(dropped)})")
    functions = map_tests(tree, first, kept)
    for record in functions:
        record["meta"] = {"file": record["file"], "name": record["qualname"], "line": record["lines"][0]}
    executed = len(functions)
    filtered = None
    if filter_records is not None:  # before validation: a dropped function costs no test run
        functions, filtered = filter_records(functions)
    say(f"{len(kept)} tests kept; {executed} functions executed by them; checking {len(functions)} "
        "against their tests")
    records, rejected = _validate(tree, functions, timeout, workers, backend, progress)
    if not records:
        raise UserError(f"no function of {source.spec} has tests that fail when its body is emptied")
    splits = split_by_file(records, MiningOptions(seed=seed))
    for name, split in splits.items():
        for record in split:
            record["split"] = name
    ordered = [record for name in ("train", "validation", "test") for record in splits[name]]
    tests_total = len(set(first.outcomes) | set(second.outcomes))
    card = {
        "project": source.spec, "provenance": source.card(), "tree_sha256": tree.sha256,
        "miner_version": MINER_VERSION, "seed": seed, "per_test_timeout_s": timeout,
        "python_version": sys.version.split()[0],
        "tools": {name: metadata.version(name) for name in ("pytest", "coverage")},
        "files": len(tree.files), "modules": len(tree.modules), "test_files": len(tree.test_files),
        "tests": {"total": tests_total, "kept": len(kept), "dropped": dropped},
        "functions": {"executed_by_kept_tests": executed, "records": len(records),
                      "rejected": rejected, "with_direct_test": sum(any(t["direct"] for t in r["tests"])
                                                                    for r in records)},
        "counts": {name: len(split) for name, split in splits.items()},
        "modules_per_split": {name: len({r["file"] for r in split}) for name, split in splits.items()},
        **({"filtered": filtered} if filtered is not None else {}),
        **(card_extra(splits) if card_extra is not None else {}),
        "seconds": {"suite_twice": round(suite_done - started, 1),
                    "validation": round(time.monotonic() - suite_done, 1),
                    "total": round(time.monotonic() - started, 1)},
    }
    _write(directory, ordered, card)
    return MinedProject(source.spec, directory, tree, ordered, card)
