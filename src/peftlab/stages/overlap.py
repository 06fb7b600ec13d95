"""The run's train/test overlap: which training items (adapter training data, or ICL/RAG demonstrations)
copy, exactly or nearly, a solution of the items the run is scored on. Written to the run's
``data_card.json`` and summarised in ``metrics.json`` (``overlap_exact``, ``overlap_near``), so the report
can flag a row whose score may come from memory.

The rule is the benchmark contamination check's (:mod:`peftlab.data.contamination`): function bodies
normalised, exact token match or 5-gram Jaccard >= 0.7. Each side's code is :meth:`Task.reference_code`;
a test set without solutions (MultiPL-E's MBPP) cannot be checked, and the card says so.
"""

from __future__ import annotations

from peftlab.config import Config
from peftlab.data.contamination import overlap
from peftlab.methods import get_method
from peftlab.tasks import get_task, get_training_task


def uses_training_data(config: Config) -> bool:
    """Whether the run sees the training split: it trains (here or in the cell it borrows from) or shows
    demonstrations from it."""
    method = get_method(config.method)
    return method.trains or getattr(getattr(method, "options", None), "shots", 0) > 0


def training_overlap(config: Config) -> dict | None:
    """The overlap card of a run that uses training data (None otherwise)."""
    if not uses_training_data(config):
        return None
    train_task, test_task = get_training_task(config), get_task(config.task, config)
    train = [(str(example["id"]), code) for example in train_task.sized("train", train_task.load("train"))
             if (code := train_task.reference_code(example))]
    test = [(str(problem["id"]), code) for problem in test_task.sized("test", test_task.load("test"))
            if (code := test_task.reference_code(problem))]
    card = {"train": f"{train_task.name} (train split)", "test": f"{test_task.name} (test split)",
            **overlap(train, test)}
    if not test:
        card["note"] = "the test set ships no reference solutions: overlap cannot be checked"
    return card
