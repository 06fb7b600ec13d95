"""Prefix tuning (Li & Liang, 2021) through HF PEFT: trained key/value vectors for ``num_virtual_tokens``
positions are prepended in every attention layer (as a past-key-values cache); the model is frozen.
With ``method.prefix_projection`` the prefix is produced by a two-layer MLP (hidden size = the model's)
from a smaller embedding, which trains more stably but has many more parameters."""

from __future__ import annotations

from pydantic import Field

from peftlab.config import OwnedOptions
from peftlab.methods.base import AdaptationMethod


class PrefixTuningOptions(OwnedOptions):
    num_virtual_tokens: int = Field(20, ge=1)
    """Number of virtual tokens (prefix positions per layer)."""
    prefix_projection: bool = False
    """Reparameterise the prefix through a two-layer MLP."""


class PrefixTuning(AdaptationMethod):
    peft_type = "PREFIX_TUNING"
    name = "prefix-tuning"
    Options = PrefixTuningOptions
    default_learning_rate = 3e-2
    trains_packed = False  # PEFT prepends virtual tokens and drops position_ids (peftlab.data.packing)
    source = "20 virtual tokens, lr 3e-2 as in Weyssow et al. 2023; projection off by default (our choice)"

    def peft_config(self, model):
        from peft import PrefixTuningConfig, TaskType

        return PrefixTuningConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=self.options.num_virtual_tokens,
            prefix_projection=self.options.prefix_projection,
            encoder_hidden_size=model.config.hidden_size,
        )
