"""PiSSA (Meng et al., 2024, "Principal Singular Values and Singular Vectors Adaptation") through HF PEFT:
LoRA whose ``A``, ``B`` start as the top-``r`` singular triplets of each target weight (``B0·A0 ≈`` the
weight's principal part) and whose frozen base is the residual. Saved as a plain LoRA of rank ``2r``
(:class:`~peftlab.methods.lora.ResidualLoRA`), so the adapter loads onto the original base model.

The SVD is PEFT's fast randomised one (``pissa_niter_N``, ``svd_niter`` subspace iterations): on a CPU the
exact SVD of every target matrix is what makes the initialisation slow, and the residual is computed as
``W - s·B0·A0`` either way, so an approximate SVD never changes the model's starting function.
"""

from __future__ import annotations

from pydantic import Field

from peftlab.methods.lora import LoRAOptions, ResidualLoRA


class PiSSAOptions(LoRAOptions):
    alpha: int = Field(16, ge=1)
    """Scaling numerator: the update is scaled by ``alpha / r`` (PiSSA uses ``alpha = r``)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input (PiSSA uses none)."""
    svd_niter: int | None = Field(4, ge=0)
    """Subspace iterations of the fast randomised SVD; null for the exact (slow) SVD."""


class PiSSA(ResidualLoRA):
    name = "pissa"
    Options = PiSSAOptions
    default_learning_rate = 2e-5
    source = ("r=16 with alpha=r, no dropout, lr 2e-5 and fast SVD with 4 iterations as in PEFT's PiSSA example "
              "(examples/pissa_finetuning, from Meng et al. 2024)")

    def init_lora_weights(self) -> str:
        niter = self.options.svd_niter
        return "pissa" if niter is None else f"pissa_niter_{niter}"
