"""The command line lists its choices and rejects unknown names and bad configs before torch is imported;
``peftlab study --dry-run`` lists the cells and writes nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from peftlab.methods import METHODS, TRAINING_METHODS
from peftlab.study.spec import expand, load_study
from peftlab.tasks import TASKS

WIDE = {**os.environ, "COLUMNS": "300"}  # help and tables unfolded

# Runs the CLI in a fresh interpreter and reports whether torch (or transformers) got imported on the way.
PROBE = """
import json, sys
from peftlab.cli import main
sys.argv = ["peftlab", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
heavy = sorted(name for name in ("torch", "transformers", "peft") if name in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.__stdout__)
"""


def probe(*args) -> tuple[dict, str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True,
                            timeout=120)
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_method_and_task_help_lists_the_registered_names():
    for command in ("generate", "run"):
        result = subprocess.run([sys.executable, "-m", "peftlab.cli", command, "--help"], capture_output=True,
                                text=True, timeout=120, env=WIDE)
        assert result.returncode == 0
        for name in (*METHODS, *TASKS):
            assert name in result.stdout, name
        assert "importable module" in result.stdout
    train = subprocess.run([sys.executable, "-m", "peftlab.cli", "train", "--help"], capture_output=True,
                           text=True, timeout=120, env=WIDE)
    line = next(line for line in train.stdout.splitlines() if "--method" in line)
    assert all(name in line for name in TRAINING_METHODS) and "zero-shot" not in line


@pytest.mark.parametrize("args, message", [
    (["train", "--method", "nosuch"], "unknown method 'nosuch'"),
    (["generate", "--method", "nosuch"], "unknown method 'nosuch'"),
    (["run", "--method", "lora-xs"], "unknown method 'lora-xs'"),
    (["train", "--method", "zero-shot"], "prompting baseline and trains nothing"),
    (["generate", "--method", "zero-shot", "method.r=8"], "does not apply to zero-shot"),
    (["generate", "--task", "nosuchtask"], "unknown task 'nosuchtask'"),
    (["evaluate", "--task", "nosuchtask"], "unknown task 'nosuchtask'"),
    (["run", "train.epochz=1"], "unknown config key 'train.epochz'"),
    (["data", "preview", "--count", "1", "task=nosuchtask"], "unknown task 'nosuchtask'"),
])
def test_bad_names_and_configs_fail_before_torch_is_imported(tmp_path, args, message):
    outcome, stderr = probe(*args, "-o", tmp_path / "run") if args[0] != "data" else probe(*args)
    assert outcome == {"code": 2, "heavy": []}, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert not (tmp_path / "run").exists()


def _study(tmp_path: Path) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({
        "name": "dry", "output_dir": str(tmp_path / "out"), "models": ["m1", "m2"],
        "methods": ["zero-shot", {"name": "icl", "overrides": {"method.shots": 1}}],
    }))
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_study_dry_run_lists_cells_status_and_estimate_and_writes_nothing(tmp_path):
    path = _study(tmp_path)
    out = tmp_path / "out"
    command = [sys.executable, "-c", PROBE, "study", str(path), "--dry-run"]

    fresh = subprocess.run(command, capture_output=True, text=True, timeout=120, env=WIDE)
    assert json.loads(fresh.stdout.splitlines()[-1]) == {"code": 0, "heavy": []}, fresh.stderr
    cells = expand(load_study(path), default_data_root=str(out / "data"))  # as `peftlab study` expands it
    for cell in cells:
        assert cell.key in fresh.stdout and cell.title in fresh.stdout
    assert "4 cells: 0 done, 0 failed, 4 to run; time left: unknown for 4" in fresh.stdout
    assert not out.exists(), "a dry run creates nothing: no cell directory, no data, no lock"

    by_method = {}
    for cell in cells:
        by_method.setdefault(cell.labels["method"], []).append(cell)
    states = {  # one zero-shot cell done in 100 s, one icl cell failed
        by_method["zero-shot"][0].key: {"status": "done", "wall_time_s": 100.0},
        by_method["icl"][0].key: {"status": "failed", "wall_time_s": 5.0, "error": "boom"},
    }
    for key, state in states.items():
        (out / "cells" / key).mkdir(parents=True)
        (out / "cells" / key / "cell.json").write_text(json.dumps({"cell": key, **state}))
    before = _tree(tmp_path)

    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env=WIDE)
    rows = {line.split()[1]: line for line in again.stdout.splitlines() if line.startswith("│")}
    assert "done" in rows[by_method["zero-shot"][0].key] and "skipped" in rows[by_method["zero-shot"][0].key]
    assert "failed" in rows[by_method["icl"][0].key] and "skipped" in rows[by_method["icl"][0].key]
    assert "1 min 40 s" in rows[by_method["zero-shot"][1].key], "estimated from the finished zero-shot cell"
    assert "unknown" in rows[by_method["icl"][1].key]
    assert "4 cells: 1 done, 1 failed, 2 to run" in again.stdout
    assert "unknown for 1 (no finished icl cell yet), ~1 min 40 s for the other 1" in again.stdout
    assert _tree(tmp_path) == before and sorted(p.name for p in out.iterdir()) == ["cells"]

    retry = subprocess.run([*command, "--retry-failed"], capture_output=True, text=True, timeout=120,
                           env=WIDE)
    assert "3 to run" in retry.stdout
