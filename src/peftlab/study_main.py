"""``peftlab study``: load and check the study, prepare shared data, run the cells, print the table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from peftlab.runs import directory_lock, ensure_writable_dir, read_metrics
from peftlab.study import Cell, expand, load_study
from peftlab.study_runner import cell_state, run_study

DEFAULT_DATA = "data/codegen"


def _ensure_default_data(data_dir: Path, console: Console) -> None:
    """Mine the default stdlib dataset once; every cell of the study shares it."""
    from peftlab.data.build import build_codegen_dataset

    if not (data_dir / "card.json").is_file():
        console.rule("mine the stdlib code-generation dataset (shared by all cells)")
        card = build_codegen_dataset(data_dir, None, seed=0, tokenizer_name=None)
        console.print(f"counts: {card['counts']}")


def results_table(cells: list[Cell]) -> Table:
    """One row per cell: effectiveness, cost and wall time."""
    table = Table(title="peftlab study")
    columns = ("model", "method", "sweep", "EM@1", "EM@k", "CodeBLEU", "pass@1", "trainable params", "peak MB",
               "train s", "cell s", "status")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "method", "sweep", "status") else "right")
    for cell in cells:
        cell_dir = Path(cell.config.output_dir)
        metrics = read_metrics(cell_dir)
        state = cell_state(cell_dir)
        k = metrics.get("k", 1)

        def number(key, fmt="{:.3f}"):
            return fmt.format(metrics[key]) if metrics.get(key) is not None else "-"

        table.add_row(
            cell.labels["model"], cell.labels["method"],
            " ".join(f"{key}={value}" for key, value in cell.labels["sweep"].items()) or "-",
            number("em@1"), number(f"em@{k}"), number("codebleu"), number("pass@1"),
            number("trainable_params", "{:,}") if cell.labels["method"] not in ("zero-shot", "icl", "rag") else "0",
            number("peak_memory_mb", "{:.0f}"), number("train_time_s", "{:.0f}"),
            f"{state['wall_time_s']:.0f}" if "wall_time_s" in state else "-", state.get("status", "left"),
        )
    return table


def run_study_command(study_file: Path | None, preset: str, output_dir: str | None, retry_failed: bool, report: bool) -> int:
    """Returns the exit code: 0 when every cell is done, 1 when some failed or are unfinished.

    Raises:
        UserError: the study is malformed (before anything runs).
    """
    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough that the results table is not folded
        console = Console(width=200)
    spec = load_study(study_file, None if study_file else preset)
    if output_dir:
        spec.output_dir = output_dir
    data_dir = Path(spec.output_dir) / DEFAULT_DATA
    cells = expand(spec, default_data_dir=str(data_dir))
    study_dir = ensure_writable_dir(Path(spec.output_dir), "study output directory")
    with directory_lock(study_dir, "study directory"):
        return _run_locked(spec, cells, data_dir, retry_failed, report, console)


def _run_locked(spec, cells: list[Cell], data_dir: Path, retry_failed: bool, report: bool, console: Console) -> int:
    if any(cell.config.data.dir == str(data_dir) for cell in cells):
        _ensure_default_data(data_dir, console)
    counts = run_study(spec, cells, retry_failed, console)
    console.print(results_table(cells))
    if report and counts["done"]:
        from peftlab.report import build_report

        report_dir = Path(spec.output_dir) / "report"
        build_report(Path(spec.output_dir), report_dir)
        console.print(f"report: {report_dir / 'report.html'} (tables in {report_dir / 'tables'})")
    finished = counts["done"] == len(cells)
    if not finished:
        console.print(f"[red]{len(cells) - counts['done']} of {len(cells)} cells not done[/]; re-run to resume"
                      + (", --retry-failed to retry failed ones" if counts["failed"] else ""))
    return 0 if finished else 1
