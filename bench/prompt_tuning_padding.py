"""Why prompt tuning's candidates differ between the continuous engine and the batched path: padding.

    python bench/prompt_tuning_padding.py --adapter RUN/adapter [--problems 24]

Greedy candidates of a trained prompt-tuning (or prefix-tuning) adapter on MBPP, three ways: the continuous
engine; the batched path one prompt at a time (``batch_size`` 1: no padding); the batched path in left-padded
batches of 32. PEFT drops ``position_ids`` for prompt tuning, so padding counts as positions between the
virtual tokens and the prompt; the continuous engine's positions skip padding, as unpadded decoding does.
Prints and writes (bench/results/prompt-tuning-padding.{json,md}) how many candidates each pair shares.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
WAYS = {"continuous": ({}, True), "batched, 1 prompt per batch": ({"batch_size": 1}, False),
        "batched, 32 per batch": ({"batch_size": 32}, False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", required=True, help="a trained PEFT prompt- or prefix-tuning adapter directory")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--task", default="mbpp")
    parser.add_argument("--problems", type=int, default=24)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    from generate_speed import _task_and_prompts
    from peft import PeftModel

    from peftlab.config import GenerationConfig
    from peftlab.models.loading import load_model
    from peftlab.stages.generate import generate_candidates

    task, tokenizer, _, prompts = _task_and_prompts(args)
    model = PeftModel.from_pretrained(load_model(args.model), args.adapter)
    outputs, seconds = {}, {}
    for name, (settings, continuous) in WAYS.items():
        config = GenerationConfig(max_new_tokens=160, stop=task.stop, k=1, **settings)
        started = time.perf_counter()
        outputs[name] = generate_candidates(model, tokenizer, prompts[:args.problems], config, progress=False,
                                            postprocess=task.postprocess, continuous=continuous)
        seconds[name] = time.perf_counter() - started
        print(f"{name}: {seconds[name]:.1f} s", flush=True)
    names = list(WAYS)
    shared = {f"{a} = {b}": sum(x == y for x, y in zip(outputs[a], outputs[b]))
              for i, a in enumerate(names) for b in names[i + 1:]}
    report = {"settings": vars(args), "seconds": seconds, "identical": shared, "problems": args.problems}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "prompt-tuning-padding.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Prompt tuning: continuous engine vs batched path, {args.problems} {args.task} problems, greedy", "",
             f"`python bench/prompt_tuning_padding.py {' '.join(sys.argv[1:])}`", "",
             "| pair | identical candidates |", "|---|---:|"]
    lines += [f"| {pair} | {count}/{args.problems} |" for pair, count in shared.items()]
    lines += ["", "Seconds: " + ", ".join(f"{name} {value:.1f}" for name, value in seconds.items()) + "."]
    table = "\n".join(lines) + "\n"
    (out / "prompt-tuning-padding.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
