"""Sampling a token from the few tokens temperature, top-k and top-p leave, not from the whole vocabulary.

Why: ``generate``'s warpers (transformers' ``TopPLogitsWarper``) sort the whole vocabulary for every row and
step, and ``torch.multinomial`` then draws an exponential variate for every one of its entries, though
top-k and top-p leave a few dozen. With Qwen's 151,936 tokens that was 41 s of a 100 s k=10 sampling run on
8 MBPP prompts, as long as all the matrix products' 40 s (bench/results/generate-speed-*.md).

The distribution is ``generate``'s: temperature divides the scores, top-k keeps the ``top_k`` highest (the
model's generation config sets it: 50 unless the model says otherwise), top-p keeps the highest-probability
tokens until the mass *before* a token reaches ``top_p`` (the rule ``TopPLogitsWarper`` applies from the
bottom: a token goes when the mass at or below it is at most ``1 - top_p``), and the kept probabilities are
renormalised. Here the kept tokens come from ``torch.topk`` (top-k, or the ``SUPPORT`` highest where the model
sets no top-k, with the normaliser over the whole vocabulary); a row whose ``SUPPORT`` highest tokens hold
less than ``top_p`` (a very flat distribution) goes through transformers' own warpers instead. Differences
from ``generate`` are float rounding at the top-p boundary and ties at the k-th score (``topk`` keeps k, the
warper every tied token) — tests/test_sampling.py compares the distributions. The draws differ from
``generate``'s for the same seed (fewer random numbers drawn), as continuous batching's draws already did.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

SUPPORT = 256
"""Tokens considered per row when the model sets no top-k: enough for any sharp distribution; a row whose
top ``SUPPORT`` hold less than ``top_p`` is warped over the whole vocabulary."""


def generate_warpers(temperature: float, top_k: int | None, top_p: float) -> LogitsProcessorList:
    """Temperature, then top-k (when set), then top-p: the warpers ``generate`` applies, in its order."""
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return warpers


class Sampler:
    """Each row's kept tokens and their probabilities (:meth:`supports`), and one draw from them with a
    candidate's own generator (:meth:`draw`)."""

    def __init__(self, temperature: float, top_k: int | None, top_p: float):
        self.temperature, self.top_k, self.top_p = temperature, top_k or None, top_p
        self.warpers = generate_warpers(temperature, self.top_k, top_p)

    def supports(self, logits: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per row of ``logits`` (rows × vocabulary): the kept tokens' renormalised probabilities (highest
        first; tokens top-p drops have probability 0) and the tokens."""
        scores = logits.float() / self.temperature
        vocabulary = scores.shape[-1]
        width = min(self.top_k or SUPPORT, vocabulary)
        values, tokens = scores.topk(width, dim=-1)
        # top-k renormalises over the k kept; otherwise the whole vocabulary is the normaliser
        normaliser = torch.logsumexp(values if self.top_k else scores, dim=-1, keepdim=True)
        probabilities = (values - normaliser).exp()
        before = probabilities.cumsum(-1) - probabilities  # mass of the higher tokens
        kept = before < self.top_p if self.top_p < 1.0 else torch.ones_like(before, dtype=torch.bool)
        kept[:, 0] = True  # the most likely token always stays
        covered = (probabilities.sum(-1) >= self.top_p) | (self.top_k is not None) | (width == vocabulary)
        # the draws use each candidate's CPU generator: a few dozen numbers per row cross from a GPU once
        probabilities, kept, tokens, covered = (t.cpu() for t in (probabilities, kept, tokens, covered))
        out = []
        for row in range(scores.shape[0]):
            if covered[row]:
                row_probabilities = probabilities[row] * kept[row]
                out.append((row_probabilities / row_probabilities.sum(), tokens[row]))
            else:  # a flat row: transformers' warpers over the whole vocabulary
                warped = self.warpers(scores.new_zeros((1, 1), dtype=torch.long), logits[row:row + 1].float())
                out.append((torch.softmax(warped[0], dim=-1).cpu(), torch.arange(vocabulary)))
        return out

    @staticmethod
    def draw(support: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator | None) -> int:
        probabilities, tokens = support
        return int(tokens[torch.multinomial(probabilities, 1, generator=generator)])
