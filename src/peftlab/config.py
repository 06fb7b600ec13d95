"""Run configuration: one pydantic model per section, loaded from YAML plus ``key=value`` overrides.

Every field here is documented in docs/config.md; the two are kept 1:1. Unknown keys and wrong types are
user errors (:class:`~peftlab.errors.UserError`), reported on one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from peftlab.errors import UserError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name: str = "smollm2-135m"
    """Bundled model name, a local HF model directory, a local ``.gguf`` file, or a hub id."""
    max_length: int = Field(320, gt=8)
    """Longest training sequence (prompt + response) in tokens; longer records are dropped."""
    prompt_format: Literal["raw", "chat", "auto"] = "auto"
    """How prompts are rendered (training, ICL/RAG demonstrations, generation alike): ``raw``, the task's
    own text continued as is; ``chat``, the model's chat template (the task's request as a user turn, the
    answer as the assistant turn); ``auto``, chat when the tokenizer has a chat template (instruct models),
    else raw."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where training and generation run: ``auto`` is the GPU when CUDA is available, else the CPU. Pick
    the GPU with ``CUDA_VISIBLE_DEVICES``."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights' dtype (and the Trainer's mixed precision): ``auto`` is bfloat16 on a GPU that supports it,
    float16 on one that does not, float32 on a CPU (half-precision matmuls are very slow on CPUs)."""
    adapter: str | None = None
    """A trained adapter directory to generate with instead of training one: a peftlab run's ``adapter/``
    or any PEFT adapter (LoRA, IA3, prompt tuning, ...) saved by another tool. ``method.name`` must be a
    training method of the same kind; ``peftlab run`` then skips training."""


class DataConfig(_Section):
    """``data``: where the records come from and how many are used. Besides these fields, ``data`` holds the
    options of the tasks whose data a run uses (``task`` and ``data.train_task``): each task declares its own
    (``Task.Options`` in ``peftlab/tasks/<name>/``; docs/config.md lists them by task), e.g. the test set of
    ``repair``. They are checked against those tasks when the run's config is resolved
    (:func:`peftlab.tasks.resolve_task_options`)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    dir: str | None = None
    """Directory holding ``train.jsonl``, ``validation.jsonl`` and ``test.jsonl`` (tasks that read their
    data from files, such as ``codegen``; tasks whose problems ship with a package ignore it)."""
    train_size: int | None = Field(None, ge=1)
    """Use only the first N records of ``train.jsonl`` (training then drops those longer than
    ``model.max_length``; ICL and RAG draw their shots from the same N records)."""
    validation_size: int | None = Field(64, ge=1)
    test_size: int | None = Field(None, ge=1)
    source: str | None = None
    """Read the splits with 🤗 ``datasets`` instead of from ``data.dir``: a local ``.json``/``.jsonl``/
    ``.parquet``/``.csv`` file (one split, ``train``), a directory of such files named after their splits,
    or a hub id. Needs ``peftlab[datasets]``. See :mod:`peftlab.data.hub`."""
    loader: str | None = None
    """One of the studies' datasets by name (``conala``, ``codealpaca-python``, ``apps``, ``methods2test``,
    ``humaneval-x``; each declared by the task it feeds, ``Task.loaders``): its schema converted to that task's
    records. ``data.source`` defaults to its hub id, or names a local copy in that schema."""
    subset: str | None = None
    """The hub dataset's configuration (``datasets``' ``name``), for a hub id only: e.g. ``fm+t`` of
    Methods2Test or ``python`` of HumanEval-X (a named loader's default where it has one)."""
    columns: dict[str, str] = Field(default_factory=dict)
    """The source column for each record key the task reads, e.g. ``{instruction: prompt, reference: code}``."""
    splits: dict[Literal["train", "validation", "test"], str] = Field(default_factory=dict)
    """The source split for each of train/validation/test (default: the same name), in ``datasets``'
    split syntax: ``{test: "train[90%:]"}`` takes the last tenth of a one-split source."""
    train_task: str | None = None
    """Train, and draw ICL/RAG demonstrations, on this task's training split instead of ``task``'s (whose
    test split is still what is scored): e.g. ``task=humaneval data.train_task=codegen`` fine-tunes on
    mined functions and scores on HumanEval. ``data.dir`` and the sizes above then apply to it."""


class MethodConfig(_Section):
    """``method``: the adaptation method's name and its options. Each method declares the options it takes
    (``Options`` of its class in ``peftlab/methods/``; docs/methods.md lists them by method), e.g.
    ``method.r`` of ``lora``; they are checked against the method when the run's config is resolved
    (:func:`peftlab.methods.resolve_method_options`), and an option the method does not take is a one-line
    error naming the methods that do."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    name: str = "lora"
    """Adaptation method: a training method or a prompting baseline (see ``peftlab.methods``)."""

    def options(self) -> dict[str, Any]:
        """The method's options as given (everything in the section but ``name``)."""
        return dict(self.__pydantic_extra__ or {})


