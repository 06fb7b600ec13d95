"""A study's cells on engines people already run: a Ray cluster (one task per training group) or a Slurm
job array (through submitit, one job per training group).

Both run the same unit as ``--shard`` does, :func:`peftlab.study.runner.run_group`: a cell that trains an
adapter and then the cells that borrow it, on one machine, each cell in its own process and directory. So
they share every rule of the local runner: a finished cell is never rerun (each group reads ``cell.json``
where it runs), a failed cell is reported with the tail of its log, a cell interrupted by a dead worker
resumes from its checkpoint when it runs again, and a cell's lock (``runner.CELL_LOCK``) keeps two
runners, two executors or a retried job from running one cell at once. The driver (``peftlab study``)
holds the study directory's lock while it waits, then reads every cell's state and writes the report.

Ray and submitit are optional extras (``pip install 'peftlab[ray]'``, ``'peftlab[slurm]'``); the local
runner needs neither.
"""

from __future__ import annotations

import importlib
import socket
from collections import Counter
from pathlib import Path

from rich.console import Console

from peftlab.errors import UserError, first_line
from peftlab.study.runner import cell_state, needs_running, record_lost, report_state, run_group
from peftlab.study.spec import Cell, SlurmSettings, StudySpec, training_groups

EXTRAS = {"ray": "ray", "slurm": "submitit"}
"""``executor.kind`` -> the package it needs (the extra has the kind's name)."""


def _needed(kind: str):
    try:
        return importlib.import_module(EXTRAS[kind])
    except ImportError:
        raise UserError(f"executor '{kind}' needs the {EXTRAS[kind]} package: pip install 'peftlab[{kind}]'") from None


def run_elsewhere(spec: StudySpec, cells: list[Cell], retry_failed: bool, console: Console) -> Counter:
    """Run every training group with a cell that still needs it on ``spec.executor.kind``; return the count
    of cells per status afterwards (read from the cells' own records).

    Raises:
        UserError: the executor's package is missing, or the cluster cannot be reached.
    """
    kind = spec.executor.kind
    module = _needed(kind)
    groups = [group for group in training_groups(cells)
              if any(needs_running(cell_state(Path(cell.config.output_dir)), retry_failed) for cell in group)]
    before = Counter(cell_state(Path(cell.config.output_dir)).get("status", "left") for cell in cells)
    console.print(f"study '{spec.name}': {len(cells)} cells, {before['done']} done, "
                  f"{sum(len(group) for group in groups)} in {len(groups)} training groups to run on {kind}")
    if groups:
        (_on_ray if kind == "ray" else _on_slurm)(module, spec, groups, retry_failed, console)
    return Counter(cell_state(Path(cell.config.output_dir)).get("status", "left") for cell in cells)


def _finished_group(console: Console, spec: StudySpec, group: list[Cell], states: list[dict] | None,
                    why: str = "") -> None:
    """Report a group's cells; when its runner died without an answer (``states`` None), each cell left
    unfinished is recorded failed with ``why``, so a re-run (``--retry-failed``) resumes it."""
    for cell in group:
        state = states[group.index(cell)] if states else record_lost(cell, spec, why)
        report_state(console, cell, state)


def _check_reachable(address: str | None) -> None:
    """A cluster named ``host:port`` (or ``ray://host:port``) must answer a TCP connection within 5 s: Ray
    itself retries an unreachable address for minutes before it gives up."""
    host, _, port = (address or "").split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # None, auto, or a form Ray judges itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise UserError(f"cannot reach the Ray cluster at {address}: {error.strerror or error}") from None


def _on_ray(ray, spec: StudySpec, groups: list[list[Cell]], retry_failed: bool, console: Console) -> None:
    settings = spec.executor.ray
    started_here = not ray.is_initialized()
    if started_here:
        _check_reachable(settings.address)
        try:
            ray.init(address=settings.address, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", configure_logging=False)
        except Exception as error:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError or ValueError here
            where = settings.address or "this machine"
            raise UserError(f"cannot start or reach the Ray cluster at {where}: {first_line(error)}") from None
    options = {"num_cpus": settings.num_cpus, "num_gpus": settings.num_gpus, "max_retries": settings.max_retries}
    if settings.memory_gb:
        options["memory"] = int(settings.memory_gb * 2**30)
    task = ray.remote(**options)(run_group)
    pending = {task.remote(spec, group, retry_failed): group for group in groups}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(ready[0])
            try:
                _finished_group(console, spec, group, ray.get(ready[0]))
            except ray.exceptions.RayError as error:  # its worker died more often than max_retries allows
                _finished_group(console, spec, group, None, f"its Ray worker died: {first_line(error)}")
    finally:
        if started_here:
            ray.shutdown()


def slurm_parameters(settings: SlurmSettings, name: str) -> dict:
    """submitit's ``update_parameters`` for one job per training group (``slurm_`` keys reach only Slurm)."""
    parameters = {"name": f"peftlab-{name}", "timeout_min": settings.time_min, "cpus_per_task": settings.cpus_per_task,
                  "slurm_array_parallelism": settings.array_parallelism}
    if settings.gpus_per_node:
        parameters["gpus_per_node"] = settings.gpus_per_node
    if settings.mem_gb:
        parameters["mem_gb"] = settings.mem_gb
    for key in ("partition", "account"):
        if getattr(settings, key):
            parameters[f"slurm_{key}"] = getattr(settings, key)
    if settings.additional:
        parameters["slurm_additional_parameters"] = dict(settings.additional)
    return parameters


def _on_slurm(submitit, spec: StudySpec, groups: list[list[Cell]], retry_failed: bool, console: Console) -> None:
    settings = spec.executor.slurm
    folder = Path(spec.output_dir) / "slurm"
    try:
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster=settings.cluster)
        executor.update_parameters(**slurm_parameters(settings, spec.name))
        jobs = executor.map_array(run_group, [spec] * len(groups), groups, [retry_failed] * len(groups))
    except (OSError, RuntimeError, ValueError) as error:  # no sbatch here, a refused submission
        raise UserError(f"cannot submit the study to Slurm ({settings.cluster}): {first_line(error)}") from None
    console.print(f"submitted {len(jobs)} jobs (array {str(jobs[0].job_id).split('_')[0]}, at most "
                  f"{settings.array_parallelism} at once); their logs: {folder}")
    if not settings.wait:
        console.print("not waiting (executor.slurm.wait: false): run the same `peftlab study` again to collect the "
                      "finished cells and write the report (cells still running are skipped then, never run twice)")
        return
    for job, group in zip(jobs, groups):
        try:
            _finished_group(console, spec, group, job.result())
        except Exception as error:  # noqa: BLE001 - submitit's UncompletedJobError/FailedJobError, a cancelled job
            _finished_group(console, spec, group, None, f"its Slurm job {job.job_id} ended early: {first_line(error)} "
                            f"(log: {job.paths.stderr})")
