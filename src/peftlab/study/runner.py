"""Run a study's cells, each in its own process, skipping finished ones; show the matrix's progress.

A cell runs as ``python -m peftlab.cli run -c <cell>/config.yaml`` so that its peak memory is its own
(``ru_maxrss`` is per process) and a crash in one cell cannot take the study down. Its state lives in
``<cell>/cell.json``: ``running`` → ``done`` | ``failed`` | ``interrupted``. Re-running the study skips
``done`` cells, resumes ``interrupted`` and stale ``running`` ones (a killed study leaves those; training
resumes from its checkpoint), and retries ``failed`` cells only with ``retry_failed``.

A runner holds a cell's lock (``CELL_LOCK``) while it runs the cell, so two runners (two executors, a
retried cluster job) never run one cell at once; :func:`run_group` runs one training group, the unit that
``--shard`` deals and :mod:`peftlab.study.executors` sends to Ray or Slurm.

With several ``devices`` (GPU ids), cells run in parallel, one per device: each cell's process sees only
its GPU (``CUDA_VISIBLE_DEVICES``), so its peak memory is still its own, and a cell that reuses another
cell's adapter starts only once that cell is finished.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from rich.console import Console

from peftlab.config import dump_config
from peftlab.data.records import write_json
from peftlab.errors import UserError
from peftlab.runs.directory import RunDir, directory_lock
from peftlab.study.spec import Cell, StudySpec

CELL_FILE = "cell.json"
CELL_LOCK = ".peftlab-cell.lock"
"""Held while a runner runs the cell: two runners (two executors, a retried job) never run one cell at once."""
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None  # loaded here: the child only calls it


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


def run_cell(cell: Cell, spec: StudySpec, device: str | None = None) -> dict:
    """Run one cell in a child process (on GPU ``device`` alone, when given); its output goes to
    ``<cell>/log.txt``. Returns its new state, or ``{"status": "busy"}`` (state untouched) when another
    process, perhaps on another machine of a cluster, is running the cell now."""
    cell_dir = Path(cell.config.output_dir)
    cell_dir.mkdir(parents=True, exist_ok=True)
    with _holding(cell_dir) as ours:  # not ours: the cell runs elsewhere, and that runner records its state
        return _run_cell_locked(cell, spec, cell_dir, device) if ours else {"status": "busy"}


@contextmanager
def _holding(cell_dir: Path) -> Iterator[bool]:
    """Whether this runner got the cell's lock (``CELL_LOCK``), held until the block ends."""
    with ExitStack() as held:
        try:
            held.enter_context(directory_lock(cell_dir, "study cell", CELL_LOCK))
        except UserError:
            yield False
            return
        yield True


def _run_cell_locked(cell: Cell, spec: StudySpec, cell_dir: Path, device: str | None) -> dict:
    (cell_dir / "config.yaml").write_text(dump_config(cell.config))
    previous = cell_state(cell_dir)
    earlier = previous.get("wall_time_s", 0.0) if previous.get("status") != "failed" else 0.0
    attempt = {"device": device} if device is not None else {}
    attempt["started_at"] = time.time()  # when this attempt started and (below) ended: the schedule, for reading
    attempt.update(host=socket.gethostname(), pid=os.getpid())  # which runner: on a cluster, where its log is
    _write_state(cell, spec, status="running", wall_time_s=earlier, **attempt)
    started = time.perf_counter()
    command = [sys.executable, "-m", "peftlab.cli", "run", "-c", str(cell_dir / "config.yaml")]
    # a fixed string-hash seed (unless the user set one): codebleu's data-flow score depends on it
    # (docs/metrics.md), and every cell of a study, in every run, must be scored alike
    env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED") or "0"}
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    with (cell_dir / "log.txt").open("a") as log:
        try:
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env, preexec_fn=_die_with_parent).returncode
        except KeyboardInterrupt:
            code = 130
    wall = earlier + time.perf_counter() - started
    attempt["finished_at"] = time.time()
    if code == 0:
        state = {"status": "done", "wall_time_s": wall, **attempt}
    elif code == 130:
        state = {"status": "interrupted", "wall_time_s": wall, **attempt}
    else:
        state = {"status": "failed", "wall_time_s": wall, "exit_code": code, "error": _tail(cell_dir / "log.txt"),
                 **attempt}
    _write_state(cell, spec, **state)
    if code == 130:
        raise KeyboardInterrupt
    return state


def record_lost(cell: Cell, spec: StudySpec, why: str) -> dict:
    """A cell whose runner died without an answer (a Ray worker or Slurm job gone): recorded ``failed`` with
    ``why`` unless it finished, or another runner holds it now. Returns its state."""
    cell_dir = Path(cell.config.output_dir)
    with _holding(cell_dir) as ours:
        if not ours:
            return {"status": "busy"}
        state = cell_state(cell_dir)
        if state.get("status") == "done":
            return state
        state = {"status": "failed", "wall_time_s": state.get("wall_time_s", 0.0), "error": why}
        _write_state(cell, spec, **state)
        return state


