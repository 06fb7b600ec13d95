"""Generation speed: candidates per second of the plain path against peftlab's default, same prompts.

The plain path is what peftlab did before: prompts batched in file order, ``generate`` repeating every
prompt once per beam before reading it (``generation.sort_by_length=false``,
``generation.share_prefill=false``). The default batches longest first and reads each prompt once,
repeating its key/value cache per beam. Both run in one process on the same loaded model, alternating
(order flipped every repeat), on the first ``--problems`` prompts of a task; the outputs are compared
candidate by candidate.

    python bench/generate_speed.py                       # writes bench/results/generate-speed.{md,json}
    python bench/generate_speed.py --model qwen2.5-coder-0.5b --task humaneval --problems 16 --settings greedy
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
    "beams-k4": {"k": 4, "num_beams": 4},
}
VARIANTS = {
    "plain": {"sort_by_length": False, "share_prefill": False},
    "peftlab": {"sort_by_length": True, "share_prefill": True},
}


def _prompts(args):
    from peftlab.config import load_config
    from peftlab.models.loading import load_tokenizer
    from peftlab.prompting.format import resolve_prompt_format
    from peftlab.tasks import get_task

    overrides = [f"model.name={args.model}", f"task={args.task}", f"model.prompt_format={args.prompt_format}"]
    if args.task == "codegen":
        overrides.append(f"data.dir={args.data}")
    config = load_config(None, overrides)
    task = get_task(config.task, config)
    tokenizer = load_tokenizer(config.model.name, padding_side="left")
    prompt_format = resolve_prompt_format(config.model.prompt_format, tokenizer, task)
    problems = task.load("test")[: args.problems]
    return config, tokenizer, prompt_format, [prompt_format.render(problem) for problem in problems]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="codegen")
    parser.add_argument("--prompt-format", default="raw")
    parser.add_argument("--data", default="/tmp/bench-data", help="Mined codegen data (task codegen).")
    parser.add_argument("--problems", type=int, default=24)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    from peftlab.config import GenerationConfig
    from peftlab.stages.generate import generate_candidates
    from peftlab.models.loading import load_model
    from peftlab.runs.directory import package_versions

    config, tokenizer, prompt_format, prompts = _prompts(args)
    model = load_model(config.model.name)
    environment = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                   "load_average_before": os.getloadavg()}
    rows = []
    for setting in args.settings:
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        outputs: dict[str, list] = {}
        for repeat in range(args.repeats):
            order = list(VARIANTS) if repeat % 2 == 0 else list(VARIANTS)[::-1]
            for name in order:
                generation = GenerationConfig(
                    max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                    stop=prompt_format.stop(), **SETTINGS[setting], **VARIANTS[name],
                )
                started = time.perf_counter()
                outputs[name] = generate_candidates(model, tokenizer, prompts, generation, progress=False)
                times[name].append(time.perf_counter() - started)
                print(f"[{setting} {repeat + 1}/{args.repeats}] {name}: {times[name][-1]:.1f} s", flush=True)
        candidates = len(prompts) * SETTINGS[setting]["k"]
        identical = sum(a == b for one, other in zip(outputs["plain"], outputs["peftlab"]) for a, b in zip(one, other))
        row = {"setting": setting, "candidates": candidates, "identical_candidates": identical}
        for name in VARIANTS:
            row[name] = {"seconds": times[name], "candidates_per_s": candidates / statistics.median(times[name])}
        row["speedup"] = row["peftlab"]["candidates_per_s"] / row["plain"]["candidates_per_s"]
        rows.append(row)
    environment["load_average_after"] = os.getloadavg()

    settings = {key: getattr(args, key) for key in ("model", "task", "prompt_format", "problems", "max_new_tokens",
                                                   "batch_size", "repeats")}
    report = {"settings": settings, "environment": environment, "packages": package_versions(), "results": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"generate-speed-{args.model}-{args.task}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Generation speed: {args.model}, {args.task} ({args.prompt_format} prompts)",
        "",
        f"`python bench/generate_speed.py {' '.join(sys.argv[1:])}` — the first {args.problems} test prompts, "
        f"batch {args.batch_size}, max {args.max_new_tokens} new tokens, the task's stop strings, "
        f"{args.repeats} repeats alternating; median wall time. Load average before/after: "
        f"{environment['load_average_before'][0]:.2f} / {environment['load_average_after'][0]:.2f}.",
        "",
        "| setting | plain candidates/s | peftlab candidates/s | speed-up | identical candidates |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['setting']} | {row['plain']['candidates_per_s']:.2f} | "
                     f"{row['peftlab']['candidates_per_s']:.2f} | **{row['speedup']:.2f}x** | "
                     f"{row['identical_candidates']}/{row['candidates']} |")
    table = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
