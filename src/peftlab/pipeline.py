"""The generate and evaluate stages, reading and writing a run directory.

``generate`` loads the base model plus whatever ``train`` left in the run directory (or nothing, for a
prompting baseline), writes ``predictions.jsonl``; ``evaluate`` scores that file into ``metrics.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from peftlab.config import Config
from peftlab.data.records import read_jsonl, write_jsonl
from peftlab.errors import UserError
from peftlab.generate import generate_candidates
from peftlab.methods import get_method
from peftlab.models import load_model, load_model_config, load_tokenizer
from peftlab.prompting import PROMPTING_METHODS, build_prompts, prompt_token_budget
from peftlab.runs import read_metrics, start_run, update_metrics
from peftlab.tasks import get_task
from peftlab.train import ADAPTER_DIR, train

PREDICTIONS = "predictions.jsonl"
SCORED = "scored.jsonl"


def load_for_generation(config: Config, run_dir: Path):
    """The base model, with the trained adapter from ``run_dir`` attached for a training method.

    Raises:
        UserError: a training method was named but ``run_dir`` holds no trained adapter.
    """
    if config.method.name in PROMPTING_METHODS:
        return load_model(config.model.name)
    method = get_method(config.method)
    adapter = run_dir / ADAPTER_DIR
    if not adapter.is_dir():
        raise UserError(f"no trained adapter in {adapter}; run `peftlab train` with the same output_dir first")
    if method.replaces_base_model:
        return method.load(None, adapter)
    return method.load(load_model(config.model.name, quantization_config=method.quantization_config()), adapter)


def generate(config: Config, run_dir: Path, progress: bool = True) -> dict:
    """Generate ``generation.k`` candidates for each test problem; return timing metrics."""
    task = get_task(config.task, config)
    problems = task.load("test")
    tokenizer = load_tokenizer(config.model.name, padding_side="left")
    prompts, prompt_stats = _prompts(config, task, problems, tokenizer)  # before the model: fail fast
    model = load_for_generation(config, run_dir)
    started = time.perf_counter()
    generation = config.generation.model_copy(update={"stop": task.stop})
    candidates = generate_candidates(model, tokenizer, prompts, generation, task.postprocess, progress)
    elapsed = time.perf_counter() - started
    rows = [
        {"id": problem["id"], "candidates": problem_candidates, "reference": problem.get("reference")}
        for problem, problem_candidates in zip(problems, candidates, strict=True)
    ]
    if prompt_stats:
        for row, shot_ids, dropped in zip(rows, prompt_stats["retrieved_ids"], prompt_stats["dropped_per_problem"]):
            row.update(shot_ids=shot_ids, dropped_shots=dropped)
    write_jsonl(run_dir / PREDICTIONS, rows)
    metrics = {"generate_time_s": elapsed, "test_problems": len(problems), "k": config.generation.k}
    if prompt_stats:
        metrics.update(shots_used_mean=prompt_stats["shots_used_mean"], dropped_shots=prompt_stats["dropped_shots"])
    return metrics


def _prompts(config: Config, task, problems: list[dict], tokenizer) -> tuple[list[str], dict | None]:
    """The task's prompts; for ICL and RAG with demonstrations from the training split prepended."""
    if config.method.name not in ("icl", "rag"):
        return [task.prompt(problem) for problem in problems], None
    return build_prompts(
        config.method.name,
        problems,
        task.load("train"),
        shots=config.method.shots,
        seed=config.train.seed,
        format_prompt=task.prompt,
        format_demo=lambda example: task.prompt(example) + task.response(example).rstrip("\n") + "\n\n",
        tokenizer=tokenizer,
        max_prompt_tokens=prompt_token_budget(load_model_config(config.model.name), config.generation.max_new_tokens),
        retriever=config.method.retriever,
        embedding_model=config.method.embedding_model,
    )


def evaluate(config: Config, run_dir: Path, predictions: Path | None = None) -> dict:
    """Score ``predictions`` (default: the run's ``predictions.jsonl``) with the task's metrics."""
    task = get_task(config.task, config)
    rows = read_jsonl(predictions or run_dir / PREDICTIONS, required=task.prediction_keys)
    evaluation = task.evaluate(rows)
    for name, extra_rows in evaluation.files.items():
        write_jsonl(run_dir / name, extra_rows)
    write_jsonl(run_dir / SCORED, evaluation.scored)
    return evaluation.metrics


def run_stages(config: Config, announce=print) -> dict:
    """Train (for a training method), generate and evaluate, skipping each stage whose output exists,
    so an interrupted run resumes where it stopped. Returns the run's merged metrics."""
    run_dir = Path(config.output_dir)
    name = config.method.name
    if name not in PROMPTING_METHODS and not (run_dir / ADAPTER_DIR).is_dir():
        announce(f"{name}: train")
        update_metrics(start_run(config, "train"), train(config, run_dir))
    if not (run_dir / PREDICTIONS).is_file():
        announce(f"{name}: generate")
        update_metrics(start_run(config, "generate"), generate(config, run_dir))
    if not (run_dir / SCORED).is_file():
        announce(f"{name}: evaluate")
        update_metrics(start_run(config, "evaluate"), evaluate(config, run_dir))
    return read_metrics(run_dir)
