"""Study files: a matrix of models x tasks x seeds x methods, plus sweeps, expanded into cells.

Each cell is one fully resolved :class:`~peftlab.config.Config`, run in ``<output_dir>/cells/<hash>``
where the hash is taken over the resolved config (without its ``output_dir``): the same cell always lands
in the same directory, whichever study file or order produced it. A bad study file is rejected here,
before anything is trained.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from peftlab.config import Config, load_config, without_added_defaults
from peftlab.errors import UserError
from peftlab.metrics.specs import spec as metric_spec
from peftlab.methods import METHODS, get_method, resolve_method_options
from peftlab.report.declared import Hypothesis
from peftlab.tasks import resolve_task_options, task_class

PRESETS = {"default": "study-default.yaml", "separation": "study-separation.yaml", "full": "study-full.yaml",
           "testgen": "study-testgen.yaml", "repair": "study-repair.yaml",
           "decide-codegen": "study-decide-codegen.yaml", "decide-repair": "study-decide-repair.yaml",
           "decide-testgen": "study-decide-testgen.yaml", "java-repair": "study-java-repair.yaml",
           "java-testgen": "study-java-testgen.yaml"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MethodEntry(_Strict):
    name: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Config overrides for this method only, as ``{"method.shots": 5}`` or nested sections."""


class TaskEntry(_Strict):
    name: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Config overrides for this task's cells only, e.g. ``{"data.test_size": 164, "data.train_task":
    "codegen"}``."""


class Sweep(_Strict):
    key: str
    """Any config key, e.g. ``method.r``, ``method.shots``, ``data.train_size``."""
    values: list[Any] = Field(min_length=1)
    methods: list[str] | None = None
    """Methods the sweep applies to (default: every method of the study)."""


class RaySettings(_Strict):
    address: str | None = None
    """None: a Ray instance on this machine, started for the study; ``auto`` or ``ray://host:10001``: a cluster."""
    num_cpus: float = Field(1, gt=0)
    num_gpus: float = Field(0, ge=0)
    memory_gb: float | None = Field(None, gt=0)
    max_retries: int = Field(2, ge=0)
    """Times Ray reruns a group whose worker died (the rerun resumes the cell where it stopped)."""


class SlurmSettings(_Strict):
    partition: str | None = None
    account: str | None = None
    time_min: int = Field(240, gt=0)
    """Per job: one training group (a training cell and the cells that borrow its adapter)."""
    cpus_per_task: int = Field(4, gt=0)
    gpus_per_node: int = Field(0, ge=0)
    mem_gb: float | None = Field(None, gt=0)
    array_parallelism: int = Field(16, gt=0)
    """At most this many jobs of the array run at once (``--array=0-N%P``)."""
    additional: dict[str, Any] = Field(default_factory=dict)
    """Further ``#SBATCH`` options, e.g. ``{constraint: a100, qos: high}``."""
    wait: bool = True
    """Wait for the jobs and write the report; false: submit and return (a later ``peftlab study`` collects)."""
    cluster: Literal["slurm", "local", "debug"] = "slurm"
    """submitit's backend: ``local`` and ``debug`` run the jobs on this machine (for trying a study file)."""


class ExecutorSettings(_Strict):
    kind: Literal["local", "ray", "slurm"] = "local"
    ray: RaySettings = Field(default_factory=RaySettings)
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)


class StudySpec(_Strict):
    name: str = "study"
    output_dir: str = "runs/study"
    base: dict[str, Any] = Field(default_factory=dict)
    """Config (nested sections or dotted keys) shared by every cell."""
    models: list[str] = Field(default_factory=lambda: ["smollm2-135m"])
    tasks: list[TaskEntry] = Field(default_factory=lambda: [TaskEntry(name="codegen")])
    seeds: list[int] = Field(default_factory=lambda: [42])
    methods: list[MethodEntry] = Field(default_factory=list)
    sweeps: list[Sweep] = Field(default_factory=list)
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    """Confirmatory questions the report answers with a verdict (docs/study.md, "Hypotheses")."""
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    """Where the cells run: here, on a Ray cluster or as a Slurm job array (docs/study.md, "Executors")."""

    @field_validator("methods", "tasks", mode="before")
    @classmethod
    def _names_to_entries(cls, value):
        return [{"name": item} if isinstance(item, str) else item for item in value or []]