class OwnedOptions(BaseModel):
    """Base of the options a method or a task declares for itself (``Method.Options``, ``Task.Options``):
    typed fields with defaults and docstrings; anything else is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Before options moved to their owners (issue 26), every ``method`` and ``data`` section carried all of these
# at these defaults, and every resolved ``config.yaml`` written then still does. An option its owner does not
# take is dropped when it holds this old default (it never meant anything there), so those files keep loading.
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {
    "method": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": None, "num_virtual_tokens": 20,
               "prompt_init": "random",
               "prompt_init_text": "Write a Python function that does what the instruction says.",
               "prefix_projection": False, "compute_dtype": "float32", "shots": 3, "retriever": "bm25",
               "embedding_model": None},
    "data": {"project": None, "project_seed": 0, "context_chars": 1024, "bugs": None,
             "show_failing_test": False, "bugsinpy": False},
}


# Options added since run directories and study cells started being identified by their resolved config. At
# these defaults they are left out of a cell's hash and count as no difference against a config written before
# them, so existing studies keep their cells and existing runs resume.
ADDED_DEFAULTS: dict[str, dict[str, Any]] = {
    "generation": {"engine": "exact", "slots": 64, "lookup_tokens": 8, "cpu_matmul": "onednn"},
}


def without_added_defaults(dumped: dict) -> dict:
    """A dumped config without the :data:`ADDED_DEFAULTS` options that hold their default."""
    trimmed = dict(dumped)
    for section, defaults in ADDED_DEFAULTS.items():
        if isinstance(trimmed.get(section), dict):
            trimmed[section] = {key: value for key, value in trimmed[section].items()
                                if not (key in defaults and defaults[key] == value)}
    return trimmed


def check_owned_options(section: str, given: dict[str, Any], options: type[OwnedOptions], owner: str,
                        owners_of) -> BaseModel:
    """Validate the options ``given`` in ``section`` against ``options`` (the model ``owner`` declares).

    ``owners_of(key)`` names who else declares ``key``, for the error message. Keys holding their
    :data:`LEGACY_DEFAULTS` value are dropped when ``options`` lacks them.

    Raises:
        UserError: one line: an option ``owner`` does not take (naming those that do), an unknown key, or
            a bad value.
    """
    kept = refuse_unowned(section, given, set(options.model_fields), owner, owners_of)
    try:
        return options.model_validate(kept)
    except ValidationError as error:
        raise UserError(_format_validation_error(error, f"{section}.")) from None


def refuse_unowned(section: str, given: dict[str, Any], declared: set[str], owner: str, owners_of) -> dict[str, Any]:
    """The options of ``given`` that ``owner`` declares (``declared``); any other is an error, unless it holds
    its :data:`LEGACY_DEFAULTS` value (then it is dropped).

    Raises:
        UserError: one line: an option ``owner`` does not take, naming those that do (``owners_of(key)``), or
            an unknown key.
    """
    kept = {}
    for key, value in given.items():
        if key in declared:
            kept[key] = value
        elif key in LEGACY_DEFAULTS.get(section, {}) and LEGACY_DEFAULTS[section][key] == value:
            continue
        elif owners := owners_of(key):
            raise UserError(f"{section}.{key}={value!r} does not apply to {owner}; it applies to {', '.join(owners)}")
        else:
            raise UserError(f"unknown config key '{section}.{key}'")
    return kept


class TrainConfig(_Section):
    epochs: float = Field(1.0, gt=0)
    max_steps: int = -1
    """Stop after this many optimiser steps (-1: run ``epochs``)."""
    learning_rate: float | None = Field(None, gt=0)
    """``None`` takes the method's default learning rate."""
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    eval_every: float = Field(0.2, gt=0, le=1)
    """Evaluate (and checkpoint) every this fraction of the training run."""
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    gradient_checkpointing: bool | None = None
    """Memory-saving training: activations recomputed in the backward pass, and freed large blocks given
    back to the system at once (glibc's malloc otherwise keeps them). Less memory, slower steps. ``None``
    takes the method's default: on for QLoRA (whose point is memory, as in Dettmers et al.), off otherwise."""
    packing: bool = True
    """Padding-free batches: each batch's examples packed into rows of at most ``model.max_length`` tokens
    (attention kept within each example), trained one row at a time, logits computed only where a token
    carries loss. Same loss as padded batches, less time and memory. Prompt and prefix tuning train each
    example of a padded batch alone instead (they prepend virtual tokens)."""
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(default_factory=list)
    """Experiment trackers the Hugging Face ``Trainer`` logs to (install ``peftlab[tensorboard]`` or
    ``peftlab[mlflow]``). The loss history is written to ``loss_history.jsonl`` either way."""
    seed: int = 42


