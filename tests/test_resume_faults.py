"""Issue 8, points 1, 2 and 4 and the full-disk case: a killed or failed save never makes a run unresumable,
a half-written adapter is never taken as finished, and a run directory never mixes two configs."""

import json

import pytest
import torch

from conftest import run_cli_in_process
from peftlab.runs.checkpoints import MARKER, atomic_directory
from peftlab.config import load_config
from peftlab.errors import TrainingInterrupted, UserError
from peftlab.methods.lora import LoRA
from peftlab.stages.pipeline import run_command, run_stages
from peftlab.runs.directory import RunDir
from peftlab.stages.train import StopOnRequest, train


def _config(tiny_model_dir, tiny_data_dir, run_dir, *extra):
    return load_config(None, [
        f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", f"output_dir={run_dir}",
        "train.batch_size=2", "train.max_steps=6", "train.eval_every=0.33", "train.learning_rate=0.01",
        "generation.max_new_tokens=4", "generation.stop=[]", *extra,
    ])


def _adapter(run_dir):
    from safetensors.torch import load_file

    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


def _assert_same_adapter(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6)


class InterruptAtStep(StopOnRequest):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            self.request()  # what Ctrl-C does
        return super().on_step_end(args, state, control, **kwargs)


@pytest.fixture(scope="module")
def straight(tiny_model_dir, tiny_data_dir, tmp_path_factory):
    """The adapter of an uninterrupted run (checkpoints at steps 2, 4, 6)."""
    run_dir = tmp_path_factory.mktemp("straight")
    train(_config(tiny_model_dir, tiny_data_dir, run_dir), run_dir)
    return _adapter(run_dir)


def _interrupted_at_4(tiny_model_dir, tiny_data_dir, run_dir):
    config = _config(tiny_model_dir, tiny_data_dir, run_dir)
    with pytest.raises(TrainingInterrupted):
        train(config, run_dir, stop=InterruptAtStep(4))
    checkpoints = run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    return config, checkpoints


def _empty_newer_checkpoint(checkpoints):
    (checkpoints / "checkpoint-6").mkdir()  # SIGKILL right after Trainer created the directory
    return "checkpoint-4"


def _missing_state_files(checkpoints):
    (checkpoints / "checkpoint-4" / "trainer_state.json").unlink()
    (checkpoints / "checkpoint-4" / "optimizer.pt").unlink()
    return "checkpoint-2"


def _truncated_weights(checkpoints):
    weights = checkpoints / "checkpoint-4" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    return "checkpoint-2"


def _no_completion_marker(checkpoints):
    (checkpoints / "checkpoint-4" / MARKER).unlink()  # killed after the files, before the marker
    return "checkpoint-2"


@pytest.mark.parametrize("damage", [_empty_newer_checkpoint, _missing_state_files, _truncated_weights,
                                    _no_completion_marker], ids=lambda f: f.__name__.strip("_"))
def test_damaged_newest_checkpoint_falls_back_to_the_newest_complete_one(
        damage, straight, tiny_model_dir, tiny_data_dir, tmp_path, capsys):
    config, checkpoints = _interrupted_at_4(tiny_model_dir, tiny_data_dir, tmp_path)
    expected = damage(checkpoints)
    metrics = train(config, tmp_path)
    assert metrics["resumed_from"] == expected
    assert "is incomplete" in capsys.readouterr().err
    _assert_same_adapter(straight, _adapter(tmp_path))


def test_checkpoints_of_another_config_are_refused_before_training(tiny_model_dir, tiny_data_dir, tmp_path):
    _interrupted_at_4(tiny_model_dir, tiny_data_dir, tmp_path)
    changed = _config(tiny_model_dir, tiny_data_dir, tmp_path, "method.r=4")
    with pytest.raises(UserError, match="another training config"):
        train(changed, tmp_path)


def test_half_written_adapter_is_not_taken_as_finished(tiny_model_dir, tiny_data_dir, tmp_path):
    config = _config(tiny_model_dir, tiny_data_dir, tmp_path)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")  # killed mid-save
    metrics = run_stages(config, announce=lambda _: None)
    assert "em@1" in metrics and metrics["train_steps"] == 6
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert RunDir(tmp_path).is_done("evaluate")


