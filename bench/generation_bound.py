"""How far generation on this CPU is from its arithmetic ceiling: the bound on any exact float32 speed-up.

Decoding a float32 model exactly costs a fixed number of multiply-adds per token (every weight matrix and
the output projection, ~2 x parameters FLOPs), whatever the batching, scheduling or draft tokens (speculative
and prompt-lookup decoding verify draft tokens with the same model, so each token still costs those FLOPs,
plus the rejected drafts'). So candidates/s cannot exceed (the FLOP rate the CPU reaches) / (FLOPs per
candidate). This bench measures the three parts on the bundled Qwen model and MBPP's chat prompts:

* the FLOP rate of the model's own matrix shapes (``torch.mm``, float32) at a decoding batch (16 rows) and at
  a prefill-sized one (1,024 rows): the attainable ceiling;
* the model's forward rate at those sizes (a decode step with a KV cache at batches 16 and 64, a prefill), as
  FLOP/s: how much of the ceiling the model reaches;
* the tokens of a greedy run of peftlab's continuous engine (prompt + generated tokens per candidate) and its
  candidates/s, hence the FLOP rate it sustains and the largest speed-up any exact engine could add.

    python bench/generation_bound.py          # writes bench/results/generation-bound.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from generate_speed import _task_and_prompts  # noqa: E402  (the same prompts as bench/generate_speed.py)

RESULTS = Path(__file__).parent / "results"


def _best_seconds(work, repeats: int = 3) -> float:
    work()  # warm-up: first calls pay allocation and kernel selection
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def matmul_rate(shapes: list[tuple[int, int]], rows: int) -> float:
    """FLOP/s of ``rows x in`` @ ``in x out`` over the model's linear shapes, float32."""
    import torch

    inputs = {k: torch.randn(rows, k) for k, _ in shapes}
    weights = [torch.randn(k, n) for k, n in shapes]
    flops = sum(2 * rows * k * n for k, n in shapes)
    return flops / _best_seconds(lambda: [torch.mm(inputs[w.shape[0]], w) for w in weights])


def linear_shapes(model) -> list[tuple[int, int]]:
    import torch

    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]


def model_rates(model, tokenizer, prompts: list[str], flops_per_token: float) -> dict:
    """FLOP/s of the model's forward: one prefill of 16 prompts, decode steps at batches 16 and 64."""
    import torch

    rates = {}
    with torch.no_grad():
        batch = tokenizer(prompts[:16], return_tensors="pt", padding=True)
        tokens = int(batch["attention_mask"].sum())
        rates["prefill (16 prompts)"] = tokens * flops_per_token / _best_seconds(lambda: model(**batch), 2)
        for rows in (16, 64):
            ids = torch.randint(0, 1000, (rows, 200))
            cache = model(input_ids=ids, use_cache=True).past_key_values
            step = torch.randint(0, 1000, (rows, 1))

            def decode():
                # the same cache each time: crop it back to 200 positions after the step
                model(input_ids=step, past_key_values=cache, use_cache=True)
                cache.crop(-1)

            rates[f"decode step, batch {rows}"] = rows * flops_per_token / _best_seconds(decode, 5)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--task", default="mbpp")
    parser.add_argument("--problems", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    import torch

    from peftlab.config import GenerationConfig
    from peftlab.models.loading import load_model
    from peftlab.stages.generate import generate_candidates

    task, tokenizer, _, prompts = _task_and_prompts(args)
    model = load_model(args.model).eval()
    shapes = linear_shapes(model)
    if model.get_output_embeddings() is not None and not any(n == model.config.vocab_size for _, n in shapes):
        shapes.append((model.config.hidden_size, model.config.vocab_size))
    flops_per_token = 2 * sum(k * n for k, n in shapes)  # attention scores/values add a few % at these lengths

    ceiling = {f"torch.mm, {rows} rows": matmul_rate(shapes, rows) for rows in (16, 64, 1024)}
    forward = model_rates(model, tokenizer, prompts, flops_per_token)

    generation = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, stop=task.stop)
    started = time.perf_counter()
    outputs = generate_candidates(model, tokenizer, prompts[:args.problems], generation, progress=False,
                                  continuous=True)
    seconds = time.perf_counter() - started
    prompt_tokens = sum(len(tokenizer(p)["input_ids"]) for p in prompts[:args.problems])
    new_tokens = sum(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for group in outputs for c in group)
    sustained = (prompt_tokens + new_tokens) * flops_per_token / seconds
    best = max(ceiling.values())
    result = {
        "model": args.model, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "gflop_per_token": flops_per_token / 1e9, "ceiling_gflops": {k: v / 1e9 for k, v in ceiling.items()},
        "forward_gflops": {k: v / 1e9 for k, v in forward.items()},
        "generation": {"problems": args.problems, "seconds": seconds, "candidates_per_s": args.problems / seconds,
                       "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
                       "sustained_gflops": sustained / 1e9},
        "largest_exact_speedup": best / sustained,
    }
    lines = [
        f"# Generation against the CPU's arithmetic ceiling: {args.model}, {args.task}", "",
        f"`python bench/generation_bound.py {' '.join(sys.argv[1:])}` on {os.cpu_count()} CPUs "
        f"({torch.get_num_threads()} torch threads). {flops_per_token / 1e9:.2f} GFLOP per token "
        "(2 x the multiply-adds of every linear layer, output projection included).", "",
        "| what | GFLOP/s |", "|---|---:|",
        *(f"| {k} (ceiling) | {v / 1e9:.1f} |" for k, v in ceiling.items()),
        *(f"| model forward: {k} | {v / 1e9:.1f} |" for k, v in forward.items()),
        f"| peftlab's continuous engine, greedy, {args.problems} MBPP prompts (sustained) | {sustained / 1e9:.1f} |",
        "",
        f"The greedy run: {args.problems / seconds:.3f} candidates/s, {prompt_tokens:,} prompt and "
        f"{new_tokens:,} generated tokens ({(prompt_tokens + new_tokens) / args.problems:.0f} per candidate) "
        f"in {seconds:.1f} s. **The largest speed-up any exact float32 engine could give here: "
        f"{best / sustained:.2f}x** (the best ceiling over the sustained rate).",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generation-bound.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "generation-bound.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
