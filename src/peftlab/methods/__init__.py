"""Methods. Registry: name -> class implementing :class:`Method`.

Add a method by writing one module with a subclass of ``AdaptationMethod`` (it trains) or
``PromptingBaseline`` (it only builds prompts) and one entry in :data:`METHODS`. A method declares the
``method.*`` options it reads (``options``); any other option set away from its default is a one-line
error, so no option is ever silently ignored (docs/methods.md, "Incompatible options").
"""

from __future__ import annotations

from peftlab.config import MethodConfig
from peftlab.errors import UserError
from peftlab.methods.base import AdaptationMethod, Method, PromptingBaseline, count_parameters
from peftlab.methods.baselines import ICL, RAG, ZeroShot
from peftlab.methods.full import FullFineTuning
from peftlab.methods.ia3 import IA3
from peftlab.methods.lora import LoRA
from peftlab.methods.prefix_tuning import PrefixTuning
from peftlab.methods.prompt_tuning import PromptTuning
from peftlab.methods.qlora import QLoRA4bit, QLoRA8bit

METHODS: dict[str, type[Method]] = {
    method.name: method
    for method in (ZeroShot, ICL, RAG, FullFineTuning, LoRA, IA3, PromptTuning, PrefixTuning, QLoRA8bit, QLoRA4bit)
}
TRAINING_METHODS = {name: method for name, method in METHODS.items() if method.trains}
PROMPTING_METHODS = tuple(name for name, method in METHODS.items() if not method.trains)


def _check_options(method: Method) -> None:
    """An option the method does not read, set away from its default, is a mistake: say whose it is."""
    config = method.config
    for field, info in MethodConfig.model_fields.items():
        if field == "name" or field in method.options or getattr(config, field) == info.get_default(call_default_factory=True):
            continue
        owners = [name for name, other in METHODS.items() if field in other.options]
        raise UserError(
            f"method.{field}={getattr(config, field)!r} does not apply to {method.name}; "
            f"it applies to {', '.join(owners)}"
        )
    if "target_modules" in method.options and config.target_modules is not None and not config.target_modules:
        raise UserError("method.target_modules is an empty list; name at least one module or use null (automatic)")


def get_method(config: MethodConfig) -> Method:
    """Instantiate and validate the method named in ``config``.

    Raises:
        UserError: the name is unknown, or an option does not apply to it or has a value it cannot honour.
    """
    if config.name not in METHODS:
        raise UserError(f"unknown method '{config.name}'; known: {', '.join(sorted(METHODS))}")
    method = METHODS[config.name](config)
    _check_options(method)
    method.validate()
    return method


def get_training_method(config: MethodConfig) -> AdaptationMethod:
    """Raises: as :func:`get_method`, or UserError for a prompting baseline (it trains nothing)."""
    method = get_method(config)
    if not method.trains:
        raise UserError(f"'{config.name}' is a prompting baseline and trains nothing; use `peftlab generate`")
    return method


__all__ = [
    "AdaptationMethod", "Method", "PromptingBaseline", "METHODS", "TRAINING_METHODS", "PROMPTING_METHODS",
    "get_method", "get_training_method", "count_parameters",
]
