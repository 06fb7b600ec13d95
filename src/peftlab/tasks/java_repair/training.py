"""The Java repair task's training data: the execution-validated bugs injected into HumanEval-X Java
solutions (:mod:`peftlab.tasks.humaneval_x_java.bugs`: single-site mutants of each canonical solution, kept
only when they compile and the problem's test then fails while the canonical solution passes; vendored, so
nothing runs here), restricted to the problems outside the ``humaneval-x`` test half.

::

    training_bugs(split) -> list[dict]       split: train or validation
    training_card() -> dict                  bugs per split, per operator, the problems of each split

Only problems outside the test half (:func:`peftlab.tasks.java_repair.data.in_test_half`) are used,
whichever test set is scored: ``data.bugs`` then chooses only what is scored (a study shares one adapter
across its test sets), and no test set shares a problem with training (QuixBugs' 40 programs are not
HumanEval-X problems). Of those problems, a salted tenth is the validation split.
"""

from __future__ import annotations

import collections
import hashlib

from peftlab.tasks.java_repair.data import SPLIT_SALT, humaneval_x_bugs, in_test_half

PER_PROBLEM = 3  # every bug the HumanEval-X build keeps per problem (its KEEP)
SPLITS = ("train", "validation")


def split_of(problem_id: str) -> str | None:
    """``train``, ``validation`` (a salted tenth), or None for a problem of the test half."""
    if in_test_half(problem_id):
        return None
    tenth = int(hashlib.sha256(f"{SPLIT_SALT}:validation:{problem_id}".encode()).hexdigest(), 16) % 10
    return "validation" if tenth == 0 else "train"


def training_bugs(split: str) -> list[dict]:
    """The bugs of the problems of ``split``, in dataset order, each with its ``split``."""
    return [{**bug, "split": split} for bug in humaneval_x_bugs(per_problem=PER_PROBLEM)
            if split_of(bug["problem_id"]) == split]


def training_card() -> dict:
    """What the training data is: bugs per split and per operator, and which problems each split holds."""
    bugs = {split: training_bugs(split) for split in SPLITS}
    problems = {split: list(dict.fromkeys(bug["problem_id"] for bug in found)) for split, found in bugs.items()}
    return {"source": "peftlab.tasks.humaneval_x_java.bugs (HumanEval-X Java, Apache-2.0)",
            "per_problem": PER_PROBLEM, "counts": {split: len(found) for split, found in bugs.items()},
            "operators": dict(collections.Counter(bug["operator"] for found in bugs.values() for bug in found)),
            "problems": {split: len(ids) for split, ids in problems.items()}, "problem_ids": problems}
