"""Where a model runs and in which dtype: ``model.device`` and ``model.dtype`` resolved against the machine.

::

    resolve_placement(model_config) -> Placement(device, dtype)

``auto`` means: the GPU when CUDA is available, else the CPU; bfloat16 on a GPU that supports it (float16
on one that does not), float32 on a CPU — where half-precision matmuls are ~500x slower than float32 on the
machines peftlab is developed on. Which GPU is chosen with ``CUDA_VISIBLE_DEVICES`` (what the Trainer and
a study's scheduler use), not by an index in the config. Training and generation both use the placement:
the model is loaded in its dtype and moved to its device, and the Trainer trains there (with mixed
precision matching the dtype).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from peftlab.errors import UserError


@dataclass(frozen=True)
class Placement:
    device: str
    """``cpu`` or ``cuda``."""
    dtype: str
    """``float32``, ``bfloat16`` or ``float16``."""

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"

    def record(self) -> dict:
        """What a run's metrics say about where it ran."""
        return {"device": self.device, "dtype": self.dtype}


CPU = Placement("cpu", "float32")


def resolve_placement(model_config) -> Placement:
    """``model.device`` / ``model.dtype`` (``auto`` or explicit) for this machine.

    Raises:
        UserError: ``model.device=cuda`` where CUDA is not available.
    """
    device = model_config.device
    cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if cuda else "cpu"
    elif device == "cuda" and not cuda:
        raise UserError("model.device=cuda but CUDA is not available here (no GPU, or a CPU-only torch); "
                        "use model.device=auto or cpu")
    dtype = model_config.dtype
    if dtype == "auto":
        dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if device == "cuda" else "float32"
    return Placement(device, dtype)
