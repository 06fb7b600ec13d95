"""The ``int8`` generation engine (``generation.engine=int8``): linear layers with int8 weights and
dynamically quantised activations, for faster generation on a CPU.

Why dynamic quantisation: on this project's CPUs (AVX-512 VNNI) int8 matrix products run 2–4× faster than
float32 ones (bench/generate_speed.py), and generation here is bound by them: a prompt's prefill and every
decoding step are matrix products over all weights. It needs no calibration data and no new dependency
(``torch.ao``; deprecated in favour of torchao, which has no build for the pinned torch here). It is not
exact: candidates can differ from the float32 model's, which is why it is an explicit option and studies
that run both engines get an agreement table (docs/report.md, "Engines").
"""

from __future__ import annotations

import warnings

import torch

from peftlab.errors import UserError
from peftlab.models.adapters import prompt_learning_config


def int8_for_generation(model):
    """``model`` (a PEFT adapter merged into its base first, where it can be) with every ``nn.Linear``
    replaced by a dynamically quantised int8 one.

    Raises:
        UserError: the model is on a GPU, or its base is already quantised (QLoRA): int8 dynamic
            quantisation works on float32 CPU weights.
    """
    parameters = list(model.parameters())
    if parameters and parameters[0].device.type != "cpu":
        raise UserError("generation.engine=int8 runs on the CPU only; use the exact engine on a GPU")
    if any(type(module).__module__.startswith("bitsandbytes") for module in model.modules()):
        raise UserError("generation.engine=int8 needs a float32 base model; this method's base is already "
                        "4/8-bit (bitsandbytes): use generation.engine=exact")
    if hasattr(model, "merge_and_unload") and prompt_learning_config(model) is None:
        model = model.merge_and_unload()  # adapter layers read their weights directly; plain linears quantise
    with warnings.catch_warnings():
        # torch.ao announces its deprecation at every call; the pinned torch keeps it (see the docstring)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
