"""Why peftlab slows down so much on a shared CPU, and which thread setting avoids it.

A fixed workload (forward + backward of SmolLM2-135M over packed rows, then greedy generation of a few
prompts) is timed alone and while a competitor runs: the same workload in a loop in another process,
with default torch threading (what a second user's job, or a second peftlab, does). Each condition is a
fresh process, because OpenMP reads its environment once, when torch is imported.

Conditions: libgomp's default waiting policy (one thread per CPU; waiting threads spin before they sleep),
``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep at once), and that with ``PEFTLAB_THREADS=1``. The competitor always runs with libgomp's default.

    python bench/contention.py                 # writes bench/results/contention.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CONDITIONS = {
    # An empty OMP_WAIT_POLICY is ignored by libgomp: its default (spin a while, then sleep), peftlab's too.
    "libgomp default (spin)": {"OMP_WAIT_POLICY": ""},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "PASSIVE + PEFTLAB_THREADS=1": {"OMP_WAIT_POLICY": "PASSIVE", "PEFTLAB_THREADS": "1"},
}


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
    env = {**os.environ, **CONDITIONS[condition]}
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
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(workload(args.rounds))
        return
    if args.loop:
        while True:
            workload(1)

    load_before = os.getloadavg()
    rows = []
    for condition in CONDITIONS:
        alone = _measure(condition, args.rounds, competitor=False)
        shared = _measure(condition, args.rounds, competitor=True)
        rows.append({"condition": condition, "alone_s": alone["seconds"], "shared_s": shared["seconds"],
                     "slowdown": shared["seconds"] / alone["seconds"]})
        print(f"{condition}: alone {alone['seconds']:.1f} s, shared {shared['seconds']:.1f} s "
              f"({rows[-1]['slowdown']:.2f}x)", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"rounds": args.rounds, "cpus": os.cpu_count(), "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "results": rows}
    (out / "contention.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Contention: the same workload alone and beside a competing job", "",
             "A fair share of 2 CPUs between two equal jobs would be a 2x slowdown.", "",
             f"`python bench/contention.py` — {args.rounds} rounds of SmolLM2-135M forward+backward (2 x 320 "
             f"tokens) and greedy generation (4 prompts, 24 tokens); the competitor is the same workload in a "
             f"loop in another process with default threading. {os.cpu_count()} CPUs.", "",
             "| our setting | alone s | beside the competitor s | slowdown |", "|---|---:|---:|---:|"]
    lines += [f"| {r['condition']} | {r['alone_s']:.1f} | {r['shared_s']:.1f} | {r['slowdown']:.2f}x |" for r in rows]
    table = "\n".join(lines) + "\n"
    (out / "contention.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
