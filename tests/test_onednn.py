"""Generation's float32 linear layers through oneDNN (``generation.cpu_matmul``): the same products as torch's
``linear`` up to float32 rounding, only where they apply, and the same greedy candidates as generation before
(whole batches, torch's products)."""

import contextlib

import pytest
import torch
from torch.nn import functional

import peftlab.stages.generate as generate_module
from peftlab.config import GenerationConfig
from peftlab.models.onednn import generation_matmul, onednn_available, onednn_linear
from peftlab.stages.generate import generate_candidates

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN")


@pytest.mark.parametrize("shape", [(5, 24), (2, 3, 24), (24,)], ids=["rows", "batch-of-rows", "vector"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_onednn_linear_is_torchs_linear_up_to_float32_rounding(shape, with_bias):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator)
    weight = torch.randn(40, 24, generator=generator)
    bias = torch.randn(40, generator=generator) if with_bias else None
    expected = functional.linear(x, weight, bias)
    got = onednn_linear(x, weight, bias)
    assert got.shape == expected.shape == (*shape[:-1], 40)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got, torch.zeros_like(got))


def test_onednn_linear_declines_what_it_cannot_compute_the_same_way():
    x, weight = torch.randn(3, 8), torch.randn(4, 8)
    assert onednn_linear(x.double(), weight.double()) is None  # float32 only
    assert onednn_linear(x, weight.t().contiguous().t()) is None  # a transposed view: torch handles strides
    trained = weight.clone().requires_grad_()
    assert onednn_linear(x, trained) is None  # no backward: training keeps torch's linear
    with torch.no_grad():
        assert onednn_linear(x, trained) is not None


def test_the_mode_routes_float32_linear_calls_and_passes_the_rest_through():
    layer = torch.nn.Linear(8, 6)
    x = torch.randn(2, 8)
    with torch.no_grad():
        expected = layer(x)
        with generation_matmul("onednn") as mode:
            routed = layer(x)
            layer.double()(x.double())  # not float32: torch's own
            assert mode.routed == 1
        with generation_matmul("torch") as nothing:
            assert nothing is None
    torch.testing.assert_close(routed, expected, rtol=1e-5, atol=1e-6)
    layer.float()
    with generation_matmul("onednn") as mode:  # gradients wanted: torch's linear, and they flow
        layer(x).sum().backward()
    assert mode.routed == 0 and layer.weight.grad is not None


def test_a_tiny_models_logits_through_onednn_match_torchs(tiny_generation_setup):
    model, tokenizer, prompts = tiny_generation_setup
    encoded = tokenizer(prompts[:3], return_tensors="pt", padding=True)
    with torch.inference_mode():
        expected = model(**encoded).logits
        with generation_matmul("onednn") as mode:
            got = model(**encoded).logits
    linear_layers = sum(isinstance(module, torch.nn.Linear) for module in model.modules())
    assert mode.routed == linear_layers  # every projection of one forward, the output projection included
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("stop", [[], ["\n", "e"]], ids=["no-stop", "stops"])
@pytest.mark.parametrize("slots", [2, 64])
def test_continuous_batching_through_onednn_gives_the_candidates_of_generation_before(tiny_generation_setup,
                                                                                      monkeypatch, stop, slots):
    """The exact engine's default (continuous batching, oneDNN) against generation as it was before issue 27
    (whole batches, torch's products): the same greedy candidates, and oneDNN really answered the products."""
    model, tokenizer, prompts = tiny_generation_setup
    modes = []

    @contextlib.contextmanager
    def recording(name):
        with generation_matmul(name) as mode:
            modes.append(mode)
            yield mode

    monkeypatch.setattr(generate_module, "generation_matmul", recording)
    base = {"max_new_tokens": 12, "batch_size": 3, "stop": stop, "k": 1}
    before = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, drop_finished=False,
                                                                             cpu_matmul="torch"), progress=False)
    now = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, slots=slots), progress=False)
    assert modes[0] is None and modes[1].routed > 0
    assert now == before
    assert len({c for group in before for c in group}) > 3
