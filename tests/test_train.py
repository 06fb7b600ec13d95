"""Training on the tiny model: adapter format, exact losses, save -> load, interrupt -> resume."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from peftlab.config import load_config
from peftlab.errors import TrainingInterrupted, UserError
from peftlab.stages.generate import generate_candidates
from peftlab.stages.pipeline import load_for_generation
from peftlab.stages.train import StopOnRequest, train


def _adapter_state(run_dir):
    from safetensors.torch import load_file

    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tiny_data_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("lora-run")
    config = load_config(
        None,
        [
            f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", f"output_dir={run_dir}",
            "train.batch_size=4", "train.max_steps=4", "train.eval_every=0.5", "train.learning_rate=0.01",
            "generation.max_new_tokens=8", "generation.stop=[]",
        ],
    )
    return config, run_dir, train(config, run_dir)


def test_metrics_and_pinned_loss(trained):
    _, _, metrics = trained
    # Exact values on the tiny random model: a change here means training itself changed.
    assert metrics["train_steps"] == 4
    assert metrics["train_examples"] == 11
    assert metrics["trainable_params"] == 2 * (16 * (32 + 32) * 2 + 16 * (32 + 16) * 2)
    assert metrics["train_loss"] == pytest.approx(5.9662, abs=2e-4)  # packed (tests/test_packing.py)
    assert metrics["best_eval_loss"] == pytest.approx(5.9340, abs=2e-4)
    assert metrics["tokens_per_s"] > 0 and metrics["peak_memory_mb"] > 0


def test_loss_history_is_saved_beside_the_adapter(trained):
    _, run_dir, metrics = trained
    rows = [json.loads(line) for line in (run_dir / "loss_history.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "loss" in row]
    evals = [row for row in rows if "eval_loss" in row]
    assert [row["step"] for row in steps] == [1, 2, 3, 4] and [row["step"] for row in evals] == [2, 4]
    # the Trainer's train_loss is the mean of the logged per-step losses
    assert sum(row["loss"] for row in steps) / 4 == pytest.approx(metrics["train_loss"], abs=1e-3)
    assert min(row["eval_loss"] for row in evals) == pytest.approx(metrics["best_eval_loss"])
    assert all(row["learning_rate"] > 0 for row in steps)


def test_eval_every_one_evaluates_once_at_the_end(tiny_model_dir, tiny_data_dir, tmp_path):
    config = load_config(None, [f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", f"output_dir={tmp_path}",
                                "train.batch_size=4", "train.max_steps=3", "train.eval_every=1.0"])
    train(config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "loss_history.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "eval_loss" in row] == [3]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith("checkpoint-")] == ["checkpoint-3"]


def test_a_tracker_that_is_not_installed_is_one_line_before_any_model_loads(tmp_path):
    from transformers.integrations import is_tensorboard_available

    if is_tensorboard_available():
        pytest.skip("tensorboard is installed here")
    config = load_config(None, ["model.name=/nonexistent/model", f"output_dir={tmp_path}", "train.report_to=[tensorboard]"])
    with pytest.raises(UserError) as raised:
        train(config, tmp_path)
    assert str(raised.value) == "train.report_to=tensorboard needs the tensorboard package: pip install 'peftlab[tensorboard]'"
    with pytest.raises(UserError, match="report_to"):
        load_config(None, ["train.report_to=[wandb]"])


def test_adapter_loads_with_plain_peft(trained, tiny_model_dir):
    _, run_dir, _ = trained
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, run_dir / "adapter")
    saved = _adapter_state(run_dir)
    loaded = {name: p for name, p in model.named_parameters() if "lora_" in name}
    assert len(loaded) == len(saved) == 16
    assert any(p.abs().sum() > 0 for n, p in loaded.items() if "lora_B" in n)


def test_save_load_gives_identical_generations(trained, tiny_model_dir, tiny_data_dir):
    config, run_dir, _ = trained
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = ["### Instruction:\nAdd numbers\n### Response:\n", "### Instruction:\nx\n### Response:\n"]
    first = generate_candidates(load_for_generation(config, run_dir), tokenizer, prompts, config.generation, progress=False)
    second = generate_candidates(load_for_generation(config, run_dir), tokenizer, prompts, config.generation, progress=False)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    untrained = generate_candidates(base, tokenizer, prompts, config.generation, progress=False)
    assert first == second
    assert first != untrained


def test_interrupt_then_rerun_resumes_to_the_same_adapter(tiny_model_dir, tiny_data_dir, tmp_path):
    def config_for(run_dir):
        return load_config(
            None,
            [
                f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", f"output_dir={run_dir}",
                "train.batch_size=2", "train.max_steps=6", "train.eval_every=0.5", "train.learning_rate=0.01",
            ],
        )

    uninterrupted = tmp_path / "straight"
    train(config_for(uninterrupted), uninterrupted)

    class InterruptAtStep(StopOnRequest):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                self.request()  # what Ctrl-C does
            return super().on_step_end(args, state, control, **kwargs)

    resumed = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted, match="interrupted at step 2"):
        train(config_for(resumed), resumed, stop=InterruptAtStep())
    assert (resumed / "checkpoints" / "checkpoint-2").is_dir()
    assert not (resumed / "adapter").exists()

    metrics = train(config_for(resumed), resumed)
    assert metrics["resumed_from"] == "checkpoint-2"
    straight, again = _adapter_state(uninterrupted), _adapter_state(resumed)
    assert straight.keys() == again.keys()
    for name in straight:
        torch.testing.assert_close(again[name], straight[name], rtol=0, atol=1e-6)
