"""The interface every method implements.

A method declares the ``method.*`` options it takes as a pydantic model (``Options``); an instance reads them
as ``self.options``. A training method (:class:`AdaptationMethod`) decides how the base model is loaded
(``quantization_config``: QLoRA loads it in 4 or 8 bits), how it is wrapped for training (``apply``), and
what it should train with by default (``default_learning_rate``); where it needs more of the training loop,
it can bring its own optimiser (``optimizer``: LoRA+) and callbacks (``callbacks``: AdaLoRA's rank
budget). Saving and loading of trained weights goes through ``save``/``load``, which default to PEFT's
adapter format. A prompting baseline (:class:`PromptingBaseline`) trains nothing and builds prompts instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from peftlab.config import MethodConfig, OwnedOptions, check_owned_options


class NoOptions(OwnedOptions):
    """A method that takes no ``method.*`` options."""


class Method(ABC):
    """What every way of adapting a model declares: its name, whether it trains, and the ``method.*``
    options it takes (``Options``; any other option is a one-line error)."""

    name: ClassVar[str]
    trains: ClassVar[bool]
    Options: ClassVar[type[OwnedOptions]] = NoOptions
    """The ``method.*`` options this method takes: typed fields with defaults and docstrings."""
    source: ClassVar[str] = ""
    """Where the default hyper-parameters come from (shown in docs/methods.md)."""

    def __init__(self, config: MethodConfig, options: OwnedOptions | None = None):
        """``options``: already checked (``peftlab.methods.get_method``); else they are read from ``config``."""
        self.config = config
        self.options = options if options is not None else check_owned_options(
            "method", config.options(), self.Options, self.name, lambda key: ())

    def validate(self) -> None:
        """Raise :class:`~peftlab.errors.UserError` for option values this method cannot honour."""


class AdaptationMethod(Method):
    """A method that trains: it loads the base model (``quantization_config``), wraps it for training
    (``apply``) and saves/loads what it trained."""

    trains = True
    default_learning_rate: ClassVar[float]
    replaces_base_model: ClassVar[bool] = False
    """True when :meth:`save` writes a whole model, so :meth:`load` needs no base model (full fine-tuning)."""
    peft_type: ClassVar[str | None] = None
    """The ``peft_type`` of the adapters it saves (``adapter_config.json``), checked when ``model.adapter``
    names one made elsewhere; None for a method that saves a whole model."""
    trains_packed: ClassVar[bool] = True
    """Whether it can train on padding-free packed rows (``peftlab.data.packing``); methods that prepend
    virtual tokens cannot, and train on padded batches one example at a time (``peftlab.stages.trainers``)."""
    gradient_checkpointing: ClassVar[bool] = False
    """Its default for ``train.gradient_checkpointing`` (memory-saving training)."""
    reentrant_checkpointing: ClassVar[bool] = False
    """Whether memory-saving training recomputes layers with torch's reentrant checkpointing: the first
    forward builds no autograd graph at all, so nothing a layer keeps on its graph node outlives the layer.
    It needs inputs that require grad, so such a method's :meth:`apply` enables that. The default,
    non-reentrant form keeps the graph and only drops the tensors saved with ``save_for_backward``."""
    loss_from_model: ClassVar[bool] = False
    """Whether its training loss must be the model's own (AdaLoRA adds a regulariser to it): it then trains
    on whole padded batches, where the model computes the loss."""

    def quantization_config(self):
        """A ``transformers`` quantization config for loading the base model, or ``None`` (full precision)."""
        return None

    def peft_config(self, model):
        """The HF PEFT config this method wraps ``model`` with (the usual way to implement :meth:`apply`)."""
        raise NotImplementedError(f"{self.name} implements neither peft_config nor apply")

    def apply(self, model):
        """Wrap ``model`` for training and return it; only the method's parameters require grad. By default
        the PEFT model of :meth:`peft_config`."""
        from peft import get_peft_model

        return get_peft_model(model, self.peft_config(model))

    def optimizer(self, model, args):
        """The optimiser to train ``model`` with under the Trainer's ``args`` (``TrainingArguments``), or None
        for the Trainer's own (AdamW over the trainable parameters). The Trainer still builds the schedule."""
        return None

    def callbacks(self) -> list:
        """``TrainerCallback`` objects the method needs while training (e.g. a step after each optimiser
        step); they receive the model and the Trainer's state (``state.max_steps``: the run's length)."""
        return []

    def save(self, model, directory: Path) -> None:
        model.save_pretrained(directory)

    def load(self, base_model, directory: Path):
        """Attach trained weights saved by :meth:`save` to a freshly loaded base model (eval mode)."""
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, directory).eval()


class PromptingBaseline(Method):
    """A method that trains nothing: it only builds the prompts the base model continues."""

    trains = False

    @abstractmethod
    def prompts(self, task, problems: list[dict], tokenizer, prompt_budget, seed: int,
                prompt_format=None, shot_task=None) -> tuple[list[str], dict | None]:
        """One prompt per problem, and statistics about demonstrations used (None when there are none).

        ``prompt_budget()`` returns the most tokens a prompt may take (the model's context minus
        ``generation.max_new_tokens``), or None when unknown; it is only called when needed.
        ``prompt_format`` (``peftlab.prompting.format``) renders problems and demonstrations (raw text or the
        model's chat template); None renders the task's raw prompts. ``shot_task`` (default ``task``) is
        the task whose training split demonstrations come from (``data.train_task``).
        """


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
