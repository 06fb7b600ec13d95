"""Generation speed: candidates per second of the batched path (peftlab before continuous batching) against
continuous batching, exact (float32) and with the int8 engine — same model, same prompts, one process.

    python bench/generate_speed.py                                   # Qwen2.5-Coder-0.5B on MBPP, chat prompts
    python bench/generate_speed.py --problems 48 --sample-problems 8 --settings greedy sample-k10
    python bench/generate_speed.py --adapter RUN/adapter --settings greedy     # a trained PEFT adapter on top

* ``batched``: whole batches of ``--batch-size`` prompts (longest first, shared prefill), each running until
  its longest answer ends, greedy rows dropped every 32 tokens (``generate_candidates(continuous=False)``),
  torch's own matrix products (``generation.cpu_matmul=torch``): generation as it was before issue 27.
* ``continuous``: finished sequences leave, waiting prompts take their places (the default since issue 27),
  ``generation.slots`` sequences at a time, the prompts' shared prefix read once, prompt-lookup guesses where
  they pay (stages/continuous.py), float32 through oneDNN from blocked copies of the weights (models/onednn.py)
  — the exact engine.
* ``continuous-int8``: the same with ``generation.engine=int8``.

Greedy: the share of candidates identical to the batched path's, and for the int8 engine pass@1 (MBPP's
tests, sandboxed) against the exact engine's with the paired difference's 95% bootstrap CI. Sampling (k=10,
temperature 0.8, top-p 0.95): draws differ between paths by design (continuous batching seeds each
candidate); only speed is compared. Variants run alternately (order flipped each repeat); medians reported.
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
SETTINGS = {
    "greedy": {"k": 1, "num_beams": 1},
    "sample-k10": {"k": 10, "do_sample": True, "temperature": 0.8, "top_p": 0.95},
}
VARIANTS = ("batched", "continuous", "continuous-int8")
BASELINE = {"cpu_matmul": "torch"}
"""The batched path's settings: today's path before issue 27 multiplied with torch's own ``linear``."""
OPTIONAL = {"continuous-no-lookup": {"lookup_tokens": 0}, "continuous-torch-matmul": {"cpu_matmul": "torch"},
            "continuous-onednn-plain": {"cpu_matmul": "onednn-plain"}}
"""``--with-no-lookup`` / ``--with-torch-matmul`` / ``--with-onednn-plain``: the exact engine without prompt
lookup, multiplying with torch's ``linear`` instead of oneDNN's, or with oneDNN from the row-major weights
(no blocked copies), to see what each gives."""


def _task_and_prompts(args):
    from peftlab.config import load_config
    from peftlab.models.loading import load_tokenizer
    from peftlab.prompting.format import resolve_prompt_format
    from peftlab.tasks import get_task

    config = load_config(None, [f"model.name={args.model}", f"task={args.task}", "execution.workers=2"])
    task = get_task(config.task, config)
    tokenizer = load_tokenizer(config.model.name, padding_side="left")
    prompt_format = resolve_prompt_format(config.model.prompt_format, tokenizer, task)
    problems = task.load("test")
    return task, tokenizer, problems, [prompt_format.render(problem) for problem in problems]


