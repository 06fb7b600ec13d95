"""``peftlab study --plan``'s training-memory column (peftlab.study.memory): a finished twin's observed peak,
else the methods bench's, else unknown; nothing for cells that train nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from peftlab.study.command import load_cells
from peftlab.study.memory import REFERENCE, estimate_memory, observed_peaks, reference_from_bench

ROOT = Path(__file__).parents[1]
BENCH = ["bench/results/methods-qwen-8bit/methods.json", "bench/results/methods-qwen/methods.json",
         "bench/results/methods-qwen-variants/methods.json"]
REFERENCE_TABLE = {"lora": {"smollm2-135m": {"peak_rss_mb": 3000, "batch_size": 8, "max_length": 320,
                                             "source": "bench/x.json"}}}


def _cells(tmp_path: Path):
    study = {"name": "memory", "output_dir": str(tmp_path / "out"), "models": ["smollm2-135m"],
             "tasks": ["mbpp", "codegen"], "methods": ["zero-shot", "lora", "ia3"]}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path, load_cells(path, "default", None)[1]


def _cell(cells, method, task="mbpp"):
    return next(c for c in cells if c.labels["method"] == method and c.labels["task"] == task)


def test_the_packaged_reference_is_the_committed_bench_results():
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        rebuilt = reference_from_bench([Path(p) for p in BENCH])
    finally:
        os.chdir(cwd)
    assert json.loads(REFERENCE.read_text()) == rebuilt
    assert rebuilt["qlora-4bit"]["qwen2.5-coder-0.5b"]["peak_rss_mb"] == 1708
    assert rebuilt["lora"]["qwen2.5-coder-0.5b"]["source"] == BENCH[0]  # the first file wins
    assert rebuilt["qlora-4bit"]["qwen2.5-coder-0.5b"]["source"] == BENCH[1]
    assert not any("+" in method for method in rebuilt)  # setting variants are not a method's default


def test_bench_figure_then_observed_peak_then_nothing_for_untrained_cells(tmp_path):
    _, cells = _cells(tmp_path)
    lora, ia3, zero = _cell(cells, "lora"), _cell(cells, "ia3"), _cell(cells, "zero-shot")
    borrower = _cell(cells, "lora", "codegen")
    borrower.labels["adapter_from"] = lora.key  # as spec._share_training marks a cell that reuses an adapter
    bench = estimate_memory(lora, {}, REFERENCE_TABLE)
    assert (bench.mb, bench.source) == (3000.0, "bench") and bench.text() == "2.9 GB (bench)"
    assert estimate_memory(ia3, {}, REFERENCE_TABLE).text() == "unknown"
    assert estimate_memory(zero, {}, REFERENCE_TABLE).text() == "-"
    assert estimate_memory(borrower, {}, REFERENCE_TABLE).text() == "-"  # trains nothing: borrows lora's
    lora.config.train.batch_size = 2
    assert estimate_memory(lora, {}, REFERENCE_TABLE).text() == "2.9 GB (bench; measured at batch 8 x 320 tokens)"

    out = Path(lora.config.output_dir)
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"peak_memory_mb": 2048.0}))
    states = {cell.key: {"status": "left"} for cell in cells}
    assert observed_peaks(cells, states) == {}  # not finished: not observed
    states[lora.key] = {"status": "done"}
    peaks = observed_peaks(cells, states)
    assert estimate_memory(lora, peaks, REFERENCE_TABLE).text() == "2.0 GB (observed)"
    assert estimate_memory(ia3, peaks, REFERENCE_TABLE).text() == "unknown"  # another method


def test_plan_prints_the_training_memory_column(tmp_path):
    study, _ = _cells(tmp_path)
    result = subprocess.run([sys.executable, "-m", "peftlab.cli", "study", str(study), "--plan"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env={
                                **__import__("os").environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "training memory" in result.stdout
    lines = {line.split("│")[2].strip(): line.split("│")[-2].strip() for line in result.stdout.splitlines()
             if line.count("│") > 5}
    assert lines["zero-shot (smollm2-135m, mbpp, seed 42)"] == "-"
    # no bench figure for SmolLM2: unknown until a cell of the method finishes
    assert lines["lora (smollm2-135m, mbpp, seed 42)"] == "unknown"
