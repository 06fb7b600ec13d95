"""Key/value caches whose rows are independent sequences: joined, trimmed and masked per row.

Continuous batching (:mod:`peftlab.stages.continuous`) keeps one cache for every running sequence. Rows
differ in length, so a row's cache holds masked columns: left padding, the padding between a shared prompt
prefix and the row's own prompt tokens, and the draft tokens prompt-lookup decoding rejected. A masked
column gets exactly zero attention weight, and position ids count a row's real tokens only, so none of
these columns changes what the row computes.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache


def left_padded_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows, derived from the attention mask as ``generate`` derives them
    (padding gets 1; it is masked, so its value never matters)."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)


def left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def repeated(cache_layers: list[tuple[torch.Tensor, torch.Tensor]], count: int) -> DynamicCache:
    """A new cache holding ``count`` copies of a one-row cache (the model appends to it; the original stays)."""
    return DynamicCache(ddp_cache_data=[(k.repeat(count, 1, 1, 1), v.repeat(count, 1, 1, 1)) for k, v in cache_layers])


def join(first: DynamicCache | None, first_mask, second: DynamicCache, second_mask):
    """One cache (and mask) holding ``first``'s rows then ``second``'s, left-padded to a common length."""
    if first is None:
        return second, second_mask
    length = max(first_mask.shape[1], second_mask.shape[1])
    joined = [(torch.cat([left_pad(k1, length, 2), left_pad(k2, length, 2)]),
               torch.cat([left_pad(v1, length, 2), left_pad(v2, length, 2)]))
              for (k1, v1), (k2, v2) in zip(layers(first), layers(second), strict=True)]
    mask = torch.cat([left_pad(first_mask, length, 1), left_pad(second_mask, length, 1)])
    return DynamicCache(ddp_cache_data=joined), mask


def trim(cache: DynamicCache, mask: torch.Tensor):
    """Drop the leading columns that are padding for every row (they cost attention, weigh nothing)."""
    start = int((mask.sum(0) > 0).nonzero()[0]) if mask.numel() else 0
    if start == 0:
        return cache, mask
    return DynamicCache(ddp_cache_data=[(k[:, :, start:], v[:, :, start:]) for k, v in layers(cache)]), mask[:, start:]