def _pass_at_1(task, problems, candidates) -> dict[str, float]:
    rows = [{"id": problem["id"], "candidates": group} for problem, group in zip(problems, candidates)]
    scored = task.evaluate(rows, partial=True).scored
    metric = "pass@1" if "pass@1" in scored[0]["scores"] else "plausible@1"  # repair scores plausible patches
    return {row["id"]: float(row["scores"][metric]) for row in scored}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--task", default="mbpp")
    parser.add_argument("--problems", type=int, default=48, help="prompts for greedy decoding")
    parser.add_argument("--sample-problems", type=int, default=8, help="prompts for k=10 sampling")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16, help="greedy: prompts per batch (batched path)")
    parser.add_argument("--sample-batch-size", type=int, default=2, help="sampling: prompts per batch (x k)")
    parser.add_argument("--slots", type=int, default=64, help="sequences decoded together (continuous)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--with-no-lookup", action="store_true",
                        help="also time the exact engine without prompt lookup")
    parser.add_argument("--with-torch-matmul", action="store_true",
                        help="also time the exact engine with torch's own matrix products instead of oneDNN's")
    parser.add_argument("--with-onednn-plain", action="store_true",
                        help="also time the exact engine with oneDNN from the weights as they are (no blocked copies)")
    parser.add_argument("--adapter", help="a trained PEFT adapter directory applied to the model (unmerged)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    import numpy as np

    from peftlab.config import GenerationConfig
    from peftlab.models.int8 import int8_for_generation
    from peftlab.models.loading import load_model
    from peftlab.report.inference import bootstrap_ci
    from peftlab.runs.directory import package_versions
    from peftlab.stages.generate import generate_candidates

    def model():
        if args.adapter is None:
            return load_model(args.model)
        from peft import PeftModel

        return PeftModel.from_pretrained(load_model(args.model), args.adapter)

    task, tokenizer, problems, prompts = _task_and_prompts(args)
    exact = model()
    models = {name: exact for name in ("batched", "continuous", *OPTIONAL)} | {
        "continuous-int8": int8_for_generation(model())}
    environment = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                   "torch_threads": __import__("torch").get_num_threads(), "load_average_before": os.getloadavg()}
    rows = []
    for setting in args.settings:
        count = args.problems if setting == "greedy" else args.sample_problems
        batch = args.batch_size if setting == "greedy" else args.sample_batch_size
        generation = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=batch, slots=args.slots,
                                      stop=task.stop, **SETTINGS[setting])
        chosen = {"continuous-no-lookup": args.with_no_lookup, "continuous-torch-matmul": args.with_torch_matmul,
                  "continuous-onednn-plain": args.with_onednn_plain}
        variants = VARIANTS + tuple(name for name in OPTIONAL if chosen[name])
        times: dict[str, list[float]] = {name: [] for name in variants}
        outputs: dict[str, list] = {}
        for repeat in range(args.repeats):
            for name in (variants if repeat % 2 == 0 else variants[::-1]):
                started = time.perf_counter()
                settings = generation.model_copy(update=OPTIONAL.get(name, BASELINE if name == "batched" else {}))
                outputs[name] = generate_candidates(models[name], tokenizer, prompts[:count], settings, progress=False,
                                                    postprocess=task.postprocess, continuous=name != "batched")
                times[name].append(time.perf_counter() - started)
                print(f"[{setting} {repeat + 1}/{args.repeats}] {name}: {times[name][-1]:.1f} s", flush=True)
        candidates = count * generation.k
        row = {"setting": setting, "prompts": count, "candidates": candidates, "batch_size": batch}
        for name in variants:
            row[name] = {"seconds": times[name], "candidates_per_s": candidates / statistics.median(times[name])}
            row[name]["speedup"] = row[name]["candidates_per_s"] / row["batched"]["candidates_per_s"] \
                if name != "batched" else 1.0

            def same(first, second):
                return sum(a == b for x, y in zip(outputs[first], outputs[second]) for a, b in zip(x, y))

            row[name]["identical_to_batched"] = same(name, "batched")
        row["int8_identical_to_exact"] = sum(a == b for x, y in zip(outputs["continuous-int8"], outputs["continuous"])
                                             for a, b in zip(x, y))
        if setting == "greedy":
            exact_pass = _pass_at_1(task, problems[:count], outputs["continuous"])
            int8_pass = _pass_at_1(task, problems[:count], outputs["continuous-int8"])
            shared = sorted(set(exact_pass) & set(int8_pass))
            difference = bootstrap_ci(np.array([int8_pass[i] - exact_pass[i] for i in shared]))
            row["pass_at_1"] = {"exact": float(np.mean([exact_pass[i] for i in shared])),
                                "int8": float(np.mean([int8_pass[i] for i in shared])),
                                "int8_minus_exact": [difference.value, difference.low, difference.high],
                                "n": len(shared)}
        rows.append(row)
    environment["load_average_after"] = os.getloadavg()
    settings = {key: getattr(args, key) for key in ("model", "task", "problems", "sample_problems", "max_new_tokens",
                                                   "batch_size", "sample_batch_size", "slots", "repeats",
                                                   "with_no_lookup", "with_torch_matmul", "with_onednn_plain",
                                                   "adapter")}
    if args.adapter:
        settings["adapter_type"] = json.loads((Path(args.adapter) / "adapter_config.json").read_text())["peft_type"]
    report = {"settings": settings, "environment": environment, "packages": package_versions(), "results": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"generate-speed-{args.model}-{args.task}"
    if args.adapter:
        stem += "-" + settings["adapter_type"].lower().replace("_", "-")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Generation speed: {args.model}, {args.task} (chat prompts)"
        + (f", with the {settings['adapter_type']} adapter `{args.adapter}`" if args.adapter else ""),
        "",
        f"`python bench/generate_speed.py {' '.join(sys.argv[1:])}`: max {args.max_new_tokens} new tokens, the "
        f"task's stop strings, {args.repeats} repeat(s) alternating, median wall time; "
        f"{environment['cpus']} CPUs, load average before/after {environment['load_average_before'][0]:.2f} / "
        f"{environment['load_average_after'][0]:.2f}.",
        "",
        f"Batched: whole batches of `batch` prompts (x k), torch's matrix products (generation before issue 27); "
        f"continuous: {args.slots} slots, oneDNN's float32 products from blocked weights (the exact engine's "
        "default).",
        "",
        "| setting | prompts × k | batch | batched cand/s | continuous cand/s (×) | continuous-int8 cand/s (×) | "
        "continuous = batched | int8 = exact |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['setting']} | {row['prompts']} × {row['candidates'] // row['prompts']} | {row['batch_size']} | "
            f"{row['batched']['candidates_per_s']:.3f} | {row['continuous']['candidates_per_s']:.3f} "
            f"(**{row['continuous']['speedup']:.2f}×**) | {row['continuous-int8']['candidates_per_s']:.3f} "
            f"(**{row['continuous-int8']['speedup']:.2f}×**) | {row['continuous']['identical_to_batched']}/"
            f"{row['candidates']} | {row['int8_identical_to_exact']}/{row['candidates']} |")
    without = {"continuous-no-lookup": "without prompt lookup", "continuous-torch-matmul": "with torch's matmul",
               "continuous-onednn-plain": "with oneDNN's plain weights"}
    for row in rows:
        for name, what in without.items():
            if name not in row:
                continue
            plain = row[name]
            gain = row["continuous"]["candidates_per_s"] / plain["candidates_per_s"]
            lines += ["", f"{row['setting']}, the exact engine {what}: {plain['candidates_per_s']:.3f} cand/s "
                      f"({plain['speedup']:.2f}×); the default {gain:.2f}× that; candidates identical to batched "
                      f"{plain['identical_to_batched']}/{row['candidates']}."]
    for row in rows:
        if "pass_at_1" in row:
            p = row["pass_at_1"]
            low, high = p["int8_minus_exact"][1:]
            lines += ["", f"Greedy pass@1 (repair: plausible@1) on the {p['n']} problems: exact {p['exact']:.3f}, "
                      f"int8 {p['int8']:.3f}, "
                      f"int8 − exact {p['int8_minus_exact'][0]:+.3f} [95% CI {low:+.3f}, {high:+.3f}]."]
    table = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
