"""The testgen study end to end on a tiny random model: testgen cells report validity / pass / coverage /
mutation / CodeBLEU; the humaneval cells reuse the testgen adapters, and the report's forgetting table
compares them with the untrained base on the same problems. Plus the preset's shape."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from peftlab.study.spec import expand, load_study

PROJECT = Path(__file__).parent / "fixtures" / "tested_project"


def test_testgen_preset_shares_adapters_for_the_forgetting_table():
    cells = expand(load_study(None, "testgen"))
    testgen = {c.labels["method"]: c for c in cells if c.labels["task"] == "testgen"}
    humaneval = [c for c in cells if c.labels["task"] == "humaneval"]
    assert set(testgen) == {"zero-shot", "lora", "ia3", "prompt-tuning"}
    assert {c.labels["method"]: c.labels.get("adapter_from") for c in humaneval} == {
        "zero-shot": None, **{m: testgen[m].key for m in ("lora", "ia3", "prompt-tuning")}}


def test_tiny_testgen_study_with_forgetting_table(tiny_model_dir, tmp_path):
    out = tmp_path / "study"
    study = {
        "name": "tiny-testgen", "output_dir": str(out), "models": [str(tiny_model_dir)],
        "tasks": [{"name": "testgen", "overrides": {"data.project": str(PROJECT), "data.test_size": 2}},
                  {"name": "humaneval", "overrides": {"data.train_task": "testgen", "data.project": str(PROJECT),
                                                      "data.test_size": 2}}],
        "methods": ["zero-shot", "lora"],
        "base": {"train": {"max_steps": 2, "batch_size": 2},
                 "generation": {"max_new_tokens": 8, "stop": [], "k": 2, "num_beams": 2}},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    env = {**os.environ, "PEFTLAB_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "peftlab.cli", "study", str(path)], capture_output=True,
                            text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for cell in out.glob("cells/*/cell.json"):
        labels = json.loads(cell.read_text())["labels"]
        metrics = json.loads((cell.parent / "metrics.json").read_text())
        if labels["task"] == "testgen":
            for key in ("test_valid_best", "test_pass_mean", "line_cov_best", "branch_cov_mean", "mutation_best",
                        "codebleu"):
                assert 0.0 <= metrics[key] <= 1.0, key
            assert metrics["tasks"] == 2 and metrics["samples"] == 4 and metrics["mutants_per_task"] > 0
            rows = (cell.parent / "verdicts.jsonl").read_text().splitlines()
            assert len(rows) == 4 and {"valid", "killed", "line_coverage"} <= set(json.loads(rows[0]))
    table = (out / "report" / "tables" / "testgen.md").read_text()
    assert "mutation score (best)" in table and "line cov. (mean)" in table
    forgetting = (out / "report" / "forgetting.md").read_text()
    assert "| humaneval | " in forgetting and "| lora | testgen | pass@1 |" in forgetting
    assert "## Forgetting" in (out / "report" / "report.md").read_text()
