"""Why peftlab slows down so much on a shared CPU, and which thread setting avoids it.

A fixed workload (forward + backward of SmolLM2-135M over packed rows, then greedy generation of a few
prompts) is timed alone and while a competitor runs: the same workload in a loop in another process,
with default torch threading (what a second user's job, or a second peftlab, does). Each condition is a
fresh process, because OpenMP reads its environment once, when torch is imported.

Conditions: libgomp's default waiting policy (one thread per CPU; waiting threads spin ~300,000 times
before they sleep), peftlab's default (what ``import peftlab`` sets when the user set neither
``OMP_WAIT_POLICY`` nor ``GOMP_SPINCOUNT``: :data:`peftlab.IDLE_WAITING` when nothing else is runnable,
:data:`peftlab.SHARED_WAITING` when something is; the table says which it chose), the idle-CPU spin count
fixed (``GOMP_SPINCOUNT=10000``, peftlab's default before it read the load) and ``OMP_WAIT_POLICY=PASSIVE``
(waiting threads sleep at once). The competitor
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
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}
_OURS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "PEFTLAB_WAITING_CHOSEN")


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
    chosen, seconds = result.stdout.strip().splitlines()[-2:]
    return {"condition": condition, "competitor": competitor, "seconds": float(seconds), "chosen": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="Runs alone per condition (median).")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--spin", type=int, nargs="*", default=[],
                        help="Also measure GOMP_SPINCOUNT=N for each N (to choose peftlab's default).")
    parser.add_argument("--env", nargs="*", default=[], metavar="VAR=VALUE[,VAR=VALUE]",
                        help="Also measure a condition with these environment variables (e.g. PEFTLAB_THREADS=1).")
    parser.add_argument("--only", nargs="*", help="Measure only these conditions (names as in the table).")
    parser.add_argument("--shared-repeats", type=int, default=3, help="Runs beside the competitor (median).")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        seconds = workload(args.rounds)
        from peftlab.runs.directory import cpu_threads  # what a run records, so the table names the same

        threads = cpu_threads()
        applied = [f"{name}={threads[name]}" for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")
                   if threads[name]]
        probed = threads["others_running_at_start"]
        print(" ".join(applied or ["libgomp defaults"]) + ("" if probed is None else f" (saw {probed} running)"))
        print(seconds)
        return
    if args.loop:
        while True:
            workload(1)

    for condition in set(CONDITIONS) - set(args.only or CONDITIONS) - {"libgomp default (spin)"}:
        del CONDITIONS[condition]  # libgomp's default stays: it is the baseline
    for spin in args.spin:
        CONDITIONS[f"GOMP_SPINCOUNT={spin}"] = {"GOMP_SPINCOUNT": str(spin)}
    for setting in args.env:
        CONDITIONS[setting] = dict(pair.split("=", 1) for pair in setting.split(","))
    load_before = os.getloadavg()
    alone: dict[str, list[float]] = {condition: [] for condition in CONDITIONS}
    chosen_alone: dict[str, list[str]] = {condition: [] for condition in CONDITIONS}
    for repeat in range(args.repeats):
        order = list(CONDITIONS) if repeat % 2 == 0 else list(reversed(CONDITIONS))
        for condition in order:
            run = _measure(condition, args.rounds, competitor=False)
            alone[condition].append(run["seconds"])
            chosen_alone[condition].append(run["chosen"])
            print(f"{condition}: alone {run['seconds']:.1f} s, {run['chosen']}", flush=True)
    baseline = statistics.median(alone["libgomp default (spin)"])
    # Beside the competitor too, rounds are interleaved across the conditions (a fresh competitor each run).
    beside: dict[str, list[dict]] = {condition: [] for condition in CONDITIONS}
    for repeat in range(args.shared_repeats):
        for condition in list(CONDITIONS) if repeat % 2 == 0 else list(reversed(CONDITIONS)):
            beside[condition].append(_measure(condition, args.rounds, competitor=True))
            print(f"{condition}: beside {beside[condition][-1]['seconds']:.1f} s, {beside[condition][-1]['chosen']}",
                  flush=True)
    rows = []
    for condition, runs in beside.items():
        shared = statistics.median(run["seconds"] for run in runs)
        median = statistics.median(alone[condition])
        rows.append({"condition": condition, "alone_s": median, "alone_runs_s": alone[condition],
                     "alone_chosen": chosen_alone[condition], "alone_vs_libgomp_default": median / baseline,
                     "shared_s": shared, "shared_runs_s": [run["seconds"] for run in runs],
                     "shared_chosen": sorted({run["chosen"] for run in runs}), "slowdown": shared / median,
                     "shared_vs_libgomp_default_alone": shared / baseline})
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
             f"{args.repeats} runs, interleaved; beside the competitor: median of {args.shared_repeats} runs, "
             f"interleaved. "
             f"Slowdown = beside / alone, each condition against its own alone time.", "",
             "| our setting | alone s (median) | alone vs libgomp default | beside the competitor s | slowdown "
             "| beside vs libgomp default alone | applied alone / beside |",
             "|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r['condition']} | {r['alone_s']:.1f} | {r['alone_vs_libgomp_default']:.3f} | {r['shared_s']:.1f} "
              f"| {r['slowdown']:.2f}x | {r['shared_vs_libgomp_default_alone']:.2f}x "
              f"| {'; '.join(sorted(set(r['alone_chosen'])))} / {'; '.join(r['shared_chosen'])} |" for r in rows]
    table = "\n".join(lines) + "\n"
    (out / "contention.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
