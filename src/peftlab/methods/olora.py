"""OLoRA (Büyükakyüz, 2024, "OLoRA: Orthonormal Low-Rank Adaptation of Large Language Models") through HF
PEFT: LoRA whose ``B`` starts as the first ``r`` columns of the QR decomposition's orthonormal ``Q`` of each
target weight and ``A`` as the matching rows of ``R``; the frozen base is the residual. Saved as a plain LoRA
of rank ``2r`` (:class:`~peftlab.methods.lora.ResidualLoRA`), so the adapter loads onto the original base.
"""

from __future__ import annotations

from peftlab.methods.lora import ResidualLoRA


class OLoRA(ResidualLoRA):
    name = "olora"
    default_learning_rate = 3e-4
    source = ("LoRA's r=16, alpha=32, dropout 0.05 and lr 3e-4 (Weyssow et al. 2023): OLoRA changes only the "
              "initialisation (Büyükakyüz 2024, PEFT init_lora_weights='olora')")

    def init_lora_weights(self) -> str:
        return "olora"
