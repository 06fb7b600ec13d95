"""``peftlab study --shard i/n`` (job arrays): the shards partition the cells, an adapter stays in one shard
with the cells that reuse it, shards run at once on one study directory, and a last unsharded run skips
every cell and builds the report."""

import json
import subprocess
import sys
from collections import Counter

import pytest
import yaml

from peftlab.errors import UserError
from peftlab.study.spec import expand, load_study, shard_cells
from peftlab.study.command import load_cells, parse_shard


def test_parse_shard():
    assert parse_shard(None) is None
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/4", "5/4", "2", "a/b", "-1/2", "1/0", ""):
        with pytest.raises(UserError, match="--shard takes i/n with 1 <= i <= n"):
            parse_shard(bad)


@pytest.mark.parametrize("preset", ["default", "testgen", "repair"])
def test_shards_partition_the_cells_and_keep_adapter_groups_together(preset, tmp_path):
    cells = expand(load_study(None, preset), default_data_root=str(tmp_path))
    owner_of = {cell.key: cell.labels.get("adapter_from", cell.key) for cell in cells}
    assert any(owner != key for key, owner in owner_of.items()), "the preset has borrowers to keep together"
    groups = len(set(owner_of.values()))
    for count in range(1, 6):
        shards = [shard_cells(cells, index, count) for index in range(1, count + 1)]
        keys = [cell.key for shard in shards for cell in shard]
        assert sorted(keys) == sorted(cell.key for cell in cells), "every cell in exactly one shard"
        for shard in shards:
            inside = {cell.key for cell in shard}
            assert all(owner_of[key] in inside for key in inside), "a borrower runs where its adapter is trained"
        sizes = Counter(len({owner_of[cell.key] for cell in shard}) for shard in shards)
        assert max(sizes) - min(sizes) <= 1 and sum(n * c for n, c in sizes.items()) == groups  # round-robin
        assert shards == [shard_cells(cells, index, count) for index in range(1, count + 1)], "deterministic"


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "peftlab.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_shards_run_at_once_and_a_last_run_builds_the_report(tiny_model_dir, tiny_data_dir, tmp_path):
    study_dir = tmp_path / "study"
    spec = {
        "name": "sharded", "output_dir": str(study_dir), "models": [str(tiny_model_dir)], "seeds": [1],
        # the second task trains the same adapter: its lora cell borrows the first's
        "tasks": [{"name": "codegen", "overrides": {"data.test_size": 2}},
                  {"name": "codegen", "overrides": {"data.test_size": 3}}],
        "methods": ["zero-shot", "lora"],
        "base": {"data": {"dir": str(tiny_data_dir)}, "train": {"max_steps": 1, "batch_size": 4},
                 "generation": {"max_new_tokens": 4, "stop": []}},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    cells = expand(load_study(path), default_data_root=str(study_dir / "data"))
    assert len(cells) == 4

    shards = [subprocess.Popen([sys.executable, "-m", "peftlab.cli", "study", str(path), "--shard", f"{i}/2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (1, 2)]
    outputs = [shard.communicate(timeout=600)[0] for shard in shards]
    for index, (shard, output) in enumerate(zip(shards, outputs), start=1):
        assert shard.returncode == 0, output
        assert f"shard {index}/2: 2 of 2 cells done" in output and not (study_dir / "report").exists()
    ran = {json.loads((study_dir / "cells" / cell.key / "cell.json").read_text())["status"] for cell in cells}
    assert ran == {"done"}

    last = _cli("study", str(path))
    assert last.returncode == 0, last.stdout + last.stderr
    assert "4 cells, 4 done, 0 failed, 0 to run" in last.stdout
    assert (study_dir / "report" / "report.html").is_file()


def test_bad_shard_is_one_line_before_anything_runs(tmp_path):
    result = _cli("study", "--preset", "testgen", "--shard", "3/2", "-o", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "--shard takes i/n" in result.stderr and not (tmp_path / "out").exists()


def test_dry_run_of_a_shard_lists_only_its_cells(tmp_path):
    out = tmp_path / "out"
    _, cells = load_cells(None, "testgen", str(out))  # as the command expands it
    for index in (1, 2):
        result = _cli("study", "--preset", "testgen", "--shard", f"{index}/2", "-o", str(out), "--dry-run",
                      timeout=120)
        assert result.returncode == 0, result.stderr
        mine = {cell.key for cell in shard_cells(cells, index, 2)}
        listed = {cell.key for cell in cells if cell.key in result.stdout}
        assert listed == mine and f"{len(mine)} cells: 0 done" in result.stdout
