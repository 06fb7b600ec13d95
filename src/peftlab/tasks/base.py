"""The task interface: problems in, prompts out, completions scored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from peftlab.config import Config
from peftlab.errors import UserError


@dataclass
class Evaluation:
    metrics: dict[str, float]
    """Corpus-level metrics, merged into ``metrics.json``."""
    scored: list[dict]
    """One row per problem with its own ``scores`` (written to ``scored.jsonl``; the report reads it)."""
    files: dict[str, list[dict]] = field(default_factory=dict)
    """Further JSONL files for the run directory, by file name (e.g. per-sample verdicts)."""


class Task(ABC):
    name: ClassVar[str]
    trainable: ClassVar[bool] = True
    """Whether the task has a training split (HumanEval, for instance, is evaluation-only)."""
    prediction_keys: ClassVar[tuple[str, ...]] = ("id", "candidates")
    """Keys every row of a predictions file must have for :meth:`evaluate`."""
    extra_outputs: ClassVar[tuple[str, ...]] = ()
    """Files :meth:`evaluate` writes besides ``scored.jsonl`` (the keys of ``Evaluation.files``)."""

    def __init__(self, config: Config):
        self.config = config

    @abstractmethod
    def load(self, split: str) -> list[dict]:
        """Problems of ``split``: each a dict with at least ``id``, ``instruction`` and ``reference``."""

    @abstractmethod
    def prompt(self, problem: dict) -> str:
        """The text the model continues."""

    def response(self, problem: dict) -> str:
        """The training target for ``problem``."""
        return problem["reference"]

    @property
    def stop(self) -> list[str]:
        """Stop strings for generation (default: ``generation.stop`` from the config)."""
        return list(self.config.generation.stop)

    @abstractmethod
    def postprocess(self, completion: str) -> str:
        """Turn raw generated text (prompt already removed) into the candidate that is scored."""

    @abstractmethod
    def evaluate(self, predictions: list[dict], partial: bool = False) -> Evaluation:
        """Score prediction rows (``{id, candidates, ...}`` as ``generate`` writes them) against the test
        split; references always come from the dataset. Ids must match the test split (see
        :func:`match_test_ids`); with ``partial``, missing ids are allowed and reported in the metrics."""


def check_candidate_rows(rows: list[dict]) -> None:
    """Every row has a string ``id`` and a non-empty list of string ``candidates``.

    Raises:
        UserError: naming the first bad row (1-based) and what is wrong with it.
    """
    for number, row in enumerate(rows, start=1):
        if not isinstance(row.get("id"), str):
            raise UserError(f"prediction row {number}: 'id' must be a string, got {type(row.get('id')).__name__}")
        candidates = row.get("candidates")
        if not isinstance(candidates, list) or not candidates or not all(isinstance(c, str) for c in candidates):
            raise UserError(
                f"prediction row {number} ({row['id']}): 'candidates' must be a non-empty list of strings, "
                f"got {type(candidates).__name__}"
            )


def match_test_ids(ids: list[str], test_ids: list[str], *, partial: bool, repeats: bool = False) -> dict:
    """Check prediction ids against the test split; return metrics describing coverage.

    ``repeats`` allows one id on several rows (one row per sample). Returns ``{}`` for a complete file,
    else ``{"partial": True, "missing_ids": N, "test_problems_total": M}``.

    Raises:
        UserError: no rows, an id not in the test split, a repeated id (unless ``repeats``), or missing
            ids (unless ``partial``).
    """
    if not ids:
        raise UserError("no predictions to evaluate (the predictions file is empty)")
    known = set(test_ids)
    unknown = [i for i in dict.fromkeys(ids) if i not in known]
    if unknown:
        raise UserError(
            f"{len(unknown)} prediction id(s) are not in the test split, e.g. {unknown[0]!r}; "
            "predictions must come from this task and data.dir"
        )
    if not repeats and len(set(ids)) != len(ids):
        seen: set[str] = set()
        duplicate = next(i for i in ids if i in seen or seen.add(i))
        raise UserError(f"prediction id {duplicate!r} appears more than once")
    present = set(ids)
    missing = [i for i in test_ids if i not in present]
    if missing and not partial:
        raise UserError(
            f"the predictions cover {len(test_ids) - len(missing)} of {len(test_ids)} test problems "
            f"(missing e.g. {missing[0]!r}); pass --partial to score only those present"
        )
    return {"partial": True, "missing_ids": len(missing), "test_problems_total": len(test_ids)} if missing else {}
