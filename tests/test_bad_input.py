"""Issue 8, points 3, 5, 6 and 7: predictions are checked against the test set, directories are locked,
bad files and directories are one line (exit 2), mining skips what it cannot read, Ctrl-C stops evaluation."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import MINI_PROJECT, run_cli_in_process
from peftlab.data.records import read_jsonl
from peftlab.runs.directory import directory_lock


def _one_line_error(code, err, *fragments):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _test_split(tiny_data_dir):
    return read_jsonl(tiny_data_dir / "test.jsonl")


# --- point 3: predictions files ---------------------------------------------------------------------

def _evaluate(monkeypatch, capsys, predictions, *args):
    return run_cli_in_process(monkeypatch, capsys, "evaluate", "--predictions", str(predictions), *args)


def test_references_come_from_the_dataset_not_the_predictions(tiny_data_dir, tmp_path, monkeypatch, capsys):
    rows = [{"id": p["id"], "candidates": ["return 42"], "reference": "return 42"} for p in _test_split(tiny_data_dir)]
    code, _, err = _evaluate(monkeypatch, capsys, _write_rows(tmp_path / "p.jsonl", rows),
                             f"data.dir={tiny_data_dir}", "-o", str(tmp_path / "run"))
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["em@1"] == 0.0


@pytest.mark.parametrize("case, fragment", [
    ("duplicate", "appears more than once"),
    ("foreign", "not in the test split"),
    ("string candidates", "must be a non-empty list of strings"),
    ("missing", "cover 2 of 3 test problems"),
    ("empty", "no predictions to evaluate"),
])
def test_bad_codegen_predictions_are_one_line(case, fragment, tiny_data_dir, tmp_path, monkeypatch, capsys):
    ids = [p["id"] for p in _test_split(tiny_data_dir)]
    rows = [{"id": i, "candidates": ["x = 1"]} for i in ids]
    if case == "duplicate":
        rows.append(rows[0])
    elif case == "foreign":
        rows.append({"id": "train-00000", "candidates": ["x"]})
    elif case == "string candidates":
        rows[1]["candidates"] = "x = 1"
    elif case == "missing":
        rows = rows[:2]
    elif case == "empty":
        rows = []
    code, _, err = _evaluate(monkeypatch, capsys, _write_rows(tmp_path / "p.jsonl", rows),
                             f"data.dir={tiny_data_dir}", "-o", str(tmp_path / "run"))
    _one_line_error(code, err, fragment)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_partial_predictions_are_scored_and_reported_as_partial(tiny_data_dir, tmp_path, monkeypatch, capsys):
    ids = [p["id"] for p in _test_split(tiny_data_dir)]
    rows = [{"id": i, "candidates": ["x = 1"]} for i in ids[:2]]
    code, _, err = _evaluate(monkeypatch, capsys, _write_rows(tmp_path / "p.jsonl", rows), "--partial",
                             f"data.dir={tiny_data_dir}", "-o", str(tmp_path / "run"))
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["partial"] is True and metrics["missing_ids"] == 1 and metrics["test_problems_total"] == 3
    from peftlab.report import build_report

    build_report(tmp_path / "run", tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text()
    assert "[partial]" in report and "was scored on 2 of 3 test problems" in report


def test_humaneval_file_with_one_task_needs_partial(tmp_path, monkeypatch, capsys):
    rows = [{"task_id": "HumanEval/0", "completion": "    return True\n"}]
    path = _write_rows(tmp_path / "s.jsonl", rows)
    code, _, err = _evaluate(monkeypatch, capsys, path, "--task", "humaneval", "-o", str(tmp_path / "a"))
    _one_line_error(code, err, "cover 1 of 164 test problems", "--partial")
    code, _, err = _evaluate(monkeypatch, capsys, path, "--partial", "--task", "humaneval", "-o", str(tmp_path / "b"))
    assert code == 0, err
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["partial"] is True and metrics["missing_ids"] == 163 and metrics["tasks"] == 1


# --- point 5: locks ---------------------------------------------------------------------------------

def test_a_locked_run_directory_names_the_holder(tiny_overrides, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with directory_lock(run_dir):
        code, _, err = run_cli_in_process(monkeypatch, capsys, "train", *tiny_overrides)
    _one_line_error(code, err, "in use by another peftlab process", f"pid {os.getpid()}")
    assert not (run_dir / "checkpoints").exists()


def test_a_locked_study_directory_names_the_holder(tmp_path, monkeypatch, capsys):
    study = tmp_path / "study.yaml"
    study.write_text(f"output_dir: {tmp_path / 'out'}\nmethods: [zero-shot]\n")
    (tmp_path / "out").mkdir()
    with directory_lock(tmp_path / "out", "study directory"):
        code, _, err = run_cli_in_process(monkeypatch, capsys, "study", str(study))
    _one_line_error(code, err, "study directory", f"pid {os.getpid()}")
    assert not (tmp_path / "out" / "cells").exists()


# --- point 6: files and directories that are not what they should be -------------------------------

def test_non_utf8_config_file(tmp_path, monkeypatch, capsys):
    config = tmp_path / "c.yaml"
    config.write_bytes(b"train:\n  epochs: \xff\xfe\n")
    code, _, err = run_cli_in_process(monkeypatch, capsys, "train", "--config", str(config), "-o", str(tmp_path / "r"))
    _one_line_error(code, err, "not UTF-8")


def test_non_utf8_study_file(tmp_path, monkeypatch, capsys):
    study = tmp_path / "s.yaml"
    study.write_bytes(b"name: \xff\n")
    code, _, err = run_cli_in_process(monkeypatch, capsys, "study", str(study))
    _one_line_error(code, err, "not UTF-8")


@pytest.mark.parametrize("content, fragment", [
    (b'{"instruction": "caf\xe9", "reference": "x"}\n', "not UTF-8"),
    (bytes(range(256)) * 4, "test.jsonl"),
    (b'{"instruction": 5, "reference": "x"}\n', "'instruction' must be str"),
])
def test_bad_dataset_files(content, fragment, tiny_data_dir, tiny_model_dir, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "validation"):
        (data / f"{split}.jsonl").write_bytes((tiny_data_dir / f"{split}.jsonl").read_bytes())
    (data / "test.jsonl").write_bytes(content)
    code, _, err = run_cli_in_process(monkeypatch, capsys, "generate", "--method", "zero-shot",
                                      f"model.name={tiny_model_dir}", f"data.dir={data}", "-o", str(tmp_path / "r"))
    _one_line_error(code, err, fragment)


def test_corrupted_adapter_is_one_line(tiny_overrides, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli_in_process(monkeypatch, capsys, "train", *tiny_overrides)
    assert code == 0, err
    weights = tmp_path / "run" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(b"\x07" * 64)
    code, _, err = run_cli_in_process(monkeypatch, capsys, "generate", *tiny_overrides)
    _one_line_error(code, err, "adapter", "unreadable")


def test_output_dir_that_is_a_file(tiny_overrides, tmp_path, monkeypatch, capsys):
    (tmp_path / "run").write_text("not a directory")
    code, _, err = run_cli_in_process(monkeypatch, capsys, "generate", "--method", "zero-shot", *tiny_overrides)
    _one_line_error(code, err, "is a file")


def test_study_output_dir_that_is_a_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "out").write_text("x")
    study = tmp_path / "study.yaml"
    study.write_text(f"output_dir: {tmp_path / 'out'}\nmethods: [zero-shot]\n")
    code, _, err = run_cli_in_process(monkeypatch, capsys, "study", str(study))
    _one_line_error(code, err, "study output directory", "is a file")


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody can write to: a read-only tmpfs as root (root ignores permissions), else chmod."""
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
        yield target
        subprocess.run(["umount", "-l", str(target)], check=False)
    else:
        target.chmod(0o555)
        yield target
        target.chmod(0o755)


