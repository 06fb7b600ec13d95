"""QLoRA (Dettmers et al., 2023): the frozen base model is loaded quantised by bitsandbytes (4-bit NF4 with
double quantisation, or 8-bit), prepared with ``peft.prepare_model_for_kbit_training`` and LoRA-adapted.

CPU notes (bitsandbytes 0.50):

* On CPUs with AVX512-BF16, ``Linear4bit`` repacks its weights on the first inference-mode forward into a
  bf16-only layout that (a) computes in bf16, (b) requires ``in_features`` to be a multiple of the block
  size (64) and (c) can't be trained afterwards. We switch that repacking off so training, evaluation and
  generation all run the same float32 de-quantise-then-matmul path.
* In inference mode 8-bit layers quantise activations via float16 and log a notice saying so on every
  call; we drop that one message.
* The base is quantised while it is read, never whole in float32 (peftlab.models.loading).
* Memory-saving training by default (``train.gradient_checkpointing``: recomputed activations, freed blocks
  given back at once): the point of QLoRA is memory, and without it QLoRA's peak on a CPU is close to
  LoRA's (bench/results/methods-qwen; docs/methods.md).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Literal

from peftlab.errors import UserError
from peftlab.methods.lora import LoRA, LoRAOptions

log = logging.getLogger(__name__)


class _DropCastNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "will be cast from" not in record.getMessage()


def _quiet_int8_notice() -> None:
    bnb_logger = logging.getLogger("bitsandbytes.autograd._functions")
    if not any(isinstance(f, _DropCastNotice) for f in bnb_logger.filters):
        bnb_logger.addFilter(_DropCastNotice())


def _keep_float32_cpu_path(model):
    """Disable bitsandbytes' bf16 weight repacking for CPU inference (see the module docstring)."""
    import bitsandbytes as bnb

    _quiet_int8_notice()
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
    return model


class _QLoRA(LoRA):
    bits: int
    default_learning_rate = 3e-4
    gradient_checkpointing = True

    def validate(self) -> None:
        """Raises:
        UserError: bitsandbytes is not installed. (``compute_dtype`` is an option of 4-bit only:
            bitsandbytes computes 8-bit layers in the input's dtype.)
        """
        # find_spec, not import: importing bitsandbytes loads torch, and validation must stay fast
        # (configs are checked before anything heavy is imported).
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UserError(f"{self.name} needs bitsandbytes; run: pip install bitsandbytes")

    def quantization_config(self):
        import torch
        from transformers import BitsAndBytesConfig

        compute_dtype = getattr(self.options, "compute_dtype", "float32")
        if compute_dtype != "float32" and not torch.cuda.is_available():
            log.warning("compute_dtype=%s on a CPU: half-precision matmuls are very slow here; float32 is faster",
                        compute_dtype)

        if self.bits == 8:
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
        )

    def apply(self, model):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(_keep_float32_cpu_path(model), use_gradient_checkpointing=False)
        if self.reentrant_checkpointing:
            model.enable_input_require_grads()  # reentrant checkpoints pass gradients only through such inputs
        return super().apply(model)

    def load(self, base_model, directory: Path):
        return super().load(_keep_float32_cpu_path(base_model), directory)


class QLoRA4bitOptions(LoRAOptions):
    compute_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Dtype of the de-quantised matmuls (float32 on CPUs, where bf16 matmuls are ~500x slower)."""


class QLoRA4bit(_QLoRA):
    name = "qlora-4bit"
    bits = 4
    Options = QLoRA4bitOptions
    source = "NF4 + double quantisation (Dettmers et al. 2023); LoRA r/alpha and lr 3e-4 as for LoRA (Weyssow et al.)"


class QLoRA8bit(_QLoRA):
    name = "qlora-8bit"
    bits = 8
    # bitsandbytes' 8-bit training matmul keeps each layer's input on its autograd node as a plain attribute
    # (ctx.A), which non-reentrant checkpointing cannot drop; under reentrant checkpointing the first forward
    # builds no node, so the inputs are freed layer by layer.
    reentrant_checkpointing = True
    source = "LLM.int8() base weights; LoRA r/alpha and lr 3e-4 as for LoRA (Weyssow et al. 2023)"
