"""A declared hypothesis, as a study file states it (light: the study spec imports it without the report's
statistics). Answered by :mod:`peftlab.report.hypotheses`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ALPHA = 0.05
"""The level at which a declared hypothesis is decided (after Holm's adjustment over the declared ones)."""
STUDY_FILE = "study.yaml"
"""Where ``peftlab study`` records the study it ran (its hypotheses included), in the study directory."""


class Hypothesis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: str
    """A row's label: a method name, or ``"lora (method.r=4)"`` for a sweep's row."""
    b: str
    metric: str = "pass@1"
    test: Literal["superiority", "equivalence"] = "superiority"
    margin: float | None = Field(default=None, gt=0)
    """Equivalence margin on the metric's scale (0.05 = 5 points of pass@1); required for ``equivalence``."""
    effect: float = Field(default=0.10, gt=0)
    """The smallest difference worth detecting, for ``peftlab study --plan``'s power (superiority)."""
    task: str | None = None
    """The task whose table holds both rows (default: the one task where both rows are)."""
    dataset: str | None = None
    """The test set, where a task ran on more than one: the value of its test-set option (``Task.test_set_options``,
    e.g. ``quixbugs``), else its ``data.dir``."""
    model: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.a == self.b:
            raise ValueError(f"a hypothesis compares two different rows, not '{self.a}' with itself")
        if self.test == "equivalence" and self.margin is None:
            raise ValueError("an equivalence hypothesis needs its margin (e.g. margin: 0.05)")
        return self

    @property
    def title(self) -> str:
        return self.name or f"{self.a} vs {self.b}"

    @property
    def method_names(self) -> tuple[str, str]:
        """The method of each side (a row label without its sweep)."""
        return self.a.split(" (")[0], self.b.split(" (")[0]
