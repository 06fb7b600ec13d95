"""The task interface: problems in, prompts out, completions scored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from peftlab.config import Config


class Task(ABC):
    name: ClassVar[str]
    trainable: ClassVar[bool] = True
    """Whether the task has a training split (HumanEval, for instance, is evaluation-only)."""

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

    @abstractmethod
    def postprocess(self, completion: str) -> str:
        """Turn raw generated text (prompt already removed) into the candidate that is scored."""

    @abstractmethod
    def evaluate(self, predictions: list[dict]) -> tuple[dict[str, float], list[dict]]:
        """Score prediction rows ``{id, candidates, reference, ...}``; return (metrics, per-problem rows)."""