class GenerationConfig(_Section):
    k: int = Field(1, ge=1)
    """Candidates returned per problem."""
    num_beams: int = Field(1, ge=1)
    do_sample: bool = False
    temperature: float = Field(0.8, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(8, ge=1)
    """Prompts per batch where whole batches are decoded (beams, prompt and prefix tuning,
    ``drop_finished: false``)."""
    slots: int = Field(64, ge=1)
    """Sequences decoded together by continuous batching (with ``k`` samples, ``slots // k`` prompts at a time,
    at least one). A decoding step reads every weight whatever its rows, so on a CPU a row costs less the more
    rows share the step (Qwen2.5-Coder-0.5B, 2 cores, oneDNN: ~7 ms at 48 rows, ~11 at 16); each slot holds one
    sequence's key/value cache."""
    lookup_tokens: int = Field(8, ge=0)
    """Prompt-lookup decoding in continuous batching: each sequence also feeds up to this many tokens guessed
    from its own earlier tokens, and keeps those the model itself chooses (so the same candidates); how many
    are fed is priced each step from the run's rate of taken guesses and the rows running
    (peftlab/stages/continuous.py, peftlab/stages/lookup.py). 0: off."""
    sort_by_length: bool = True
    """Batch prompts longest first (less padding computed) instead of in file order."""
    share_prefill: bool = True
    """With beams or several samples, read each prompt once and repeat its cache, instead of once per copy."""
    drop_finished: bool = True
    """Greedy decoding and sampling by continuous batching: a sequence that has finished (EOS, a stop string,
    ``max_new_tokens``) leaves at once and waiting prompts take the free places, ``slots`` sequences at a time
    (peftlab/stages/continuous.py). Same greedy candidates as whole batches; less
    time when answer lengths differ. False: each batch runs until its longest sequence ends."""
    drop_finished_every: int = Field(32, ge=1)
    """Where continuous batching does not apply (a model whose generation config asks for logits processors
    such as a repetition penalty), greedy batches drop finished rows every this many new tokens."""
    stop: list[str] | None = None
    """Stop strings; ``None`` takes the task's own (its prompt format's markers), ``[]`` none at all."""
    seed: int = 42
    engine: Literal["exact", "int8"] = "exact"
    """``exact``: the model as trained, in float32. ``int8``: every linear layer (adapter included) quantised to
    int8 weights with dynamically quantised activations for generation (``torch.ao`` dynamic quantisation,
    CPU only): 2–4× faster matrix products on this CPU, candidates that can differ from the exact engine's —
    the report compares the two where a study runs both (docs/report.md, "Engines")."""
    cpu_matmul: Literal["onednn", "onednn-plain", "torch"] = "onednn"
    """How float32 linear layers multiply on a CPU while generating. ``onednn``: oneDNN's inner product, which
    ships in torch, from copies of the weights in oneDNN's blocked layout made for the generation (1.1×
    faster than torch's for a prompt's prefill, 1.6–2.2× for a decoding step's few rows, and the copies'
    products 1.2–2× more at 2–48 rows, here: bench/onednn_layout.py; the copies hold the model's float32
    weights a second time while generating). ``onednn-plain``: oneDNN from the weights as they are, no
    copies. ``torch``: torch's own ``linear`` (MKL's sgemm on x86), generation's path before. All are float32
    and differ only in the order they add products, as batch sizes already do: greedy candidates stay the
    same (peftlab/models/onednn.py). Training always uses torch's."""


class ExecutionConfig(_Section):
    workers: int = Field(2, ge=1)
    """Sandboxed programs run in parallel (docs/sandbox.md)."""
    timeout: float = Field(3.0, gt=0)
    """Wall-clock seconds per program (CPU time is capped to the same)."""


class Config(_Section):
    """A whole run: what to adapt, on which data, how to train, generate and evaluate."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    task: str = "codegen"
    """Task name (see ``peftlab.tasks``)."""
    output_dir: str = "runs/latest"
    """Run directory: config, versions, checkpoints, predictions and metrics are written here."""


def _format_validation_error(error: ValidationError, prefix: str = "") -> str:
    first = error.errors()[0]
    key = prefix + ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown config key '{key}'"
    return f"bad value for '{key}': {first['msg']} (got {first.get('input')!r})"


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UserError(f"override '{text}' is not of the form key=value")
    key, raw = text.split("=", 1)
    if not key:
        raise UserError(f"override '{text}' has an empty key")
    # YAML parsing turns "3e-4" into a float, "[q_proj, v_proj]" into a list, "null" into None.
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def _set_nested(tree: dict, path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"config key '{'.'.join(path)}' goes through non-section '{part}'")
        node = child
    node[path[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Build a :class:`Config` from an optional YAML file and ``key=value`` overrides (applied in order).

    Raises:
        UserError: the file is missing or not a YAML mapping, an override is malformed, a key is unknown,
            or a value has the wrong type.
    """
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"config file {path} is not UTF-8 text") from None
        except yaml.YAMLError as error:
            raise UserError(f"config file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise UserError(f"config file {path} must hold a mapping of sections, not {type(loaded).__name__}")
        tree = loaded or {}
    for text in overrides or []:
        key_path, value = _parse_override(text)
        _set_nested(tree, key_path, value)
    try:
        return Config.model_validate(tree)
    except ValidationError as error:
        raise UserError(_format_validation_error(error)) from None


def dump_config(config: Config) -> str:
    """The resolved config as YAML, loadable again with :func:`load_config`."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
