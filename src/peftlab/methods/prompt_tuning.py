"""Prompt tuning (Lester et al., 2021) through HF PEFT: trained "soft" token embeddings are prepended to
every input; the model itself is frozen. The virtual tokens start random or from the embeddings of
``method.prompt_init_text``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from peftlab.config import OwnedOptions
from peftlab.errors import UserError
from peftlab.methods.base import AdaptationMethod


class PromptTuningOptions(OwnedOptions):
    num_virtual_tokens: int = Field(20, ge=1)
    """Number of virtual tokens."""
    prompt_init: Literal["random", "text"] = "random"
    """Initialise the virtual tokens randomly or from the embeddings of ``prompt_init_text``."""
    prompt_init_text: str = "Write a Python function that does what the instruction says."


class PromptTuning(AdaptationMethod):
    peft_type = "PROMPT_TUNING"
    name = "prompt-tuning"
    Options = PromptTuningOptions
    default_learning_rate = 3e-3
    trains_packed = False  # PEFT prepends virtual tokens and drops position_ids (peftlab.data.packing)
    source = "20 virtual tokens, lr 3e-3 as in Weyssow et al. 2023 / Storhaug & Li 2024"

    def validate(self) -> None:
        """Raises:
        UserError: text initialisation with an empty ``prompt_init_text``.
        """
        if self.options.prompt_init == "text" and not self.options.prompt_init_text.strip():
            raise UserError("method.prompt_init=text needs a non-empty method.prompt_init_text")

    def peft_config(self, model):
        """PEFT config. Text initialisation tokenizes with the model's own tokenizer (its directory).

        Raises:
            UserError: text initialisation for a model that was not loaded from a directory.
        """
        from peft import PromptTuningConfig, PromptTuningInit, TaskType

        kwargs = {"prompt_tuning_init": PromptTuningInit.RANDOM}
        if self.options.prompt_init == "text":
            from peftlab.models.loading import resolve_model_path

            if not getattr(model, "name_or_path", ""):
                raise UserError("method.prompt_init=text needs a model loaded from a directory with its tokenizer")
            path, _ = resolve_model_path(model.name_or_path)
            kwargs = {
                "prompt_tuning_init": PromptTuningInit.TEXT,
                "prompt_tuning_init_text": self.options.prompt_init_text,
                "tokenizer_name_or_path": path,
            }
        return PromptTuningConfig(
            task_type=TaskType.CAUSAL_LM, num_virtual_tokens=self.options.num_virtual_tokens, **kwargs
        )
