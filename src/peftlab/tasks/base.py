"""The task interface: problems in, prompts out, completions scored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from peftlab.config import Config


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
    def evaluate(self, predictions: list[dict]) -> Evaluation:
        """Score prediction rows (``{id, candidates, reference, ...}`` as ``generate`` writes them)."""
