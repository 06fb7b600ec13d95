"""End-to-end on the bundled SmolLM2-135M: the main job's code path, shrunk to a couple of minutes."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    overrides = [
        "train.max_steps=2", "train.batch_size=2", "data.validation_size=2", "data.test_size=2",
        "generation.max_new_tokens=24", "generation.k=2", "generation.num_beams=2",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "peftlab.cli", "demo", "-o", str(out), *overrides],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_demo_prints_the_table(demo_dir):
    _, stdout = demo_dir
    for header in ("EM@1", "EM@2", "CodeBLEU", "trainable params", "train time"):
        assert header in stdout
    assert "zero-shot" in stdout and "lora" in stdout
    # LoRA r=16 on q, k, v, o of SmolLM2-135M (hidden 576, 3 KV heads x 64): 30 x 16 x (1152 + 768 + 768 + 1152)
    assert f"{30 * 16 * (1152 + 768 + 768 + 1152):,}" == "1,843,200"
    assert "1,843,200" in stdout


def test_demo_run_directories(demo_dir):
    out, _ = demo_dir
    card = json.loads((out / "data" / "card.json").read_text())
    assert card["source"]["kind"] == "stdlib" and card["counts"]["train"] > 500
    for method in ("zero-shot", "lora"):
        metrics = json.loads((out / method / "metrics.json").read_text())
        assert 0.0 <= metrics["em@1"] <= metrics["em@2"] <= 1.0
        assert 0.0 < metrics["codebleu"] <= 1.0
        rows = [json.loads(line) for line in (out / method / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(len(row["candidates"]) == 2 for row in rows)
    lora = json.loads((out / "lora" / "metrics.json").read_text())
    assert lora["train_steps"] == 2 and lora["trainable_params"] > 0
    assert (out / "lora" / "adapter" / "adapter_model.safetensors").is_file()


def test_rerunning_the_demo_skips_finished_stages(demo_dir):
    out, _ = demo_dir
    before = (out / "lora" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    result = subprocess.run(
        [sys.executable, "-m", "peftlab.cli", "demo", "-o", str(out), "train.max_steps=2", "data.test_size=2",
         "generation.k=2", "generation.num_beams=2"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lora: train" not in result.stdout and "generate" not in result.stdout.replace("predictions", "")
    assert (out / "lora" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == before