def test_read_only_output_dir(read_only_dir, tiny_overrides, monkeypatch, capsys):
    code, _, err = run_cli_in_process(monkeypatch, capsys, "generate", "--method", "zero-shot", *tiny_overrides,
                                      f"output_dir={read_only_dir / 'run'}")
    _one_line_error(code, err, "cannot write to output directory")


def test_mining_skips_and_counts_unreadable_entries(tmp_path, monkeypatch, capsys):
    source = tmp_path / "src"
    source.mkdir()
    for path in sorted(MINI_PROJECT.glob("*.py")):
        (source / path.name).write_text(path.read_text())
    (source / "dangling.py").symlink_to(tmp_path / "nowhere.py")
    (source / "loop.py").symlink_to(source / "loop.py")
    (source / "package.py").mkdir()
    (source / "deep.py").write_text("x = " + "-" * 200000 + "1\n")
    (source / "latin1.py").write_bytes(b"s = '\xe9'\n")
    out = tmp_path / "out"
    code, _, err = run_cli_in_process(monkeypatch, capsys, "data", "mine-codegen", "--source", str(source),
                                      "--out", str(out), "--tokenizer", "")
    assert code == 0, err
    card = json.loads((out / "card.json").read_text())
    # legacy_py2.py of the fixture project is the syntax error
    assert card["files_skipped"] == {"nested too deeply": 1, "not UTF-8": 1, "syntax error": 1, "unreadable": 3}
    assert sum(card["counts"].values()) > 0


# --- point 7: Ctrl-C during evaluation ---------------------------------------------------------------

def test_ctrl_c_stops_evaluation_promptly(tmp_path):
    rows = [{"task_id": f"HumanEval/{i}", "completion": "    while True:\n        pass\n"} for i in range(40)]
    path = _write_rows(tmp_path / "slow.jsonl", rows)
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "peftlab.cli", "evaluate", "--task", "humaneval", "--partial", "--predictions", str(path),
         "-o", str(run_dir), "execution.workers=1", "execution.timeout=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        # As from a terminal: a test runner started in the background of a non-interactive shell has
        # SIGINT ignored, and children inherit that (the run then finishes instead of stopping).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not any(run_dir.glob("*")) and time.monotonic() < deadline:  # the run directory exists: evaluating
        time.sleep(0.2)
    time.sleep(4)
    os.killpg(process.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
    interrupted = time.monotonic()
    process.communicate(timeout=60)
    # 40 programs at >= 1 s each would take 40 s more; one in flight ends within its own limit.
    assert time.monotonic() - interrupted < 15
    assert process.returncode == 130
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "scored.jsonl").exists()


@pytest.mark.parametrize("damage", ["weights", "config"])
def test_damaged_local_model_is_one_line_and_does_not_blame_the_hub(damage, tiny_model_dir, tiny_data_dir, tmp_path,
                                                                    monkeypatch, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    if damage == "weights":
        (model / "model.safetensors").write_bytes(b"\x00garbage" * 8)
    else:
        (model / "config.json").write_text("{ this is not json")
    code, _, err = run_cli_in_process(monkeypatch, capsys, "generate", "--method", "zero-shot", f"model.name={model}",
                                      f"data.dir={tiny_data_dir}", "-o", str(tmp_path / "run"))
    _one_line_error(code, err, "is unreadable")
    assert "Hub" not in err
