"""Training: the configured method on the task's train split, evaluated every ``train.eval_every`` of the
run, best checkpoint (lowest validation loss) kept, resumable after an interruption.

Read top to bottom: data -> model + method -> Trainer -> save. A method that needs more of the loop brings it
through generic hooks (``trains_packed``, ``optimizer``, ``callbacks``; peftlab.methods.base); no method is
named here. We use the HF ``Trainer`` rather than an explicit loop for its checkpoint/resume (optimizer,
scheduler, RNG and data position) and best-model tracking; docs/decisions.md says why.
"""

from __future__ import annotations

import resource
import signal
import sys
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import is_mlflow_available, is_tensorboard_available

from peftlab.runs.checkpoints import MarkCompleteCheckpoints, atomic_directory, newest_complete_checkpoint
from peftlab.config import Config
from peftlab.data.examples import CompletionCollator
from peftlab.data.packing import PackedCollator, packed_causal_lm_loss
from peftlab.data.records import write_jsonl
from peftlab.stages.distributed import world
from peftlab.stages.memory import freed_blocks_given_back
from peftlab.stages.trainers import HEAD_CHUNK, PackedTrainer, PaddedRowsTrainer, kept_logits_loss
from peftlab.models.devices import resolve_placement
from peftlab.errors import TrainingInterrupted, UserError
from peftlab.methods import count_parameters, get_training_method
from peftlab.models.loading import load_model, load_tokenizer
from peftlab.prompting.format import resolve_prompt_format
from peftlab.runs.directory import RunDir
from peftlab.runs.disk import disk_full_is_a_user_error
from peftlab.tasks import get_training_task


class StopOnRequest(TrainerCallback):
    """Turns Ctrl-C into "save a checkpoint at the end of this step, then stop" instead of losing the step."""

    def __init__(self):
        self.requested = False

    def request(self, *_):
        self.requested = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control


def tokenize_split(prompt_format, records: list[dict], max_length: int) -> list[dict]:
    """Tokenized examples, rendered by ``prompt_format`` (as generation renders them); those longer than
    ``max_length`` tokens are dropped (never truncated, which would teach the model to stop mid-function)."""
    examples = [prompt_format.training_example(r) for r in records]
    return [example for example in examples if len(example["input_ids"]) <= max_length]


def peak_memory_mb() -> float:
    """Process peak RSS on CPU; peak allocated device memory on CUDA."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _directory_mb(directory: Path) -> float:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) / 2**20


def training_fingerprint(config: Config) -> dict:
    """The settings a checkpoint depends on: resuming one under other settings would mix two runs."""
    dumped = config.model_dump(mode="json", include={"model", "data", "method", "train", "task"})
    dumped["data"].pop("test_size", None)  # what is generated from later does not change training
    dumped["train"].pop("report_to", None)  # nor does where the losses are also logged
    return dumped


TRACKERS = {"tensorboard": is_tensorboard_available, "mlflow": is_mlflow_available}
"""``train.report_to`` values, each with transformers' own check that its package is installed."""
LOGGED = ("step", "epoch", "loss", "eval_loss", "learning_rate", "grad_norm")


def check_trackers(report_to: list[str]) -> None:
    """Raises UserError for a tracker whose package is missing (before any model is loaded)."""
    for name in report_to:
        if not TRACKERS[name]():
            raise UserError(f"train.report_to={name} needs the {name} package: pip install 'peftlab[{name}]'")


def loss_history(log_history: list[dict]) -> list[dict]:
    """The Trainer's log, one row per logged step: training loss (and learning rate, gradient norm) or
    validation loss; the closing summary row is left out."""
    rows = []
    for entry in log_history:
        if "loss" in entry or "eval_loss" in entry:
            rows.append({key: entry[key] for key in LOGGED if key in entry})
    return rows


