"""Data-parallel training on the CPU (two processes under torchrun, gloo): the same adapter as one process
on the same global batch, written once by the main process, which then generates and evaluates alone."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from peftlab.stages.distributed import World, world


def test_world_comes_from_the_launcher_environment(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert world() == World(0, 0, 1) and world().main and not world().parallel
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert world() == World(3, 1, 4) and not world().main and world().parallel


def _settings(tiny_model_dir, tiny_data_dir, out, batch_size):
    # no dropout and padded batches on both sides, so the only difference is who computes which rows
    return [f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", "method.name=lora", "method.dropout=0",
            "train.max_steps=2", f"train.batch_size={batch_size}", "train.packing=false", "data.test_size=2",
            "generation.max_new_tokens=4", "generation.stop=[]", f"output_dir={out}"]


def _launch(processes, command, settings):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    result = subprocess.run([*launcher, "-m", "peftlab.cli", command, *settings], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_two_processes_train_the_adapter_one_process_trains(tiny_model_dir, tiny_data_dir, tmp_path):
    one = tmp_path / "one"
    result = subprocess.run([sys.executable, "-m", "peftlab.cli", "train",
                             *_settings(tiny_model_dir, tiny_data_dir, one, 4)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    two = tmp_path / "two"
    launched = _launch(2, "run", _settings(tiny_model_dir, tiny_data_dir, two, 2))  # 2 per process x 2 = 4
    assert launched.stdout.count('"processes": 2') == 1, "only the main process reports"

    single, parallel = (load_file(str(path / "adapter" / "adapter_model.safetensors")) for path in (one, two))
    assert single.keys() == parallel.keys()
    assert all(single[name].abs().max() > 0 for name in single if "lora_B" in name), "training moved LoRA's B"
    moved = [name for name in single if not torch.allclose(single[name], parallel[name], atol=1e-5)]
    assert not moved, f"data-parallel training changed {moved[:3]}"
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["train_steps"] == 2 and metrics["packed"] is False
    assert metrics["test_problems"] == 2  # generated and evaluated by the main process alone
    predictions = (two / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 2


def test_generate_under_a_launcher_is_one_line(tiny_model_dir, tiny_data_dir, tmp_path):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run([*launcher, "-m", "peftlab.cli", "generate",
                             *_settings(tiny_model_dir, tiny_data_dir, tmp_path / "g", 2)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "peftlab generate runs in one process; only train and run are data-parallel" in result.stderr
