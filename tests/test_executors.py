"""Issue 29, point 1: a study's cells on Ray (a local instance here, 2 CPUs) and as a Slurm job array (submitit's
local executor here, and the sbatch file it would submit), with the local runner's results and rules."""

import json
import os
import signal
import stat
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from conftest import run_cli_in_process
from peftlab.errors import UserError
from peftlab.study.executors import run_elsewhere
from peftlab.study.runner import run_study
from peftlab.study.spec import StudySpec, expand

pytest.importorskip("ray")
pytest.importorskip("submitit")

SCORES = ("em@1", "em@2", "codebleu", "test_problems", "train_steps", "train_loss")


def _study(tmp_path, tiny_model_dir, tiny_data_dir, name, executor=None, max_steps=1, methods=("zero-shot", "lora")):
    return {
        "name": name, "output_dir": str(tmp_path / name), "models": [str(tiny_model_dir)],
        # the same training data, scored on test sets of two sizes: the second LoRA cell borrows the first's adapter
        "tasks": [{"name": "codegen", "overrides": {"data.test_size": 2}},
                  {"name": "codegen", "overrides": {"data.test_size": 3}}],
        "methods": list(methods),
        "base": {"data": {"dir": str(tiny_data_dir)}, "train": {"max_steps": max_steps, "batch_size": 4},
                 "generation": {"max_new_tokens": 4, "stop": [], "k": 2, "do_sample": True, "temperature": 0.8}},
        **({"executor": executor} if executor else {}),
    }


def _results(cells) -> list:
    """Each cell's scores and predictions, in expansion order (a borrowing cell's hash names its study's
    directory, so hashes differ between two studies of the same matrix)."""
    found = []
    for cell in cells:
        directory = Path(cell.config.output_dir)
        metrics = json.loads((directory / "metrics.json").read_text())
        scores = {key: metrics.get(key) for key in SCORES}
        found.append((cell.title, scores, (directory / "predictions.jsonl").read_text()))
    return found


@pytest.fixture(scope="module")
def local_results(tiny_model_dir, tiny_data_dir, tmp_path_factory):
    """The matrix run by the local runner, once for the executors to match."""
    local = StudySpec.model_validate(_study(tmp_path_factory.mktemp("local"), tiny_model_dir, tiny_data_dir, "here"))
    local_cells = expand(local)
    assert run_study(local, local_cells, console=Console(width=200))["done"] == 4
    return _results(local_cells)


def test_ray_gives_the_local_runner_s_results(local_results, tiny_model_dir, tiny_data_dir, tmp_path):
    spec = StudySpec.model_validate(_study(tmp_path, tiny_model_dir, tiny_data_dir, "ray", {"kind": "ray"}))
    cells = expand(spec)
    console = Console(width=200, record=True)
    counts = run_elsewhere(spec, cells, retry_failed=False, console=console)
    assert counts["done"] == 4, console.export_text()
    assert "4 cells, 0 done, 4 in 3 training groups to run on ray" in console.export_text()
    assert _results(cells) == local_results
    for cell in cells:  # CodeBLEU's data flow follows the hash seed: every cell is scored under the same one
        assert json.loads((Path(cell.config.output_dir) / "evaluate.run.json").read_text())["python_hash_seed"] == "0"
    # a re-run finds nothing to do and starts no Ray instance for it
    console = Console(width=200, record=True)
    assert run_elsewhere(spec, cells, retry_failed=False, console=console)["done"] == 4
    assert "0 in 0 training groups" in console.export_text()


@pytest.mark.parametrize("retries", [1, 0])
def test_a_ray_worker_killed_mid_cell_is_retried_or_reported(retries, tiny_model_dir, tiny_data_dir, tmp_path):
    study = _study(tmp_path, tiny_model_dir, tiny_data_dir, "kill", {"kind": "ray", "ray": {"max_retries": retries}},
                   max_steps=40, methods=("lora",))
    study["tasks"] = study["tasks"][:1]
    spec = StudySpec.model_validate(study)
    (cell,) = expand(spec)
    record = Path(cell.config.output_dir) / "cell.json"
    killed = []

    def kill_the_worker_once_training():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            state = json.loads(record.read_text()) if record.is_file() else {}
            log = Path(cell.config.output_dir) / "log.txt"
            if state.get("status") == "running" and log.is_file() and "lora: train" in log.read_text():
                time.sleep(1.0)  # inside training
                killed.append(state["pid"])
                os.kill(state["pid"], signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_worker_once_training)
    killer.start()
    console = Console(width=300, record=True)
    counts = run_elsewhere(spec, [cell], retry_failed=False, console=console)
    killer.join()
    assert killed and killed[0] != os.getpid()  # the Ray worker, not this process
    state = json.loads(record.read_text())
    if retries:
        assert counts["done"] == 1 and state["pid"] != killed[0], console.export_text()
        assert json.loads((Path(cell.config.output_dir) / "metrics.json").read_text())["train_steps"] == 40
    else:
        assert counts["failed"] == 1 and state["error"].startswith("its Ray worker died")
        assert "its Ray worker died" in console.export_text()  # reported, and --retry-failed resumes it


