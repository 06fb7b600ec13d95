"""Study files: expansion, validation before any training, and resuming a killed matrix."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from peftlab.errors import UserError
from peftlab.report import build_report
from peftlab.study.spec import StudySpec, config_hash, expand, load_study


def write_study(path: Path, **tree) -> Path:
    path.write_text(yaml.safe_dump(tree))
    return path


def test_expansion_with_sweeps_and_dedup(tmp_path):
    spec = StudySpec.model_validate({
        "output_dir": str(tmp_path / "s"),
        "models": ["m1", "org/m2"],
        "seeds": [1, 2],
        "methods": ["zero-shot", {"name": "lora", "overrides": {"method.alpha": 16}}],
        "sweeps": [{"key": "method.r", "values": [8, 16], "methods": ["lora"]}],
    })
    cells = expand(spec, default_data_root="d")
    # per model x seed: zero-shot, lora (r=16 default), lora r=8; the r=16 sweep value duplicates the default
    assert len(cells) == 2 * 2 * 3
    lora = [c for c in cells if c.labels["method"] == "lora"]
    assert {c.config.method.r for c in lora} == {8, 16} and all(c.config.method.alpha == 16 for c in lora)
    assert all(c.config.output_dir == str(tmp_path / "s" / "cells" / c.key) for c in cells)
    assert all(c.config.train.seed == c.labels["seed"] == c.config.generation.seed for c in cells)
    assert len({c.key for c in cells}) == len(cells)


def test_hash_ignores_output_dir_only(tmp_path):
    spec = StudySpec.model_validate({"methods": ["lora"], "output_dir": str(tmp_path / "a")})
    (first,) = expand(spec)
    spec.output_dir = str(tmp_path / "b")
    (second,) = expand(spec)
    assert first.key == second.key == config_hash(first.config)
    spec.base = {"train": {"epochs": 2}}
    (third,) = expand(spec)
    assert third.key != first.key


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"methods": ["lora", "lora-xs"]}, "unknown method 'lora-xs'"),
        ({"methods": ["lora"], "modelz": ["x"]}, "unknown key 'modelz'"),
        ({"methods": ["lora"], "base": {"train": {"epochz": 1}}}, "unknown config key 'train.epochz'"),
        ({"methods": []}, "matrix is empty"),
        ({"methods": ["lora"], "models": []}, "matrix is empty"),
        ({"methods": ["lora"], "sweeps": [{"key": "method.rank", "values": [4]}]}, "unknown config key 'method.rank'"),
        ({"methods": ["lora"], "sweeps": [{"key": "method.r", "values": [4], "methods": ["ia3"]}]}, "not in the study"),
        ({"methods": ["lora"], "sweeps": [{"key": "method.r", "values": ["big"]}]}, "bad value for 'method.r'"),
    ],
)
def test_bad_study_is_rejected_before_training(tmp_path, tree, message):
    path = write_study(tmp_path / "study.yaml", output_dir=str(tmp_path / "out"), **tree)
    with pytest.raises(UserError, match=message):
        expand(load_study(path))


def test_bad_study_on_the_command_line_is_one_line_and_runs_nothing(tmp_path):
    path = write_study(tmp_path / "study.yaml", output_dir=str(tmp_path / "out"), methods=["lora", "lora-xs"])
    result = subprocess.run(
        [sys.executable, "-m", "peftlab.cli", "study", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown method 'lora-xs' in study; known: " + result.stderr.split("known: ")[1].strip()
    ]
    assert not (tmp_path / "out").exists()


def test_presets_expand():
    methods = ["zero-shot", "icl", "rag", "lora", "ia3", "prompt-tuning", "qlora-4bit"]
    default = expand(load_study(None, "default"))
    assert [(c.labels["task"], c.labels["method"]) for c in default] == [
        (task, method) for task in ("mbpp", "codegen") for method in methods
    ]
    assert {c.config.model.name for c in default} == {"qwen2.5-coder-0.5b"}
    # every training method trains once, on the mined functions; the codegen cell reuses the MBPP cell's adapter
    mbpp = {c.labels["method"]: c for c in default if c.labels["task"] == "mbpp"}
    assert {c.config.data.train_task for c in mbpp.values()} == {"codegen"}
    borrowed = {c.labels["method"]: c.labels["adapter_from"] for c in default if c.labels.get("adapter_from")}
    assert borrowed == {m: mbpp[m].key for m in ("lora", "ia3", "prompt-tuning", "qlora-4bit")}
    # the separation preset differs from the default only in how many MBPP problems are scored
    separation = expand(load_study(None, "separation"))
    assert [c.config.data.test_size for c in separation if c.labels["task"] == "mbpp"] == [200] * 7
    for small, large in zip(default, separation, strict=True):
        small_config = small.config.model_dump(exclude={"output_dir", "data", "model"})
        assert small_config == large.config.model_dump(exclude={"output_dir", "data", "model"})
    full_cells = expand(load_study(None, "full"))
    full = {c.labels["method"] for c in full_cells}
    assert {"full", "prefix-tuning", "qlora-8bit"} <= full
    project = [c for c in full_cells if c.labels["task"] == "project-codegen"]
    assert {c.labels["method"] for c in project} == full  # every method also on the mined project
    assert {c.config.data.project for c in project} == {"algorithms==1.0.1"}
    repair = expand(load_study(None, "repair"))
    assert {c.labels["method"] for c in repair} == {"zero-shot", "lora", "ia3"}  # CPU-sized
    assert {c.config.generation.k for c in repair} == {10}
    assert {c.config.data.bugs for c in repair} == {"humaneval", "quixbugs"}
    lora = [c for c in repair if c.labels["method"] == "lora" and not c.labels["sweep"]]
    assert len(lora) == 2 and sum(bool(c.labels.get("adapter_from")) for c in lora) == 1  # trained once
    assert {tuple(c.labels["sweep"].items()) for c in repair if c.labels["sweep"]} == {
        (("method.r", 4),), (("data.train_size", 12),)}


def _snapshot(report: Path) -> dict[str, bytes]:
    """Every report file's bytes, with the one timestamp (the HTML's generated meta line) removed."""
    files = {str(p.relative_to(report)): p.read_bytes() for p in sorted(report.rglob("*")) if p.is_file()}
    files["report.html"] = re.sub(rb'<meta name="generated" content="[^"]*">', b"", files["report.html"])
    return files


def _cell_files(out: Path) -> dict[str, int]:
    """mtime of every finished cell's metrics file, by cell key."""
    stamps = {}
    for cell_file in sorted(out.glob("cells/*/cell.json")):
        if json.loads(cell_file.read_text())["status"] == "done":
            stamps[cell_file.parent.name] = (cell_file.parent / "metrics.json").stat().st_mtime_ns
    return stamps


