"""The repair task's training data: single-site bugs injected into a mined project's functions, kept only
when the function's own tests then fail (run in the sandbox, :mod:`peftlab.projects.bodies`).

::

    training_bugs(spec, split, *, seed=0, workers=2, per_function=2) -> list[dict]
    build_training_bugs(project, *, per_function=2, workers=2) -> (bugs, card)

Built once per mined project and cached beside it (``repair-bugs-v<N>.jsonl`` and its card: size,
operators, share kept after execution, build time). The split is the mined project's (by module), and the
mined project already dropped near-copies of HumanEval/MBPP solutions, so no benchmark program is trained on.
Both sides of a pair are ``ast.unparse`` output, so the fix differs from the bug only where the bug is.
"""

from __future__ import annotations

import ast
import collections
import textwrap
import time

from peftlab import pyparse
from peftlab.data.mutants import mutants
from peftlab.data.records import read_jsonl, write_json, write_jsonl
from peftlab.projects.functions import body_of_solution
from peftlab.projects.tested_functions import MinedProject
from peftlab.projects.bodies import run_bodies
from peftlab.tasks.mined_projects import mined_project

BUGS_VERSION = 1


def _function_text(record: dict) -> str:
    return textwrap.dedent(record["header"] + record["body"])


def build_training_bugs(project: MinedProject, *, per_function: int = 2, workers: int = 2) -> tuple[list[dict], dict]:
    started = time.monotonic()
    candidates = []
    for record in project.records:
        name = record["qualname"].split(".")[-1]
        text = _function_text(record)
        try:
            fixed = ast.unparse(pyparse.parse(text)) + "\n"
            found = mutants(text, name, limit=per_function, seed=0)
        except (SyntaxError, ValueError):
            continue
        for index, mutant in enumerate(found):
            candidates.append((record, index, mutant, fixed))
    items = [(record, body_of_solution(record, mutant.source)) for record, _, mutant, _ in candidates]
    verdicts = run_bodies(project.tree, items, timeout=float(project.card["per_test_timeout_s"]), workers=workers)
    bugs = []
    for (record, index, mutant, fixed), verdict in zip(candidates, verdicts):
        if verdict["status"] not in ("failed", "timeout"):
            continue
        bugs.append({"id": f"{record['id']}/bug{index}", "buggy": mutant.source, "fixed": fixed,
                     "entry_point": record["qualname"].split(".")[-1], "operator": mutant.operator,
                     "failing_test": verdict["reason"], "split": record["split"], "tests": ""})
    card = {"version": BUGS_VERSION, "project": project.spec, "per_function": per_function,
            "functions": len(project.records), "injected": len(candidates), "kept": len(bugs),
            "kept_share": round(len(bugs) / len(candidates), 3) if candidates else None,
            "operators_injected": dict(collections.Counter(m.operator for _, _, m, _ in candidates)),
            "operators_kept": dict(collections.Counter(b["operator"] for b in bugs)),
            "counts": dict(collections.Counter(b["split"] for b in bugs)),
            "build_seconds": round(time.monotonic() - started, 1)}
    return bugs, card


def training_bugs(spec: str, split: str, *, seed: int = 0, workers: int = 2, per_function: int = 2) -> list[dict]:
    """The training bugs of ``split``, built on first use (minutes: every bug runs its function's tests)."""
    project = mined_project(spec, seed=seed, workers=workers)
    path = project.directory / f"repair-bugs-v{BUGS_VERSION}-{per_function}.jsonl"
    if not path.is_file():
        bugs, card = build_training_bugs(project, per_function=per_function, workers=workers)
        write_json(path.with_suffix(".card.json"), card)
        write_jsonl(path, bugs)  # last, atomically: its presence means the build finished
    return [bug for bug in read_jsonl(path) if bug["split"] == split]

