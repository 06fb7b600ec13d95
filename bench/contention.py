"""Why peftlab slows down so much on a shared CPU, and which thread setting avoids it.

A fixed workload (forward + backward of SmolLM2-135M over packed rows, then greedy generation of a few
prompts) is timed alone and while a competitor runs: the same workload in a loop in another process,
with default torch threading (what a second user's job, or a second peftlab, does). Each condition is a
fresh process, because OpenMP reads its environment once, when torch is imported.

Conditions: libgomp's default waiting policy (one thread per CPU; waiting threads spin ~300,000 times
before they sleep), peftlab's default (what ``import peftlab`` sets when the user set neither
``OMP_WAIT_POLICY`` nor ``GOMP_SPINCOUNT``: :data:`peftlab.DEFAULT_SPINCOUNT`), a shorter spin
(``GOMP_SPINCOUNT=1000``) and ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once). The competitor
always runs with libgomp's default. Each condition runs alone ``--repeats`` times, rounds interleaved across
the conditions (so that drifting load favours none), and once beside the competitor; the report gives the
median alone time, its ratio to libgomp's default, and the slowdown beside the competitor.

    python bench/contention.py                 # writes bench/results/contention.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CONDITIONS = {
    # An empty OMP_WAIT_POLICY is ignored by libgomp (its default: spin a while, then sleep); being set, it
    # also tells peftlab that the user chose, so peftlab leaves the spin count alone.
    "libgomp default (spin)": {"OMP_WAIT_POLICY": ""},
    "peftlab default": {},  # neither variable set (removed from the environment below)
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}
_OURS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def workload(rounds: int) -> float:
    """Seconds for ``rounds`` of: forward + backward over two 320-token rows, greedy 24 tokens for 4 prompts."""
    import peftlab  # noqa: F401, I001  (first: applies PEFTLAB_THREADS before torch starts its threads)
    import torch

    from peftlab.models.loading import load_model, load_tokenizer

    model = load_model("smollm2-135m")
    tokenizer = load_tokenizer("smollm2-135m", padding_side="left")
    ids = torch.randint(100, 40000, (2, 320), generator=torch.Generator().manual_seed(0))
    prompts = [f"def function_{i}(values):\n    \"\"\"Return the {i}th statistic of values.\"\"\"\n" for i in range(4)]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    started = time.perf_counter()
    for _ in range(rounds):
        model.train()
        for row in ids:
            model(input_ids=row[None], labels=row[None]).loss.backward()
        model.eval()
        with torch.inference_mode():
            model.generate(**encoded, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return time.perf_counter() - started


def _measure(condition: str, rounds: int, competitor: bool) -> dict:
    env = {**{k: v for k, v in os.environ.items() if k not in _OURS}, **CONDITIONS[condition]}
    rival = None
    if competitor:  # default settings: the other job is not ours to configure
        rival = subprocess.Popen([sys.executable, __file__, "--loop"], env={**os.environ, "OMP_WAIT_POLICY": ""},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(8)  # let it load its model and start computing
    try:
        result = subprocess.run([sys.executable, __file__, "--rounds", str(rounds), "--child"], env=env,
                                capture_output=True, text=True, check=True)
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()
    seconds = float(result.stdout.strip().splitlines()[-1])
    return {"condition": condition, "competitor": competitor, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="Runs alone per condition (median).")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--spin", type=int, nargs="*", default=[],
                        help="Also measure GOMP_SPINCOUNT=N for each N (to choose peftlab's default).")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(workload(args.rounds))
        return
    if args.loop:
        while True:
            workload(1)

    for spin in args.spin:
        CONDITIONS[f"GOMP_SPINCOUNT={spin}"] = {"GOMP_SPINCOUNT": str(spin)}
    load_before = os.getloadavg()
    alone: dict[str, list[float]] = {condition: [] for condition in CONDITIONS}
    for repeat in range(args.repeats):
        order = list(CONDITIONS) if repeat % 2 == 0 else list(reversed(CONDITIONS))
        for condition in order:
            alone[condition].append(_measure(condition, args.rounds, competitor=False)["seconds"])
            print(f"{condition}: alone {alone[condition][-1]:.1f} s", flush=True)
    baseline = statistics.median(alone["libgomp default (spin)"])
    rows = []
    for condition in CONDITIONS:
        shared = _measure(condition, args.rounds, competitor=True)["seconds"]
        median = statistics.median(alone[condition])
        rows.append({"condition": condition, "alone_s": median, "alone_runs_s": alone[condition],
                     "alone_vs_libgomp_default": median / baseline, "shared_s": shared,
                     "slowdown": shared / median})
        print(f"{condition}: shared {shared:.1f} s ({rows[-1]['slowdown']:.2f}x)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"rounds": args.rounds, "repeats": args.repeats, "cpus": os.cpu_count(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(), "results": rows}
    (out / "contention.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Contention: the same workload alone and beside a competing job", "",
             "A fair share of 2 CPUs between two equal jobs would be a 2x slowdown.", "",
             f"`python bench/contention.py` — {args.rounds} rounds of SmolLM2-135M forward+backward (2 x 320 "
             f"tokens) and greedy generation (4 prompts, 24 tokens); the competitor is the same workload in a "
             f"loop in another process with default threading. {os.cpu_count()} CPUs. Alone: median of "
             f"{args.repeats} runs, interleaved; beside the competitor: one run.", "",
             "| our setting | alone s (median) | alone vs libgomp default | beside the competitor s | slowdown |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['condition']} | {r['alone_s']:.1f} | {r['alone_vs_libgomp_default']:.3f} | {r['shared_s']:.1f} "
              f"| {r['slowdown']:.2f}x |" for r in rows]
    table = "\n".join(lines) + "\n"
    (out / "contention.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