def test_tiny_study_killed_mid_matrix_resumes_without_redoing_cells(tiny_model_dir, tiny_model_dir_b, tiny_data_dir, tmp_path):
    out = tmp_path / "study"
    path = write_study(
        tmp_path / "study.yaml",
        name="tiny",
        output_dir=str(out),
        models=[str(tiny_model_dir), str(tiny_model_dir_b)],
        methods=["zero-shot", {"name": "icl", "overrides": {"method.shots": 1}}, "lora"],
        base={
            "data": {"dir": str(tiny_data_dir), "test_size": 4},
            "train": {"max_steps": 2, "batch_size": 4},
            "generation": {"max_new_tokens": 4, "stop": [], "k": 2, "num_beams": 2},
        },
        hypotheses=[{"name": "LoRA beats zero-shot", "a": "lora", "b": "zero-shot", "model": str(tiny_model_dir),
                     "metric": "em@1"}],
    )
    command = [sys.executable, "-m", "peftlab.cli", "study", str(path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 300
    while len(_cell_files(out)) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = _cell_files(out)
    assert 2 <= len(finished) < 6, "the study should have been killed mid-matrix"

    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{len(finished)} done" in result.stdout
    pairs = json.loads((out / "report" / "pairs.json").read_text())["pairs"]
    significant = sum(pair["significant"] for pair in pairs)
    tests = sum(not pair["degenerate"] for pair in pairs)
    said = " ".join(result.stdout.split())
    assert f"{significant} of {tests} method pairs differ significantly" in said
    # the declared hypothesis: its power before the cells run, its verdict after the report
    assert "1 declared hypotheses; power at alpha 0.05/1" in said and "LoRA beats zero-shot: power" in said
    (answer,) = json.loads((out / "report" / "hypotheses.json").read_text())["hypotheses"]
    assert f"LoRA beats zero-shot: {answer['verdict']}" in said and answer["n"] == 3  # the tiny test split
    after = _cell_files(out)
    assert len(after) == 6
    for key, stamp in finished.items():
        assert after[key] == stamp, f"cell {key} was redone"
    for cell_file in out.glob("cells/*/cell.json"):
        state = json.loads(cell_file.read_text())
        assert state["status"] == "done" and state["wall_time_s"] > 0
        metrics = json.loads((cell_file.parent / "metrics.json").read_text())
        assert "em@2" in metrics and "codebleu" in metrics
        # a cell that saw training data (an adapter, demonstrations) checked it against its test solutions
        saw_training = state["labels"]["method"] != "zero-shot"
        assert (cell_file.parent / "data_card.json").is_file() == saw_training == ("overlap_exact" in metrics)

    # The study wrote its report at the end; deleting it and rebuilding from the cells gives the same bytes.
    report = out / "report"
    assert (report / "report.html").is_file() and (report / "tables" / "codegen.tex").is_file()
    first = _snapshot(report)
    assert any(name.startswith("figures/") and name.endswith(".png") for name in first)
    assert "figures/codegen-loss.png" in first  # the LoRA cells' loss histories, one line per model's LoRA row
    assert "codegen-loss.png" in first["report.md"].decode()
    assert "CodeBLEU" in (report / "tables" / "codegen.md").read_text()
    shutil.rmtree(report)
    build_report(out)
    assert _snapshot(report) == first


def test_full_fine_tuning_cells_each_train_their_own_model(tmp_path):
    """``model.adapter`` can only lend an adapter; a full fine-tune saves a whole model, so borrowing it
    failed the borrowing cell ("saves a whole model, not an adapter"). Its cells train their own."""
    spec = StudySpec.model_validate({
        "output_dir": str(tmp_path / "s"), "methods": ["lora", "full"],
        "tasks": ["codegen", {"name": "humaneval", "overrides": {"data.train_task": "codegen"}}],
    })
    cells = expand(spec, default_data_root="d")
    lora = [c for c in cells if c.labels["method"] == "lora"]
    full = [c for c in cells if c.labels["method"] == "full"]
    assert sum("adapter_from" in c.labels for c in lora) == 1
    assert len(full) == 2 and not any("adapter_from" in c.labels or c.config.model.adapter for c in full)


@pytest.mark.parametrize("preset", sorted(__import__("peftlab.study.spec", fromlist=["PRESETS"]).PRESETS))
def test_every_built_in_preset_expands_and_its_hypotheses_name_what_it_scores(preset):
    """A preset is a user's first study: its cells, sweeps and hypotheses (methods, tasks, test sets, metric
    names) must all resolve before anything runs."""
    from peftlab.study.spec import expand, load_study

    spec = load_study(None, preset)
    cells = expand(spec)
    assert cells and len({cell.key for cell in cells}) == len(cells)
    methods = {cell.labels["method"] for cell in cells}
    for hypothesis in spec.hypotheses:
        assert set(hypothesis.method_names) <= methods, (preset, hypothesis.title)
