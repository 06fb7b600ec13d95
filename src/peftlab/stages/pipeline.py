"""The generate and evaluate stages, and the one stage runner the CLI and ``peftlab run`` share.

``generate`` loads the base model plus whatever ``train`` left in the run directory (or nothing, for a
prompting baseline), writes ``predictions.jsonl``; ``evaluate`` scores that file into ``metrics.json``.
:func:`run_stage` wraps any stage: lock the run directory, run it, record it done (``peftlab.runs.directory``).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from peftlab.config import Config
from peftlab.data.records import read_jsonl, write_json, write_jsonl
from peftlab.models.devices import resolve_placement
from peftlab.models.int8 import int8_for_generation
from peftlab.stages.distributed import world
from peftlab.errors import UserError, first_line, unreadable_weights_errors
from peftlab.stages.generate import ResumeFile, generate_candidates
from peftlab.methods import get_method, get_training_method
from peftlab.models.loading import load_model, load_model_config, load_tokenizer
from peftlab.prompting.format import resolve_prompt_format
from peftlab.prompting import prompt_token_budget
from peftlab.runs.directory import RunDir, check_readable, config_differences, training_run
from peftlab.runs.disk import disk_full_is_a_user_error
from peftlab.tasks import get_task, get_training_task
from peftlab.interop.samples import read_samples
from peftlab.stages.overlap import training_overlap
from peftlab.stages.train import train


def trains(config: Config) -> bool:
    return get_method(config.method).trains


def load_for_generation(config: Config, run_dir: Path):
    """The model that generates: :func:`load_model_with_adapter`, quantised for ``generation.engine=int8``.

    Raises:
        UserError: as :func:`load_model_with_adapter`, or the int8 engine asked of a GPU or 4/8-bit model.
    """
    model = load_model_with_adapter(config, run_dir)
    return int8_for_generation(model) if config.generation.engine == "int8" else model


def load_model_with_adapter(config: Config, run_dir: Path):
    """The base model, with the trained adapter from ``run_dir`` attached for a training method.

    Raises:
        UserError: a training method was named but ``run_dir`` holds no trained adapter, or the adapter
            is unreadable.
    """
    placement = resolve_placement(config.model)
    if not trains(config):
        return load_model(config.model.name, placement=placement)
    method = get_training_method(config.method)
    adapter = adapter_dir(config, run_dir)
    if not adapter.is_dir():
        raise UserError(f"no trained adapter in {adapter}; run `peftlab train` with the same output_dir first")
    with _unreadable_is_a_user_error(adapter):
        check_readable(adapter)  # before the base model loads: a damaged adapter fails fast
    quantization = method.quantization_config()
    base = None if method.replaces_base_model else load_model(config.model.name, quantization, placement)
    with _unreadable_is_a_user_error(adapter):
        model = method.load(base, adapter)
    # the adapter (or a full fine-tune, which replaces the base) is loaded on the CPU; bitsandbytes placed
    # a quantised base itself
    return model.to(placement.device) if placement.on_gpu and quantization is None else model


@contextmanager
def _unreadable_is_a_user_error(adapter: Path):
    try:
        yield
    except unreadable_weights_errors() as error:
        raise UserError(
            f"the trained adapter in {adapter} is unreadable ({first_line(error)}); re-run `peftlab train`"
        ) from None


def adapter_dir(config: Config, run_dir: Path) -> Path:
    """Where generation takes the trained adapter from: ``model.adapter``, else the run's ``adapter/``."""
    return Path(config.model.adapter) if config.model.adapter else RunDir(run_dir).adapter


def _check_given_adapter(config: Config) -> dict:
    """``model.adapter``: a PEFT adapter of the configured method's kind (checked before any model loads).
    Returns what the report needs to know about it: where it came from and, for a peftlab run's adapter,
    that run's training metrics (trainable parameters, peak memory, time), marked as borrowed."""
    adapter = Path(config.model.adapter)
    method = get_training_method(config.method)
    if method.replaces_base_model:
        raise UserError(f"method {config.method.name} saves a whole model, not an adapter: generate from it "
                        f"with model.name={adapter} and method.name=zero-shot")
    settings = adapter / "adapter_config.json"
    if not settings.is_file():
        raise UserError(f"model.adapter={adapter} is not a PEFT adapter directory (no adapter_config.json)")
    with _unreadable_is_a_user_error(adapter):
        check_readable(adapter)
        peft_type = json.loads(settings.read_text(encoding="utf-8")).get("peft_type")
    expected = method.peft_type
    if expected and peft_type != expected:
        raise UserError(f"model.adapter={adapter} is a {peft_type} adapter, but method {config.method.name} "
                        f"loads {expected}; set method.name to match")
    owner = training_run(config, Path(config.output_dir))
    record = owner.stage_record("train") if owner else None
    if record is None:
        return {"adapter_from": str(adapter)}
    _check_adapter_matches(config, owner)
    return {**record["metrics"], "adapter_from": str(adapter)}


