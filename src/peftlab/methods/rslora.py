"""rsLoRA (Kalajdzievski, 2023, "A Rank Stabilization Scaling Factor for Fine-Tuning with LoRA") through HF
PEFT (``use_rslora``): LoRA with the update scaled by ``alpha / sqrt(r)`` instead of ``alpha / r``, so that
raising the rank does not shrink the update's learning dynamics. At the default r=16 the scale is 4x LoRA's.
"""

from __future__ import annotations

from peftlab.methods.lora import LoRA


class RsLoRA(LoRA):
    name = "rslora"
    default_learning_rate = 3e-4
    source = ("LoRA's r=16, alpha=32, dropout 0.05 and lr 3e-4 (Weyssow et al. 2023); scale alpha/sqrt(r) "
              "(Kalajdzievski 2023, PEFT use_rslora)")

    def lora_kwargs(self) -> dict:
        return {"use_rslora": True}
