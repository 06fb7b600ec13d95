"""Adaptation methods. Registry: name -> class implementing :class:`AdaptationMethod`.

Add a method by writing one module with a subclass of ``AdaptationMethod`` and one entry in
:data:`TRAINING_METHODS`. Prompting baselines (no training) are listed in :data:`PROMPTING_METHODS`.
Options that only one family of methods understands are checked here for every method (see
docs/methods.md, "Incompatible options").
"""

from __future__ import annotations

from peftlab.config import MethodConfig
from peftlab.errors import UserError
from peftlab.methods.base import AdaptationMethod, count_parameters
from peftlab.methods.full import FullFineTuning
from peftlab.methods.ia3 import IA3
from peftlab.methods.lora import LoRA
from peftlab.methods.prefix_tuning import PrefixTuning
from peftlab.methods.prompt_tuning import PromptTuning
from peftlab.methods.qlora import QLoRA4bit, QLoRA8bit
from peftlab.prompting import PROMPTING_METHODS

TRAINING_METHODS: dict[str, type[AdaptationMethod]] = {
    method.name: method
    for method in (FullFineTuning, LoRA, IA3, PromptTuning, PrefixTuning, QLoRA8bit, QLoRA4bit)
}
QUANTIZED_METHODS = (QLoRA8bit.name, QLoRA4bit.name)


def _check_shared_options(method: AdaptationMethod) -> None:
    """Options owned by one method family, set with another: one-line errors instead of silent no-ops."""
    config = method.config
    if config.compute_dtype != "float32" and method.name not in QUANTIZED_METHODS:
        raise UserError(
            f"method.compute_dtype={config.compute_dtype} needs a quantised method (qlora-4bit); "
            f"'{method.name}' loads the model in float32"
        )
    if config.prefix_projection and not isinstance(method, PrefixTuning):
        raise UserError(f"method.prefix_projection applies to prefix-tuning only, not '{method.name}'")
    if config.prompt_init != "random" and not isinstance(method, PromptTuning):
        raise UserError(f"method.prompt_init={config.prompt_init} applies to prompt-tuning only, not '{method.name}'")
    if config.target_modules is not None and not config.target_modules:
        raise UserError("method.target_modules is an empty list; name at least one module or use null (automatic)")


def get_method(config: MethodConfig) -> AdaptationMethod:
    """Instantiate and validate the training method named in ``config``.

    Raises:
        UserError: the name is unknown, names a prompting baseline, or its options are incompatible.
    """
    if config.name in PROMPTING_METHODS:
        raise UserError(f"'{config.name}' is a prompting baseline and trains nothing; use `peftlab generate`")
    if config.name not in TRAINING_METHODS:
        known = ", ".join(sorted(TRAINING_METHODS) + list(PROMPTING_METHODS))
        raise UserError(f"unknown method '{config.name}'; known: {known}")
    method = TRAINING_METHODS[config.name](config)
    _check_shared_options(method)
    method.validate()
    return method


__all__ = [
    "AdaptationMethod", "TRAINING_METHODS", "PROMPTING_METHODS", "QUANTIZED_METHODS", "get_method", "count_parameters",
]