def _check_adapter_matches(config: Config, run: RunDir) -> None:
    """Generating from an adapter trained for another model or method would score the wrong thing."""
    record = run.stage_record("train")
    if record is None:
        raise UserError(f"no finished training in {run.path}; run `peftlab train` with the same output_dir first")
    trained = record["config"]
    # model.max_length only filters training examples; the model and the method define the adapter.
    for key, now, then in (("model.name", config.model.name, trained["model"]["name"]),
                           ("method", config.method.model_dump(mode="json"), trained["method"])):
        if key == "method" and not config_differences({"method": then}, {"method": now}):
            continue  # the same method settings, perhaps written before options moved to their owners
        if now != then:
            raise UserError(
                f"the adapter in {run.adapter} was trained with other {key} settings ({then}); "
                "use the same config, or a new --output-dir"
            )


def generate(config: Config, run_dir: Path, progress: bool = True, model=None) -> dict:
    """Generate ``generation.k`` candidates for each test problem; return timing metrics and the prompt
    format used (``prompt_format``, ``prompt_template_sha256``). ``model``: the model with this run's adapter
    already active (:mod:`peftlab.stages.shared_base`), instead of loading it here.

    Raises:
        UserError: as the stages it calls, or the run's adapter was trained with another prompt format.
    """
    task = get_task(config.task, config)
    shot_task = get_training_task(config) if config.data.train_task else None
    problems = task.load("test")
    tokenizer = load_tokenizer(config.model.name, padding_side="left")
    prompt_format = resolve_prompt_format(config.model.prompt_format, tokenizer, task, shot_task)
    trained_by = training_run(config, run_dir) if trains(config) else None
    if trained_by is not None:
        _check_trained_format(trained_by, prompt_format.name)
    prompts, prompt_stats = _prompts(config, task, problems, tokenizer, prompt_format,  # before the model: fail fast
                                     shot_task)
    model = model if model is not None else load_for_generation(config, run_dir)
    started = time.perf_counter()
    generation = config.generation.model_copy(update={"stop": prompt_format.stop()})
    resume = ResumeFile.in_run(config, run_dir)
    candidates = generate_candidates(model, tokenizer, prompts, generation, prompt_format.postprocess, progress,
                                     ids=[problem["id"] for problem in problems], resume=resume)
    elapsed = time.perf_counter() - started
    rows = [
        {"id": problem["id"], "candidates": problem_candidates, "reference": problem.get("reference")}
        for problem, problem_candidates in zip(problems, candidates, strict=True)
    ]
    if prompt_stats:
        for row, shot_ids, dropped in zip(rows, prompt_stats["retrieved_ids"], prompt_stats["dropped_per_problem"]):
            row.update(shot_ids=shot_ids, dropped_shots=dropped)
    write_jsonl(RunDir(run_dir).predictions, rows)
    resume.discard()  # only now: until predictions.jsonl is in place, the finished batches are kept
    metrics = {"generate_time_s": elapsed, "test_problems": len(problems), "k": config.generation.k,
               **resolve_placement(config.model).record(), **prompt_format.record()}
    if prompt_stats:
        metrics.update(shots_used_mean=prompt_stats["shots_used_mean"], dropped_shots=prompt_stats["dropped_shots"])
    return metrics


def _check_trained_format(run: RunDir, name: str) -> None:
    # An adapter learnt its answers in one format; prompting it in another scores the wrong thing. The
    # resolved name is compared (model.prompt_format=auto may be either); runs from before formats are raw.
    record = run.stage_record("train")
    if record is None:
        return  # no finished training: _check_adapter_matches refuses that with its own message
    trained = record.get("metrics", {}).get("prompt_format", "raw")
    if trained != name:
        raise UserError(
            f"the adapter in {run.adapter} was trained with prompt format '{trained}', but generation would "
            f"use '{name}'; set model.prompt_format to match, or use a new --output-dir"
        )


def _prompts(config: Config, task, problems: list[dict], tokenizer, prompt_format,
             shot_task=None) -> tuple[list[str], dict | None]:
    """The prompts, rendered by ``prompt_format`` (the same function training renders with); a prompting
    baseline builds its own (ICL and RAG add demonstrations)."""
    method = get_method(config.method)
    if method.trains:
        return [prompt_format.render(problem) for problem in problems], None

    def budget():
        return prompt_token_budget(load_model_config(config.model.name), config.generation.max_new_tokens)

    return method.prompts(task, problems, tokenizer, budget, seed=config.train.seed, prompt_format=prompt_format,
                          shot_task=shot_task)