def train(config: Config, run_dir: Path, stop: StopOnRequest | None = None, callbacks: tuple = ()) -> dict:
    """Train and save the adapter under ``run_dir/adapter``; return the training metrics.

    ``callbacks`` are extra ``TrainerCallback`` objects (the methods bench times steps with one).
    Resumes from the newest *complete* checkpoint (``peftlab.runs.checkpoints``); the adapter is written under
    a temporary name and renamed into place, so it exists whole or not at all.

    Raises:
        UserError: unknown method/task, incompatible options, no training example fits ``max_length``,
            checkpoints from another config, or the disk filled up while saving.
        TrainingInterrupted: a stop was requested; the last checkpoint is on disk.
    """
    run = RunDir(run_dir)
    task = get_training_task(config)
    method = get_training_method(config.method)
    _check_there_is_something_to_train(config, task)
    check_trackers(config.train.report_to)
    tokenizer, prompt_format, train_set, validation_set = _tokenized_splits(config, task)

    processes = world()
    # Before the model loads: a checkpoint of another config is refused fast.
    checkpoint = newest_complete_checkpoint(run.checkpoints, training_fingerprint(config), remove=processes.main)
    torch.manual_seed(config.train.seed)
    placement = resolve_placement(config.model)
    if processes.parallel and placement.on_gpu:
        torch.cuda.set_device(processes.local_rank)  # "cuda" is then this process's own GPU
    saving_memory = memory_saving(config, method)
    # from before the model loads (its reads are such blocks too) to the end of training
    with freed_blocks_given_back(saving_memory and not placement.on_gpu):
        model = method.apply(load_model(config.model.name, method.quantization_config(), placement))
        parameters = count_parameters(model)
        layout = batch_layout(config, method, processes.parallel)
        packed = layout == "packed"

        args = training_arguments(config, run, method, placement, packed, evaluates=bool(validation_set))
        stop = stop or StopOnRequest()
        trainer = _trainer(config, method, model, args, tokenizer, train_set, validation_set, layout,
                           [stop, MarkCompleteCheckpoints(training_fingerprint(config)), *method.callbacks(),
                            *callbacks], head_chunk=HEAD_CHUNK if saving_memory else None)
        result, train_time = _run_trainer(trainer, checkpoint, stop)

    if not processes.main:
        return {}  # the main process saves the adapter and reports
    with disk_full_is_a_user_error(run.adapter, "saving the trained adapter"), \
            atomic_directory(run.adapter) as partial:
        method.save(trainer.model, partial)
    write_jsonl(run / RunDir.LOSS_HISTORY, loss_history(trainer.state.log_history))
    eval_losses = [entry["eval_loss"] for entry in trainer.state.log_history if "eval_loss" in entry]
    return {
        **parameters,
        "method": method.name,
        "train_examples": len(train_set),
        "train_steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "best_eval_loss": min(eval_losses) if eval_losses else None,
        "train_time_s": train_time,
        "tokens_per_s": trainer.state.num_input_tokens_seen / train_time if train_time else None,
        "peak_memory_mb": peak_memory_mb(),
        "adapter_mb": _directory_mb(run.adapter),
        "resumed_from": checkpoint.name if checkpoint else None,
        "packed": packed,
        "batch_layout": layout,
        "gradient_checkpointing": saving_memory,
        "head_chunk": getattr(trainer, "head_chunk", None),
        "processes": processes.size,
        **placement.record(),
        **prompt_format.record(),
    }


def _check_there_is_something_to_train(config: Config, task) -> None:
    """Raises UserError: ``model.adapter`` names an already trained adapter, or the task has no training split."""
    if config.model.adapter:
        raise UserError(f"model.adapter is set ({config.model.adapter}): there is nothing to train; "
                        "use `peftlab generate` or `peftlab run`")
    if not task.trainable:
        raise UserError(f"task '{task.name}' has no training split"
                        + ("" if config.data.train_task else "; train on another task's data with data.train_task"))


def _tokenized_splits(config: Config, task):
    """The tokenizer, the prompt format, and the tokenized train and validation splits.

    Raises:
        UserError: no training example fits ``model.max_length``.
    """
    tokenizer = load_tokenizer(config.model.name, padding_side="right")
    prompt_format = resolve_prompt_format(config.model.prompt_format, tokenizer, task)
    train_set = tokenize_split(prompt_format, task.load("train"), config.model.max_length)
    validation_set = tokenize_split(prompt_format, task.load("validation"), config.model.max_length)
    if not train_set:
        raise UserError(f"no training example fits model.max_length={config.model.max_length}")
    return tokenizer, prompt_format, train_set, validation_set


