"""Training speed and memory: ``peftlab train`` against a plain HF ``Trainer`` + PEFT LoRA job.

The baseline is the way the studies' own code trains: ``transformers.Trainer`` over right-padded batches
(``DataCollatorForSeq2Seq``), the model's own loss over the full logits. ``peftlab`` is
``peftlab.stages.train.train`` with the same model, the same tokenized examples (same prompt format, same
``max_length`` filter), LoRA settings, batch size, steps, learning rate and seed, so every optimiser step
sees the same examples. Each run is its own process (its ``ru_maxrss`` is its own peak); runs of the two
variants alternate, their order flipping every repeat, so drifting machine load hits both alike.

Each run trains one epoch over the same examples. Measured per run: loss-bearing tokens per second (all
loss-bearing tokens of the epoch over the summed step times, ``on_step_begin`` to ``on_step_end``: forward,
backward, optimiser; evaluation and checkpointing excluded), peak RSS, and the training losses.

    python bench/train_speed.py          # both models, writes bench/results/train-speed-<model>.{md,json}
    python bench/train_speed.py --models smollm2-135m --train-size 16 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("hf-trainer", "peftlab")


def _config(args, run_dir: Path):
    from peftlab.config import load_config

    return load_config(None, [
        f"model.name={args.model}", f"model.max_length={args.max_length}", f"data.dir={args.data}",
        f"data.train_size={args.train_size}", "data.validation_size=1", "method.name=lora",
        "train.epochs=1", f"train.batch_size={args.batch_size}", "train.eval_every=1.0",
        f"output_dir={run_dir}",
    ])


def _step_timer(steps: list, losses: list):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            steps.append(time.perf_counter() - self.started)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    return StepTimer()


def _loss_tokens(examples: list[dict]) -> int:
    """Tokens that carry loss (a label that a position predicts) over the whole training set."""
    return sum(sum(label != -100 for label in example["labels"][1:]) for example in examples)


def baseline(config, run_dir: Path, steps: list, losses: list) -> dict:
    """The plain job: HF Trainer + PEFT LoRA + DataCollatorForSeq2Seq padding, nothing else."""
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from peftlab.methods import get_training_method
    from peftlab.models.loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(config.model.name, padding_side="right")
    examples = _tokenized(config)  # what peftlab train tokenizes, so both variants see the same examples
    torch.manual_seed(config.train.seed)
    method = get_training_method(config.method)  # the same LoraConfig (targets, r, alpha, dropout)
    model = method.apply(load_model(config.model.name))
    args = TrainingArguments(
        output_dir=str(run_dir), num_train_epochs=config.train.epochs,
        per_device_train_batch_size=config.train.batch_size, learning_rate=method.default_learning_rate,
        logging_steps=1, save_strategy="no", report_to=[], seed=config.train.seed,
        data_seed=config.train.seed, remove_unused_columns=False,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator,
                      callbacks=[_step_timer(steps, losses)])
    result = trainer.train()
    return {"train_loss": result.training_loss, "examples": examples}


def child(args) -> None:
    """One run of one variant in this process; prints its measurements as one JSON line."""
    import peftlab.stages.train
    from peftlab.runs.directory import RunDir

    run_dir = Path(args.runs) / args.child
    config = _config(args, run_dir)
    steps: list[float] = []
    losses: list[float] = []
    if args.child == "hf-trainer":
        outcome = baseline(config, run_dir, steps, losses)
        train_loss, examples = outcome["train_loss"], outcome["examples"]
    else:
        RunDir(run_dir).create()
        metrics = peftlab.stages.train.train(config, run_dir, callbacks=(_step_timer(steps, losses),))
        train_loss = metrics["train_loss"]
        examples = _tokenized(config)
    loss_tokens = _loss_tokens(examples)  # one epoch: every example once, in any order
    print("RESULT " + json.dumps({
        "variant": args.child,
        "step_seconds": steps,
        "loss_tokens": loss_tokens,
        "loss_tokens_per_s": loss_tokens / sum(steps),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "losses": losses,
        "train_loss": train_loss,
    }))


def _tokenized(config) -> list[dict]:
    from peftlab.models.loading import load_tokenizer
    from peftlab.prompting.format import resolve_prompt_format
    from peftlab.tasks import get_task
    from peftlab.stages.train import tokenize_split

    task = get_task(config.task, config)
    tokenizer = load_tokenizer(config.model.name, padding_side="right")
    return tokenize_split(resolve_prompt_format(config.model.prompt_format, tokenizer, task),
                          task.load("train"), config.model.max_length)


def run_child(variant: str, args) -> dict:
    shutil.rmtree(Path(args.runs) / variant, ignore_errors=True)  # never resume a previous repeat
    command = [sys.executable, __file__, "--child", variant, "--model", args.model, *args.passthrough]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        print(result.stderr[-3000:], file=sys.stderr)
        return {"variant": variant, "error": (result.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1][len("RESULT "):])


def summarize(model: str, runs: list[dict]) -> dict:
    by_variant = {v: [r for r in runs if r["variant"] == v and "error" not in r] for v in VARIANTS}
    row = {"model": model}
    for variant, good in by_variant.items():
        if not good:
            row[variant] = {"error": next((r["error"] for r in runs if r["variant"] == variant), "no run")}
            continue
        row[variant] = {
            "loss_tokens_per_s": statistics.median(r["loss_tokens_per_s"] for r in good),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in good),
            "train_loss": statistics.mean(r["train_loss"] for r in good),
            "s_per_step": statistics.median(s for r in good for s in r["step_seconds"]),
        }
    base, ours = row["hf-trainer"], row["peftlab"]
    if "error" not in base and "error" not in ours:
        row["speed_ratio"] = ours["loss_tokens_per_s"] / base["loss_tokens_per_s"]
        row["rss_ratio"] = ours["peak_rss_mb"] / base["peak_rss_mb"]
    row["runs"] = runs
    return row


def markdown(rows: list[dict], settings: dict, environment: dict) -> str:
    lines = [
        "# Training speed: peftlab train vs a plain HF Trainer + PEFT LoRA job",
        "",
        f"`python bench/train_speed.py` — LoRA (r 16), one epoch in batches of {settings['batch_size']} over the "
        f"first {settings['train_size']} mined stdlib records (those within max length {settings['max_length']}), "
        f"float32, {settings['repeats']} repeat(s) per variant, alternating. "
        f"Load average before/after: {environment['load_average_before'][0]:.2f} / "
        f"{environment['load_average_after'][0]:.2f}; {environment['cpus']} CPUs.",
        "",
        "| model | variant | loss tokens/s | s/step | peak RSS MB | train loss |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        for variant in VARIANTS:
            cell = row[variant]
            if "error" in cell:
                lines.append(f"| {row['model']} | {variant} | failed: {cell['error']} | | | |")
                continue
            lines.append(f"| {row['model']} | {variant} | {cell['loss_tokens_per_s']:.1f} | {cell['s_per_step']:.2f} "
                         f"| {cell['peak_rss_mb']:,.0f} | {cell['train_loss']:.4f} |")
    lines += ["", "| model | loss tokens/s, peftlab / HF | peak RSS, peftlab / HF |", "|---|---:|---:|"]
    for row in rows:
        if "speed_ratio" in row:
            lines.append(f"| {row['model']} | **{row['speed_ratio']:.2f}x** | **{row['rss_ratio']:.2f}x** |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-coder-0.5b"])
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", default="/tmp/bench-data")
    parser.add_argument("--runs", default="/tmp/bench-train-speed")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=320)
    parser.add_argument("--train-size", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.passthrough = ["--data", args.data, "--runs", args.runs, "--batch-size",
                        str(args.batch_size), "--max-length", str(args.max_length), "--train-size",
                        str(args.train_size)]
    if args.child:
        child(args)
        return
    if not (Path(args.data) / "train.jsonl").is_file():
        subprocess.run([str(Path(sys.executable).parent / "peftlab"), "data", "mine-codegen", "--out", args.data],
                       check=True)
    settings = {key: getattr(args, key) for key in ("models", "batch_size", "max_length", "train_size",
                                                   "repeats")}
    environment = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                   "load_average_before": os.getloadavg()}
    started = time.perf_counter()
    rows = []
    for model in args.models:
        args.model = model
        runs = []
        for repeat in range(args.repeats):
            order = VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                run = run_child(variant, args)
                runs.append(run)
                summary = run.get("error") or (f"{run['loss_tokens_per_s']:.1f} loss tokens/s, "
                                               f"peak RSS {run['peak_rss_mb']:,.0f} MB, loss {run['train_loss']:.4f}")
                print(f"[{model} {repeat + 1}/{args.repeats}] {variant}: {summary}", flush=True)
        rows.append(summarize(model, runs))
    environment["load_average_after"] = os.getloadavg()
    environment["bench_wall_s"] = time.perf_counter() - started

    from peftlab.runs.directory import package_versions

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:  # one file per model, so a model can be re-measured alone
        report = {"settings": {**settings, "models": [row["model"]]}, "environment": environment,
                  "packages": package_versions(), "results": [row]}
        (out / f"train-speed-{row['model']}.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / f"train-speed-{row['model']}.md").write_text(markdown([row], settings, environment))
    print(markdown(rows, settings, environment))


if __name__ == "__main__":
    main()
