"""Generation's float32 linear layers through oneDNN (``generation.cpu_matmul``): the same products as torch's
``linear`` up to float32 rounding, only where they apply, and the same greedy candidates as generation before
(whole batches, torch's products)."""

import contextlib

import pytest
import torch
from torch.nn import functional

import peftlab.stages.generate as generate_module
from peftlab.config import GenerationConfig
from peftlab.models.onednn import OneDNNLinear, blocked_weight, generation_matmul, onednn_available, onednn_linear
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


@pytest.mark.parametrize("rows", [2, 4, 8, 33])
def test_a_blocked_weight_gives_the_plain_weights_products(rows):
    """oneDNN's blocked copy of a weight multiplies to the row-major weight's very bits."""
    generator = torch.Generator().manual_seed(1)
    x, weight, bias = (torch.randn(rows, 64, generator=generator), torch.randn(96, 64, generator=generator),
                       torch.randn(96, generator=generator))
    blocked = blocked_weight(weight)
    assert blocked is not None and blocked.layout != torch.strided  # a copy in oneDNN's own layout
    got, plain = onednn_linear(x, weight, bias, blocked), onednn_linear(x, weight, bias)
    torch.testing.assert_close(got, functional.linear(x, weight, bias), rtol=1e-5, atol=1e-5)
    assert torch.equal(got, plain)


def test_the_mode_copies_each_weight_once_and_again_when_it_changes():
    layer = torch.nn.Linear(16, 12)
    x = torch.randn(5, 16)
    with torch.no_grad():
        with OneDNNLinear() as mode:
            first = layer(x)
            layer(x)
            assert list(mode.blocked) == [id(layer.weight)] and mode.routed == 2 and mode.copied == 1
            layer.weight.mul_(2)  # an in-place change: the old copy would give the old products
            second = layer(x)
            layer(x[:1])  # one row: the row-major weight, no copy needed
            assert mode.copied == 2 and mode.routed == 4
        assert mode.blocked == {}  # the copies go with the block
        with OneDNNLinear(blocked=False) as plain:
            assert torch.equal(layer(x), second) and plain.blocked is None
    torch.testing.assert_close(second - layer.bias, 2 * (first - layer.bias), rtol=1e-5, atol=1e-5)
    with generation_matmul("onednn") as blocked, generation_matmul("onednn-plain") as rowmajor:
        assert blocked.blocked == {} and rowmajor.blocked is None


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


@pytest.mark.parametrize("matmul", ["onednn", "onednn-plain"])
@pytest.mark.parametrize("stop", [[], ["\n", "e"]], ids=["no-stop", "stops"])
@pytest.mark.parametrize("slots", [2, 64])
def test_continuous_batching_through_onednn_gives_the_candidates_of_generation_before(tiny_generation_setup,
                                                                                      monkeypatch, stop, slots, matmul):
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
    now = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, slots=slots, cpu_matmul=matmul),
                              progress=False)
    assert modes[0] is None and modes[1].routed > 0
    assert (modes[1].blocked is None) == (matmul == "onednn-plain")
    if matmul == "onednn":  # every linear layer's weight was copied (the output projection's included)
        assert modes[1].copied == sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert now == before
    assert len({c for group in before for c in group}) > 3
