"""Execution scoring of Java candidates, in the shape of :mod:`peftlab.execution.scoring` (whose sample
checks, pass@k and verdict rows it reuses): each sample's program runs against its problem's ``Main`` test
in the sandbox (:func:`peftlab.execution.java.run_java_batch`), and a candidate also counts as compiling
or not.

::

    score_java_samples(samples, problems, *, workers=2, timeout=DEFAULT_TIMEOUT, ks=(1,), postprocess=None,
                       kind="") -> (metrics, verdict rows in input order)
    java_item_scores(rows, ks) -> one row per problem {id, scores: {pass@k..., tests_passed, compiles@k...}}

A sample is ``{"task_id", "completion", ...extra}`` (the program is :func:`data.program` of the problem and
the completion) or ``{"task_id", "solution", ...extra}`` (the whole ``Solution`` source, run as it is).
``metrics`` are :func:`peftlab.execution.scoring.summarize`'s plus ``compiles@k``: the share of problems
where one of k candidates compiles (javac accepts it with the test; a candidate that changes the method's
signature so that the test does not compile does not count). Verdict rows carry ``compiles`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from peftlab.execution import passk
from peftlab.execution.scoring import check_run, per_item_scores, summarize
from peftlab.tasks.humaneval_x_java.data import DEFAULT_TIMEOUT, program, test_job


def candidate_source(row: dict, problem: dict, postprocess: Callable[[str], str] | None = None) -> str:
    """The ``Solution`` source a sample stands for (a ``solution`` is never post-processed)."""
    if isinstance(row.get("completion"), str):
        return program(problem, postprocess(row["completion"]) if postprocess else row["completion"])
    return row["solution"]


def score_java_samples(samples: list[dict], problems: Mapping[str, dict], *, workers: int = 2,
                       timeout: float = DEFAULT_TIMEOUT, ks=(1,), postprocess: Callable[[str], str] | None = None,
                       kind: str = "") -> tuple[dict, list[dict]]:
    """Run every sample's program against its problem's test; return (metrics, verdict rows in input order).

    Raises UserError for an empty input, a bad row, an unknown task_id, a k larger than some problem's
    samples, a non-positive worker count or timeout, or a machine without Java (one line naming the
    packages to install).
    """
    from peftlab.execution.java import run_java_batch
    from peftlab.execution.java.toolchain import toolchain

    indices, ks = check_run(samples, problems, workers, timeout, ks, kind)
    toolchain()  # once, before any thread starts: a machine without Java fails in one line
    jobs = [test_job(problems[row["task_id"]], candidate_source(row, problems[row["task_id"]], postprocess),
                     timeout=timeout) for row in samples]
    results = run_java_batch(jobs, workers=workers)
    verdicts = [{"status": v.status, "reason": v.reason, "tests_passed": v.tests_passed,
                 "tests_total": v.tests_total} for v in results]
    metrics, rows = summarize(samples, indices, verdicts, ks, results[0].backend)
    for row, result in zip(rows, results, strict=True):
        row["compiles"] = result.compiled is True
    items = java_item_scores(rows, ks)
    for k in ks:
        metrics[f"compiles@{k}"] = sum(item["scores"][f"compiles@{k}"] for item in items) / len(items)
    return metrics, rows


def java_item_scores(rows: list[dict], ks: list[int]) -> list[dict]:
    """:func:`peftlab.execution.scoring.per_item_scores` with each problem's ``compiles@k`` added."""
    counts: dict[str, list[int]] = {}
    for row in rows:
        counts.setdefault(row["task_id"], [0, 0])
        counts[row["task_id"]][0] += 1
        counts[row["task_id"]][1] += bool(row["compiles"])
    items = per_item_scores(rows, ks)
    for item in items:
        total, compiled = counts[item["id"]]
        item["scores"].update({f"compiles@{k}": passk.pass_at_k(total, compiled, k) for k in ks})
    return items
