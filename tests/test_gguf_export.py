"""Issue 29, point 3: ``peftlab export --format gguf``. transformers' own GGUF loader reads the merged model back
with the merged PEFT model's logits; the LoRA adapter file, applied to the base file as llama.cpp applies it
(W + alpha/r * B A, in llama.cpp's layout), gives the merged file's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import run_cli_in_process as run_cli
from conftest import _train_tokenizer as build_tiny_tokenizer
from peftlab.config import load_config
from peftlab.stages.export import merged_model

gguf = pytest.importorskip("gguf")

IDS = torch.tensor([[5, 17, 42, 99, 250, 3, 77, 140, 12, 300]])


@pytest.fixture(scope="module")
def tiny_qwen2_dir(tmp_path_factory) -> Path:
    """A 2-layer random Qwen2 (biases on q/k/v, tied embeddings), with the tiny BPE tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(3)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=0, pad_token_id=0, bos_token_id=0)
    directory = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _trained_lora(model_dir, tiny_data_dir, run_dir, monkeypatch, capsys) -> Path:
    overrides = [f"model.name={model_dir}", f"data.dir={tiny_data_dir}", f"output_dir={run_dir}",
                 "train.batch_size=4", "train.max_steps=3", "train.learning_rate=0.03", "train.eval_every=1.0"]
    code, _, err = run_cli(monkeypatch, capsys, "train", "--method", "lora", *overrides)
    assert code == 0, err
    return run_dir


def _reader_tensors(path: Path) -> dict[str, np.ndarray]:
    reader = gguf.GGUFReader(str(path))
    return {tensor.name: np.array(tensor.data, dtype=np.float32).reshape(tuple(reversed(tensor.shape.tolist())))
            for tensor in reader.tensors}


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
@pytest.mark.parametrize("gguf_type, tolerance", [("f32", 1e-5), ("f16", 2e-2)])
def test_the_merged_gguf_reads_back_with_the_merged_model_s_logits(architecture, gguf_type, tolerance,
                                                                 tiny_model_dir, tiny_qwen2_dir, tiny_data_dir,
                                                                 tmp_path, monkeypatch, capsys):
    model_dir = tiny_model_dir if architecture == "llama" else tiny_qwen2_dir
    run_dir = _trained_lora(model_dir, tiny_data_dir, tmp_path / "run", monkeypatch, capsys)
    out = tmp_path / "gguf"
    code, stdout, err = run_cli(monkeypatch, capsys, "export", "--format", "gguf", "--gguf-type", gguf_type,
                                "-o", str(out), str(run_dir))
    assert code == 0, err
    assert "gguf: model.gguf, adapter.gguf, base.gguf" in stdout

    config = load_config(run_dir / "config.yaml")
    merged = merged_model(config, run_dir / "adapter")
    read_back = AutoModelForCausalLM.from_pretrained(out, gguf_file="model.gguf", dtype=torch.float32).eval()
    assert read_back.config.model_type == architecture
    with torch.no_grad():
        expected, got = merged(IDS).logits, read_back(IDS).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=tolerance * float(expected.abs().max()))
    # the adapter changed the model: the export is far closer to the merged model than the base is
    base = AutoModelForCausalLM.from_pretrained(out, gguf_file="base.gguf", dtype=torch.float32).eval()
    with torch.no_grad():
        assert float((base(IDS).logits - expected).abs().max()) > 10 * float((got - expected).abs().max())

    tokenizer = AutoTokenizer.from_pretrained(out, gguf_file="model.gguf")
    original = AutoTokenizer.from_pretrained(model_dir)
    text = "def gcd(a, b):\n    return a if b == 0 else gcd(b, a % b)\n"
    assert tokenizer(text)["input_ids"] == original(text)["input_ids"]


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_the_lora_gguf_on_the_base_gguf_is_the_merged_gguf(architecture, tiny_model_dir, tiny_qwen2_dir,
                                                          tiny_data_dir, tmp_path, monkeypatch, capsys):
    model_dir = tiny_model_dir if architecture == "llama" else tiny_qwen2_dir
    run_dir = _trained_lora(model_dir, tiny_data_dir, tmp_path / "run", monkeypatch, capsys)
    out = tmp_path / "gguf"
    code, _, err = run_cli(monkeypatch, capsys, "export", "--format", "gguf", "--gguf-type", "f32", "-o", str(out),
                           str(run_dir))
    assert code == 0, err
    reader = gguf.GGUFReader(str(out / "adapter.gguf"))
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == architecture
    alpha = fields["adapter.lora.alpha"]
    adapter, base, merged = (_reader_tensors(out / name) for name in ("adapter.gguf", "base.gguf", "model.gguf"))
    assert adapter and all(name.endswith((".lora_a", ".lora_b")) for name in adapter)
    changed = 0
    for name in {name.rsplit(".", 1)[0] for name in adapter}:  # e.g. blk.0.attn_q.weight
        a, b = adapter[f"{name}.lora_a"], adapter[f"{name}.lora_b"]
        applied = base[name] + alpha / a.shape[0] * (b @ a)  # what llama.cpp computes, in its own layout
        np.testing.assert_allclose(applied, merged[name], rtol=0, atol=1e-5)
        changed += not np.allclose(base[name], merged[name], atol=1e-5)
    assert changed > 0


def test_gguf_export_refusals_are_one_line(tiny_overrides, tmp_path, monkeypatch, capsys):
    run_dir = Path(next(o for o in tiny_overrides if o.startswith("output_dir=")).split("=", 1)[1])
    code, _, err = run_cli(monkeypatch, capsys, "train", "--method", "prompt-tuning", *tiny_overrides,
                           "train.max_steps=1")
    assert code == 0, err
    code, _, err = run_cli(monkeypatch, capsys, "export", "--format", "gguf", "-o", str(tmp_path / "x"), str(run_dir))
    assert code == 2 and "cannot be merged" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(monkeypatch, capsys, "export", "--format", "onnx", "-o", str(tmp_path / "y"), str(run_dir))
    assert code == 2 and "--format takes transformers or gguf" in err
