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

Blocked weights (``onednn``, the default; ``onednn-plain`` goes without): a weight as PyTorch keeps it
(row-major) is read by oneDNN's few-row kernels at ~18 GB/s here, about half of what these machines stream,
while a copy in the blocked layout oneDNN chooses for an 8-row product is read 1.2–2× faster at 2–48 rows
and as fast at a prefill's hundreds (bench/onednn_layout.py); a single row keeps the row-major weight, which
its own kernel reads faster. Each weight is copied at its first product of two rows or more in a
generation, and the copies are dropped when it ends: generation holds the float32 weights twice (+2 GB for
Qwen2.5-Coder-0.5B; copying them all took 3 s in the bench). The blocked products give the very bits the
row-major ones give (no difference at 2–256 rows in the bench; tests/test_onednn.py).

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

BLOCKED_ROWS = 8
"""The row count oneDNN is told to lay weights out for: a decoding step's few rows, where a blocked copy
streams 1.2–2× faster than the row-major weight (bench/onednn_layout.py); at a prefill's hundreds of rows
it is as fast as the row-major one."""
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


def onednn_linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  blocked: torch.Tensor | None = None) -> torch.Tensor | None:
    """``functional.linear(input, weight, bias)`` by oneDNN, or ``None`` where it does not apply; ``blocked``:
    ``weight`` in oneDNN's own layout (:func:`blocked_weight`), multiplied instead of it."""
    return _product(input, weight, bias, blocked) if routable(input, weight, bias) else None


def _product(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
             blocked: torch.Tensor | None) -> torch.Tensor:
    """oneDNN's ``linear`` for arguments :func:`routable` has accepted."""
    rows = input.reshape(-1, input.shape[-1])
    output = torch.ops.mkldnn._linear_pointwise(rows, weight if blocked is None else blocked, bias, "none", [], "")
    return output.reshape(*input.shape[:-1], weight.shape[0])


def routable(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether oneDNN computes ``linear(input, weight, bias)`` here: float32 plain CPU tensors, a contiguous
    matrix, nothing that needs gradients (the op has no backward; training keeps torch's linear)."""
    if not (_routable(input) and _routable(weight) and _routable(bias) and weight.dim() == 2
            and weight.is_contiguous() and input.dim() >= 1):
        return False
    return not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (input, weight, bias)))


def blocked_weight(weight: torch.Tensor) -> torch.Tensor | None:
    """A copy of ``weight`` in the blocked layout oneDNN picks for products of ``BLOCKED_ROWS`` rows, or
    ``None`` where this torch cannot make one."""
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, BLOCKED_ROWS)
    except (AttributeError, RuntimeError):
        return None


class OneDNNLinear(TorchFunctionMode):
    """Within ``with OneDNNLinear():``, float32 CPU ``linear`` calls run on oneDNN; ``routed`` counts them.
    With ``blocked``, each weight is copied once into oneDNN's blocked layout at its first product and that
    copy is multiplied from then on (dropped when the block ends)."""

    def __init__(self, blocked: bool = True):
        super().__init__()
        self.routed = self.copied = 0
        self.blocked: dict[int, tuple[torch.Tensor, int, torch.Tensor | None]] | None = {} if blocked else None
        """id(weight) -> (weight, its version when copied, the copy or ``None`` where this torch makes none): the
        weight is held so its id stays its own. Emptied when the block ends; ``copied`` counts the copies made."""

    def __exit__(self, *exc_info):
        if self.blocked is not None:
            self.blocked.clear()  # the copies hold the weights a second time: gone with the generation
        return super().__exit__(*exc_info)

    def _blocked(self, weight: torch.Tensor) -> torch.Tensor | None:
        if self.blocked is None:
            return None
        try:
            version = weight._version
        except RuntimeError:  # an inference tensor has no version counter, and nothing changes it here
            version = -1
        entry = self.blocked.get(id(weight))  # held weights keep their ids: an entry is this weight's own
        if entry is None or entry[1] != version:
            entry = (weight, version, blocked_weight(weight))
            self.blocked[id(weight)] = entry
            self.copied += entry[2] is not None
        return entry[2]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is functional.linear:
            named = dict(zip(("input", "weight", "bias"), args)) | kwargs
            input, weight, bias = named["input"], named["weight"], named.get("bias")
            if routable(input, weight, bias):
                self.routed += 1
                # one row reads the row-major weight faster (bench/onednn_layout.py): its own kernel
                single = input.numel() == input.shape[-1]
                return _product(input, weight, bias, None if single else self._blocked(weight))
        return func(*args, **kwargs)


@contextlib.contextmanager
def generation_matmul(name: str) -> Iterator[OneDNNLinear | None]:
    """The ``generation.cpu_matmul`` setting as a context: ``onednn`` routes float32 CPU linear layers to
    oneDNN where this torch has it, multiplying blocked copies of the weights; ``onednn-plain`` the same from
    the weights as they are (no copies: less memory, slower steps); both yield the mode, whose ``routed``
    counts the products it answered. ``torch`` leaves torch's own ``linear`` (yields ``None``)."""
    if name not in ("onednn", "onednn-plain") or not onednn_available():
        yield None
        return
    with OneDNNLinear(blocked=name == "onednn") as mode:
        yield mode
