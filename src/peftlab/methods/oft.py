"""OFT (Qiu et al., 2023, "Controlling Text-to-Image Diffusion by Orthogonal Finetuning"; PEFT's current
implementation after Qiu et al. 2025) through HF PEFT: each adapted layer's input is rotated by a trained
block-diagonal orthogonal matrix (Cayley transform of skew-symmetric blocks), which preserves the angles
between the layer's neurons. ``oft_block_size`` sets the block size (PEFT >= 0.14: the number of blocks,
its ``r``, follows from each layer's input width); a size that does not divide a layer's input width is
moved by PEFT to the nearest divisor (with a warning). Merges into the weights.

BOFT (butterfly OFT) is left out: on a CPU PEFT cannot load its CUDA butterfly kernel and silently sets the
butterfly factor to 1, where BOFT is this block-diagonal OFT (docs/methods.md).
"""

from __future__ import annotations

from pydantic import Field

from peftlab.methods.base import AdaptationMethod
from peftlab.methods.targets import TargetModules


class OFTOptions(TargetModules):
    oft_block_size: int = Field(32, ge=2)
    """Size of the orthogonal blocks; each trains ``b·(b-1)/2`` parameters."""
    use_cayley_neumann: bool = True
    """Approximate the Cayley transform's inverse by a Neumann series (faster; slightly less orthogonal)."""
    module_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Probability of replacing a block by the identity for a training step."""


class OFT(AdaptationMethod):
    peft_type = "OFT"
    name = "oft"
    Options = OFTOptions
    default_learning_rate = 3e-4
    source = ("oft_block_size=32 with the Cayley-Neumann parametrisation: PEFT's OFTConfig defaults; attention "
              "projections and lr 3e-4 as LoRA (our choice)")

    def peft_config(self, model):
        from peft import OFTConfig, TaskType

        return OFTConfig(
            task_type=TaskType.CAUSAL_LM,
            oft_block_size=self.options.oft_block_size,
            use_cayley_neumann=self.options.use_cayley_neumann,
            module_dropout=self.options.module_dropout,
            target_modules=self.options.targets(model),
        )
