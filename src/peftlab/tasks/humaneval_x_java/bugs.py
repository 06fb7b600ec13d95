"""Execution-validated injected bugs of HumanEval-X Java, for program repair (the way HumanEval-Java was made):
single-site mutants of each canonical solution's method (:mod:`peftlab.data.java_mutants`), kept only when
the problem's test then fails -- the mutant compiles, and ``main`` throws -- while the canonical solution
passes. Up to :data:`KEEP` per problem, the first such in a seeded order of its mutants.

::

    bugs(per_problem=1) -> list[dict]          from the vendored file; 1 <= per_problem <= KEEP
    build(workers=2, seed=0) -> (rows, summary)  runs the sandbox (~0.3 s per run)

    python -m peftlab.tasks.humaneval_x_java.bugs --build [--workers N]   rewrites the vendored file

A bug: ``{id, problem_id, buggy, fixed, tests, operator, line, entry_point, original, replacement,
failing_test}``: ``buggy`` and ``fixed`` are whole ``Solution`` sources (``fixed`` is the prompt plus the
canonical solution; run either with :func:`data.main_job`, which makes ``Solution`` public for the runner),
``tests`` the source of ``Main.java``, ``line`` the mutated line, ``original``/``replacement`` the
mutated text. The vendored file stores where each mutation is (``offset``) instead of the whole source;
the fix is rebuilt from the dataset and checked to hold ``original`` there.

Mutants that time out are not kept: whether a slow mutant finishes in time depends on the machine, and a
loop that never ends makes every check of the benchmark wait for its timeout.
"""

from __future__ import annotations

import argparse
import collections
import functools
import gzip
import io
import json
import random
import sys
import time
from importlib import resources
from pathlib import Path

from peftlab.data.java_mutants import mutants
from peftlab.errors import UserError
from peftlab.tasks.humaneval_x_java.data import DEFAULT_TIMEOUT, problems, program, test_job, tests_source

BUGS_FILE = "humaneval-x-java-bugs.jsonl.gz"
KEEP = 3
SEED = 0
FIELDS = ("problem_id", "rank", "operator", "line", "offset", "original", "replacement", "failing_test")


def _canonical(problem: dict) -> str:
    return program(problem, problem["canonical_solution"])


def _seeded_mutants(problem: dict, seed: int) -> list:
    """Every mutant of the problem's method, in the seeded order the build tries them in."""
    found = mutants(_canonical(problem), method=problem["entry_point"], limit=10**6)
    random.Random(f"{seed}:{problem['id']}").shuffle(found)
    return found


def build(workers: int = 2, seed: int = SEED, *, keep: int = KEEP, timeout: float = DEFAULT_TIMEOUT,
          limit: int | None = None, log=print) -> tuple[list[dict], dict]:
    """The vendored file's rows, and a summary: canonical solutions that fail (excluded, with the reason),
    problems without a kept bug, mutants tried and why each one not kept was dropped, kept per operator.
    Each round runs, for every problem still short of ``keep`` bugs, its next untried mutants (as many as it
    lacks), so the kept ones are the first in the seeded order."""
    from peftlab.execution.java import run_java_batch

    started = time.monotonic()
    chosen = problems()[:limit]
    canonical = run_java_batch([test_job(p, _canonical(p), timeout=timeout) for p in chosen], workers)
    excluded = {p["id"]: f"{v.status}: {v.reason}" for p, v in zip(chosen, canonical) if v.status != "passed"}
    for problem_id, reason in excluded.items():
        log(f"{problem_id}: the canonical solution does not pass ({reason}); excluded")
    queues = {p["id"]: _seeded_mutants(p, seed) for p in chosen if p["id"] not in excluded}
    by_id = {p["id"]: p for p in chosen}
    kept: dict[str, list[dict]] = {problem_id: [] for problem_id in queues}
    dropped: collections.Counter = collections.Counter()
    tried = 0
    while True:
        batch = []
        for problem_id, queue in queues.items():
            need = keep - len(kept[problem_id])
            batch += [(problem_id, queue.pop(0)) for _ in range(min(need, len(queue)))]
        if not batch:
            break
        verdicts = run_java_batch([test_job(by_id[problem_id], mutant.source, timeout=timeout)
                                   for problem_id, mutant in batch], workers)
        tried += len(batch)
        for (problem_id, mutant), verdict in zip(batch, verdicts):
            if verdict.compiled is True and verdict.status == "failed":
                kept[problem_id].append({"problem_id": problem_id, "rank": len(kept[problem_id]),
                                         "operator": mutant.operator, "line": mutant.line, "offset": mutant.offset,
                                         "original": mutant.original, "replacement": mutant.replacement,
                                         "failing_test": verdict.reason})
            else:
                dropped["does not compile" if verdict.compiled is False else verdict.status] += 1
        log(f"tried {tried} mutants; kept {sum(map(len, kept.values()))}")
    rows = [row for problem_id in queues for row in kept[problem_id]]
    summary = {"problems": len(chosen), "excluded": excluded, "tried": tried, "kept": len(rows),
               "dropped": dict(dropped), "without_bug": [i for i, found in kept.items() if not found],
               "kept_by_operator": dict(collections.Counter(row["operator"] for row in rows)),
               "first_by_operator": dict(collections.Counter(found[0]["operator"] for found in kept.values() if found)),
               "seed": seed, "keep": keep, "seconds": round(time.monotonic() - started, 1)}
    return rows, summary


