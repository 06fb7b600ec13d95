"""The interface every adaptation method implements.

A method decides three things: how the base model is loaded (``quantization_config``: QLoRA loads it in
4 or 8 bits), how it is wrapped for training (``apply``), and what it should train with by default
(``default_learning_rate``). Saving and loading of trained weights goes through ``save``/``load``, which
default to PEFT's adapter format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from peftlab.config import MethodConfig


class AdaptationMethod(ABC):
    name: ClassVar[str]
    default_learning_rate: ClassVar[float]
    replaces_base_model: ClassVar[bool] = False
    """True when :meth:`save` writes a whole model, so :meth:`load` needs no base model (full fine-tuning)."""
    source: ClassVar[str] = ""
    """Where the default hyper-parameters come from (shown in docs/methods.md)."""

    def __init__(self, config: MethodConfig):
        self.config = config

    def quantization_config(self):
        """A ``transformers`` quantization config for loading the base model, or ``None`` (full precision)."""
        return None

    def validate(self) -> None:
        """Raise :class:`~peftlab.errors.UserError` for options this method cannot honour."""

    @abstractmethod
    def apply(self, model):
        """Wrap ``model`` for training and return it; only the method's parameters require grad."""

    def save(self, model, directory: Path) -> None:
        model.save_pretrained(directory)

    def load(self, base_model, directory: Path):
        """Attach trained weights saved by :meth:`save` to a freshly loaded base model (eval mode)."""
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, directory).eval()


def count_parameters(model) -> dict[str, float]:
    """Trainable and total parameter counts (and the trainable share in percent).

    For PEFT models PEFT's own count is used: it unpacks bitsandbytes 4-bit storage (two weights per
    byte), which ``numel()`` would count at half, so QLoRA's total matches the float model's.
    """
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total, "trainable_percent": 100.0 * trainable / total}
