"""DoRA (Liu et al., 2024, "Weight-Decomposed Low-Rank Adaptation") through HF PEFT (``use_dora``): each
adapted weight is split into a magnitude vector (trained) and a direction, and LoRA updates the direction.

Costs more than LoRA per step: every forward pass recomputes the norm of ``W + s·B·A`` per output row
(PEFT's implementation); merges like LoRA.
"""

from __future__ import annotations

from peftlab.methods.lora import LoRA


class DoRA(LoRA):
    name = "dora"
    default_learning_rate = 3e-4
    source = ("LoRA's r=16, alpha=32, dropout 0.05 and lr 3e-4 (Weyssow et al. 2023), so the comparison isolates "
              "the magnitude/direction split (Liu et al. 2024, PEFT use_dora)")

    def lora_kwargs(self) -> dict:
        return {"use_dora": True}
