"""Find and load finished runs, and group them into the report's tables.

Two layouts are read:

- a **study directory** (``STUDY_DIR/cells/<hash>/`` with ``cell.json``): labels come from ``cell.json``;
  only cells with ``"status": "done"`` are reported, the others are listed as skipped;
- a **plain directory of run directories** (any directory below ``RUNS_DIR`` holding a ``config.yaml``,
  or ``RUNS_DIR`` itself): labels come from ``config.yaml`` (``model.name``, ``method.name``, ``task``,
  ``train.seed``); config keys that differ between runs of the same model, method and task become the
  run's sweep labels, so two LoRA runs with different ranks stay two rows.

A run is finished when it has ``metrics.json`` and ``scored.jsonl``. Runs with the same model, method,
task, dataset and sweep but different seeds form one table :class:`Row`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from peftlab.errors import UserError
from peftlab.tasks import task_class

MAX_DEPTH = 6
"""How deep below ``RUNS_DIR`` plain run directories are looked for."""
NOT_SWEPT = {"output_dir", "model.name", "method.name", "task", "train.seed"}
"""Config keys that never count as sweep labels of plain runs (they label the row, or are per-run)."""


@dataclass
class Run:
    """One finished run: its labels, ``metrics.json`` and the rows of ``scored.jsonl``."""

    path: Path
    name: str
    """The run directory relative to ``RUNS_DIR`` (POSIX), used wherever the report names a run."""
    model: str
    method: str
    task: str
    dataset: str
    seed: object
    sweep: tuple[tuple[str, object], ...]
    metrics: dict
    items: list[dict]
    train_task: str | None = None
    """``data.train_task``: the task whose training data the run was adapted on, where not its own."""
    config: dict = field(default_factory=dict)
    """The run's resolved config, flattened (``method.r``: 16): where an unswept cell sits on a sweep."""


@dataclass
class Skipped:
    """A run or cell that is not reported, and why."""

    name: str
    labels: str
    status: str
    reason: str


def sweep_text(sweep) -> str:
    """``key=value, ...`` of a sweep's ``(key, value)`` pairs."""
    return ", ".join(f"{key}={value}" for key, value in sweep)


def row_label(method: str, sweep) -> str:
    """A row's label in tables and hypotheses: the method, and its sweep in parentheses."""
    return f"{method} ({sweep_text(sweep)})" if sweep else method


@dataclass
class Row:
    """One table row: all seeds of one model × method × sweep on one task and dataset."""

    model: str
    method: str
    sweep: tuple[tuple[str, object], ...]
    runs: list[Run]

    @property
    def sweep_text(self) -> str:
        return sweep_text(self.sweep)

    @property
    def partial_runs(self) -> list[Run]:
        """Runs scored with ``evaluate --partial`` on only some of the test problems."""
        return [run for run in self.runs if run.metrics.get("partial")]

    @property
    def label(self) -> str:
        label = row_label(self.method, self.sweep)
        return label + " [partial]" if self.partial_runs else label

    def metric(self, key: str):
        """Mean of ``metrics.json[key]`` over the row's runs, or ``None`` where no run has it."""
        values = [run.metrics[key] for run in self.runs if isinstance(run.metrics.get(key), (int, float))]
        return sum(values) / len(values) if values else None


@dataclass
class Group:
    """One table: all rows of one task (and dataset, when a task was run on more than one)."""

    task: str
    dataset: str
    title: str
    slug: str
    rows: list[Row] = field(default_factory=list)


@dataclass
class Collection:
    root: Path
    study: str | None
    runs: list[Run]
    skipped: list[Skipped]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"unreadable {path.name}: {error}") from None


def read_scored(path: Path) -> list[dict]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise ValueError(f"scored.jsonl:{number} is malformed JSON") from None
        if not isinstance(item, dict) or not isinstance(item.get("scores"), dict):
            raise ValueError(f"scored.jsonl:{number} has no 'scores' object")
        items.append(item)
    if not items:
        raise ValueError("scored.jsonl is empty")
    return items


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short_model(name: str) -> str:
    """A local model path is shown by its last component; bundled names and hub ids as they are."""
    if name.startswith(("/", ".", "~")) or name.endswith(".gguf"):
        return Path(name).name or name
    return name


