"""How many test problems a study needs for its paired test to separate two methods.

    .venv/bin/python bench/power.py [--difference 0.10] [--discordance 0.20] [--pairs 21] [--out NAME]

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

from scipy.stats import binom

from peftlab.report.inference import mcnemar_exact

SIZES = (40, 60, 80, 100, 150, 200, 250, 300, 397)


def _critical_counts(discordant: int, alpha: float) -> int | None:
    """Smallest count b of "only the better method passes" among ``discordant`` problems that the exact
    McNemar test rejects at ``alpha`` (the test is symmetric, so b >= this or b <= discordant - this)."""
    for count in range((discordant + 1) // 2, discordant + 1):
        if mcnemar_exact([1] * count + [0] * (discordant - count), [0] * count + [1] * (discordant - count)) < alpha:
            return count
    return None


def power(n: int, difference: float, discordance: float, alpha: float) -> float:
    """P(exact McNemar rejects at ``alpha``) for N = ``n`` problems, pass@1 difference ``difference`` and
    discordant share ``discordance`` (needs discordance >= difference)."""
    better_share = (discordance + difference) / (2 * discordance)  # of the discordant, where the better one passes
    total = 0.0
    for discordant in range(1, n + 1):
        critical = _critical_counts(discordant, alpha)
        if critical is None:
            continue
        reject = binom.sf(critical - 1, discordant, better_share) + binom.cdf(discordant - critical, discordant, better_share)
        total += binom.pmf(discordant, n, discordance) * reject
    return float(total)


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
    parser.add_argument("--out", default="power")
    args = parser.parse_args()
    strict = 0.05 / args.pairs
    rows = [{"n": n, "power_0.05": power(n, args.difference, args.discordance, 0.05),
             f"power_holm_first_of_{args.pairs}": power(n, args.difference, args.discordance, strict)} for n in SIZES]
    header = f"pass@1 difference {args.difference:.2f}, discordant share {args.discordance:.2f}"
    lines = [f"# Power of the paired test ({header})", "",
             f"| problems | power at alpha 0.05 | power at alpha 0.05/{args.pairs} (strictest Holm step) |",
             "|---:|---:|---:|"]
    lines += [f"| {row['n']} | {row['power_0.05']:.2f} | {row[f'power_holm_first_of_{args.pairs}']:.2f} |" for row in rows]
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
