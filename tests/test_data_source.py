"""data.source: a task's splits from any file or hub dataset that 🤗 datasets reads, with a column mapping
and split selection in datasets' own syntax."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from peftlab.config import load_config
from peftlab.data.hub import load_source_split
from peftlab.errors import UserError
from peftlab.tasks import get_task

REQUIRED = {"instruction": str, "reference": str}


def _renamed(tiny_data_dir, split):
    """The tiny mined split with the columns another tool would give it."""
    rows = [json.loads(line) for line in (tiny_data_dir / f"{split}.jsonl").read_text().splitlines()]
    return pd.DataFrame({"prompt": [r["instruction"] for r in rows], "code": [r["reference"] for r in rows],
                         "task": [f"t{i}" for i in range(len(rows))]})


def _data(*overrides):
    return load_config(None, list(overrides)).data


def test_a_csv_directory_with_a_column_mapping(tiny_data_dir, tmp_path):
    for split in ("train", "validation", "test"):
        _renamed(tiny_data_dir, split).to_csv(tmp_path / f"{split}.csv", index=False)
    data = _data(f"data.source={tmp_path}", "data.columns.instruction=prompt", "data.columns.reference=code",
                 "data.columns.id=task")
    test = load_source_split(data, "test", REQUIRED)
    expected = [json.loads(line) for line in (tiny_data_dir / "test.jsonl").read_text().splitlines()]
    assert [(r["instruction"], r["reference"]) for r in test] == [(e["instruction"], e["reference"]) for e in expected]
    assert [r["id"] for r in test] == [f"t{i}" for i in range(len(expected))]


def test_split_selection_slices_one_file(tiny_data_dir, tmp_path):
    frame = _renamed(tiny_data_dir, "train")
    frame.to_parquet(tmp_path / "all.parquet")
    config = load_config(None, [f"data.source={tmp_path / 'all.parquet'}", "data.columns.instruction=prompt",
                                "data.columns.reference=code", "data.splits.train=train[:8]",
                                "data.splits.test=train[8:]", "data.test_size=2"])
    task = get_task("codegen", config)
    train, test = task.load("train"), task.load("test")
    assert [r["reference"] for r in train] == list(frame["code"][:8])
    assert [r["reference"] for r in test] == list(frame["code"][8:10]) and [r["id"] for r in test] == ["test-00000", "test-00001"]


@pytest.mark.parametrize("overrides, message", [
    (["data.columns.instruction=nosuch"], "no column 'nosuch' for 'instruction' (columns: prompt, code, task;"),
    ([], "no column 'instruction' for 'instruction'"),
    (["data.columns.instruction=prompt", "data.columns.reference=code", "data.splits.validation=dev"], "split 'dev'"),
])
def test_bad_mapping_or_split_is_one_line(tiny_data_dir, tmp_path, overrides, message):
    _renamed(tiny_data_dir, "train").to_parquet(tmp_path / "all.parquet")
    data = _data(f"data.source={tmp_path / 'all.parquet'}", *overrides)
    with pytest.raises(UserError) as raised:
        load_source_split(data, "validation" if "dev" in message else "train", REQUIRED)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_missing_file_and_unreadable_type(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    for source, message in ((str(tmp_path / "none.parquet"), "no such file or directory"),
                            (str(tmp_path / "x.txt"), "cannot read '.txt' files")):
        with pytest.raises(UserError, match=message):
            load_source_split(_data(f"data.source={source}"), "train", REQUIRED)


def test_a_hub_id_offline_is_one_line(tmp_path):
    """The hub path is real (load_dataset with the id); without network it fails with one line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-m", "peftlab.cli", "data", "preview", "data.source=neulab/docprompting-conala"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data.source neulab/docprompting-conala: cannot load it")


def test_a_lora_cell_runs_end_to_end_on_a_parquet_source(tiny_model_dir, tiny_data_dir, tmp_path):
    frame = _renamed(tiny_data_dir, "train")
    frame.to_parquet(tmp_path / "train.parquet")
    run = tmp_path / "run"
    result = subprocess.run([
        sys.executable, "-m", "peftlab.cli", "run", "--method", "lora", "-o", str(run), f"model.name={tiny_model_dir}",
        f"data.source={tmp_path / 'train.parquet'}", "data.columns.instruction=prompt", "data.columns.reference=code",
        "data.splits.validation=train[8:10]", "data.splits.test=train[10:]", "data.splits.train=train[:8]",
        "train.max_steps=2", "train.batch_size=4", "generation.max_new_tokens=4", "generation.stop=[]",
    ], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_steps"] == 2 and metrics["test_problems"] == len(frame) - 10
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert [p["reference"] for p in predictions] == list(frame["code"][10:])
