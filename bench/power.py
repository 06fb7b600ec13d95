"""How many test problems a study needs for its paired test to separate two methods (or to show them
equivalent).

    .venv/bin/python bench/power.py [--difference 0.10] [--discordance 0.20] [--pairs 21] [--margin 0.05]
                                    [--sizes 40 200 397] [--out NAME]

Two methods scored 0/1 on the same N problems differ on a share ``q`` of them (the discordant problems);
their pass@1 differs by ``d``. The report's test is exact McNemar (:func:`peftlab.report.inference.mcnemar_exact`),
Holm-adjusted over the pairs of a task, model and metric. This computes, exactly (no simulation), the
probability that the test rejects at level alpha for a range of N — once at alpha = 0.05 (one planned
pair) and once at 0.05 / pairs (the strictest Holm step, what the most significant of 21 pairs of seven
methods must reach) — and the smallest N with 80% power. ``--runs`` takes finished study cells' directories
and reports the observed discordance between their per-problem verdicts, to plug in as ``q``.
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

from peftlab.report.power import equivalence_power, superiority_power

SIZES = (40, 60, 80, 100, 150, 200, 250, 300, 397)


def observed_discordance(run_dirs: list[Path]) -> list[dict]:
    """Share of problems on which two runs' first candidates disagree (passed vs not), per pair of runs."""
    verdicts = {}
    for run in run_dirs:
        rows = [json.loads(line) for line in (run / "verdicts.jsonl").read_text().splitlines() if line.strip()]
        firsts: dict[str, bool] = {}
        for row in rows:
            firsts.setdefault(row["task_id"], row["passed"])
        label = json.loads((run / "cell.json").read_text())["labels"]["method"] if (run / "cell.json").is_file() else run.name
        verdicts[label] = firsts
    found = []
    for (first, a), (second, b) in combinations(verdicts.items(), 2):
        shared = sorted(set(a) & set(b))
        disagree = sum(a[task] != b[task] for task in shared)
        found.append({"first": first, "second": second, "n": len(shared), "discordance": disagree / max(1, len(shared)),
                      "difference": (sum(a[t] for t in shared) - sum(b[t] for t in shared)) / max(1, len(shared))})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--difference", type=float, default=0.10)
    parser.add_argument("--discordance", type=float, default=0.20)
    parser.add_argument("--pairs", type=int, default=21, help="pairs Holm adjusts over (7 methods: 21)")
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="finished execution-scored runs")
    parser.add_argument("--margin", type=float, default=None, help="also: TOST power within this margin")
    parser.add_argument("--sizes", nargs="*", type=int, default=list(SIZES))
    parser.add_argument("--out", default="power")
    args = parser.parse_args()
    if not 0 < args.difference <= args.discordance <= 1:
        parser.error(f"--difference ({args.difference}) must be positive and at most --discordance ({args.discordance}): "
                     "two methods cannot differ on more problems than they disagree on")
    strict = 0.05 / args.pairs
    rows = [{"n": n, "power_0.05": superiority_power(n, args.difference, args.discordance, 0.05),
             f"power_holm_first_of_{args.pairs}": superiority_power(n, args.difference, args.discordance, strict)}
            for n in args.sizes]
    if args.margin:
        for row in rows:
            row["equivalence_power_0.05"] = equivalence_power(row["n"], args.margin, args.discordance, 0.05)
            row[f"equivalence_power_holm_first_of_{args.pairs}"] = equivalence_power(row["n"], args.margin,
                                                                                     args.discordance, strict)
    header = f"pass@1 difference {args.difference:.2f}, discordant share {args.discordance:.2f}"
    lines = [f"# Power of the paired test ({header})", "",
             f"| problems | power at alpha 0.05 | power at alpha 0.05/{args.pairs} (strictest Holm step) |",
             "|---:|---:|---:|"]
    lines += [f"| {row['n']} | {row['power_0.05']:.2f} | {row[f'power_holm_first_of_{args.pairs}']:.2f} |" for row in rows]
    if args.margin:
        lines += ["", f"Equivalence (TOST, margin ±{args.margin:g}, true difference 0, discordant share "
                  f"{args.discordance:.2f}):", "",
                  f"| problems | power at alpha 0.05 | power at alpha 0.05/{args.pairs} |", "|---:|---:|---:|"]
        lines += [f"| {row['n']} | {row['equivalence_power_0.05']:.2f} | "
                  f"{row[f'equivalence_power_holm_first_of_{args.pairs}']:.2f} |" for row in rows]
    observed = observed_discordance(args.runs) if args.runs else []
    if observed:
        lines += ["", "Observed between runs:", "", "| first | second | n | discordance | difference |", "|---|---|---:|---:|---:|"]
        lines += [f"| {o['first']} | {o['second']} | {o['n']} | {o['discordance']:.3f} | {o['difference']:+.3f} |" for o in observed]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).parent / "results"
    (out / f"{args.out}.md").write_text(text)
    (out / f"{args.out}.json").write_text(json.dumps({"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                                                if k != "runs"}, "runs": [str(r) for r in args.runs],
                                                      "power": rows, "observed": observed}, indent=2) + "\n")


if __name__ == "__main__":
    main()
