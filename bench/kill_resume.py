"""SIGKILL a training run at random moments; every re-run must finish with the uninterrupted run's adapter.

    .venv/bin/python bench/kill_resume.py [--trials 20] [--seed 0]

Uses a small random Llama (4 layers, hidden 256, the tests' BPE tokenizer from tests/conftest.py) with full
fine-tuning, so a checkpoint (weights + Adam state) is ~40 MB and takes a noticeable share of each step: with
a checkpoint after every step, random kills often land inside a save, and every other trial aims its kill
into one on purpose (just after Trainer creates the checkpoint directory). For each trial
the script records when the kill landed (what the run directory held right after it), what the re-run
resumed from, and whether its adapter equals the reference (atol 1e-6). Prints a table; writes
bench/results/kill-resume.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
RESULTS = ROOT / "bench" / "results"
STEPS = 12


def _command(model_dir: Path, data_dir: Path, run_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "peftlab.cli", "train", f"model.name={model_dir}", f"data.dir={data_dir}",
        f"output_dir={run_dir}", "train.batch_size=2", f"train.max_steps={STEPS}", f"train.eval_every={1 / STEPS}",
        "train.learning_rate=0.001", "method.name=full",
    ]


def _adapter(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run_dir / "adapter" / "model.safetensors")  # full fine-tuning saves the whole model


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


def _state_after_kill(run_dir: Path) -> dict:
    from peftlab.runs.checkpoints import is_complete

    checkpoints = sorted((run_dir / "checkpoints").glob("checkpoint-*")) if (run_dir / "checkpoints").is_dir() else []
    return {
        "complete_checkpoints": sum(is_complete(c) for c in checkpoints),
        "incomplete_checkpoints": sum(not is_complete(c) for c in checkpoints),
        "adapter": (run_dir / "adapter").is_dir(),
        "adapter_partial": bool(list(run_dir.glob("adapter.partial-*"))),
        "train_done": (run_dir / "stages" / "train.json").is_file(),
    }


def _wait_for_save(process: subprocess.Popen, run_dir: Path, step: int, limit: float = 300) -> bool:
    """Poll until ``checkpoint-<step>`` appears (Trainer has started writing it); False if the run ended."""
    target = run_dir / "checkpoints" / f"checkpoint-{step}"
    deadline = time.monotonic() + limit
    while not target.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def _wait_for_checkpoints(process: subprocess.Popen, run_dir: Path, limit: float = 300) -> float:
    deadline = time.monotonic() + limit
    while not (run_dir / "checkpoints").is_dir():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"training never started in {run_dir}")
        time.sleep(0.01)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from conftest import MINI_PROJECT, _train_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    from peftlab.tasks.codegen.build import build_codegen_dataset

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model_dir = scratch / "model"
        tokenizer = _train_tokenizer()
        torch.manual_seed(0)
        LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
            num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512, tie_word_embeddings=False,
            eos_token_id=0, pad_token_id=0, bos_token_id=0,
        )).save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        data_dir = scratch / "data"
        build_codegen_dataset(data_dir, MINI_PROJECT, seed=0, check_contamination=False)

        reference_dir = scratch / "reference"
        process = subprocess.Popen(_command(model_dir, data_dir, reference_dir), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        began = _wait_for_checkpoints(process, reference_dir)
        assert process.wait() == 0
        training_s = time.monotonic() - began  # from the first checkpoint directory to the end
        reference = _adapter(reference_dir)

        trials = []
        for trial in range(args.trials):
            run_dir = scratch / f"trial-{trial}"
            process = subprocess.Popen(_command(model_dir, data_dir, run_dir), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            if trial % 2:  # a kill aimed into a checkpoint save: just after Trainer created its directory
                mode, step = "in save", rng.randint(1, STEPS)
                delay = rng.uniform(0, 0.05)
                began = time.monotonic()
                _wait_for_save(process, run_dir, step)
                time.sleep(delay)
            else:  # a kill at a random moment, a little past the end (the adapter save and the records)
                mode, step = "random", None
                delay = rng.uniform(0, training_s * 1.1)
                began = _wait_for_checkpoints(process, run_dir)
                time.sleep(max(0.0, began + delay - time.monotonic()))
            process.kill()
            process.wait()
            state = _state_after_kill(run_dir)
            rerun = subprocess.run(_command(model_dir, data_dir, run_dir), capture_output=True, text=True)
            metrics = json.loads((run_dir / "metrics.json").read_text()) if rerun.returncode == 0 else {}
            trials.append({
                "trial": trial, "mode": mode, "save_step": step, "kill_after_s": round(delay, 3), **state, "rerun_exit": rerun.returncode,
                "resumed_from": metrics.get("resumed_from"),
                "identical": rerun.returncode == 0 and _same(reference, _adapter(run_dir)),
                "rerun_error": rerun.stderr.strip().splitlines()[-1] if rerun.returncode else None,
            })
            print(json.dumps(trials[-1]), flush=True)

    identical = sum(t["identical"] for t in trials)
    lines = [
        "# SIGKILL at random moments of a training run, then re-run", "",
        f"`python bench/kill_resume.py --trials {args.trials} --seed {args.seed}`: random 4-layer Llama (hidden 256), "
        f"full fine-tuning, {STEPS} steps, "
        f"a checkpoint after every step; random kills fall uniformly within {training_s * 1.1:.1f} s after the "
        f"checkpoints directory appears (training took {training_s:.1f} s uninterrupted).", "",
        f"**{identical} of {len(trials)} re-runs finished with the uninterrupted run's adapter (atol 1e-6).**", "",
        "Even trials: a kill at a random moment. Odd trials: a kill 0-50 ms after `checkpoint-N` (N random) "
        "appears, i.e. while Trainer is writing it.", "",
        "| trial | mode | kill after s | complete ckpts | incomplete ckpts | adapter | partial adapter | resumed from | identical |",
        "|---:|---|---:|---:|---:|---|---|---|---|",
    ]
    for t in trials:
        mode = t["mode"] + (f" (checkpoint-{t['save_step']})" if t["save_step"] else "")
        lines.append(f"| {t['trial']} | {mode} | {t['kill_after_s']} | {t['complete_checkpoints']} | {t['incomplete_checkpoints']} "
                     f"| {t['adapter']} | {t['adapter_partial']} | {t['resumed_from']} | {t['identical']} |")
    kills_in_save = sum(t["incomplete_checkpoints"] > 0 or t["adapter_partial"] for t in trials)
    lines += ["", f"Kills that left an incomplete checkpoint or a partial adapter behind: {kills_in_save}."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kill-resume.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "kill-resume.json").write_text(json.dumps({"training_s": training_s, "trials": trials}, indent=1) + "\n")
    print("\n".join(lines))
    sys.exit(0 if identical == len(trials) else 1)


if __name__ == "__main__":
    main()
