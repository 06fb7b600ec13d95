"""LoKr (Edalati et al., 2022, KronA; as packaged by LyCORIS, Yeh et al. 2024) through HF PEFT: the update
is a Kronecker product ``ΔW = W1 ⊗ W2`` of a small matrix and a (low-rank when large) one, the factor shapes
chosen by PEFT from each layer's dimensions (``decompose_factor``). Very few parameters; merges like LoRA.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from peftlab.methods.base import AdaptationMethod
from peftlab.methods.targets import TargetModules


class LoKrOptions(TargetModules):
    r: int = Field(8, ge=1)
    """Rank of the second Kronecker factor where it is decomposed (PEFT keeps it full when r is large)."""
    alpha: int = Field(8, ge=1)
    """Scaling numerator: the update is scaled by ``alpha / r``."""
    decompose_factor: int = -1
    """Size of the first factor's dimensions (-1: as close to the square root of each dimension as divides it)."""
    rank_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout over the rank dimension during training."""
    module_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Probability of switching an adapted layer off for a training step."""

    @field_validator("decompose_factor")
    @classmethod
    def _automatic_or_positive(cls, value):
        if value != -1 and value < 1:
            raise ValueError("-1 (automatic) or a positive factor")
        return value


class LoKr(AdaptationMethod):
    peft_type = "LOKR"
    name = "lokr"
    Options = LoKrOptions
    default_learning_rate = 3e-4
    source = ("r=8, alpha=8, decompose_factor=-1, no dropout: PEFT's LoKrConfig defaults; attention projections "
              "and lr 3e-4 as LoRA (our choice)")

    def peft_config(self, model):
        from peft import LoKrConfig, TaskType

        return LoKrConfig(
            task_type=TaskType.CAUSAL_LM,
            r=self.options.r,
            alpha=self.options.alpha,
            decompose_factor=self.options.decompose_factor,
            rank_dropout=self.options.rank_dropout,
            module_dropout=self.options.module_dropout,
            target_modules=self.options.targets(model),
        )
