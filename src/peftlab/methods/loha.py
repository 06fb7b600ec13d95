"""LoHa (Hyeon-Woo et al., 2022, FedPara; as packaged by LyCORIS, Yeh et al. 2024) through HF PEFT: the
update is the Hadamard (element-wise) product of two rank-``r`` products, ``ΔW = (B1·A1) ⊙ (B2·A2)``, which
can reach rank ``r²`` with the parameters of a rank-``2r`` LoRA. Merges like LoRA.
"""

from __future__ import annotations

from pydantic import Field

from peftlab.methods.base import AdaptationMethod
from peftlab.methods.targets import TargetModules


class LoHaOptions(TargetModules):
    r: int = Field(8, ge=1)
    """Rank of each of the two factors."""
    alpha: int = Field(8, ge=1)
    """Scaling numerator: the update is scaled by ``alpha / r``."""
    rank_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout over the rank dimension during training."""
    module_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Probability of switching an adapted layer off for a training step."""


class LoHa(AdaptationMethod):
    peft_type = "LOHA"
    name = "loha"
    Options = LoHaOptions
    default_learning_rate = 3e-4
    source = ("r=8, alpha=8, no dropout: PEFT's LoHaConfig defaults (r=8 trains as many parameters as LoRA r=16); "
              "attention projections and lr 3e-4 as LoRA (our choice)")

    def peft_config(self, model):
        from peft import LoHaConfig, TaskType

        return LoHaConfig(
            task_type=TaskType.CAUSAL_LM,
            r=self.options.r,
            alpha=self.options.alpha,
            rank_dropout=self.options.rank_dropout,
            module_dropout=self.options.module_dropout,
            target_modules=self.options.targets(model),
        )
