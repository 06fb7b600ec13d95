"""The Python API does what the commands do: same checks, same run directory, same records."""

import json
import subprocess
import sys

import pytest
import yaml

from peftlab import api
from peftlab.errors import UserError


def test_importing_the_api_does_not_import_torch():
    code = "import sys, peftlab.api; assert 'torch' not in sys.modules, 'torch imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_bad_names_are_user_errors_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match="unknown method 'nosuch'"):
        api.config(method="nosuch", output_dir=str(tmp_path / "x"))
    with pytest.raises(UserError, match="unknown task"):
        api.config(task="nosuch")
    with pytest.raises(UserError, match="unknown data.loader 'nosuch'"):
        api.config(overrides=["data.loader=nosuch"])
    with pytest.raises(UserError, match="data.loader apps makes apps records"):
        api.config(overrides=["data.loader=apps"])  # the default task is codegen
    with pytest.raises(UserError, match="unknown stage 'fit'"):
        api.stage(api.config(), "fit")
    assert not (tmp_path / "x").exists()


def test_run_then_stage_then_report(tiny_overrides, tmp_path):
    config = api.config(overrides=tiny_overrides, method="lora")
    announced = []
    metrics = api.run(config, announce=announced.append)
    assert announced == ["lora: train", "lora: generate", "lora: evaluate"]
    run = tmp_path / "run"
    assert metrics == json.loads((run / "metrics.json").read_text())
    assert metrics["train_steps"] == 4 and "codebleu" in metrics
    assert yaml.safe_load((run / "config.yaml").read_text())["method"]["name"] == "lora"
    assert {"train.run.json", "generate.run.json", "evaluate.run.json", "loss_history.jsonl"} <= {p.name for p in run.iterdir()}
    # a second run skips every finished stage; a single stage is always redone, as `peftlab evaluate`
    assert api.run(config, announce=announced.append) == metrics and len(announced) == 3
    again = api.stage(config, "evaluate")
    assert again["codebleu"] == metrics["codebleu"]
    files = api.report(run.parent, tmp_path / "report")
    assert "report.html" in files and files["report.html"].is_file()


def test_study_returns_each_cell_with_its_metrics(tiny_model_dir, tiny_data_dir, tmp_path):
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump({
        "name": "api", "output_dir": str(tmp_path / "study"), "models": [str(tiny_model_dir)],
        "methods": ["zero-shot", {"name": "icl", "overrides": {"method.shots": 1}}],
        "base": {"data": {"dir": str(tiny_data_dir), "test_size": 3},
                 "generation": {"max_new_tokens": 4, "stop": []}},
    }))
    cells = api.study(study_file, report=False)
    assert [cell["labels"]["method"] for cell in cells] == ["zero-shot", "icl"]
    assert all(cell["status"] == "done" and cell["metrics"]["test_problems"] == 3 for cell in cells)
    assert all((cell["dir"] / "predictions.jsonl").is_file() for cell in cells)
