"""The Python API: what the ``peftlab`` commands do, callable from a script or a notebook.

::

    from peftlab import api

    config = api.config(method="lora", task="mbpp", output_dir="runs/mbpp-lora",
                        overrides=["data.train_task=codegen", "data.test_size=40"])
    metrics = api.run(config)                  # train (if the method trains), generate, evaluate; resumable
    metrics = api.stage(config, "evaluate")    # one stage, always redone (as `peftlab evaluate`)
    cells = api.study("my-study.yaml")         # or api.study(preset="default"); finished cells skipped
    files = api.report("runs/")                # tables, figures, pairs, report.html

Each function does exactly what its command does — same checks, same run directory layout, the same
``config.yaml``/``<stage>.run.json``/``metrics.json`` records — and raises
:class:`~peftlab.errors.UserError` where the command would print its one-line error. Importing this
module is cheap: torch is imported only when a stage runs.
"""

from __future__ import annotations

from pathlib import Path

from peftlab.config import Config, load_config
from peftlab.errors import UserError
from peftlab.methods import get_training_method, resolve_method_options
from peftlab.tasks import check_loader, resolve_task_options

STAGES = ("train", "generate", "evaluate")


def check(config: Config, method: str | None = "any") -> Config:
    """Check the config's method (``"any"``, ``"training"``, or None for a command that uses none) and task
    against the registries, before torch is imported. Returns ``config``.

    Raises:
        UserError: an unknown method, task or data loader, or a method or task option its owner does not
            take.
    """
    if method == "training":
        get_training_method(config.method)
    if method is not None:
        resolve_method_options(config)
    resolve_task_options(config)
    check_loader(config)
    return config


def config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), *, model: str | None = None,
           method: str | None = None, task: str | None = None, output_dir: str | None = None,
           check_method: str | None = "any") -> Config:
    """A checked :class:`~peftlab.config.Config` from an optional YAML file, ``key=value`` overrides and the
    commands' shortcuts (``--model``, ``--method``, ``--task``, ``-o``), applied in that order; the method is
    checked as :func:`check` says (the CLI builds every command's config here)."""
    shortcuts = {"model.name": model, "method.name": method, "task": task, "output_dir": output_dir}
    extra = [f"{key}={value}" for key, value in shortcuts.items() if value is not None]
    return check(load_config(path, [*overrides, *extra]), check_method)


def run(config: Config, announce=None) -> dict:
    """``peftlab run``: every stage the method needs, finished ones skipped; the run's metrics.
    ``announce`` (e.g. ``print``) is called with ``"<method>: <stage>"`` as each stage starts."""
    from peftlab.stages.pipeline import run_stages

    return run_stages(check(config), announce=announce)


def stage(config: Config, name: str, predictions: str | Path | None = None, partial: bool = False) -> dict:
    """``peftlab train|generate|evaluate``: (re)do one stage; later stages are invalidated. ``predictions``
    and ``partial`` are evaluate's options (a samples file in any form it reads)."""
    if name not in STAGES:
        raise UserError(f"unknown stage '{name}'; known: {', '.join(STAGES)}")
    from peftlab.stages.pipeline import run_command

    check(config, "training" if name == "train" else "any")
    options = {"predictions": Path(predictions) if predictions else None, "partial": partial} if name == "evaluate" else {}
    return run_command(config, name, **options)


def study(path: str | Path | None = None, preset: str = "default", output_dir: str | None = None,
          retry_failed: bool = False, report: bool = True, devices: str | None = None) -> list[dict]:
    """``peftlab study``: run the matrix (progress on the console), then return one dict per cell:
    ``labels``, ``status``, ``dir`` and ``metrics`` (empty for a cell that did not finish). ``devices`` is
    ``--devices`` (``"auto"`` or ``"0,1"``)."""
    from peftlab.runs.directory import read_metrics
    from peftlab.study.command import load_cells, parse_devices, run_study_command
    from peftlab.study.runner import cell_state

    study_file = Path(path) if path is not None else None
    run_study_command(study_file, preset, output_dir, retry_failed, report, parse_devices(devices))
    _, cells = load_cells(study_file, preset, output_dir)
    rows = []
    for cell in cells:
        directory = Path(cell.config.output_dir)
        status = cell_state(directory).get("status", "left")
        rows.append({"labels": cell.labels, "status": status, "dir": directory,
                     "metrics": read_metrics(directory) if status == "done" else {}})
    return rows


def report(runs_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """``peftlab report``: rebuild the report from run directories; ``{relative path: file}`` written."""
    from peftlab.report import build_report

    return build_report(runs_dir, out_dir)
