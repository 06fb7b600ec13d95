"""``peftlab study --plan``'s memory column: the peak memory (RSS) a cell's training needs, before it runs.

A cell's figure comes from, in order:

- **observed**: a finished cell of this study with the same method, model and sweep values (else the same
  method and model): its ``metrics.json`` ``peak_memory_mb``, the training process's peak RSS;
- **bench**: the methods bench's median peak RSS for that method and model (``memory-reference.json``
  beside this module, built from ``bench/results/methods-*/methods.json`` by ``bench/memory_reference.py``;
  measured at the batch size and length it names, which the line says when the cell's differ);
- else **unknown**. Prompting baselines train nothing (their memory is the model's and generation's), and a
  cell that borrows another cell's adapter trains nothing either.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from peftlab.methods import METHODS
from peftlab.runs.directory import read_metrics
from peftlab.study.spec import Cell

REFERENCE = Path(__file__).with_name("memory-reference.json")


def reference_from_bench(paths: list[Path]) -> dict:
    """``{method: {model: {peak_rss_mb, batch_size, max_length, source}}}`` from methods-bench JSON files; the
    first file that measured a method on a model wins. Rows with a setting suffix (``qlora-4bit+fast``) are not
    a method's default and are left out."""
    table: dict[str, dict[str, dict]] = {}
    for path in paths:
        bench = json.loads(Path(path).read_text(encoding="utf-8"))
        settings = bench["settings"]
        for row in bench["results"]:
            if "+" in row["method"]:
                continue
            table.setdefault(row["method"], {}).setdefault(settings["model"], {
                "peak_rss_mb": round(row["peak_rss_mb"]), "batch_size": settings["batch_size"],
                "max_length": settings["max_length"], "source": Path(path).as_posix()})
    return table


@functools.lru_cache(maxsize=1)  # read once per plan, not once per cell
def _reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8")) if REFERENCE.is_file() else {}


@dataclass
class MemoryEstimate:
    mb: float | None
    source: str  # observed, bench, none (trains nothing), unknown
    note: str = ""

    def text(self) -> str:
        if self.source == "none":
            return "-"
        if self.mb is None:
            return "unknown"
        return f"{self.mb / 1024:.1f} GB ({self.source}{'; ' + self.note if self.note else ''})"


def _key(cell: Cell, sweep: bool) -> tuple:
    labels = cell.labels
    return (labels["method"], labels["model"]) + ((tuple(sorted(labels["sweep"].items())),) if sweep else ())


def observed_peaks(cells: list[Cell], states: dict[str, dict]) -> dict[tuple, float]:
    """Peak training RSS of this study's finished training cells, by (method, model[, sweep])."""
    peaks: dict[tuple, float] = {}
    for cell in cells:
        if states[cell.key].get("status") != "done" or cell.labels.get("adapter_from"):
            continue
        peak = read_metrics(Path(cell.config.output_dir)).get("peak_memory_mb")
        if isinstance(peak, (int, float)):
            for sweep in (True, False):
                peaks.setdefault(_key(cell, sweep), float(peak))
    return peaks


def estimate_memory(cell: Cell, observed: dict[tuple, float], reference: dict | None = None) -> MemoryEstimate:
    """The cell's training peak RSS (see the module docstring)."""
    method = METHODS.get(cell.labels["method"])
    if method is None or not method.trains or cell.labels.get("adapter_from"):
        return MemoryEstimate(None, "none")
    for sweep in (True, False):
        if _key(cell, sweep) in observed:
            return MemoryEstimate(observed[_key(cell, sweep)], "observed")
    measured = (reference if reference is not None else _reference()).get(cell.labels["method"], {}).get(
        cell.labels["model"])
    if measured is None:
        return MemoryEstimate(None, "unknown")
    train = cell.config.train
    own = (train.batch_size, cell.config.model.max_length)
    bench = (measured["batch_size"], measured["max_length"])
    note = "" if own == bench else f"measured at batch {bench[0]} x {bench[1]} tokens"
    return MemoryEstimate(float(measured["peak_rss_mb"]), "bench", note)
