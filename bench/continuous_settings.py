"""What each continuous-batching setting gives on one workload: slots and prompt lookup, side by side in one
process (the shared prompt prefix is read once in every variant: it has no switch).

    python bench/continuous_settings.py                     # Qwen2.5-Coder-0.5B, 40 MBPP prompts, greedy
    python bench/continuous_settings.py --task repair --problems 24 --max-new-tokens 320

Prints a table and writes JSON and markdown to bench/results/continuous-settings-<model>-<task>.*; every
variant's candidates are compared with the first's (greedy: they should all be identical).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from generate_speed import RESULTS, _task_and_prompts  # noqa: E402

VARIANTS = {
    "16 slots, no lookup": {"slots": 16, "lookup_tokens": 0},
    "64 slots, no lookup": {"slots": 64, "lookup_tokens": 0},
    "64 slots, lookup (default)": {},
    "16 slots, lookup": {"slots": 16},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--task", default="mbpp")
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    from peftlab.config import GenerationConfig
    from peftlab.models.loading import load_model
    from peftlab.runs.directory import package_versions
    from peftlab.stages.generate import generate_candidates

    task, tokenizer, _, prompts = _task_and_prompts(args)
    model = load_model(args.model)
    prompts = prompts[:args.problems]
    rows, first = [], None
    for name, settings in VARIANTS.items():
        generation = GenerationConfig(max_new_tokens=args.max_new_tokens, stop=task.stop, k=1, **settings)
        started = time.perf_counter()
        outputs = generate_candidates(model, tokenizer, prompts, generation, progress=False,
                                      postprocess=task.postprocess)
        seconds = time.perf_counter() - started
        first = outputs if first is None else first
        rows.append({"variant": name, "settings": settings, "seconds": seconds,
                     "identical_to_first": sum(a == b for a, b in zip(outputs, first, strict=True))})
        print(f"{name}: {seconds:.1f} s", flush=True)
    base = rows[0]["seconds"]
    lines = [f"# Continuous-batching settings: {args.model}, {args.task}, {len(prompts)} prompts, greedy", "",
             f"`python bench/continuous_settings.py {' '.join(sys.argv[1:])}`: max {args.max_new_tokens} new tokens, "
             f"one process, variants in this order, {os.cpu_count()} CPUs.", "",
             "| variant | seconds | speed against the first | candidates identical to the first |",
             "|---|---:|---:|---:|"]
    lines += [f"| {row['variant']} | {row['seconds']:.1f} | {base / row['seconds']:.2f}x | "
              f"{row['identical_to_first']}/{len(prompts)} |" for row in rows]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"continuous-settings-{args.model}-{args.task}"
    report = {"settings": vars(args), "load_average": os.getloadavg(), "packages": package_versions(), "rows": rows}
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
