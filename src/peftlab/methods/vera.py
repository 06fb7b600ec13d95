"""VeRA (Kopiczko et al., 2024, "Vector-based Random Matrix Adaptation") through HF PEFT: one pair of frozen
random low-rank matrices shared by every adapted layer, and per layer only two trained scaling vectors
(``r`` + the layer's output width). Layers of different shapes (GQA's narrower keys and values) use slices of
the shared matrices, which PEFT sizes for the largest layer.

The shared matrices are saved with the adapter (PEFT's ``save_projection``), so it reloads exactly on any
machine. Merges like LoRA.
"""

from __future__ import annotations

from pydantic import Field

from peftlab.methods.base import AdaptationMethod
from peftlab.methods.targets import TargetModules


class VeRAOptions(TargetModules):
    r: int = Field(256, ge=1)
    """Rank of the shared random projections."""
    d_initial: float = Field(0.1, gt=0.0)
    """Initial value of the rank-side scaling vector (the output-side one starts at 0)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input."""


class VeRA(AdaptationMethod):
    peft_type = "VERA"
    name = "vera"
    Options = VeRAOptions
    default_learning_rate = 3e-3
    source = ("r=256, d_initial=0.1, no dropout: PEFT's VeraConfig defaults; attention projections as for LoRA; "
              "lr 3e-3, 10x LoRA's (our choice: only scaling vectors train)")

    def peft_config(self, model):
        from peft import TaskType, VeraConfig

        return VeraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=self.options.r,
            d_initial=self.options.d_initial,
            vera_dropout=self.options.dropout,
            target_modules=self.options.targets(model),
        )