def test_a_failing_adapter_save_leaves_no_adapter(tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch):
    def save_then_fail(self, model, directory):
        (directory / "adapter_config.json").write_text("{}")
        raise OSError("simulated failure half-way through the save")

    monkeypatch.setattr(LoRA, "save", save_then_fail)
    with pytest.raises(OSError, match="half-way"):
        train(_config(tiny_model_dir, tiny_data_dir, tmp_path), tmp_path)
    assert not (tmp_path / "adapter").exists()
    assert not list(tmp_path.glob("adapter.partial-*"))


def test_atomic_directory_keeps_the_old_version_on_failure(tmp_path):
    target = tmp_path / "adapter"
    with atomic_directory(target) as partial:
        (partial / "weights").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as partial:
            (partial / "weights").write_text("v2 half")
            raise RuntimeError("killed")
    assert (target / "weights").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]


def test_run_with_a_changed_config_in_a_finished_directory_is_refused(tiny_model_dir, tiny_data_dir, tmp_path):
    config = _config(tiny_model_dir, tiny_data_dir, tmp_path, "method.name=zero-shot")
    run_stages(config, announce=lambda _: None)
    before = {name: (tmp_path / name).read_bytes() for name in ("config.yaml", "metrics.json", "scored.jsonl")}
    changed = _config(tiny_model_dir, tiny_data_dir, tmp_path, "method.name=zero-shot", "generation.max_new_tokens=6")
    with pytest.raises(UserError, match=r"another config .*generation.max_new_tokens: 4 -> 6"):
        run_stages(changed, announce=lambda _: None)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert run_stages(config, announce=lambda _: None) == json.loads(before["metrics.json"])  # same config: reused


def test_a_failing_command_does_not_rewrite_the_run_config(tiny_overrides, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli_in_process(monkeypatch, capsys, "generate", "--method", "icl", "method.shots=1", *tiny_overrides)
    assert code == 0, err
    before = (tmp_path / "run" / "config.yaml").read_bytes()
    code, _, err = run_cli_in_process(monkeypatch, capsys, "generate", "--method", "icl", "method.shots=50", *tiny_overrides)
    assert code == 2 and "method.shots=50" in err
    assert (tmp_path / "run" / "config.yaml").read_bytes() == before


def test_retraining_invalidates_later_stages(tiny_model_dir, tiny_data_dir, tmp_path):
    config = _config(tiny_model_dir, tiny_data_dir, tmp_path)
    run_stages(config, announce=lambda _: None)
    assert (tmp_path / "scored.jsonl").is_file()
    run_command(config, "train")
    run = RunDir(tmp_path)
    assert not run.is_done("generate") and not run.is_done("evaluate")
    assert not (tmp_path / "predictions.jsonl").exists() and not (tmp_path / "scored.jsonl").exists()
    assert "em@1" not in run.read_metrics() and "train_loss" in run.read_metrics()


def test_generate_refuses_an_adapter_trained_with_another_method(tiny_model_dir, tiny_data_dir, tmp_path):
    run_command(_config(tiny_model_dir, tiny_data_dir, tmp_path), "train")
    with pytest.raises(UserError, match="trained with other method settings"):
        run_command(_config(tiny_model_dir, tiny_data_dir, tmp_path, "method.name=ia3"), "generate")


def test_full_disk_during_a_checkpoint_save_then_resume(straight, tiny_model_dir, tiny_data_dir, small_tmpfs):
    run_dir = small_tmpfs / "run"
    ballast = small_tmpfs / "ballast"

    class FillDiskAtStep(StopOnRequest):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:  # the disk fills up just before checkpoint-4 is written
                with ballast.open("wb") as handle:
                    try:
                        while True:
                            handle.write(b"\0" * 4096)
                            handle.flush()
                    except OSError:
                        pass
            return super().on_step_end(args, state, control, **kwargs)

    config = _config(tiny_model_dir, tiny_data_dir, run_dir)
    with pytest.raises(UserError, match=f"the disk holding .* \\(mounted at {small_tmpfs}, .* is full: saving a checkpoint failed"):
        train(config, run_dir, stop=FillDiskAtStep())
    ballast.unlink()  # space freed
    metrics = train(config, run_dir)
    assert metrics["resumed_from"] == "checkpoint-2"
    _assert_same_adapter(straight, _adapter(run_dir))
