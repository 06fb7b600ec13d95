"""LoRA (Hu et al., 2021) through HF PEFT: low-rank updates on the attention projections by default."""

from __future__ import annotations

from peftlab.methods.base import AdaptationMethod
from peftlab.methods.targets import resolve_target_modules


class LoRA(AdaptationMethod):
    peft_type = "LORA"
    name = "lora"
    options = ("r", "alpha", "dropout", "target_modules")
    default_learning_rate = 3e-4
    source = "r=16, alpha=32, dropout=0.05, lr 3e-4 as in the PEFT-for-code studies (Weyssow et al. 2023)"

    def lora_config(self, model):
        from peft import LoraConfig, TaskType

        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=self.config.r,
            lora_alpha=self.config.alpha,
            lora_dropout=self.config.dropout,
            target_modules=self.config.target_modules or resolve_target_modules(model, "attention"),
        )

    def apply(self, model):
        from peft import get_peft_model

        return get_peft_model(model, self.lora_config(model))
