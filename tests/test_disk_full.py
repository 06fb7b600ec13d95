"""Issue 29, point 4: a full disk is one line that names the disk and what can go (exit code 2, nothing lost),
and a finished stage whose output was later deleted or damaged is done again on re-run, never trusted."""

import json
import re
import threading
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console

from conftest import run_cli_in_process
from peftlab.config import load_config
from peftlab.errors import UserError
from peftlab.runs.directory import RunDir
from peftlab.runs.disk import disk_full_is_a_user_error, full_disk_line, out_of_space
from peftlab.stages.pipeline import run_stages
from peftlab.study.runner import run_group, run_study
from peftlab.study.spec import StudySpec, expand


def _fill(disk):
    """Write zeros into ``disk`` until it refuses more."""
    with (disk / "ballast").open("wb", buffering=0) as handle:  # unbuffered: closing writes nothing more
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass


def _raised(action) -> BaseException:
    try:
        action()
    except Exception as error:  # noqa: BLE001 - the test wants whatever the library raises
        return error
    raise AssertionError("the write into a full disk did not fail")


def test_each_library_s_words_for_a_full_disk_are_read(small_tmpfs, tmp_path):
    from safetensors.torch import save_file

    _fill(small_tmpfs)
    tensors = {"weight": torch.zeros(100_000)}
    errors = {
        "safetensors": _raised(lambda: save_file(tensors, str(small_tmpfs / "a.safetensors"))),
        "torch.save": _raised(lambda: torch.save(tensors, small_tmpfs / "b.pt")),
        "python": _raised(lambda: (small_tmpfs / "c.txt").write_bytes(b"x" * 100_000)),
    }
    assert type(errors["safetensors"]).__name__ == "SafetensorError"  # neither OSError nor RuntimeError
    for library, error in errors.items():
        assert out_of_space(error, small_tmpfs), library
    # torch's writer says nothing about space: on a disk with room, the same words are another failure
    assert not out_of_space(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 5 vs 3"),
                            tmp_path)
    assert not out_of_space(ValueError("bad value"), small_tmpfs)
    with pytest.raises(UserError, match="is full: saving x failed"), disk_full_is_a_user_error(small_tmpfs, "saving x"):
        raise errors["safetensors"]
    with pytest.raises(ValueError, match="bad value"), disk_full_is_a_user_error(small_tmpfs, "saving x"):
        raise ValueError("bad value")


def test_the_line_names_the_disk_its_free_space_and_what_peftlab_has_there(small_tmpfs, tmp_path, monkeypatch):
    cache = small_tmpfs / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "weights.bin").write_bytes(b"\0" * 300_000)
    runs = small_tmpfs / "runs"
    for name, finished in (("earlier", True), ("unfinished", False), ("failing", False)):
        checkpoint = runs / name / "checkpoints" / "checkpoint-2"
        checkpoint.mkdir(parents=True)
        (checkpoint / "optimizer.pt").write_bytes(b"\0" * 200_000)
        if finished:
            (runs / name / "stages").mkdir()
            (runs / name / "stages" / "evaluate.json").write_text("{}")
    monkeypatch.setenv("PEFTLAB_CACHE", str(cache))
    line = full_disk_line(runs / "failing" / "adapter", "saving the trained adapter")
    assert "\n" not in line
    assert line.startswith(f"the disk holding {runs / 'failing' / 'adapter'} (mounted at {small_tmpfs}, ")
    assert "is full: saving the trained adapter failed" in line
    # only what nothing needs: not the checkpoints of the failing run, nor of a run that has not finished
    assert f"(the model cache {cache} (293 KB; rebuilt when needed); the checkpoints of finished runs in {runs}, " \
           "*/checkpoints (195 KB)) and re-run the same command" in line
    monkeypatch.setenv("PEFTLAB_CACHE", str(tmp_path / "cache"))  # on another disk: freeing it would not help
    (tmp_path / "cache").mkdir()
    assert "model cache" not in full_disk_line(runs / "failing" / "adapter", "saving")


def _overrides(tiny_model_dir, tiny_data_dir, run_dir):
    return [f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", f"output_dir={run_dir}",
            "train.batch_size=2", "train.max_steps=6", "train.eval_every=0.33", "train.learning_rate=0.01",
            "generation.max_new_tokens=4", "generation.stop=[]"]


def _adapter_tensors(run_dir):
    from safetensors.torch import load_file

    # copies: load_file maps the file, and a test that cuts the file short would read the cut pages
    tensors = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    return {name: tensor.clone() for name, tensor in tensors.items()}


