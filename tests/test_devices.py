"""model.device / model.dtype: float32 on the CPU; with CUDA (mocked: CI has no GPU) bfloat16 where the GPU
supports it, float16 where not, and the generation model moved to the GPU."""

import pytest
import torch

from peftlab.config import load_config
from peftlab.models.devices import resolve_placement
from peftlab.errors import UserError
from peftlab.stages.pipeline import load_for_generation
from peftlab.stages.train import train


def _placement(*overrides):
    return resolve_placement(load_config(None, list(overrides)).model)


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA reported available; ``bf16`` decides what the GPU supports. Moves to a device are recorded
    (and not done: there is no GPU)."""
    state = {"bf16": True, "moved_to": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: state["bf16"])

    def record_move(module, *args, **kwargs):
        state["moved_to"].append(str(args[0]) if args else str(kwargs.get("device")))
        return module

    monkeypatch.setattr(torch.nn.Module, "to", record_move)
    return state


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only case")
def test_cpu_is_float32_and_an_absent_gpu_is_one_line():
    assert _placement() == _placement("model.device=cpu") == resolve_placement(load_config().model)
    assert _placement().record() == {"device": "cpu", "dtype": "float32"}
    assert _placement("model.dtype=bfloat16").record() == {"device": "cpu", "dtype": "bfloat16"}  # asked for: kept
    with pytest.raises(UserError) as raised:
        _placement("model.device=cuda")
    assert str(raised.value).startswith("model.device=cuda but CUDA is not available here")
    with pytest.raises(UserError, match="model.device"):
        load_config(None, ["model.device=tpu"])


def test_a_gpu_gets_bfloat16_where_supported_else_float16(fake_cuda):
    assert _placement().record() == {"device": "cuda", "dtype": "bfloat16"}
    fake_cuda["bf16"] = False
    assert _placement().record() == {"device": "cuda", "dtype": "float16"}
    assert _placement("model.dtype=float32").record() == {"device": "cuda", "dtype": "float32"}
    assert _placement("model.device=cpu").record() == {"device": "cpu", "dtype": "float32"}


def test_generation_model_is_loaded_in_the_dtype_and_moved_to_the_gpu(fake_cuda, tiny_model_dir, tmp_path):
    config = load_config(None, [f"model.name={tiny_model_dir}", "method.name=zero-shot", f"output_dir={tmp_path}"])
    model = load_for_generation(config, tmp_path)
    assert model.dtype == torch.bfloat16
    assert fake_cuda["moved_to"] == ["cuda"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only case")
def test_training_records_where_it_ran(tiny_model_dir, tiny_data_dir, tmp_path):
    overrides = [f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", f"output_dir={tmp_path}",
                 "train.max_steps=1", "train.batch_size=4", "method.name=lora"]
    metrics = train(load_config(None, overrides), tmp_path)
    assert (metrics["device"], metrics["dtype"]) == ("cpu", "float32")  # auto on a machine without CUDA
