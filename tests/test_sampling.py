"""Sampling from the kept tokens only (stages/sampling.py) draws from ``generate``'s distribution: the same
probabilities as transformers' temperature, top-k and top-p warpers, and draws at those frequencies."""

import pytest
import torch

from peftlab.stages.sampling import SUPPORT, Sampler, generate_warpers


def _full_distribution(sampler: Sampler, logits: torch.Tensor) -> torch.Tensor:
    """The sampler's per-row probabilities spread back over the whole vocabulary."""
    full = torch.zeros_like(logits)
    for row, (probabilities, tokens) in enumerate(sampler.supports(logits)):
        full[row, tokens] = probabilities
    return full


def _generates(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float) -> torch.Tensor:
    warped = generate_warpers(temperature, top_k, top_p)(torch.zeros((logits.shape[0], 1), dtype=torch.long),
                                                         logits)
    return torch.softmax(warped, dim=-1)


@pytest.mark.parametrize("top_k", [None, 50, 7])
@pytest.mark.parametrize("top_p", [1.0, 0.95, 0.5])
@pytest.mark.parametrize("temperature", [0.8, 1.3])
def test_the_kept_tokens_carry_generates_probabilities(top_k, top_p, temperature):
    generator = torch.Generator().manual_seed(int(temperature * 10) + int(top_p * 100) + (top_k or 0))
    # sharp rows (a few likely tokens) and one flat row that needs the whole vocabulary when no top-k is set
    logits = torch.randn(6, 2000, generator=generator) * 4
    logits[5] = torch.randn(2000, generator=generator) * 0.01
    expected = _generates(logits, temperature, top_k, top_p)
    got = _full_distribution(Sampler(temperature, top_k, top_p), logits)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert torch.allclose(got.sum(-1), torch.ones(6))
    if top_p < 1.0 or top_k:
        assert ((got > 0).sum(-1) < 2000).any(), "tokens really were dropped"


def test_a_flat_row_without_top_k_is_warped_over_the_whole_vocabulary():
    logits = torch.zeros(1, 4 * SUPPORT)  # the SUPPORT highest hold a quarter of the mass
    probabilities, tokens = Sampler(1.0, None, 0.95).supports(logits)[0]
    assert len(tokens) == 4 * SUPPORT
    assert (probabilities > 0).sum() >= int(0.95 * 4 * SUPPORT)


def test_draws_follow_the_kept_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.04, 0.01]]))
    sampler = Sampler(1.0, None, 0.9)  # keeps 0.5, 0.3, 0.15 (the mass before 0.04 is 0.95)
    support = sampler.supports(logits)[0]
    generator = torch.Generator().manual_seed(0)
    draws = torch.tensor([sampler.draw(support, generator) for _ in range(20000)])
    frequencies = torch.bincount(draws, minlength=5).float() / len(draws)
    expected = torch.tensor([0.5, 0.3, 0.15, 0.0, 0.0]) / 0.95
    assert torch.allclose(frequencies, expected, atol=0.012)
    again = [sampler.draw(support, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert again[0] == again[1]  # a candidate's generator decides its draw