def write(rows: list[dict], path: Path) -> None:
    """Gzipped JSONL, byte-for-byte reproducible (no file name or time in the gzip header)."""
    text = "".join(json.dumps({key: row[key] for key in FIELDS}, ensure_ascii=False) + "\n" for row in rows)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as fh:
        fh.write(text.encode("utf-8"))
    path.write_bytes(buffer.getvalue())


@functools.lru_cache(maxsize=1)
def _vendored() -> tuple[dict, ...]:
    try:
        raw = resources.files(__package__).joinpath(BUGS_FILE).read_bytes()
        lines = gzip.decompress(raw).decode("utf-8").splitlines()
        return tuple(json.loads(line) for line in lines if line.strip())
    except (OSError, EOFError, ValueError) as exc:
        raise UserError(f"the HumanEval-X Java bugs file {BUGS_FILE} is unreadable ({exc}); reinstall peftlab, "
                        "or rebuild it: python -m peftlab.tasks.humaneval_x_java.bugs --build") from None


def bugs(per_problem: int = 1) -> list[dict]:
    """The first ``per_problem`` kept bugs of every problem that has one, in dataset order (see the module
    docstring for the keys). Raises UserError for a ``per_problem`` outside 1..KEEP or a damaged file."""
    if not 1 <= int(per_problem) <= KEEP:
        raise UserError(f"per_problem must be between 1 and {KEEP} (the build keeps {KEEP} bugs per problem), "
                        f"got {per_problem}")
    by_id = {p["id"]: p for p in problems()}
    found = []
    for row in _vendored():
        problem = by_id.get(row["problem_id"])
        if row["rank"] >= per_problem:
            continue
        fixed = _canonical(problem) if problem else ""
        start, end = row["offset"], row["offset"] + len(row["original"])
        if fixed[start:end] != row["original"]:
            raise UserError(f"the HumanEval-X Java bugs file {BUGS_FILE} does not match the dataset at "
                            f"{row['problem_id']} (rank {row['rank']}); rebuild it (--build)")
        found.append({"id": f"{row['problem_id']}/bug{row['rank']}", "problem_id": row["problem_id"],
                      "buggy": fixed[:start] + row["replacement"] + fixed[end:], "fixed": fixed,
                      "tests": tests_source(problem), "operator": row["operator"], "line": row["line"],
                      "entry_point": problem["entry_point"], "original": row["original"],
                      "replacement": row["replacement"], "failing_test": row["failing_test"]})
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peftlab.tasks.humaneval_x_java.bugs", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="store_true", help=f"run the sandbox and rewrite the vendored {BUGS_FILE}")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name(BUGS_FILE))
    args = parser.parse_args(argv)
    if not args.build:
        parser.print_help()
        return 2
    try:
        rows, summary = build(workers=args.workers, log=lambda line: print(line, file=sys.stderr))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    write(rows, args.output)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
