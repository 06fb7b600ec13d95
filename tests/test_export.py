"""``peftlab export``: merged exports are plain transformers models that generate exactly what the unmerged
adapter generates; methods that cannot be merged fail with one line and export with --adapter-only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from peftlab.config import GenerationConfig, load_config
from peftlab.stages.export import EXPORT_INFO
from peftlab.stages.generate import generation_kwargs
from peftlab.models.loading import load_model, load_tokenizer
from peftlab.stages.pipeline import load_for_generation
from peftlab.tasks import get_task

from conftest import run_cli_in_process as run_cli

LEARNING_RATES = {"full": 3e-2, "lora": 3e-2, "ia3": 1.0, "qlora-4bit": 3e-2, "qlora-8bit": 3e-2,
                  "prompt-tuning": 1.0, "prefix-tuning": 3e-1}


def train_run(method: str, overrides: list[str], monkeypatch, capsys) -> Path:
    run_dir = Path(next(o for o in overrides if o.startswith("output_dir=")).split("=", 1)[1])
    extra = ["train.max_steps=3", f"train.learning_rate={LEARNING_RATES[method]}", "train.eval_every=1.0"]
    code, _, err = run_cli(monkeypatch, capsys, "train", "--method", method, *overrides, *extra)
    assert code == 0, err
    return run_dir


def token_ids(model, tokenizer, prompts: list[str], beams: int) -> list[list[int]]:
    config = GenerationConfig(k=beams, num_beams=beams, max_new_tokens=8, stop=[])
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        output = model.eval().generate(**encoded, **generation_kwargs(config, tokenizer))
    return output[:, encoded["input_ids"].shape[1] :].tolist()


@pytest.mark.parametrize("method", ["lora", "ia3", "qlora-4bit", "qlora-8bit", "full"])
def test_merged_export_generates_like_the_adapter(method, tiny_overrides, tmp_path, monkeypatch, capsys):
    run_dir = train_run(method, tiny_overrides, monkeypatch, capsys)
    out = tmp_path / "export"
    code, stdout, err = run_cli(monkeypatch, capsys, "export", "--merge", "-o", str(out), str(run_dir))
    assert code == 0, err
    assert "transformers model" in stdout

    # a plain transformers directory: no adapter files, no quantisation, float32, tokenizer included
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "adapter_config.json").exists()
    assert json.loads((out / EXPORT_INFO).read_text())["merged"] is True
    exported = AutoModelForCausalLM.from_pretrained(out)
    assert getattr(exported.config, "quantization_config", None) is None
    assert {p.dtype for p in exported.parameters()} == {torch.float32}

    config = load_config(run_dir / "config.yaml")
    if method.startswith("qlora"):
        # QLoRA exports against the float32 (never quantised) base: compare with the adapter on that base
        from peft import PeftModel

        unmerged = PeftModel.from_pretrained(load_model(config.model.name), str(run_dir / "adapter"))
    else:
        unmerged = load_for_generation(config, run_dir)
    tokenizer = load_tokenizer(str(out))
    task = get_task("codegen", config)
    prompts = [task.prompt(problem) for problem in task.load("test")]
    for beams in (1, 2):
        assert token_ids(exported, tokenizer, prompts, beams) == token_ids(unmerged, tokenizer, prompts, beams)
    # the export really differs from the base model (something was merged)
    base = load_model(config.model.name)
    changed = any(not torch.equal(p, q) for p, q in zip(exported.state_dict().values(), base.state_dict().values()))
    assert changed


def test_qlora_4bit_dequantized_export_reproduces_the_quantized_model(
    tiny_overrides, tmp_path, monkeypatch, capsys
):
    run_dir = train_run("qlora-4bit", tiny_overrides, monkeypatch, capsys)
    out = tmp_path / "export"
    code, _, err = run_cli(monkeypatch, capsys, "export", "--dequantized", "-o", str(out), str(run_dir))
    assert code == 0, err
    assert json.loads((out / EXPORT_INFO).read_text())["merged_into"] == "dequantized weights"
    exported = AutoModelForCausalLM.from_pretrained(out)
    config = load_config(run_dir / "config.yaml")
    quantized = load_for_generation(config, run_dir)  # the 4-bit model + adapter, as `peftlab generate` runs it
    tokenizer = load_tokenizer(str(out))
    prompts = [get_task("codegen", config).prompt(p) for p in get_task("codegen", config).load("test")]
    for beams in (1, 2):
        assert token_ids(exported, tokenizer, prompts, beams) == token_ids(quantized, tokenizer, prompts, beams)


def test_dequantized_needs_a_quantized_method_and_merging(tiny_overrides, tmp_path, monkeypatch, capsys):
    run_dir = train_run("lora", tiny_overrides, monkeypatch, capsys)
    code, _, err = run_cli(monkeypatch, capsys, "export", "--dequantized", "-o", str(tmp_path / "a"), str(run_dir))
    assert code == 2 and "QLoRA methods only" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(
        monkeypatch, capsys, "export", "--adapter-only", "--dequantized", "-o", str(tmp_path / "b"), str(run_dir)
    )
    assert code == 2 and "only applies when merging" in err


@pytest.mark.parametrize("method", ["prompt-tuning", "prefix-tuning"])
def test_virtual_token_methods_cannot_merge_but_export_the_adapter(
    method, tiny_overrides, tmp_path, monkeypatch, capsys
):
    run_dir = train_run(method, tiny_overrides, monkeypatch, capsys)
    out = tmp_path / "export"
    code, _, err = run_cli(monkeypatch, capsys, "export", "--merge", "-o", str(out), str(run_dir))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "cannot be merged" in lines[0] and "--adapter-only" in lines[0]
    assert not out.exists()

    code, stdout, err = run_cli(monkeypatch, capsys, "export", "--adapter-only", "-o", str(out), str(run_dir))
    assert code == 0, err
    assert "peft adapter" in stdout
    from peft import AutoPeftModelForCausalLM

    exported = AutoPeftModelForCausalLM.from_pretrained(out)
    config = load_config(run_dir / "config.yaml")
    tokenizer = AutoTokenizer.from_pretrained(out)
    prompts = [get_task("codegen", config).prompt(problem) for problem in get_task("codegen", config).load("test")]
    reference = load_for_generation(config, run_dir)
    for beams in (1, 2):
        assert token_ids(exported, tokenizer, prompts, beams) == token_ids(reference, tokenizer, prompts, beams)


def test_export_errors_are_one_line(tiny_overrides, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "export", "-o", str(tmp_path / "x"), str(tmp_path))
    assert code == 2 and "not a run directory" in err and len(err.strip().splitlines()) == 1

    run_dir = train_run("lora", tiny_overrides, monkeypatch, capsys)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    code, _, err = run_cli(monkeypatch, capsys, "export", "-o", str(occupied), str(run_dir))
    assert code == 2 and "not empty" in err and len(err.strip().splitlines()) == 1
    assert (occupied / "keep.txt").read_text() == "mine"

    code, _, err = run_cli(monkeypatch, capsys, "export", "-o", str(run_dir / "merged"), str(run_dir))
    assert code == 2 and "outside the run directory" in err
