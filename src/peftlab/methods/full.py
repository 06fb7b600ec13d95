"""Full fine-tuning: every weight of the model trains; the result is saved as a plain HF model directory."""

from __future__ import annotations

from pathlib import Path

from peftlab.methods.base import AdaptationMethod


class FullFineTuning(AdaptationMethod):
    name = "full"
    replaces_base_model = True
    # no Options: every weight trains, so there are no target modules and no rank
    default_learning_rate = 5e-5
    source = "lr 5e-5 for full fine-tuning as in Weyssow et al. 2023 and Storhaug & Li 2024"

    def apply(self, model):
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model

    def save(self, model, directory: Path) -> None:
        model.save_pretrained(directory)

    def load(self, base_model, directory: Path):
        """The fine-tuned model saved in ``directory`` (float32, eval mode); ``base_model`` is not needed."""
        import torch
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
