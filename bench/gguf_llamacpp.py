"""Do llama.cpp's answers from peftlab's GGUF export match peftlab's own? (issue 29)

Takes a trained LoRA run, exports it with ``peftlab export --format gguf --gguf-type f32`` and, for the run's
first test prompts, compares greedy continuations token by token:

* peftlab: the merged model in transformers (float32), as ``peftlab export --merge`` writes it;
* llama.cpp on ``model.gguf`` (the merged model);
* llama.cpp on ``base.gguf`` with ``adapter.gguf`` applied as a LoRA at run time.

Prompts are passed as token ids, so tokenisation is not what is compared. llama.cpp computes in its own
kernels (float32 here, but another summation order), so a continuation may leave peftlab's where two tokens
are nearly tied; the table gives identical continuations and the share of identical leading tokens.

Needs llama.cpp's Python binding, built from source once (minutes on 2 cores)::

    .venv/bin/pip install llama-cpp-python==0.3.36
    python bench/gguf_llamacpp.py RUN_DIR [--prompts 8] [--tokens 48]   # bench/results/gguf-llamacpp.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _leading_agreement(a: list[int], b: list[int]) -> int:
    same = 0
    for x, y in zip(a, b):
        if x != y:
            break
        same += 1
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch
    from llama_cpp import Llama

    from peftlab.models.loading import load_tokenizer
    from peftlab.prompting.format import resolve_prompt_format
    from peftlab.runs.directory import RunDir
    from peftlab.stages.export import export_run, merged_model
    from peftlab.tasks import get_task

    config = RunDir(args.run_dir).read_config()
    task = get_task(config.task, config)
    tokenizer = load_tokenizer(config.model.name)
    prompt_format = resolve_prompt_format(config.model.prompt_format, tokenizer, task)
    problems = task.load("test")[: args.prompts]
    prompts = [tokenizer(prompt_format.render(problem), add_special_tokens=False)["input_ids"] for problem in problems]

    out = Path(tempfile.mkdtemp(prefix="gguf-bench-"))
    started = time.perf_counter()
    export_run(args.run_dir, out / "export", fmt="gguf", gguf_type="f32")
    export_s = time.perf_counter() - started
    model = merged_model(config, args.run_dir / "adapter")
    answers = {"peftlab (transformers, merged)": []}
    for ids in prompts:
        with torch.inference_mode():
            output = model.generate(torch.tensor([ids]), max_new_tokens=args.tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        answers["peftlab (transformers, merged)"].append(output[0, len(ids):].tolist())
    del model
    engines = {"llama.cpp model.gguf": {"model_path": str(out / "export" / "model.gguf")},
               "llama.cpp base.gguf + adapter.gguf": {"model_path": str(out / "export" / "base.gguf"),
                                                      "lora_path": str(out / "export" / "adapter.gguf")}}
    for name, options in engines.items():
        llm = Llama(**options, n_ctx=2048, n_threads=os.cpu_count(), verbose=False, logits_all=False)
        answers[name] = []
        for ids in prompts:
            llm.reset()
            generated = []
            for token in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0):
                if token == llm.token_eos() or len(generated) == args.tokens:
                    break
                generated.append(token)
            answers[name].append(generated)
        del llm
    # transformers keeps the end token (and pads after it); llama.cpp's loop above stops before it
    reference = [ids[: next((i for i, t in enumerate(ids) if t == tokenizer.eos_token_id), len(ids))]
                 for ids in answers["peftlab (transformers, merged)"]]
    answers["peftlab (transformers, merged)"] = reference
    rows = []
    for name, got in answers.items():
        identical = sum(a == b for a, b in zip(got, reference))
        leading = sum(_leading_agreement(a, b) for a, b in zip(got, reference))
        rows.append({"engine": name, "identical": identical, "prompts": len(prompts),
                     "leading_tokens_same": leading, "reference_tokens": sum(len(r) for r in reference)})
    record = {"run_dir": str(args.run_dir), "model": config.model.name, "method": config.method.name,
              "task": config.task, "tokens": args.tokens, "export_s": round(export_s, 1), "rows": rows,
              "answers": answers}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gguf-llamacpp.json").write_text(json.dumps(record, indent=1))
    lines = ["# llama.cpp on peftlab's GGUF export: the same greedy answers?", "",
             f"`python bench/gguf_llamacpp.py {args.run_dir}`: {config.method.name} on {config.model.name}, "
             f"task {config.task}, the first {len(prompts)} test prompts, greedy, at most {args.tokens} new tokens; "
             f"export (f32) took {export_s:.0f} s.", "",
             "| engine | identical continuations | leading tokens identical |", "|---|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['engine']} | {row['identical']}/{row['prompts']} | "
                     f"{row['leading_tokens_same']}/{row['reference_tokens']} |")
    (args.out / "gguf-llamacpp.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
