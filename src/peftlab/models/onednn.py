"""Float32 linear layers through oneDNN's inner product during generation (``generation.cpu_matmul=onednn``).

Why: generation on a CPU is bound by its matrix products (bench/generation_bound.py), and torch's own
``linear`` (MKL's sgemm in the pinned x86 wheel) is slow at the few rows a decoding step has: on this
project's 2-core AMD EPYC machines, a 48-row product with an MBPP model's MLP weights runs at ~130 GFLOP/s
through MKL and ~180 through oneDNN, and the output projection over the 151,936-token vocabulary at 8 rows
takes 84 ms against 31 (one-off timings, docs/decisions.md; the whole engine: bench/generate_speed.py).
oneDNN ships inside torch; nothing is installed.

It is float32 arithmetic like MKL's: the two differ only in the order in which they add the products, as
MKL itself does between a 1-row and an 8-row product. On 48 MBPP prompts the greedy candidates are those of
the MKL path (bench/generate_speed.py counts them; tests/test_onednn.py checks it on a tiny model).

How, without touching any module: a ``TorchFunctionMode`` (PyTorch's documented way to intercept functions
within a ``with`` block) answers ``torch.nn.functional.linear`` for float32 CPU tensors with
``torch.ops.mkldnn._linear_pointwise`` (the op torch's own compiler emits for linear layers on CPU) and
passes every other call through unchanged: other dtypes, GPUs, quantised layers (which do not call
``linear``), anything that needs gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn import functional
from torch.overrides import TorchFunctionMode

PLAIN = (torch.Tensor, torch.nn.Parameter)
"""Tensor types routed; subclasses (bitsandbytes' 4/8-bit parameters, tensor wrappers) keep their own path."""


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's linear op (x86 and ARM wheels do)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return torch.ops.mkldnn._linear_pointwise.default is not None
    except (AttributeError, RuntimeError):
        return False


def _routable(tensor: torch.Tensor | None) -> bool:
    return tensor is None or (type(tensor) in PLAIN and tensor.dtype == torch.float32
                              and tensor.device.type == "cpu" and tensor.layout == torch.strided)


def onednn_linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor | None:
    """``functional.linear(input, weight, bias)`` by oneDNN, or ``None`` where it does not apply."""
    if not (_routable(input) and _routable(weight) and _routable(bias) and weight.dim() == 2
            and weight.is_contiguous() and input.dim() >= 1):
        return None
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias)):
        return None  # the op has no backward; training keeps torch's linear
    rows = input.reshape(-1, input.shape[-1])
    output = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")
    return output.reshape(*input.shape[:-1], weight.shape[0])


class OneDNNLinear(TorchFunctionMode):
    """Within ``with OneDNNLinear():``, float32 CPU ``linear`` calls run on oneDNN; ``routed`` counts them."""

    def __init__(self):
        super().__init__()
        self.routed = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is functional.linear:
            output = onednn_linear(*args, **kwargs)
            if output is not None:
                self.routed += 1
                return output
        return func(*args, **kwargs)


@contextlib.contextmanager
def generation_matmul(name: str) -> Iterator[OneDNNLinear | None]:
    """The ``generation.cpu_matmul`` setting as a context: ``onednn`` routes float32 CPU linear layers to
    oneDNN where this torch has it (yields the mode, whose ``routed`` counts the products it answered);
    ``torch`` leaves torch's own ``linear`` (yields ``None``)."""
    if name != "onednn" or not onednn_available():
        yield None
        return
    with OneDNNLinear() as mode:
        yield mode
