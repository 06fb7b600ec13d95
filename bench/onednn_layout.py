"""oneDNN's float32 products from the weights as PyTorch keeps them (row-major) against copies in oneDNN's blocked
layout (``generation.cpu_matmul=onednn`` against ``onednn-plain``, peftlab/models/onednn.py).

    python bench/onednn_layout.py                  # Qwen2.5-Coder-0.5B's shapes, random weights, 2 GB twice
    python bench/onednn_layout.py --rows 1 4 8 --repeats 3

One pass multiplies ``rows`` input rows through every linear layer of one decoding step of the model's shapes
(24 × q, k, v, o, gate, up, down, then the 151,936-token output projection): 2 GB of float32 weights, far more
than the caches hold, so the weights stream from memory as in generation. Both layouts run alternately,
median of ``--repeats``; the table gives milliseconds per pass, the ratio, and the largest difference
between the two layouts' outputs (0 means the same bits).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
LAYER = [(896, 896), (128, 896), (128, 896), (896, 896), (4864, 896), (4864, 896), (896, 4864)]
"""(out, in) of one Qwen2.5-Coder-0.5B decoder layer's projections: q, k, v, o, gate, up, down."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 48, 256])
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--vocabulary", type=int, default=151936)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    import torch

    from peftlab.models.onednn import blocked_weight, onednn_linear

    torch.manual_seed(0)
    shapes = LAYER * args.layers + [(args.vocabulary, 896)]
    weights = [torch.randn(out, inputs) * 0.02 for out, inputs in shapes]
    started = time.perf_counter()
    blocked = [blocked_weight(weight) for weight in weights]
    copy_seconds = time.perf_counter() - started
    if any(copy is None for copy in blocked):
        sys.exit("this torch build cannot make oneDNN's blocked weights")

    def one_pass(inputs, layouts):
        return [onednn_linear(inputs[weight.shape[1]], weight, None, layout)
                for weight, layout in zip(weights, layouts, strict=True)]

    rows_out = []
    for rows in args.rows:
        inputs = {size: torch.randn(rows, size) for size in (896, 4864)}
        times = {"plain": [], "blocked": []}
        variants = {"plain": [None] * len(weights), "blocked": blocked}
        for repeat in range(args.repeats + 1):  # the first round warms oneDNN's kernels and is not counted
            for name in (("plain", "blocked") if repeat % 2 == 0 else ("blocked", "plain")):
                begun = time.perf_counter()
                one_pass(inputs, variants[name])
                if repeat:
                    times[name].append(time.perf_counter() - begun)
        difference = max(float((a - b).abs().max()) for a, b in
                         zip(one_pass(inputs, variants["plain"]), one_pass(inputs, variants["blocked"]), strict=True))
        plain, fast = statistics.median(times["plain"]), statistics.median(times["blocked"])
        rows_out.append({"rows": rows, "plain_ms": plain * 1e3, "blocked_ms": fast * 1e3, "ratio": plain / fast,
                         "max_abs_difference": difference, "seconds": times})
        print(f"{rows} rows: plain {plain * 1e3:.1f} ms, blocked {fast * 1e3:.1f} ms ({plain / fast:.2f}×), "
              f"max |difference| {difference:.1e}", flush=True)

    gigabytes = sum(weight.numel() for weight in weights) * 4 / 1e9
    report = {"settings": vars(args), "weights_gb": gigabytes, "copy_seconds": copy_seconds,
              "environment": {"cpus": os.cpu_count(), "platform": platform.platform(),
                              "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
              "results": rows_out}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "onednn-layout.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# oneDNN products: row-major weights against blocked copies ({gigabytes:.2f} GB of float32 weights)",
             "", f"`python bench/onednn_layout.py {' '.join(sys.argv[1:])}`: one pass = every projection of one "
             f"decoding step ({args.layers} layers + the {args.vocabulary}-token output projection), median of "
             f"{args.repeats}, alternating; {os.cpu_count()} CPUs, torch {torch.__version__}. Copying every "
             f"weight into the blocked layout took {copy_seconds:.1f} s.", "",
             "| rows | plain ms | blocked ms | plain / blocked | max abs difference |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {row['rows']} | {row['plain_ms']:.1f} | {row['blocked_ms']:.1f} | **{row['ratio']:.2f}×** | "
              f"{row['max_abs_difference']:.1e} |" for row in rows_out]
    (out / "onednn-layout.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