def evaluate(config: Config, run_dir: Path, predictions: Path | None = None, partial: bool = False) -> dict:
    """Score ``predictions`` (default: the run's ``predictions.jsonl``; any form :func:`read_samples` reads)
    against the task's test set.

    Raises:
        UserError: the file is unreadable or malformed, or its ids do not match the test set (unknown,
            duplicate, or — unless ``partial`` — missing ids).
    """
    run = RunDir(run_dir)
    task = get_task(config.task, config)
    rows = read_samples(predictions, task) if predictions else read_jsonl(run.predictions, required=task.prediction_keys)
    evaluation = task.evaluate(rows, partial=partial)
    for name, extra_rows in evaluation.files.items():
        write_jsonl(run / name, extra_rows)
    write_jsonl(run.scored, evaluation.scored)
    return evaluation.metrics


def _outputs(stage: str, config: Config, run: RunDir) -> list[str]:
    """Files a finished stage owns (removed if an earlier stage is re-done)."""
    if stage == "train":
        return [RunDir.ADAPTER, RunDir.LOSS_HISTORY]
    if stage == "generate":
        return [RunDir.PREDICTIONS]
    task = get_task(config.task, config)
    return [RunDir.SCORED, RunDir.DATA_CARD, *task.extra_outputs]


def run_stage(config: Config, stage: str, announce=None, **options) -> dict:
    """Run one stage in ``config.output_dir`` and record it done; return the run's merged metrics.

    The caller holds the run directory's lock (:meth:`RunDir.lock`).
    """
    run = RunDir(config.output_dir)
    if announce:
        announce(f"{config.method.name}: {stage}")
    started = time.time()
    with disk_full_is_a_user_error(run.path, f"writing the {stage} stage's output"):
        if stage == "train":
            metrics = train(config, run.path)
        elif stage == "generate":
            borrowed = _check_generation_adapter(config, run)
            metrics = {**borrowed, **generate(config, run.path, model=options.get("model"))}
        else:
            metrics = evaluate(config, run.path, **options)
            # only for predictions this run generated: they saw its training data (an adapter, demonstrations)
            generated_here = options.get("predictions") is None and run.is_done("generate")
            card = training_overlap(config) if generated_here else None
            if card is not None:  # the run's own training data against what it is scored on
                write_json(run / RunDir.DATA_CARD, card)
                metrics.update(overlap_exact=card["exact"], overlap_near=card["near"],
                               overlap_checked=card["test_items"] > 0)
        return run.finish(stage, config, metrics, _outputs(stage, config, run), started)


def _check_generation_adapter(config: Config, run: RunDir) -> dict:
    """Before generating: the adapter generation uses was trained for this model, method and format.
    Returns what the report needs of a borrowed adapter (``model.adapter``), else nothing."""
    if trains(config) and config.model.adapter:
        return _check_given_adapter(config)
    if trains(config):
        _check_adapter_matches(config, run)
    return {}


def _helper_process(stage: str) -> bool:
    """Under a data-parallel launcher (:mod:`peftlab.stages.distributed`), whether this is a process other than
    the main one; those only train, and only ``train`` and ``run`` can be launched that way.

    Raises:
        UserError: ``generate`` or ``evaluate`` under a launcher with several processes.
    """
    processes = world()
    if processes.parallel and stage not in ("train", "run"):
        raise UserError(f"peftlab {stage} runs in one process; only train and run are data-parallel under "
                        f"accelerate launch / torchrun ({processes.size} processes here)")
    return not processes.main


def run_command(config: Config, stage: str, **options) -> dict:
    """``peftlab train|generate|evaluate``: always (re)does ``stage``; later stages are invalidated."""
    if _helper_process(stage):
        train(config, Path(config.output_dir))  # the main process holds the run directory and records
        return {}
    run = RunDir(config.output_dir).create()
    with run.lock():
        return run_stage(config, stage, **options)


def run_stages(config: Config, announce=print) -> dict:
    """``peftlab run``: train (for a training method), generate and evaluate, skipping each stage already
    done with this config, so an interrupted run resumes where it stopped.

    Raises:
        UserError: the directory holds finished stages of another config (results would be mixed).
    """
    if _helper_process("run"):  # train beside the main process, which then generates and evaluates
        if trains(config) and not config.model.adapter and not RunDir(config.output_dir).is_done("train"):
            train(config, Path(config.output_dir))
        return {}
    run = RunDir(config.output_dir).create()
    with run.lock():
        run.check_same_config(config)
        for stage in ("train", "generate", "evaluate"):
            if stage == "train" and (not trains(config) or config.model.adapter):
                continue
            problem = run.output_problem(stage) if run.is_done(stage) else None
            if problem:  # a stage is done only while what it wrote is still there, whole
                announce(f"{config.method.name}: {stage} is done again: {problem}")
                run.invalidate(stage)
            if not run.is_done(stage):
                run_stage(config, stage, announce)
        return run.read_metrics()

