"""Code generation on a mined project in a study: pass@1/pass@k beside EM and CodeBLEU, in every cell's
metrics.json and in the report's table with confidence intervals (tiny random model: the values are
near zero, the plumbing is what is checked; the bundled-model figures are in bench/results/)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

PROJECT = Path(__file__).parent / "fixtures" / "tested_project"


def test_project_codegen_study_reports_execution_and_match_metrics_with_cis(tiny_model_dir, tmp_path):
    out = tmp_path / "study"
    study = {
        "name": "project", "output_dir": str(out), "models": [str(tiny_model_dir)],
        "tasks": [{"name": "project-codegen", "overrides": {"data.project": str(PROJECT)}}],
        "methods": ["zero-shot", "lora"],
        "base": {"train": {"max_steps": 2, "batch_size": 2},
                 "generation": {"max_new_tokens": 8, "stop": [], "k": 2, "num_beams": 2}},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    env = {**os.environ, "PEFTLAB_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "peftlab.cli", "study", str(path)], capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    cells = sorted(out.glob("cells/*/metrics.json"))
    assert len(cells) == 2
    for metrics_file in cells:
        metrics = json.loads(metrics_file.read_text())
        for key in ("pass@1", "pass@2", "tests_passed", "em@1", "em@2", "codebleu"):
            assert 0.0 <= metrics[key] <= 1.0, key
        assert metrics["tasks"] == 3 and metrics["samples"] == 6
        verdicts = (metrics_file.parent / "verdicts.jsonl").read_text().splitlines()
        assert len(verdicts) == 6
    table = (out / "report" / "tables" / "project-codegen.md").read_text()
    assert "pass@1" in table and "pass@2" in table and "CodeBLEU" in table and "EM@1" in table
    assert "[" in table.split("\n")[2], "values carry their 95% CI"
