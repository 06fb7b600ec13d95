"""``peftlab study --plan``: each declared hypothesis's power (the same computation as bench/power.py, on the
same inputs) and the time estimate from finished cells' per-item costs; power itself checked by simulation."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from peftlab.report.inference import mcnemar_exact, tost_paired
from peftlab.report.power import equivalence_power, superiority_power

ROOT = Path(__file__).parents[1]


def _study(tmp_path: Path) -> Path:
    study = {
        "name": "planned", "output_dir": str(tmp_path / "out"), "models": ["smollm2-135m"],
        "tasks": [{"name": "codegen", "overrides": {"data.test_size": 120}}],
        "methods": ["zero-shot", "icl", "lora"],
        "hypotheses": [
            {"name": "LoRA beats ICL", "a": "lora", "b": "icl", "metric": "em@1", "effect": 0.15},
            {"name": "ICL = zero-shot", "a": "icl", "b": "zero-shot", "metric": "em@1", "test": "equivalence",
             "margin": 0.1},
        ],
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_plan_prints_the_power_bench_power_computes(tmp_path):
    result = subprocess.run([sys.executable, "-m", "peftlab.cli", "study", str(_study(tmp_path)), "--plan"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    text = " ".join(result.stdout.split())
    assert "2 declared hypotheses; power at alpha 0.05/2" in text
    superiority = float(re.search(r"LoRA beats ICL: power ([0-9.]+)", text)[1])
    equivalence = float(re.search(r"ICL = zero-shot: power ([0-9.]+)", text)[1])
    assert "with n 120 at alpha 0.025" in text and "(assumed)" in text
    assert not (tmp_path / "out").exists()  # the plan writes nothing

    bench = subprocess.run([sys.executable, str(ROOT / "bench" / "power.py"), "--difference", "0.15", "--discordance",
                            "0.2", "--pairs", "2", "--margin", "0.1", "--sizes", "120", "--out", str(tmp_path / "p")],
                           capture_output=True, text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr[-2000:]
    (row,) = json.loads((tmp_path / "p.json").read_text())["power"]
    assert superiority == pytest.approx(row["power_holm_first_of_2"], abs=0.005)
    assert equivalence == pytest.approx(row["equivalence_power_holm_first_of_2"], abs=0.005)


def _simulate(n, difference, discordance, alpha, test, margin=None, trials=4000):
    rng = np.random.default_rng([3, n])
    only_better, only_worse = (discordance + difference) / 2, (discordance - difference) / 2
    hits = 0
    for _ in range(trials):
        draw = rng.random(n)
        a = (draw < only_better).astype(float)
        b = ((draw >= only_better) & (draw < only_better + only_worse)).astype(float)
        p = tost_paired(a, b, margin) if test == "equivalence" else mcnemar_exact(a, b)
        hits += p < alpha
    return hits / trials


@pytest.mark.parametrize("n,difference,discordance,alpha", [(60, 0.1, 0.2, 0.05), (150, 0.1, 0.25, 0.01)])
def test_superiority_power_matches_simulation(n, difference, discordance, alpha):
    exact = superiority_power(n, difference, discordance, alpha)
    assert exact == pytest.approx(_simulate(n, difference, discordance, alpha, "superiority"), abs=0.03)


@pytest.mark.parametrize("n,margin,discordance", [(150, 0.1, 0.2), (300, 0.05, 0.1)])
def test_equivalence_power_matches_simulation(n, margin, discordance):
    exact = equivalence_power(n, margin, discordance, 0.05)
    assert 0.05 < exact < 0.99
    assert exact == pytest.approx(_simulate(n, 0.0, discordance, 0.05, "equivalence", margin), abs=0.03)


def test_time_estimate_scales_finished_cells_per_item(tmp_path):
    from peftlab.study.command import load_cells
    from peftlab.study.plan import Finished, estimate_seconds

    _, cells = load_cells(_study(tmp_path), "default", None)
    lora = next(cell for cell in cells if cell.labels["method"] == "lora")
    icl = next(cell for cell in cells if cell.labels["method"] == "icl")
    # a finished lora cell of the same task: 100 s of training, 30 items scored in 60 s -> 2 s per item
    finished = [Finished("lora", "codegen", 160.0, 100.0, 30)]
    assert estimate_seconds(lora, finished) == pytest.approx(100 + 2 * 120)
    assert estimate_seconds(icl, finished) is None  # nothing alike has finished
    # another task of the same method: its mean wall time, unscaled
    assert estimate_seconds(icl, [Finished("icl", "mbpp", 50.0, 0.0, 10)]) == 50.0
