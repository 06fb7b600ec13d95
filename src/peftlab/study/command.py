"""``peftlab study``: load and check the study, prepare shared data, run the cells, print the table."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from peftlab.errors import UserError
from peftlab.methods import METHODS
from peftlab.metrics.specs import describe
from peftlab.runs.directory import directory_lock, ensure_writable_dir, read_metrics
from peftlab.report.declared import STUDY_FILE
from peftlab.study.memory import estimate_memory, observed_peaks
from peftlab.study.plan import estimate_seconds, finished_costs, plan_hypotheses
from peftlab.study.spec import Cell, expand, load_study, shard_cells
from peftlab.study.executors import run_elsewhere
from peftlab.study.runner import cell_state, run_study

def _prepare_task_data(cells: list[Cell], console: Console) -> None:
    """Build each task's default dataset once, in the directory its cells share (``<study>/data/<task>``)."""
    from peftlab.tasks import get_training_task

    prepared = set()
    for cell in cells:
        task = cell.config.data.train_task or cell.config.task  # the task whose data the cell reads
        key = (task, cell.config.data.dir)
        if key in prepared or cell.config.data.dir is None:
            continue
        prepared.add(key)
        card = get_training_task(cell.config).prepare_data(Path(cell.config.data.dir))
        if card is not None:
            console.print(f"built the {task} dataset in {cell.config.data.dir} (shared by its cells): "
                          f"{card.get('counts')}")


def _metric_columns(all_metrics: list[dict]) -> list[tuple[str, str]]:
    """(key, title) of every declared metric a finished cell reports, in the declarations' column order;
    cells from before metric declarations fall back to the built-in ones."""
    declared: dict[str, dict] = {}
    for metrics in all_metrics:
        declared.update(metrics.get("metric_specs") or describe(metrics))
    shown = [spec for key, spec in declared.items() if any(key in metrics for metrics in all_metrics)]
    return [(spec["key"], spec["title"]) for spec in sorted(shown, key=lambda spec: tuple(spec["column"]))]


def results_table(cells: list[Cell]) -> Table:
    """One row per cell: effectiveness (the metrics the cells declare), cost and wall time."""
    table = Table(title="peftlab study")
    all_metrics = [read_metrics(Path(cell.config.output_dir)) for cell in cells]
    metric_columns = _metric_columns(all_metrics)
    columns = ("model", "task", "method", "sweep", *(title for _, title in metric_columns), "trainable params",
               "peak MB", "train s", "cell s", "status")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "task", "method", "sweep", "status") else "right")
    for cell, metrics in zip(cells, all_metrics, strict=True):
        state = cell_state(Path(cell.config.output_dir))

        def number(key, fmt="{:.3f}"):
            return fmt.format(metrics[key]) if isinstance(metrics.get(key), (int, float)) else "-"

        # a cell that borrowed another cell's adapter shows that cell's training cost, marked
        shared = " (shared)" if cell.labels.get("adapter_from") and "train_time_s" in metrics else ""
        table.add_row(
            cell.labels["model"], cell.labels["task"], cell.labels["method"],
            " ".join(f"{key}={value}" for key, value in cell.labels["sweep"].items()) or "-",
            *(number(key) for key, _ in metric_columns),
            number("trainable_params", "{:,}") if METHODS[cell.labels["method"]].trains else "0",
            number("peak_memory_mb", "{:.0f}"), number("train_time_s", "{:.0f}") + shared,
            f"{state['wall_time_s']:.0f}" if "wall_time_s" in state else "-", state.get("status", "left"),
        )
    return table


def _print_pairs(pairs_file: Path, console: Console) -> None:
    """Which pairs of methods differ significantly (the report's all-pairs tests), one line each."""
    listed = json.loads(pairs_file.read_text())
    significant = [pair for pair in listed["pairs"] if pair["significant"]]
    tests = [pair for pair in listed["pairs"] if not pair.get("degenerate")]
    console.print(f"exploratory: {len(significant)} of {len(tests)} method pairs differ significantly "
                  f"(paired test, Holm-adjusted p < {listed['alpha']} over all pairs per task, model and metric"
                  f"; {len(listed['pairs']) - len(tests)} pairs identical on every item, not tests)"
                  + (":" if significant else "."))
    for pair in significant:
        console.print(f"  {pair['task']} · {pair['model']} · {pair['metric']}: {pair['first']} > {pair['second']} "
                      f"by {pair['difference']:+.3f} on {pair['n']} problems (p Holm {pair['p_holm']:.3g})")


