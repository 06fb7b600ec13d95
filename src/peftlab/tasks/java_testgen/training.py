"""``java-testgen``'s built-in training data, offline: each HumanEval-X Java problem outside the test half as
a focal class -> its own test, rewritten as a JUnit 4 test class.

::

    training_records(split) -> list[dict]     split: train or validation (focal-class records, as the test set's)
    training_card() -> dict                   records per split, assertions, the problems of each split

The rewrite is :func:`peftlab.tasks.java_testgen.main_to_junit.junit_from_main` (one assertion per check).

The split is java-repair's (:func:`peftlab.tasks.java_repair.training.split_of`, a salted hash of the
problem id), so the two Java tasks agree on which problems are test problems: ``data.focal=humaneval-x``
scores the test half only, and the forgetting check on ``humaneval-x-java`` with ``data.problems=test-half``
scores the same half, so no scored problem is trained on. The rewritten tests are checked by execution (they
compile, pass on the canonical solution and kill every kept mutant): a sample in tests/test_java_testgen_training.py,
all 164 by ``bench/java_testgen_training.py`` (the card in bench/results/).
"""

from __future__ import annotations

import collections

from peftlab.tasks.java_repair.training import SPLITS, split_of
from peftlab.tasks.java_testgen.focal import focal_record, humaneval_x_focal


def training_records(split: str) -> list[dict]:
    """Focal-class records (as ``java-testgen``'s test set: ``focal_class``, ``focal_method``,
    ``focal_source``) of the problems of ``split``, the JUnit rewrite of their test as the reference."""
    return [{**focal_record(focal), "split": split}
            for focal in humaneval_x_focal(mutants=False) if split_of(focal.id) == split]


def training_card() -> dict:
    """What the training data is: records and assertions per split, and which problems each split holds."""
    records = {split: training_records(split) for split in SPLITS}
    assertions = {split: sum(r["reference"].count("assertTrue(") + r["reference"].count("assertFalse(")
                             for r in found) for split, found in records.items()}
    return {"source": "HumanEval-X Java (Apache-2.0): each problem's own test as a JUnit 4 class "
                      "(peftlab.tasks.java_testgen.training)",
            "counts": {split: len(found) for split, found in records.items()}, "assertions": assertions,
            "style": dict(collections.Counter("asserts" if "assertTrue(" in r["reference"] or
                                              "assertFalse(" in r["reference"] else "main body"
                                              for found in records.values() for r in found)),
            "problem_ids": {split: [r["id"] for r in found] for split, found in records.items()}}
