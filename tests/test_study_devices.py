"""A study on several GPUs runs one cell per device at a time (fake ids here: CI has no GPU, and the ids
only reach the cells as CUDA_VISIBLE_DEVICES), and a cell that reuses an adapter waits for its owner."""

import json
from itertools import combinations

import pytest
from rich.console import Console

from peftlab.errors import UserError
from peftlab.study.spec import StudySpec, expand
from peftlab.study.command import parse_devices
from peftlab.study.runner import run_study


def test_parse_devices():
    assert parse_devices(None) is None
    assert parse_devices("0,1, 3") == ["0", "1", "3"]
    for bad in ("0,0", "0,,1", ""):
        with pytest.raises(UserError, match="--devices takes distinct GPU ids"):
            parse_devices(bad)


def test_cells_run_in_parallel_one_per_device(tiny_model_dir, tiny_data_dir, tmp_path):
    spec = StudySpec.model_validate({
        "name": "gpus", "output_dir": str(tmp_path / "study"), "models": [str(tiny_model_dir)],
        "seeds": [1, 2],
        # the same training data twice, scored on test sets of different size: the second LoRA cell of a
        # seed reuses the first's adapter, so it must wait for it
        "tasks": [{"name": "codegen", "overrides": {"data.test_size": 2}},
                  {"name": "codegen", "overrides": {"data.test_size": 3}}],
        "methods": ["zero-shot", "lora"],
        "base": {"data": {"dir": str(tiny_data_dir)}, "train": {"max_steps": 1, "batch_size": 4},
                 "generation": {"max_new_tokens": 4, "stop": []}},
    })
    cells = expand(spec)
    assert len(cells) == 8 and sum(bool(c.labels.get("adapter_from")) for c in cells) == 2
    counts = run_study(spec, cells, console=Console(width=200), devices=["0", "1"])
    assert counts["done"] == 8
    states = {c.key: json.loads((tmp_path / "study" / "cells" / c.key / "cell.json").read_text()) for c in cells}
    for cell in cells:
        state = states[cell.key]
        assert state["status"] == "done" and state["device"] in ("0", "1")
        run_info = json.loads((tmp_path / "study" / "cells" / cell.key / "generate.run.json").read_text())
        assert run_info["cuda_visible_devices"] == state["device"]  # the cell's process saw only its GPU
    overlapping = 0
    for first, second in combinations(states.values(), 2):
        if first["started_at"] < second["finished_at"] and second["started_at"] < first["finished_at"]:
            overlapping += 1
            assert first["device"] != second["device"], "two cells shared a GPU at the same time"
    assert overlapping > 0, "nothing ran in parallel"
    for cell in cells:
        if owner := cell.labels.get("adapter_from"):
            assert states[cell.key]["started_at"] >= states[owner]["finished_at"]