def _console() -> Console:
    console = Console()
    # logs and pipes: wide enough that the tables are not folded
    return console if console.is_terminal else Console(width=200)


def load_cells(study_file: Path | None, preset: str, output_dir: str | None,
               shard: tuple[int, int] | None = None) -> tuple:
    """The study and its cells (only shard ``(i, n)``'s, when given)."""
    spec = load_study(study_file, None if study_file else preset)
    if output_dir:
        spec.output_dir = output_dir
    cells = expand(spec, default_data_root=str(Path(spec.output_dir) / "data"))
    return spec, shard_cells(cells, *shard) if shard else cells


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard i/n`` (1 <= i <= n), e.g. ``$SLURM_ARRAY_TASK_ID/4``.

    Raises:
        UserError: anything else.
    """
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UserError(f"--shard takes i/n with 1 <= i <= n (e.g. 2/4), not '{text}'")
    return int(match[1]), int(match[2])


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def dry_run_study(study_file: Path | None, preset: str, output_dir: str | None, retry_failed: bool,
                  console: Console | None = None, shard: tuple[int, int] | None = None) -> int:
    """``peftlab study --plan`` (or ``--dry-run``): every cell's title, hash and status, whether a run would
    run it, the time left (:func:`peftlab.study.plan.estimate_seconds`: from this study's finished cells,
    "unknown" when none is alike), the peak memory its training needs (:mod:`peftlab.study.memory`), and
    each declared hypothesis's power. Reads the study's files only: no
    lock, no data, nothing written.

    Raises:
        UserError: the study is malformed.
    """
    console = console or _console()
    spec, cells = load_cells(study_file, preset, output_dir, shard)
    states = {}
    for cell in cells:
        try:
            states[cell.key] = cell_state(Path(cell.config.output_dir))
        except (OSError, ValueError):
            states[cell.key] = {"status": "unreadable"}
    finished = finished_costs(cells, states)
    peaks = observed_peaks(cells, states)
    part = f", shard {shard[0]}/{shard[1]}" if shard else ""
    table = Table(title=f"study '{spec.name}' in {spec.output_dir} (plan{part})")
    for column in ("cell", "title", "status", "next run", "estimate", "training memory"):
        table.add_column(column, justify="right" if column == "estimate" else "left")
    left, to_run, unknown = 0.0, 0, []
    for cell in cells:
        status = states[cell.key].get("status", "left")
        # as study_runner.run_study decides: done cells are skipped, failed ones only rerun on request
        runs = status not in ("done", "failed") or (status == "failed" and retry_failed)
        estimate = estimate_seconds(cell, finished) if runs else None
        if runs:
            to_run += 1
            if estimate is None:
                unknown.append(cell.labels["method"])
            else:
                left += estimate
        shown = "-" if not runs else "unknown" if estimate is None else _duration(estimate)
        table.add_row(cell.key, cell.title, status, "runs" if runs else "skipped", shown,
                      estimate_memory(cell, peaks).text())
    console.print(table)
    counts = Counter(state.get("status", "left") for state in states.values())
    summary = f"{len(cells)} cells: {counts['done']} done, {counts['failed']} failed, {to_run} to run; time left: "
    if not to_run:
        summary += "none"
    elif not unknown:
        summary += f"~{_duration(left)} (from this study's finished cells)"
    else:
        summary += f"unknown for {len(unknown)} (no finished {', '.join(sorted(set(unknown)))} cell yet)"
        if to_run > len(unknown):
            summary += f", ~{_duration(left)} for the other {to_run - len(unknown)}"
    console.print(summary)
    print_power(spec, cells, console)
    return 0


def print_power(spec, cells: list[Cell], console: Console) -> None:
    """Each declared hypothesis's power at the study's size (:mod:`peftlab.study.plan`), one line each."""
    plans = plan_hypotheses(spec.hypotheses, cells)
    if plans:
        console.print(f"{len(plans)} declared hypotheses; power at alpha 0.05/{len(plans)} (Holm's strictest step):")
        for plan in plans:
            console.print(f"  {plan.line()}", markup=False)
    else:
        console.print("No hypotheses declared: the report's tables will be exploratory only (docs/study.md).")


def parse_devices(text: str | None) -> list[str] | None:
    """``--devices``: None (cells one after another, each seeing every GPU), ``auto`` (one cell per visible
    GPU) or a comma-separated list of GPU ids (``0,1,3``).

    Raises:
        UserError: an empty or repeated id.
    """
    if text is None:
        return None
    if text == "auto":
        import torch  # only here: counting GPUs needs it, the other study paths stay torch-free

        count = torch.cuda.device_count()
        return [str(index) for index in range(count)] or None
    devices = [part.strip() for part in text.split(",")]
    if not all(devices) or len(set(devices)) != len(devices):
        raise UserError(f"--devices takes distinct GPU ids separated by commas (e.g. 0,1) or auto, not '{text}'")
    return devices


def run_study_command(study_file: Path | None, preset: str, output_dir: str | None, retry_failed: bool, report: bool,
                      devices: list[str] | None = None, shard: tuple[int, int] | None = None,
                      executor: str | None = None) -> int:
    """Returns the exit code: 0 when every cell (of the shard) is done, 1 when some failed or are unfinished.

    Raises:
        UserError: the study is malformed, or the executor does not go with ``devices``/``shard`` (before
            anything runs).
    """
    console = _console()
    spec, cells = load_cells(study_file, preset, output_dir, shard)
    _choose_executor(spec, executor, devices, shard)
    study_dir = ensure_writable_dir(Path(spec.output_dir), "study output directory")
    # shards of one study run at once on a shared file system: each holds its own lock (and each cell's run
    # directory has its own), so two runs of the same shard still exclude each other
    lock_dir = ensure_writable_dir(study_dir / "shards" / f"{shard[0]}-of-{shard[1]}", "shard directory") \
        if shard else study_dir
    with directory_lock(lock_dir, "study shard" if shard else "study directory"):
        record_study(spec, study_dir)
        return _run_locked(spec, cells, retry_failed, report, console, devices, shard)


def _choose_executor(spec, executor: str | None, devices: list[str] | None, shard) -> None:
    if executor is not None:
        if executor not in ("local", "ray", "slurm"):
            raise UserError(f"--executor takes local, ray or slurm, not '{executor}'")
        spec.executor.kind = executor
    if spec.executor.kind != "local" and (devices or shard):
        option = "--devices" if devices else "--shard"
        raise UserError(f"{option} is for the local executor; with {spec.executor.kind} each training group is "
                        f"its own task, with the resources set under executor.{spec.executor.kind} in the study file")


def record_study(spec, study_dir: Path) -> None:
    """Write the study as run (hypotheses included) to ``study.yaml`` beside its cells, for the report.
    Shards write the same text; the rename makes each write whole."""
    text = yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True)
    partial = study_dir / f".{STUDY_FILE}.{os.getpid()}"
    partial.write_text(text, encoding="utf-8")
    partial.replace(study_dir / STUDY_FILE)


def _print_verdicts(report_dir: Path, console: Console) -> None:
    listed = json.loads((report_dir / "hypotheses.json").read_text())["hypotheses"]
    if not listed:
        return
    console.print(f"{len(listed)} declared hypotheses (Holm-adjusted over these, alpha 0.05; "
                  f"{report_dir / 'hypotheses.md'}):")
    for item in listed:
        console.print(f"  {item['line']}", markup=False)


def _run_locked(spec, cells: list[Cell], retry_failed: bool, report: bool, console: Console, devices=None,
                shard: tuple[int, int] | None = None) -> int:
    print_power(spec, cells, console)
    _prepare_task_data(cells, console)
    if spec.executor.kind == "local":
        counts = run_study(spec, cells, retry_failed, console, devices)
    else:
        counts = run_elsewhere(spec, cells, retry_failed, console)
    console.print(results_table(cells))
    if shard:  # the report needs every shard's cells: a last unsharded run (it skips done cells) builds it
        console.print(f"shard {shard[0]}/{shard[1]}: {counts['done']} of {len(cells)} cells done; when every shard "
                      f"is done, `peftlab study` without --shard (or `peftlab report {spec.output_dir}`) builds the report")
    elif report and counts["done"]:
        from peftlab.report import build_report

        report_dir = Path(spec.output_dir) / "report"
        build_report(Path(spec.output_dir), report_dir)
        _print_verdicts(report_dir, console)
        _print_pairs(report_dir / "pairs.json", console)
        console.print(f"report: {report_dir / 'report.html'} (tables in {report_dir / 'tables'}, 95% CIs; "
                      f"every pair in {report_dir / 'pairs.md'})")
    finished = counts["done"] == len(cells)
    if not finished:
        console.print(f"[red]{len(cells) - counts['done']} of {len(cells)} cells not done[/]; re-run to resume"
                      + (", --retry-failed to retry failed ones" if counts["failed"] else ""))
    return 0 if finished else 1