def _die_with_parent() -> None:
    """In the cell's child, before it starts: the kernel kills it when the runner dies. A runner killed on
    a cluster (a Ray worker, a Slurm job) must not leave its cell running on, holding the run directory's
    lock against the retry."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def needs_running(state: dict, retry_failed: bool) -> bool:
    """Whether a cell in ``state`` runs: not done, and failed only when retrying failed cells."""
    return state.get("status") not in ("done", "failed") or (state["status"] == "failed" and retry_failed)


def run_group(spec: StudySpec, group: list[Cell], retry_failed: bool = False) -> list[dict]:
    """The cells of one training group, owner first, where this is called (a Ray task, a Slurm job): each
    cell that still needs running (its ``cell.json`` read here, now) is run, and the finished owner too when
    a cell to run borrows its adapter and that adapter no longer verifies; returns each cell's state."""
    states = []
    for number, cell in enumerate(group):
        state = cell_state(Path(cell.config.output_dir))
        lends = number == 0 and any(needs_running(cell_state(Path(other.config.output_dir)), retry_failed)
                                    for other in group[1:])
        damaged = lends and state.get("status") == "done" and RunDir(cell.config.output_dir).output_problem("train")
        states.append(run_cell(cell, spec) if needs_running(state, retry_failed) or damaged else state)
    return states


def report_state(console: Console, cell: Cell, state: dict) -> None:
    if state["status"] == "busy":
        console.print(f"  [yellow]skipped[/]: another runner holds it now  [dim]{cell.config.output_dir}[/]")
        return
    colour = "green" if state["status"] == "done" else "red"
    where = f" on GPU {state['device']}" if "device" in state else ""
    message = f"  [{colour}]{state['status']}[/]{where} in {state['wall_time_s']:.0f} s  [dim]{cell.config.output_dir}[/]"
    if state["status"] == "failed":
        message += f"\n  [red]{state['error']}[/] (full log: {cell.config.output_dir}/log.txt)"
    console.print(message)


def run_study(spec: StudySpec, cells: list[Cell], retry_failed: bool = False, console: Console | None = None,
              devices: list[str] | None = None) -> Counter:
    """Run every cell that still needs it (in parallel, one per GPU, with several ``devices``); return the
    final count of cells per status."""
    console = console or Console()
    states = {cell.key: cell_state(Path(cell.config.output_dir)).get("status", "left") for cell in cells}
    todo = [cell for cell in cells if needs_running({"status": states[cell.key]}, retry_failed)]
    todo = _with_damaged_lenders(cells, todo, states, console)
    skipped = len(cells) - len(todo)
    console.print(
        f"study '{spec.name}': {len(cells)} cells, {Counter(states.values())['done']} done, "
        f"{Counter(states.values())['failed']} failed{' (retrying)' if retry_failed else ''}, {len(todo)} to run"
        + (f" ({skipped} skipped)" if skipped else "")
        + (f" on {len(devices)} GPUs ({', '.join(devices)})" if devices and len(devices) > 1 else "")
    )
    if devices and len(devices) > 1:
        _run_parallel(spec, todo, states, devices, console)
        return Counter(states.values())
    for index, cell in enumerate(todo, start=1):
        states[cell.key] = "running"
        counts = Counter(states.values())
        console.print(
            f"[bold][{index}/{len(todo)}][/] {cell.title}  "
            f"[dim]done {counts['done']} · running 1 · failed {counts['failed']} · left {len(todo) - index}[/]"
        )
        state = run_cell(cell, spec, devices[0] if devices else None)
        states[cell.key] = state["status"]
        report_state(console, cell, state)
    return Counter(states.values())


def _with_damaged_lenders(cells: list[Cell], todo: list[Cell], states: dict, console: Console) -> list[Cell]:
    """``todo`` plus each finished cell whose adapter a cell in ``todo`` borrows but which no longer verifies
    (deleted or damaged since): it runs again first, and its ``peftlab run`` retrains it
    (:meth:`RunDir.output_problem`). The study's order is kept, lenders before borrowers."""
    by_key = {cell.key: cell for cell in cells}
    keys = {cell.key for cell in todo}
    for cell in todo:
        lender = by_key.get(cell.labels.get("adapter_from", ""))
        if lender is None or lender.key in keys or states[lender.key] != "done":
            continue
        problem = RunDir(lender.config.output_dir).output_problem("train")
        if problem:
            console.print(f"{lender.title}: {problem}; it runs again before the cells that use its adapter")
            states[lender.key] = "left"
            keys.add(lender.key)
    return [cell for cell in cells if cell.key in keys]


def _run_parallel(spec: StudySpec, todo: list[Cell], states: dict, devices: list[str], console: Console) -> None:
    """One worker thread per device; the next cell whose adapter owner (if any) is finished goes to the
    first free device. A cell waits while its owner is queued or running; an owner that failed lets it
    run and fail with its own message, as in a sequential study."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    waiting, running, started = list(todo), {}, 0
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        while waiting or running:
            busy = {device for device, _ in running.values()}
            for device in (d for d in devices if d not in busy):
                ready = next((cell for cell in waiting if states.get(cell.labels.get("adapter_from", ""), "done")
                              not in ("left", "running", "interrupted")), None)
                if ready is None and waiting and not running:  # cannot happen with owners listed first; never stall
                    ready = waiting[0]
                if ready is None:
                    break
                waiting.remove(ready)
                states[ready.key] = "running"
                started += 1
                counts = Counter(states.values())
                console.print(f"[bold][{started}/{len(todo)}][/] {ready.title} → GPU {device}  [dim]done "
                              f"{counts['done']} · running {counts['running']} · failed {counts['failed']} · "
                              f"left {len(waiting)}[/]")
                running[pool.submit(run_cell, ready, spec, device)] = (device, ready)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                _, cell = running.pop(future)
                state = future.result()  # an interrupted cell raises KeyboardInterrupt here
                states[cell.key] = state["status"]
                report_state(console, cell, state)
