"""Methods. Registry: name -> class implementing :class:`Method`.

Add a method by writing one module with a subclass of ``AdaptationMethod`` (it trains) or
``PromptingBaseline`` (it only builds prompts) and one entry in :data:`METHODS`. A method declares the
``method.*`` options it takes (``Options``, a pydantic model); any other option is a one-line error naming
the methods that take it, so no option is ever silently ignored (docs/methods.md, "Incompatible options").
"""

from __future__ import annotations

from peftlab.config import Config, MethodConfig, check_owned_options
from peftlab.errors import UserError
from peftlab.methods.base import AdaptationMethod, Method, PromptingBaseline, count_parameters
from peftlab.methods.adalora import AdaLoRA
from peftlab.methods.baselines import ICL, RAG, ZeroShot
from peftlab.methods.dora import DoRA
from peftlab.methods.full import FullFineTuning
from peftlab.methods.ia3 import IA3
from peftlab.methods.loha import LoHa
from peftlab.methods.lokr import LoKr
from peftlab.methods.lora import LoRA
from peftlab.methods.loraplus import LoRAPlus
from peftlab.methods.oft import OFT
from peftlab.methods.olora import OLoRA
from peftlab.methods.pissa import PiSSA
from peftlab.methods.prefix_tuning import PrefixTuning
from peftlab.methods.prompt_tuning import PromptTuning
from peftlab.methods.qlora import QLoRA4bit, QLoRA8bit
from peftlab.methods.rslora import RsLoRA
from peftlab.methods.vera import VeRA

METHODS: dict[str, type[Method]] = {
    method.name: method
    for method in (ZeroShot, ICL, RAG, FullFineTuning, LoRA, IA3, PromptTuning, PrefixTuning, QLoRA8bit, QLoRA4bit,
                   DoRA, RsLoRA, PiSSA, OLoRA, LoRAPlus, VeRA, AdaLoRA, LoHa, LoKr, OFT)
}
TRAINING_METHODS = {name: method for name, method in METHODS.items() if method.trains}
PROMPTING_METHODS = tuple(name for name, method in METHODS.items() if not method.trains)


def _owners_of(option: str) -> list[str]:
    return [name for name, method in METHODS.items() if option in method.Options.model_fields]


def get_method(config: MethodConfig) -> Method:
    """Instantiate the method named in ``config`` with its options checked.

    Raises:
        UserError: the name is unknown, or an option does not apply to it (naming the methods it applies
            to) or has a value it cannot honour.
    """
    if config.name not in METHODS:
        raise UserError(f"unknown method '{config.name}'; known: {', '.join(sorted(METHODS))}")
    method_class = METHODS[config.name]
    options = check_owned_options("method", config.options(), method_class.Options, method_class.name, _owners_of)
    method = method_class(config, options)
    method.validate()
    return method


def resolve_method_options(config: Config) -> Method:
    """Check ``config.method`` and write back all of the method's options, defaults filled in, so the resolved
    config (``config.yaml``, a study cell's hash) says exactly what the method ran with. Returns the method.

    Raises:
        UserError: as :func:`get_method`.
    """
    method = get_method(config.method)
    config.method = MethodConfig(name=method.name, **method.options.model_dump(mode="json"))
    return method


def get_training_method(config: MethodConfig) -> AdaptationMethod:
    """Raises: as :func:`get_method`, or UserError for a prompting baseline (it trains nothing)."""
    method = get_method(config)
    if not method.trains:
        raise UserError(f"'{config.name}' is a prompting baseline and trains nothing; use `peftlab generate`")
    return method


__all__ = [
    "AdaptationMethod", "Method", "PromptingBaseline", "METHODS", "TRAINING_METHODS", "PROMPTING_METHODS",
    "get_method", "get_training_method", "resolve_method_options", "count_parameters",
]
