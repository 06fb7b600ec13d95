"""Mined projects as the tasks use them: mined once with the benchmark contamination check, from the
cache afterwards (:mod:`peftlab.projects.tested_functions` does the work; this adds what only the tasks layer knows,
the benchmarks' reference solutions), and the ``data.*`` options of the tasks that read one
(:class:`MinedProjectOptions`: ``project-codegen``, ``testgen``, ``repair``).

::

    mined_project(spec, *, seed=0, tokenizer=None, progress=None, workers=2) -> MinedProject
    MinedProjectOptions(project=None, project_seed=0, context_chars=1024)
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from peftlab.config import OwnedOptions
from peftlab.data.contamination import ContaminationIndex, drop_contaminated
from peftlab.projects.tested_functions import MinedProject, load_project, mine_project
from peftlab.tasks.benchmarks import benchmark_references
from peftlab.tasks.codegen.build import token_length_stats


class MinedProjectOptions(OwnedOptions):
    """The ``data.*`` options of a task whose problems (or training pairs) are a mined project's functions."""

    project: str | None = None
    """The mined project: a directory with a test suite, or a pinned source distribution
    (``algorithms==1.0.1``), as ``peftlab data mine`` takes it; mined on first use and cached by source hash
    (:mod:`peftlab.projects.tested_functions`)."""
    project_seed: int = 0
    """Seed of the mined project's split by module (``peftlab data mine --seed``)."""
    context_chars: int = Field(1024, ge=0)
    """Characters of module context (imports, constants, the stubs of the names the function uses) put above
    the function in its prompt, at most."""


def contamination_filter(functions: list[dict]) -> tuple[list[dict], dict]:
    """Drop mined functions that copy (or nearly copy) a HumanEval or MBPP solution."""
    index = ContaminationIndex(benchmark_references())
    views = [{**function, "reference": function["header"] + function["body"]} for function in functions]
    kept, report = drop_contaminated(views, index)
    kept_ids = {view["id"] for view in kept}
    return [function for function in functions if function["id"] in kept_ids], report


def token_lengths(tokenizer, name: str) -> Callable[[dict[str, list[dict]]], dict]:
    """The card's per-split token-length statistics of headers (signature + docstring), bodies and tests."""
    def count(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    def stats(splits: dict[str, list[dict]]) -> dict:
        return {"tokenizer": name, "token_lengths": {
            split: {"header": token_length_stats([count(r["header"]) for r in records]),
                    "body": token_length_stats([count(r["body"]) for r in records]),
                    "tests_per_function": token_length_stats([len(r["tests"]) for r in records])}
            for split, records in splits.items()}}

    return stats


def mined_project(spec: str, *, seed: int = 0, tokenizer=None, tokenizer_name: str = "", workers: int = 2,
                  progress: Callable[[str], None] | None = None, force: bool = False) -> MinedProject:
    """The cached mined project of ``spec``, mining it first if needed (minutes for a real project).
    ``tokenizer`` (or a function loading it) adds token-length statistics to the card of a new mining.

    Raises:
        UserError: as :func:`peftlab.projects.tested_functions.mine_project`.
    """
    cached = load_project(spec, seed=seed)  # resolves and reads the tree first: a bad spec fails in a second
    if cached is not None and not force:
        return cached
    if callable(tokenizer) and not hasattr(tokenizer, "encode"):  # a loader: only now that mining is due
        tokenizer = tokenizer()
    extra = token_lengths(tokenizer, tokenizer_name) if tokenizer is not None else None
    return mine_project(spec, seed=seed, workers=workers, filter_records=contamination_filter, card_extra=extra,
                        progress=progress, force=force)
