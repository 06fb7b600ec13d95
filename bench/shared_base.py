"""What loading the base model once saves when several adapters are evaluated (issue 29).

Trains ``--adapters`` LoRA adapters of one base model (a rank sweep, 2 steps each on the default study's mined
functions: enough to differ), then
generates and evaluates each two ways, every one a fresh process as a study runs them:

* one load per run: ``peftlab run -c <run>/config.yaml`` for each run (training done; generate + evaluate);
* one base: ``peftlab run-many <runs>`` (the base loaded once, adapters switched).

The two ways' predictions are compared file by file (they must be identical), and the wall times side by
side (the two are interleaved over ``--repeats``, so drifting load favours neither).

    python bench/shared_base.py --model qwen2.5-coder-0.5b     # bench/results/shared-base-<model>.{md,json}
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _peftlab(*arguments: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "peftlab.cli", *arguments], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _reset(run: Path) -> None:
    """Forget generation and evaluation, keep training."""
    from peftlab.runs.directory import RunDir

    RunDir(run).invalidate("generate")
    RunDir(run).invalidate("evaluate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--adapters", type=int, default=3)
    parser.add_argument("--problems", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, help="A mined codegen dataset to train on (default: mined here).")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shared-base-"))
    data = args.data_dir or work / "data"
    if not args.data_dir:
        _peftlab("data", "mine-codegen", "--out", str(data))
    runs = [work / f"r{rank}" for rank in (4, 8, 16, 32, 64)[: args.adapters]]
    for run, rank in zip(runs, (4, 8, 16, 32, 64)):
        # the default study's training (its mined stdlib functions), a few steps: enough for adapters to differ
        _peftlab("train", "--task", "mbpp", "--method", "lora", "--model", args.model, "-o", str(run),
                 f"method.r={rank}", "data.train_task=codegen", f"data.dir={data}", "data.train_size=16",
                 "data.validation_size=8", "model.max_length=256", "train.max_steps=2", "train.batch_size=4",
                 "train.eval_every=1.0", f"data.test_size={args.problems}", f"generation.max_new_tokens={args.tokens}")
    times = {"one load per run": [], "one base (run-many)": []}
    predictions = {}
    for _ in range(args.repeats):
        for way in times:
            for run in runs:
                _reset(run)
            if way == "one load per run":
                times[way].append(sum(_peftlab("run", "-c", str(run / "config.yaml")) for run in runs))
            else:
                times[way].append(_peftlab("run-many", *map(str, runs)))
            predictions[way] = [(run / "predictions.jsonl").read_text() for run in runs]
    same = sum(a == b for a, b in zip(*predictions.values()))
    medians = {way: statistics.median(values) for way, values in times.items()}
    ratio = medians["one load per run"] / medians["one base (run-many)"]
    record = {"model": args.model, "adapters": args.adapters, "problems": args.problems, "tokens": args.tokens,
              "times_s": times, "median_s": medians, "ratio": ratio, "identical_predictions": same}
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"shared-base-{args.model}"
    (args.out / f"{name}.json").write_text(json.dumps(record, indent=1))
    lines = [f"# One base, {args.adapters} adapters: {args.model}", "",
             f"`python bench/shared_base.py --model {args.model}`: {args.adapters} LoRA adapters (r = "
             f"{', '.join(str(r) for r in (4, 8, 16, 32, 64)[: args.adapters])}), each generating and evaluating "
             f"{args.problems} MBPP problems (greedy, at most {args.tokens} new tokens); every way a fresh process; "
             f"median of {args.repeats} interleaved repeats.", "",
             "| way | wall s (median) | all runs |", "|---|---:|---|"]
    for way, values in times.items():
        lines.append(f"| {way} | {medians[way]:.1f} | {', '.join(f'{v:.1f}' for v in values)} |")
    lines += ["", f"One base is **{ratio:.2f}x** as fast; predictions identical for {same} of {args.adapters} runs."]
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
