"""LoRA+ (Hayou et al., 2024, "LoRA+: Efficient Low Rank Adaptation of Large Models"): LoRA trained with a
higher learning rate for ``B`` than for ``A`` (``loraplus_lr_ratio`` times), through PEFT's
``create_loraplus_optimizer``. Only the optimiser differs from LoRA; the adapter saves, loads and merges as
LoRA's. The Trainer's optimiser class and settings (AdamW, betas, epsilon) and its schedule are kept;
``train.weight_decay`` applies to ``A`` and ``B``.
"""

from __future__ import annotations

from pydantic import Field

from peftlab.methods.lora import LoRA, LoRAOptions


class LoRAPlusOptions(LoRAOptions):
    loraplus_lr_ratio: float = Field(16.0, ge=1.0)
    """Learning rate of ``B`` over that of ``A`` (``train.learning_rate``)."""


class LoRAPlus(LoRA):
    name = "loraplus"
    Options = LoRAPlusOptions
    default_learning_rate = 1.5e-4
    source = ("ratio 16 (Hayou et al. 2024); lr 1.5e-4 for A, half LoRA's 3e-4 as PEFT's "
              "create_loraplus_optimizer advises; LoRA's r=16, alpha=32, dropout 0.05")

    def optimizer(self, model, args):
        from peft.optimizers import create_loraplus_optimizer
        from transformers import Trainer

        optimizer_class, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
        kwargs = {key: value for key, value in kwargs.items() if key != "lr"}
        return create_loraplus_optimizer(model, optimizer_class, lr=args.learning_rate,
                                         loraplus_lr_ratio=self.options.loraplus_lr_ratio,
                                         loraplus_weight_decay=args.weight_decay, **kwargs)