def test_slurm_through_submitit_s_local_executor_gives_the_local_runner_s_results(local_results, tiny_model_dir,
                                                                                  tiny_data_dir, tmp_path):
    spec = StudySpec.model_validate(_study(tmp_path, tiny_model_dir, tiny_data_dir, "slurm",
                                           {"kind": "slurm", "slurm": {"cluster": "local", "time_min": 20}}))
    cells = expand(spec)
    console = Console(width=200, record=True)
    assert run_elsewhere(spec, cells, retry_failed=False, console=console)["done"] == 4, console.export_text()
    assert "submitted 3 jobs" in console.export_text()
    assert _results(cells) == local_results


def _fake_slurm(bin_dir: Path, record: Path) -> None:
    """``srun`` and ``sbatch`` as a login node has them; sbatch keeps the file it was given."""
    bin_dir.mkdir()
    for name, body in (("srun", "exit 0"), ("sbatch", f'cp "$1" {record}\necho "Submitted batch job 4242"')):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_the_job_array_takes_its_parameters_from_the_study_file(tiny_model_dir, tiny_data_dir, tmp_path,
                                                                  monkeypatch, capsys):
    _fake_slurm(tmp_path / "bin", tmp_path / "submitted.sh")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    study = _study(tmp_path, tiny_model_dir, tiny_data_dir, "array", {"kind": "slurm", "slurm": {
        "partition": "gpu", "account": "lab", "time_min": 90, "cpus_per_task": 8, "gpus_per_node": 1, "mem_gb": 32,
        "array_parallelism": 2, "additional": {"constraint": "a100"}, "wait": False}})
    (tmp_path / "study.yaml").write_text(json.dumps(study))
    code, out, _ = run_cli_in_process(monkeypatch, capsys, "study", str(tmp_path / "study.yaml"))
    assert code == 1  # submitted, not finished: a later `peftlab study` collects
    assert "submitted 3 jobs (array 4242, at most 2 at once)" in out and "not waiting" in out
    lines = (tmp_path / "submitted.sh").read_text().splitlines()
    for expected in ("#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=90",
                     "#SBATCH --cpus-per-task=8", "#SBATCH --gpus-per-node=1", "#SBATCH --mem=32GB",
                     "#SBATCH --constraint=a100", "#SBATCH --job-name=peftlab-array"):
        assert expected in lines, expected


def test_executor_mistakes_are_one_line(tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    file = tmp_path / "study.yaml"
    file.write_text(json.dumps(_study(tmp_path, tiny_model_dir, tiny_data_dir, "bad")))
    cases = [
        (["--executor", "kubernetes"], "error: --executor takes local, ray or slurm, not 'kubernetes'"),
        (["--executor", "ray", "--shard", "1/2"], "error: --shard is for the local executor; with ray"),
        (["--executor", "slurm"], "error: cannot submit the study to Slurm (slurm): Could not detect \"srun\""),
    ]
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun here
    for arguments, expected in cases:
        code, _, err = run_cli_in_process(monkeypatch, capsys, "study", str(file), *arguments)
        assert code == 2 and err.strip().startswith(expected) and len(err.strip().splitlines()) == 1, err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    code, _, err = run_cli_in_process(monkeypatch, capsys, "study", str(file), "--executor", "ray")
    assert code == 2 and err.strip() == "error: executor 'ray' needs the ray package: pip install 'peftlab[ray]'"


def test_an_unreachable_ray_cluster_is_one_line_within_seconds(tiny_model_dir, tiny_data_dir, tmp_path):
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    spec = StudySpec.model_validate(_study(tmp_path, tiny_model_dir, tiny_data_dir, "far",
                                           {"kind": "ray", "ray": {"address": f"ray://127.0.0.1:{port}"}}))
    started = time.monotonic()
    with pytest.raises(UserError, match=f"cannot reach the Ray cluster at ray://127.0.0.1:{port}: Connection refused"):
        run_elsewhere(spec, expand(spec), retry_failed=False, console=Console())
    assert time.monotonic() - started < 10


def test_two_runners_never_run_one_cell_at_once(tiny_model_dir, tiny_data_dir, tmp_path):
    from peftlab.runs.directory import directory_lock
    from peftlab.study.runner import CELL_LOCK, run_cell

    spec = StudySpec.model_validate(_study(tmp_path, tiny_model_dir, tiny_data_dir, "twice", methods=("zero-shot",)))
    cell = expand(spec)[0]
    Path(cell.config.output_dir).mkdir(parents=True)
    with directory_lock(Path(cell.config.output_dir), "study cell", CELL_LOCK):  # another runner has it
        assert run_cell(cell, spec) == {"status": "busy"}
    assert not (Path(cell.config.output_dir) / "cell.json").exists()  # its state untouched
