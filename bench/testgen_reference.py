"""Sanity row for test generation: HumanEval's own reference tests scored as if a model had written them.

    .venv/bin/python bench/testgen_reference.py [--limit N]

Builds (or reads from the cache) the behaviour-changing mutants of every canonical solution, then scores
each problem's ``check`` function with peftlab's testgen scorer. Since the mutants are by definition those
the reference tests kill under the HumanEval harness, the mutation score should be 1.0: a lower figure
means the two runners disagree. Coverage is the real finding: how much of each canonical solution
HumanEval's tests execute. Writes bench/results/testgen-reference.{json,md}.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="Only the first N problems.")
    args = parser.parse_args()
    from peftlab.data.mutants import mutants
    from peftlab.tasks.testgen.generated_tests import FocalProblem, score_tests
    from peftlab.tasks.humaneval import load_problems
    from peftlab.tasks.testgen.data import humaneval_focal

    ids = list(load_problems())[: args.limit]
    problems = load_problems()
    started = time.monotonic()
    focal = humaneval_focal(ids)
    mutants_s = time.monotonic() - started
    generated = sum(len(mutants(problems[i]["prompt"] + problems[i]["canonical_solution"], problems[i]["entry_point"]))
                    for i in ids)
    started = time.monotonic()
    verdicts = score_tests([(FocalProblem(p["focal"], p["entry_point"], tuple(p["mutants"])), p["reference"])
                            for p in focal.values()], timeout=5.0)
    scoring_s = time.monotonic() - started
    kept = sum(len(p["mutants"]) for p in focal.values())
    with_mutants = [v for v in verdicts if v["mutants"]]
    row = {
        "problems": len(ids), "mutants_generated": generated, "mutants_kept": kept,
        "kept_share": round(kept / generated, 3) if generated else None,
        "operators_kept": dict(collections.Counter(op for p in focal.values() for op in p["operators"])),
        "problems_without_mutants": len(ids) - len(with_mutants),
        "passed": sum(v["passed"] for v in verdicts),
        "line_coverage_mean": round(statistics.fmean(v["line_coverage"] for v in verdicts), 4),
        "branch_coverage_mean": round(statistics.fmean(v["branch_coverage"] for v in verdicts), 4),
        "mutation_score_mean": round(statistics.fmean(v["mutation_score"] for v in with_mutants), 4),
        "full_line_coverage": sum(v["line_coverage"] == 1.0 for v in verdicts),
        "full_branch_coverage": sum(v["branch_coverage"] == 1.0 for v in verdicts),
        "not_passing": [{"task_id": i, "reason": v["reason"]} for i, v in zip(ids, verdicts) if not v["passed"]],
        "mutant_build_s": round(mutants_s, 1), "scoring_s": round(scoring_s, 1), "cpu_count": os.cpu_count(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "testgen-reference.json").write_text(json.dumps(row, indent=2) + "\n")
    lines = ["# HumanEval's reference tests, scored as generated tests", "",
             "`.venv/bin/python bench/testgen_reference.py`" + (f" --limit {args.limit}" if args.limit else "") +
             f" on {row['cpu_count']} cores. The mutants are those the reference tests kill under the HumanEval "
             "harness, so the mutation score checks that the testgen scorer agrees (1.0 expected); coverage is "
             "of the canonical solution's body.", "", "| what | value |", "|---|---|"]
    lines += [f"| {key} | {json.dumps(value) if isinstance(value, (dict, list)) else value} |" for key, value in row.items()]
    (RESULTS / "testgen-reference.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