def _sortable(value) -> tuple:
    """Sort numbers numerically before anything else, which sorts by text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, json.dumps(value, sort_keys=True, default=str))


def sweep_key(sweep: tuple[tuple[str, object], ...]) -> tuple:
    return tuple((key, _sortable(value)) for key, value in sweep)


def _find_run_dirs(root: Path, exclude: Path | None) -> list[Path]:
    found = []

    def visit(directory: Path, depth: int) -> None:
        if exclude is not None and directory == exclude:
            return
        if (directory / "config.yaml").is_file() or (directory / "cell.json").is_file():
            found.append(directory)
            return
        if depth >= MAX_DEPTH:
            return
        try:
            children = sorted(child for child in directory.iterdir() if child.is_dir())
        except OSError:
            return
        for child in children:
            if not child.name.startswith("."):
                visit(child, depth + 1)

    visit(root, 0)
    return found


def collect_runs(runs_dir: str | Path, exclude: str | Path | None = None) -> Collection:
    """Load every run below ``runs_dir`` (a study directory or a directory of run directories).

    ``exclude`` (the report's own output directory) is not searched. Runs that are unfinished, failed
    or unreadable are returned in ``Collection.skipped`` with the reason.

    Raises:
        UserError: ``runs_dir`` does not exist or is not a directory.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise UserError(f"runs directory not found: {root}")
    root = root.resolve()
    exclude_path = Path(exclude).resolve() if exclude is not None else None
    cells = root / "cells"
    if cells.is_dir() and any((child / "cell.json").is_file() for child in cells.iterdir()):
        directories = sorted(child for child in cells.iterdir() if (child / "cell.json").is_file())
    else:
        directories = _find_run_dirs(root, exclude_path)
    loaded, skipped, study = [], [], None
    for directory in directories:
        name = directory.relative_to(root).as_posix() or "."
        try:
            entry = _load(directory)
        except ValueError as error:
            skipped.append(Skipped(name, "", "unreadable", str(error)))
            continue
        study = study or entry.get("study")
        if entry["status"] != "done" or entry["problem"]:
            status = entry["status"] if entry["status"] != "done" else "incomplete"
            reason = entry["problem"] or entry.get("error") or f"cell status is '{status}'"
            skipped.append(Skipped(name, _label_text(entry), status, reason))
            continue
        loaded.append((directory, name, entry))
    _derive_plain_sweeps([entry for _, _, entry in loaded])
    runs = [
        Run(directory, name, entry["model"], entry["method"], entry["task"], entry["dataset"], entry["seed"],
            entry["sweep"], entry["metrics"], entry["items"], entry["config"].get("data.train_task"), entry["config"])
        for directory, name, entry in loaded
    ]
    return Collection(root, study, runs, skipped)


def _label_text(entry: dict) -> str:
    sweep = ", ".join(f"{key}={value}" for key, value in entry.get("sweep") or ())
    parts = [str(entry.get(key)) for key in ("model", "method", "task") if entry.get(key) is not None]
    return " / ".join(parts) + (f" ({sweep})" if sweep else "") + (
        f" seed {entry['seed']}" if entry.get("seed") is not None else ""
    )


def _dataset(flat: dict) -> str:
    """The dataset a run is scored on: what its task's test-set options name, where one is set (repair's
    bugs: humaneval, quixbugs, a file; ``Task.test_set_options``), else ``data.dir``."""
    try:
        options = task_class(str(flat.get("task") or "?")).test_set_options
    except (UserError, ValueError):  # a task module that is not importable here
        options = ()
    chosen = next((flat[f"data.{option}"] for option in options if flat.get(f"data.{option}")), None)
    return str(chosen or flat.get("data.dir", ""))


def _load(directory: Path) -> dict:
    """Labels, status and (when finished) metrics and items of one run or cell directory."""
    config = {}
    if (directory / "config.yaml").is_file():
        try:
            config = yaml.safe_load((directory / "config.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"unreadable config.yaml: {str(error).splitlines()[0]}") from None
        if not isinstance(config, dict):
            raise ValueError("config.yaml is not a mapping")
    flat = _flatten(config)
    entry = {
        "model": _short_model(str(flat.get("model.name", "?"))),
        "method": str(flat.get("method.name", "?")),
        "task": str(flat.get("task", "?")),
        "seed": flat.get("train.seed"),
        "dataset": _dataset(flat),
        "config": flat,
        "sweep": None,
        "status": "done",
        "problem": "",
    }
    if (directory / "cell.json").is_file():
        cell = _read_json(directory / "cell.json")
        if not isinstance(cell, dict):
            raise ValueError("cell.json is not an object")
        labels = cell.get("labels") or {}
        for key in ("model", "method", "task", "seed", "dataset"):
            if key in labels:
                entry[key] = labels[key] if key == "seed" else str(labels[key])
        sweep = labels.get("sweep") or {}
        entry["sweep"] = tuple(sorted((str(key), value) for key, value in sweep.items()))
        entry["status"] = str(cell.get("status", "unknown"))
        entry["study"] = cell.get("study")
        if cell.get("error"):
            entry["error"] = str(cell["error"]).strip().splitlines()[-1][:300]
    if entry["status"] == "done":
        missing = [name for name in ("metrics.json", "scored.jsonl") if not (directory / name).is_file()]
        if missing:
            entry["problem"] = f"no {' or '.join(missing)}"
            return entry
        entry["metrics"] = _read_json(directory / "metrics.json")
        if not isinstance(entry["metrics"], dict):
            raise ValueError("metrics.json is not an object")
        entry["items"] = read_scored(directory / "scored.jsonl")
    return entry


def _derive_plain_sweeps(entries: list[dict]) -> None:
    """Sweep labels of plain runs: config keys that differ between runs of the same model/method/task."""
    plain = [entry for entry in entries if entry["sweep"] is None]
    by_row: dict[tuple, list[dict]] = {}
    for entry in plain:
        by_row.setdefault((entry["model"], entry["method"], entry["task"], entry["dataset"]), []).append(entry)
    for members in by_row.values():
        keys = sorted({key for entry in members for key in entry["config"]} - NOT_SWEPT)
        varying = [
            key for key in keys
            if len({json.dumps(entry["config"].get(key), sort_keys=True, default=str) for entry in members}) > 1
        ]
        for entry in members:
            entry["sweep"] = tuple((key, entry["config"].get(key)) for key in varying)


def _slug(text: str) -> str:
    slug = "".join(char if char.isalnum() or char in "._-" else "-" for char in text).strip("-")
    return "-".join(part for part in slug.split("-") if part) or "table"


def group_runs(runs: list[Run]) -> list[Group]:
    """Table groups (one per task, split by dataset where a task was run on several), rows sorted by
    model, trainable parameters (prompting baselines first), method and sweep values."""
    datasets: dict[str, set[str]] = {}
    for run in runs:
        datasets.setdefault(run.task, set()).add(run.dataset)
    groups: dict[tuple[str, str], Group] = {}
    rows: dict[tuple, Row] = {}
    for run in sorted(runs, key=lambda run: (run.name,)):
        dataset = run.dataset if len(datasets[run.task]) > 1 else ""
        group = groups.get((run.task, dataset))
        if group is None:
            title = f"{run.task} ({Path(dataset).name or dataset})" if dataset else run.task
            group = groups[(run.task, dataset)] = Group(run.task, dataset, title, _slug(title))
        key = (run.task, dataset, run.model, run.method, sweep_key(run.sweep))
        if key not in rows:
            rows[key] = Row(run.model, run.method, run.sweep, [])
            group.rows.append(rows[key])
        rows[key].runs.append(run)
    ordered = [groups[key] for key in sorted(groups)]
    slugs: dict[str, int] = {}
    for group in ordered:
        count = slugs[group.slug] = slugs.get(group.slug, 0) + 1
        if count > 1:
            group.slug = f"{group.slug}-{count}"
        group.rows.sort(key=lambda row: (row.model, row.metric("trainable_params") or 0, row.method, sweep_key(row.sweep)))
    return ordered
