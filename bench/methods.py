"""Cost of every training method on the bundled model: trainable parameters, peak memory, speed, adapter size.

Each method trains in its own subprocess (so the peak RSS, ``ru_maxrss``, belongs to that method alone)
through ``peftlab.stages.train.train`` on the same small subset of the mined stdlib dataset, with the same
steps, batch size and sequence limit. Step times come from a Trainer callback (``on_step_begin`` to
``on_step_end``: forward, backward and optimiser step, without evaluation or checkpointing).

    python bench/methods.py                       # all methods, writes bench/results/methods.{json,md}
    python bench/methods.py --methods lora qlora-4bit --steps 2
    python bench/methods.py --model qwen2.5-coder-0.5b --out bench/results/methods-qwen-variants \
        --methods lora dora rslora pissa olora loraplus vera adalora loha lokr oft --steps 3 --repeats 1

The dataset is mined into ``--data`` first if it is missing (``peftlab data mine-codegen``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

METHODS = ["full", "lora", "ia3", "prompt-tuning", "prefix-tuning", "qlora-8bit", "qlora-4bit", "qlora-4bit+fast",
           "dora", "rslora", "pissa", "olora", "loraplus", "vera", "adalora", "loha", "lokr", "oft"]
VARIANTS = {"+gc": "train.gradient_checkpointing=true", "+fast": "train.gradient_checkpointing=false"}
"""Suffixes of a method run with memory-saving training switched on (``+gc``) or off (``+fast``) against its
default (on for QLoRA, off otherwise)."""
RESULTS = Path(__file__).parent / "results"
COLUMNS = [
    ("method", "method", "{}"),
    ("trainable_params", "trainable params", "{:,}"),
    ("weights_mb", "weights MB", "{:,.0f}"),
    ("peak_rss_mb", "peak RSS MB", "{:,.0f}"),
    ("s_per_step", "s/step (median)", "{:.2f}"),
    ("tokens_per_s", "tokens/s", "{:,.0f}"),
    ("adapter_mb", "adapter MB", "{:.2f}"),
    ("packed", "packed", "{}"),
]


def child(args) -> None:
    """Train one method in this process and print its measurements as one JSON line."""
    from transformers import TrainerCallback

    import peftlab.stages.train
    from peftlab.config import load_config
    from peftlab.runs.directory import RunDir

    steps: list[dict] = []
    losses: list[float] = []
    footprint: list[float] = []
    method = args.child
    extra = []
    for suffix, override in VARIANTS.items():
        if method.endswith(suffix):
            method = method[: -len(suffix)]
            extra.append(override)

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            footprint.append(base.get_memory_footprint() / 2**20)

        def on_step_begin(self, args, state, control, **kwargs):
            self.started, self.tokens = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            steps.append({"s": time.perf_counter() - self.started, "tokens": state.num_input_tokens_seen - self.tokens})

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    run_dir = Path(args.runs) / args.child
    config = load_config(None, [
        f"model.name={args.model}", f"model.max_length={args.max_length}", f"data.dir={args.data}",
        f"data.train_size={args.train_size}", f"data.validation_size={args.validation_size}",
        f"method.name={method}", f"train.max_steps={args.steps}", f"train.batch_size={args.batch_size}",
        "train.eval_every=1.0", f"output_dir={run_dir}", *extra,
    ])
    RunDir(run_dir).create()
    metrics = peftlab.stages.train.train(config, run_dir, callbacks=(StepTimer(),))
    step_seconds = [step["s"] for step in steps]
    print("RESULT " + json.dumps({
        "method": args.child,
        "trainable_params": metrics["trainable_params"],
        "total_params": metrics["total_params"],
        "trainable_percent": metrics["trainable_percent"],
        "weights_mb": footprint[0],
        "peak_rss_mb": metrics["peak_memory_mb"],
        "s_per_step": statistics.median(step_seconds),
        "step_seconds": step_seconds,
        "tokens_per_s": sum(step["tokens"] for step in steps) / sum(step_seconds),
        "tokens_per_step": [step["tokens"] for step in steps],
        "adapter_mb": metrics["adapter_mb"],
        "packed": metrics["packed"],
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "train_time_s": metrics["train_time_s"],
    }))


def run_child(method: str, args) -> dict:
    """One fresh training run of ``method`` in its own process (its run directory is wiped first, since
    ``peftlab train`` would otherwise resume from the previous repeat's checkpoint)."""
    shutil.rmtree(Path(args.runs) / method, ignore_errors=True)
    command = [sys.executable, __file__, "--child", method, *sys.argv[1:]]
    result = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        print(result.stderr[-3000:], file=sys.stderr)
        return {"error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1][len("RESULT "):])


def summarize(method: str, repeats: list[dict]) -> dict:
    """Medians over repeats: peak RSS varies by a few hundred MB between identical runs (allocator)."""
    good = [run for run in repeats if "error" not in run]
    if not good:
        return {"method": method, "error": repeats[-1]["error"]}
    steps = [seconds for run in good for seconds in run["step_seconds"]]
    tokens = sum(sum(run["tokens_per_step"]) for run in good)
    peaks = [run["peak_rss_mb"] for run in good]
    first = good[0]
    return {
        "method": method,
        **{key: first.get(key) for key in ("trainable_params", "total_params", "weights_mb", "adapter_mb", "packed")},
        "peak_rss_mb": statistics.median(peaks),
        "peak_rss_mb_range": [min(peaks), max(peaks)],
        "s_per_step": statistics.median(steps),
        "tokens_per_s": tokens / sum(steps),
        "repeats": repeats,
    }


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [fmt.format(row[key]) if row.get(key) is not None else "failed" for key, _, fmt in COLUMNS]
        if row.get("peak_rss_mb_range"):
            low, high = row["peak_rss_mb_range"]
            cells[[key for key, _, _ in COLUMNS].index("peak_rss_mb")] += f" ({low:,.0f}–{high:,.0f})"
        lines.append("| " + " | ".join(cells) + " |")
    by_name = {row["method"]: row for row in rows if row.get("peak_rss_mb")}
    ratio = ""
    if "qlora-4bit" in by_name and "lora" in by_name:
        value = by_name["qlora-4bit"]["peak_rss_mb"] / by_name["lora"]["peak_rss_mb"]
        ratio = f"\nPeak-RSS ratio QLoRA-4bit / LoRA (medians): **{value:.2f}**\n"
    return "\n".join(lines) + "\n" + ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default="/tmp/bench-data")
    parser.add_argument("--runs", default="/tmp/bench-runs", help="Run directories (checkpoints, adapters).")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--train-size", type=int, default=32)
    parser.add_argument("--validation-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="Runs per method, interleaved round-robin.")
    parser.add_argument("--out", default=str(RESULTS), help="Directory for methods.json and methods.md.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    if not (Path(args.data) / "train.jsonl").is_file():
        peftlab = Path(sys.executable).parent / "peftlab"
        subprocess.run([str(peftlab), "data", "mine-codegen", "--out", args.data], check=True)
    settings = {key: getattr(args, key) for key in ("model", "steps", "batch_size", "max_length", "train_size",
                                                   "validation_size", "repeats")}
    environment = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                   "load_average_before": os.getloadavg()}
    started = time.perf_counter()
    repeats: dict[str, list[dict]] = {method: [] for method in args.methods}
    for repeat in range(args.repeats):  # round-robin, so drifting machine load hits every method alike
        for method in args.methods:
            run = run_child(method, args)
            repeats[method].append(run)
            summary = "failed: " + run["error"] if "error" in run else (
                f"{statistics.median(run['step_seconds']):.2f} s/step, {run['tokens_per_s']:.0f} tokens/s, "
                f"peak RSS {run['peak_rss_mb']:.0f} MB")
            print(f"[{repeat + 1}/{args.repeats}] {method}: {summary}", flush=True)
    rows = [summarize(method, runs) for method, runs in repeats.items()]
    environment["load_average_after"] = os.getloadavg()
    environment["bench_wall_s"] = time.perf_counter() - started

    from peftlab.runs.directory import package_versions

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"settings": settings, "environment": environment, "packages": package_versions(), "results": rows}
    (out / "methods.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(rows)
    before, after = (" ".join(f"{value:.2f}" for value in environment[key])
                     for key in ("load_average_before", "load_average_after"))
    (out / "methods.md").write_text(
        "# Training cost per method\n\n"
        f"`python bench/methods.py {' '.join(sys.argv[1:])}` ({environment['bench_wall_s'] / 60:.0f} min) "
        f"on `{args.model}`: {args.train_size} mined stdlib examples, {args.steps} steps, "
        f"batch {args.batch_size}, max length {args.max_length}, float32, {os.cpu_count()} CPU cores, "
        f"{args.repeats} repeats per method (interleaved). Each run is its own process: peak RSS is that "
        "process's `ru_maxrss` (model loading included), median over repeats with (min–max); it varies by "
        "up to ~600 MB between identical runs (allocator behaviour), so differences smaller than that mean "
        "little. Weights MB = the base model's in-memory footprint, quantised where the method quantises. "
        "s/step is the median optimiser step (forward + backward + update; evaluation and checkpointing "
        "excluded) over all repeats; tokens/s counts non-padding tokens. QLoRA trains in the memory-saving mode by default "
        "(`train.gradient_checkpointing`: recomputed activations, freed blocks given back at once); a `+fast` "
        "row is a method with it off, a `+gc` row one with it on. packed: trained on padding-free packed rows "
        "(else each example of a padded batch alone, or whole padded batches).\n\n"
        + table
        + f"\nLoad average (1/5/15 min) before: {before} / after: {after} "
        "— the machine is shared with other work, so speeds are indicative only.\n"
    )
    print(table)


if __name__ == "__main__":
    main()