def test_a_disk_filling_up_during_a_run_is_one_line_and_a_rerun_loses_nothing(
        small_tmpfs, tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    straight = tmp_path / "straight"
    run_stages(load_config(None, _overrides(tiny_model_dir, tiny_data_dir, straight)), announce=lambda _: None)
    run_dir = small_tmpfs / "run"
    first_checkpoint = run_dir / "checkpoints" / "checkpoint-2" / "peftlab-complete.json"

    def fill_once_a_checkpoint_is_complete():
        deadline = time.monotonic() + 120
        while not first_checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.002)
        _fill(small_tmpfs)

    filler = threading.Thread(target=fill_once_a_checkpoint_is_complete)
    filler.start()
    arguments = ["run", *_overrides(tiny_model_dir, tiny_data_dir, run_dir)]
    code, _, err = run_cli_in_process(monkeypatch, capsys, *arguments)
    filler.join()
    assert code == 2, err
    shown = [line.strip() for line in re.split(r"[\r\n]", err.replace("\x1b[A", ""))]  # progress bars redraw
    lines = [line for line in shown if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("error: the disk holding ") and f"(mounted at {small_tmpfs}, " in lines[0]
    assert first_checkpoint.exists()  # the complete checkpoint is kept

    (small_tmpfs / "ballast").unlink()  # space freed
    code, _, err = run_cli_in_process(monkeypatch, capsys, *arguments)
    assert code == 0, err
    trained = _adapter_tensors(run_dir)
    for name, tensor in _adapter_tensors(straight).items():  # the same adapter as a run that never failed
        torch.testing.assert_close(trained[name], tensor, rtol=0, atol=1e-6)
    assert json.loads((run_dir / "metrics.json").read_text())["resumed_from"].startswith("checkpoint-")


@pytest.mark.parametrize("damage", ["delete the adapter", "cut the weights short", "delete the predictions"])
def test_a_finished_stage_whose_output_no_longer_verifies_is_done_again(damage, tiny_model_dir, tiny_data_dir,
                                                                         tmp_path):
    config = load_config(None, _overrides(tiny_model_dir, tiny_data_dir, tmp_path / "run"))
    said = []
    first = run_stages(config, announce=said.append)
    run = RunDir(tmp_path / "run")
    weights = run.adapter / "adapter_model.safetensors"
    original = _adapter_tensors(run.path)
    assert run.output_problem("train") is None and run.output_problem("generate") is None
    if damage == "delete the adapter":
        for file in run.adapter.iterdir():
            file.unlink()
        run.adapter.rmdir()
        expected, redone = f"{run.adapter}/", ["train", "generate", "evaluate"]  # its first file is missing
    elif damage == "cut the weights short":
        weights.write_bytes(weights.read_bytes()[:100])
        expected, redone = f"{weights} has 100 bytes, not the", ["train", "generate", "evaluate"]
    else:
        run.predictions.unlink()
        expected, redone = f"{run.predictions} is missing", ["generate", "evaluate"]
    assert expected in run.output_problem(redone[0])

    said.clear()
    again = run_stages(config, announce=said.append)
    assert said[0].startswith(f"lora: {redone[0]} is done again: {expected}")
    assert [line.split(": ")[1] for line in said[1:]] == redone
    assert run.output_problem("train") is None and run.output_problem("generate") is None
    for name, tensor in original.items():  # retraining resumed from the final checkpoint: the same adapter
        torch.testing.assert_close(_adapter_tensors(run.path)[name], tensor, rtol=0, atol=1e-6)
    assert again["em@1"] == first["em@1"] and again["codebleu"] == first["codebleu"]


@pytest.mark.parametrize("runner", ["local", "group"])  # group: what a Ray task or Slurm job runs
def test_a_study_reruns_a_finished_lender_whose_adapter_was_deleted(runner, tiny_model_dir, tiny_data_dir, tmp_path):
    spec = StudySpec.model_validate({
        "name": "lend", "output_dir": str(tmp_path / "study"), "models": [str(tiny_model_dir)],
        # the same training data, scored on test sets of different size: the second cell borrows the adapter
        "tasks": [{"name": "codegen", "overrides": {"data.test_size": 2}},
                  {"name": "codegen", "overrides": {"data.test_size": 3}}],
        "methods": ["lora"],
        "base": {"data": {"dir": str(tiny_data_dir)}, "train": {"max_steps": 1, "batch_size": 4},
                 "generation": {"max_new_tokens": 4, "stop": []}},
    })
    cells = expand(spec)
    lender, borrower = sorted(cells, key=lambda cell: bool(cell.labels.get("adapter_from")))
    assert borrower.labels["adapter_from"] == lender.key
    assert run_study(spec, [lender], console=Console(width=200))["done"] == 1  # the study stopped here
    adapter = RunDir(lender.config.output_dir).adapter
    first_run = json.loads((Path(lender.config.output_dir) / "cell.json").read_text())["started_at"]
    for file in adapter.iterdir():
        file.unlink()
    adapter.rmdir()

    if runner == "group":
        states = run_group(spec, [lender, borrower])
        assert [state["status"] for state in states] == ["done", "done"] and adapter.is_dir()
        assert states[0]["started_at"] > first_run  # the finished lender ran again
        assert RunDir(lender.config.output_dir).output_problem("train") is None
        return
    console = Console(width=300, record=True)
    counts = run_study(spec, cells, console=console)
    printed = console.export_text()
    assert counts["done"] == 2, printed
    assert re.search(f"{re.escape(str(adapter))}/[^ ]+ is missing; it runs again before the cells that use its adapter",
                     printed)
    assert "2 to run" in printed and adapter.is_dir()
