"""Check java-testgen's built-in data by execution and print its card: every HumanEval-X Java problem's test,
rewritten as a JUnit 4 class (:mod:`peftlab.tasks.java_testgen.training`), run against the canonical
solution (it must compile and pass) and against each kept mutant (it must kill every one), with JaCoCo's
coverage of the focal method.

    .venv/bin/python bench/java_testgen_training.py [--workers 2]

Writes bench/results/java-testgen-training.json: the training card (records per split, assertions), and per
half (train+validation / test) how many rewritten tests compile, pass, kill all their mutants, their mean
line and branch coverage, the problems that do not, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from statistics import fmean

from peftlab.tasks.java_repair.data import in_test_half
from peftlab.tasks.java_testgen.focal import humaneval_x_focal
from peftlab.tasks.java_testgen.junit_scoring import score_junit_tests
from peftlab.tasks.java_testgen.training import training_card

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--workers", type=int, default=2)
args = parser.parse_args()

started = time.perf_counter()
focal = humaneval_x_focal()
verdicts = score_junit_tests([(f, f.reference) for f in focal], timeout=10.0, workers=args.workers)
halves = {}
for half, test_half in (("training half", False), ("test half", True)):
    chosen = [(f, v) for f, v in zip(focal, verdicts, strict=True) if in_test_half(f.id) == test_half]
    halves[half] = {
        "problems": len(chosen),
        "compile": sum(v["compiles"] for _, v in chosen),
        "pass": sum(v["passes"] for _, v in chosen),
        "kill_every_mutant": sum(v["killed"] == len(f.mutants) for f, v in chosen),
        "mutants": sum(len(f.mutants) for f, _ in chosen),
        "killed": sum(v["killed"] for _, v in chosen),
        "mean_line_coverage": round(fmean(v["line_coverage"] for _, v in chosen), 4),
        "mean_branch_coverage": round(fmean(v["branch_coverage"] for _, v in chosen), 4),
        "not_passing": {f.id: v["reason"] for f, v in chosen if not v["passes"]},
        "mutants_survived": {f.id: len(f.mutants) - v["killed"] for f, v in chosen if v["killed"] < len(f.mutants)},
    }
card = {**training_card(), "checked_by_execution": halves, "wall_s": round(time.perf_counter() - started, 1)}
out = Path(__file__).parent / "results" / "java-testgen-training.json"
out.write_text(json.dumps(card, indent=2) + "\n")
print(json.dumps({key: value for key, value in card.items() if key != "problem_ids"}, indent=2))
