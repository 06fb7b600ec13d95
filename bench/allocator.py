"""What glibc's mmap threshold costs a QLoRA forward pass on CPU, and that raising it again after training
gives the speed back (``peftlab.stages.memory``).

A stack of bitsandbytes 4-bit layers the shape of Qwen2.5-Coder-0.5B's MLP projections (896 -> 4864, NF4,
float32 compute) runs forward passes over a batch of 16 one-token rows, as a decoding step does; every
forward de-quantises each weight into a new 17 MB block. Three allocator settings, each in a fresh process
(a threshold, once fixed, stays fixed), rounds interleaved: glibc's default (its own raising of the
threshold), the memory-saving mode's fixed 128 KiB (every block mapped and faulted in anew), and that mode
ended as peftlab ends it when training ends (32 MiB, trim at 64 MiB).

    python bench/allocator.py                 # writes bench/results/allocator.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SETTINGS = ("glibc default", "memory-saving mode (128 KiB)", "mode ended after training")

PROBE = """
import json, resource, sys, time
import torch, bitsandbytes as bnb
from peftlab.stages.memory import freed_blocks_given_back

setting, forwards = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
layers = []
for _ in range(6):
    layer = bnb.nn.Linear4bit(896, 4864, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(torch.randn(4864, 896) * 0.02, requires_grad=False, quant_type="nf4")
    layers.append(layer.to("cpu"))
inputs = torch.randn(16, 1, 896)

def run(count):
    with torch.no_grad():
        for _ in range(count):
            for layer in layers:
                layer(inputs)

mode = freed_blocks_given_back(setting != "glibc default")
mode.__enter__()
run(1)
if setting == "mode ended after training":
    mode.__exit__(None, None, None)
    run(1)
faults, started = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
run(forwards)
print(json.dumps({"s": time.perf_counter() - started,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}))
"""


def measure(setting: str, forwards: int) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run([sys.executable, "-c", PROBE, setting, str(forwards)], capture_output=True, text=True,
                          check=True, env=environment)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forwards", type=int, default=30, help="forward passes through the 6 layers")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = {setting: [] for setting in SETTINGS}
    for _ in range(args.repeats):
        for setting in SETTINGS:
            runs[setting].append(measure(setting, args.forwards))
    base = statistics.median(r["s"] for r in runs["glibc default"])
    rows = [{"setting": s, "median_s": statistics.median(r["s"] for r in runs[s]),
             "faults": statistics.median(r["faults"] for r in runs[s]), "runs": runs[s]} for s in SETTINGS]
    lines = ["# The allocator setting and a 4-bit forward pass", "",
             f"`python bench/allocator.py` — {args.forwards} forward passes through 6 NF4 layers (896 -> 4864) over "
             f"16 one-token rows, each setting in a fresh process, {args.repeats} interleaved repeats, median; "
             f"{os.cpu_count()} CPUs.", "",
             "| setting | s (median) | vs glibc default | page faults (median) |", "|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['setting']} | {row['median_s']:.2f} | {row['median_s'] / base:.2f}x | "
                     f"{row['faults']:,.0f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "allocator.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "allocator.json").write_text(json.dumps({"forwards": args.forwards, "rows": rows}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
