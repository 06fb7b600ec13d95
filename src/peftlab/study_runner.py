"""Run a study's cells, each in its own process, skipping finished ones; show the matrix's progress.

A cell runs as ``python -m peftlab.cli run -c <cell>/config.yaml`` so that its peak memory is its own
(``ru_maxrss`` is per process) and a crash in one cell cannot take the study down. Its state lives in
``<cell>/cell.json``: ``running`` → ``done`` | ``failed`` | ``interrupted``. Re-running the study skips
``done`` cells, resumes ``interrupted`` and stale ``running`` ones (a killed study leaves those; training
resumes from its checkpoint), and retries ``failed`` cells only with ``retry_failed``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from peftlab.config import dump_config
from peftlab.data.records import write_json
from peftlab.study import Cell, StudySpec

CELL_FILE = "cell.json"


def cell_state(cell_dir: Path) -> dict:
    path = cell_dir / CELL_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_state(cell: Cell, spec: StudySpec, **state) -> None:
    write_json(
        Path(cell.config.output_dir) / CELL_FILE,
        {"cell": cell.key, "study": spec.name, "labels": cell.labels, **state},
    )


def _tail(path: Path, lines: int = 1) -> str:
    text = path.read_text(errors="replace").strip().splitlines() if path.is_file() else []
    return " | ".join(text[-lines:])


def run_cell(cell: Cell, spec: StudySpec) -> dict:
    """Run one cell in a child process; its output goes to ``<cell>/log.txt``. Returns its new state."""
    cell_dir = Path(cell.config.output_dir)
    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / "config.yaml").write_text(dump_config(cell.config))
    previous = cell_state(cell_dir)
    earlier = previous.get("wall_time_s", 0.0) if previous.get("status") != "failed" else 0.0
    _write_state(cell, spec, status="running", wall_time_s=earlier)
    started = time.perf_counter()
    command = [sys.executable, "-m", "peftlab.cli", "run", "-c", str(cell_dir / "config.yaml")]
    with (cell_dir / "log.txt").open("a") as log:
        try:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        except KeyboardInterrupt:
            code = 130
    wall = earlier + time.perf_counter() - started
    if code == 0:
        state = {"status": "done", "wall_time_s": wall}
    elif code == 130:
        state = {"status": "interrupted", "wall_time_s": wall}
    else:
        state = {"status": "failed", "wall_time_s": wall, "exit_code": code, "error": _tail(cell_dir / "log.txt")}
    _write_state(cell, spec, **state)
    if code == 130:
        raise KeyboardInterrupt
    return state


def run_study(spec: StudySpec, cells: list[Cell], retry_failed: bool = False, console: Console | None = None) -> Counter:
    """Run every cell that still needs it; return the final count of cells per status."""
    console = console or Console()
    states = {cell.key: cell_state(Path(cell.config.output_dir)).get("status", "left") for cell in cells}
    todo = [
        cell for cell in cells
        if states[cell.key] not in ("done", "failed") or (states[cell.key] == "failed" and retry_failed)
    ]
    skipped = len(cells) - len(todo)
    console.print(
        f"study '{spec.name}': {len(cells)} cells, {Counter(states.values())['done']} done, "
        f"{Counter(states.values())['failed']} failed{' (retrying)' if retry_failed else ''}, {len(todo)} to run"
        + (f" ({skipped} skipped)" if skipped else "")
    )
    for index, cell in enumerate(todo, start=1):
        states[cell.key] = "running"
        counts = Counter(states.values())
        console.print(
            f"[bold][{index}/{len(todo)}][/] {cell.title}  "
            f"[dim]done {counts['done']} · running 1 · failed {counts['failed']} · left {len(todo) - index}[/]"
        )
        state = run_cell(cell, spec)
        states[cell.key] = state["status"]
        colour = "green" if state["status"] == "done" else "red"
        message = f"  [{colour}]{state['status']}[/] in {state['wall_time_s']:.0f} s  [dim]{cell.config.output_dir}[/]"
        if state["status"] == "failed":
            message += f"\n  [red]{state['error']}[/] (full log: {cell.config.output_dir}/log.txt)"
        console.print(message)
    return Counter(states.values())