def training_arguments(config: Config, run: RunDir, method, placement, packed: bool, evaluates: bool):
    """The Trainer's ``TrainingArguments`` for ``config``: evaluation and checkpoints every ``train.eval_every``
    of the run (when there is a validation split, ``evaluates``), the best checkpoint kept."""
    # The Trainer reads eval_steps/save_steps below 1 as a share of all steps and 1 or more as a step count,
    # so eval_every=1.0 ("once, at the end") would mean "every step". Just under 1 is still a share, and
    # rounds up to the last step for any run shorter than a billion steps.
    every = min(config.train.eval_every, 1 - 1e-9)
    return TrainingArguments(
        output_dir=str(run.checkpoints),
        num_train_epochs=config.train.epochs,
        max_steps=config.train.max_steps,
        per_device_train_batch_size=config.train.batch_size,
        per_device_eval_batch_size=config.train.batch_size,
        gradient_accumulation_steps=config.train.grad_accum,
        learning_rate=config.train.learning_rate or method.default_learning_rate,
        warmup_steps=config.train.warmup_ratio,  # a float < 1 is a ratio of all steps
        weight_decay=config.train.weight_decay,
        gradient_checkpointing=memory_saving(config, method),
        # non-reentrant works with frozen embeddings; a method that needs the reentrant form says so
        gradient_checkpointing_kwargs={"use_reentrant": method.reentrant_checkpointing},
        eval_strategy="steps" if evaluates else "no",
        eval_steps=every,
        save_strategy="steps",
        save_steps=every,
        save_total_limit=2,
        load_best_model_at_end=evaluates,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=1,
        # Packed: no attention mask to count by, so every collated token counts (row filler included).
        include_num_input_tokens_seen="all" if packed else "non_padding",
        report_to=list(config.train.report_to),
        seed=config.train.seed,
        data_seed=config.train.seed,
        remove_unused_columns=False,
        use_cpu=not placement.on_gpu,
        bf16=placement.on_gpu and placement.dtype == "bfloat16",  # autocast; PEFT keeps adapter weights in float32
        fp16=placement.on_gpu and placement.dtype == "float16",
        dataloader_pin_memory=placement.on_gpu,
    )


def memory_saving(config: Config, method) -> bool:
    """Whether this run trains in the memory-saving mode (``train.gradient_checkpointing``, else the
    method's default): activations recomputed in backward, and on a CPU freed large blocks given back at
    once (``peftlab.stages.memory``)."""
    chosen = config.train.gradient_checkpointing
    return method.gradient_checkpointing if chosen is None else chosen


def batch_layout(config: Config, method, parallel: bool) -> str:
    """How training batches are laid out: ``packed`` (padding-free rows, ``peftlab.data.packing``), ``padded
    rows`` (each example of a padded batch alone, cut to its length: methods that cannot be packed) or
    ``padded`` (whole padded batches: ``train.packing=false``, a method whose loss is the model's own, or
    data-parallel training, where every rank must run the same number of backward passes and ranks would
    pack or cut different row counts). The first two train row by row (``peftlab.stages.trainers``)."""
    if not config.train.packing or parallel:
        return "padded"
    if method.trains_packed:
        return "packed"
    return "padded" if method.loss_from_model else "padded rows"


def _trainer(config: Config, method, model, args, tokenizer, train_set, validation_set, layout: str, callbacks,
             head_chunk: int | None = None):
    """The ``Trainer`` (and its loss) for the batch ``layout``; with the method's own optimiser where it has
    one (the Trainer's AdamW otherwise). ``head_chunk``: packed rows' output projection and loss computed that
    many positions at a time and recomputed in backward (the memory-saving mode)."""
    trainer_class, loss = {"packed": (PackedTrainer, packed_causal_lm_loss),
                           "padded rows": (PaddedRowsTrainer, kept_logits_loss), "padded": (Trainer, None)}[layout]
    extra = {"head_chunk": head_chunk} if layout == "packed" else {}
    return trainer_class(
        **extra,
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=validation_set or None,
        data_collator=(PackedCollator(tokenizer.pad_token_id, config.model.max_length) if layout == "packed"
                       else CompletionCollator(tokenizer.pad_token_id)),
        compute_loss_func=loss,
        callbacks=callbacks,
        optimizers=(method.optimizer(model, args), None),
    )


def _run_trainer(trainer, checkpoint: Path | None, stop: StopOnRequest):
    """Train (resuming from ``checkpoint``), with Ctrl-C asking for a checkpoint and a stop; returns the
    Trainer's result and the wall time.

    Raises:
        UserError: the disk filled up while checkpointing.
        TrainingInterrupted: a stop was requested; the last checkpoint is on disk.
    """
    if checkpoint:
        print(f"Resuming from {checkpoint}", file=sys.stderr)
    previous_handler = signal.signal(signal.SIGINT, stop.request)
    started = time.perf_counter()
    try:
        with disk_full_is_a_user_error(Path(trainer.args.output_dir), "saving a checkpoint"):
            result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    train_time = time.perf_counter() - started
    if stop.requested:
        raise TrainingInterrupted(
            f"interrupted at step {trainer.state.global_step}; checkpoint saved in {trainer.args.output_dir}. "
            "Re-run the same command to resume."
        )
    return result, train_time