@dataclass
class Cell:
    config: Config
    labels: dict[str, Any]
    key: str = field(init=False)

    def __post_init__(self):
        self.key = config_hash(self.config)

    @property
    def title(self) -> str:
        sweep = "".join(f" {k}={v}" for k, v in self.labels["sweep"].items())
        return f"{self.labels['method']}{sweep} ({self.labels['model']}, {self.labels['task']}, seed {self.labels['seed']})"


def config_hash(config: Config) -> str:
    # options added later, at their defaults, leave the hash of every existing cell as it was
    resolved = without_added_defaults(config.model_dump(mode="json", exclude={"output_dir"}))
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:12]


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"train": {"epochs": 2}, "method.r": 8}`` -> ``["train.epochs=2", "method.r=8"]`` (values as JSON,
    which the config loader parses back as YAML)."""
    items = []
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(_flatten(value, dotted + "."))
        else:
            items.append(f"{dotted}={json.dumps(value)}")
    return items


def load_study(path: str | Path | None, preset: str | None = None) -> StudySpec:
    """Read a study file, or a built-in preset when ``path`` is None.

    Raises:
        UserError: missing/invalid file, unknown preset, unknown study key.
    """
    if path is None:
        preset = preset or "default"
        if preset not in PRESETS:
            raise UserError(f"unknown preset '{preset}'; known: {', '.join(PRESETS)}")
        text, source = (files("peftlab.study") / "presets" / PRESETS[preset]).read_text(), f"preset '{preset}'"
    else:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"study file not found: {path}")
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError:
            raise UserError(f"study file {path} is not UTF-8 text") from None
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise UserError(f"study {source} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise UserError(f"study {source} must be a mapping")
    try:
        return StudySpec.model_validate(tree)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise UserError(f"study {source}: unknown key '{where}'") from None
        raise UserError(f"study {source}: bad value for '{where}': {first['msg']}") from None


def _cell(spec: StudySpec, model: str, task: TaskEntry, seed: int, method: MethodEntry, sweep: dict,
          data_root: str | None):
    overrides = _flatten(spec.base)
    overrides += [f"model.name={model}", f"task={task.name}", f"train.seed={seed}", f"generation.seed={seed}"]
    overrides += [*_flatten(task.overrides), f"method.name={method.name}", *_flatten(method.overrides)]
    overrides += [f"{key}={json.dumps(value)}" for key, value in sweep.items()]
    where = f"method '{method.name}'" + "".join(f", sweep {k}={v}" for k, v in sweep.items())
    try:
        config = load_config(None, overrides)
        resolve_method_options(config)
        resolve_task_options(config)
    except UserError as error:
        raise UserError(f"study cell {where}: {error}") from None
    if data_root and config.data.dir is None:  # shared by the cells that read the same task's data
        config.data.dir = f"{data_root}/{config.data.train_task or config.task}"
    labels = {"model": model, "task": task.name, "seed": seed, "method": method.name, "sweep": dict(sweep)}
    return Cell(config, labels)


def training_key(config: Config) -> str | None:
    """What decides a trained adapter: model, training data, method and training settings (not the task
    scored, its test split, generation or execution). None for a method that does not train, and for one
    that saves a whole model (full fine-tuning): ``model.adapter`` can only lend an adapter, so each of
    its cells trains its own model."""
    method = get_method(config.method)
    if not method.trains or method.replaces_base_model or config.model.adapter:
        return None
    resolved = config.model_dump(mode="json", include={"model", "data", "method", "train"})
    resolved["data"].pop("test_size")
    # Of the tasks' data options, the training task's decide the training data, except those that choose only
    # its test set (repair's: which bugs are scored); the scored task's own do not change training.
    trained_on = task_class(config.data.train_task or config.task)
    for option in config.data.__pydantic_extra__ or {}:
        if option not in trained_on.Options.model_fields or option in trained_on.test_set_options:
            resolved["data"].pop(option)
    resolved["train"].pop("report_to")  # logging elsewhere trains the same adapter
    resolved["data"]["train_task"] = config.data.train_task or config.task
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:12]


def _share_training(cells: list[Cell]) -> None:
    """A cell that would train the very adapter an earlier cell trains (same model, data, method and
    training settings; another task scored) generates with that cell's adapter instead of training its
    own: ``model.adapter`` points there and ``labels["adapter_from"]`` names the cell."""
    trained_by: dict[str, Cell] = {}
    for cell in cells:
        key = training_key(cell.config)
        if key is None:
            continue
        owner = trained_by.setdefault(key, cell)
        if owner is not cell:
            cell.config.model.adapter = str(Path(owner.config.output_dir) / "adapter")
            cell.labels["adapter_from"] = owner.key


def _check_hypotheses(spec: StudySpec) -> None:
    """Each hypothesis names methods, a task and a model of this study (rows are matched when reporting)."""
    methods, tasks = {method.name for method in spec.methods}, {task.name for task in spec.tasks}
    for number, hypothesis in enumerate(spec.hypotheses, start=1):
        where = f"hypothesis {number} ({hypothesis.title})"
        unknown = [name for name in hypothesis.method_names if name not in methods]
        if unknown:
            raise UserError(f"{where} names methods not in the study: {', '.join(unknown)}")
        if hypothesis.task is not None and hypothesis.task not in tasks:
            raise UserError(f"{where} names task '{hypothesis.task}', not in the study ({', '.join(sorted(tasks))})")
        if hypothesis.model is not None and hypothesis.model not in spec.models:
            raise UserError(f"{where} names model '{hypothesis.model}', not in the study")
        scored_by = [hypothesis.task] if hypothesis.task is not None else sorted(tasks)
        if not any(metric_spec(hypothesis.metric, task_class(task).metric_families) for task in scored_by):
            raise UserError(f"{where} tests metric '{hypothesis.metric}', which task {' or '.join(scored_by)} does "
                            "not score (e.g. pass@1, plausible@1, test_pass_best; docs/metrics.md)")


def expand(spec: StudySpec, default_data_root: str | None = None) -> list[Cell]:
    """All cells of the study, deduplicated by config hash, with ``output_dir`` set to the cell directory.

    Raises:
        UserError: unknown method, unknown or ill-typed key (in ``base``, a method's overrides or a sweep),
            a sweep or a hypothesis naming a method the study lacks, or an empty matrix.
    """
    known = set(METHODS)
    for method in spec.methods:
        if method.name not in known:
            raise UserError(f"unknown method '{method.name}' in study; known: {', '.join(sorted(known))}")
    study_methods = {method.name for method in spec.methods}
    for sweep in spec.sweeps:
        missing = set(sweep.methods or []) - study_methods
        if missing:
            raise UserError(f"sweep over '{sweep.key}' names methods not in the study: {', '.join(sorted(missing))}")
    _check_hypotheses(spec)
    base_keys = {item.split("=", 1)[0] for item in _flatten(spec.base)}
    data_root = None if "data.dir" in base_keys else default_data_root
    cells: dict[str, Cell] = {}
    for model in spec.models:
        for task in spec.tasks:
            for seed in spec.seeds:
                for method in spec.methods:
                    variants = [{}] + [
                        {sweep.key: value}
                        for sweep in spec.sweeps
                        if sweep.methods is None or method.name in sweep.methods
                        for value in sweep.values
                    ]
                    for variant in variants:
                        cell = _cell(spec, model, task, seed, method, variant, data_root)
                        cells.setdefault(cell.key, cell)
    if not cells:
        raise UserError("the study's matrix is empty: list at least one model, task, seed and method")
    for cell in cells.values():
        cell.config.output_dir = str(Path(spec.output_dir) / "cells" / cell.key)
    ordered = list(cells.values())
    _share_training(ordered)
    for cell in ordered:  # model.adapter changed the config of the cells that borrow one
        cell.key = config_hash(cell.config)
        cell.config.output_dir = str(Path(spec.output_dir) / "cells" / cell.key)
    return ordered


def shard_cells(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """The cells of shard ``index`` (1-based) of ``count``, for job arrays (``--shard i/n``): whole training
    groups (a cell that trains an adapter together with the cells that borrow it) dealt round-robin in
    expansion order. The deal depends only on the study, so every shard computes the same partition
    without talking to the others, and no shard ever waits for an adapter another shard trains."""
    return [cell for number, group in enumerate(training_groups(cells)) if number % count == index - 1
            for cell in group]


def training_groups(cells: list[Cell]) -> list[list[Cell]]:
    """The cells in training groups, in expansion order: a cell that trains an adapter, then the cells that
    borrow it (each other cell alone). A group runs in one place, owner first, so no cell waits on another
    place for an adapter."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.labels.get("adapter_from") or cell.key, []).append(cell)
    return list(groups.values())
