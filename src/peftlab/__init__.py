"""peftlab: which way of adapting a code LLM is best for the machine you have."""

import os as _os
import time as _time

__version__ = "0.1.0"

IDLE_WAITING = {"GOMP_SPINCOUNT": "10000"}
"""OpenMP waiting on a CPU with nothing else runnable as peftlab starts: libgomp's idle threads spin 10,000
times before they sleep (libgomp's own default is 300,000), as fast as libgomp's default when the CPU is
ours (bench/results/contention.md)."""

SHARED_WAITING = {"OMP_WAIT_POLICY": "PASSIVE"}
"""OpenMP waiting when other work is runnable as peftlab starts: waiting threads sleep at once. Spinning
while another busy process shares the CPU makes both wait on each other (beside one competitor, against
libgomp's default alone: 10.4x with libgomp's default, 2.8x with 10,000 spins, 2.2x passive); alone,
passive waiting costs ~20-35%, which is why it is not used when the CPU is idle. ``GOMP_SPINCOUNT=0`` was
measured too and was slower beside the competitor than ``PASSIVE`` in two exploratory runs
(bench/results/contention.md, notes)."""

_WAITING_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def others_running(samples: int = 5, gap_s: float = 0.01, path: str = "/proc/loadavg") -> int | None:
    """Median number of runnable threads besides this one over ``samples`` reads of ``/proc/loadavg`` (its
    4th field counts runnable threads, this one included); the median ignores a thread that runs for a
    moment. None where the file is unreadable (not Linux)."""
    counts = []
    for index in range(samples):
        try:
            with open(path, encoding="ascii") as handle:
                counts.append(int(handle.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return None
        if index + 1 < samples:
            _time.sleep(gap_s)
    return sorted(counts)[len(counts) // 2]


def choose_waiting(others: int | None) -> dict[str, str]:
    """peftlab's OpenMP waiting setting given the other runnable threads at start (None: unknown, as idle)."""
    return dict(SHARED_WAITING if others else IDLE_WAITING)


def waiting_setting() -> str:
    """This process's OpenMP waiting variables as one string (``""`` when neither is set)."""
    return ",".join(f"{name}={_os.environ[name]}" for name in _WAITING_VARIABLES if name in _os.environ)


OTHERS_RUNNING_AT_START: int | None = None
"""What :func:`others_running` saw when peftlab chose the waiting setting (None when the user chose one, or
the count was unreadable); the run record keeps it beside the setting that applied."""

CHOSEN_MARK = "PEFTLAB_WAITING_CHOSEN"
"""Set to :func:`waiting_setting` after peftlab chose it, so that a process started from a peftlab one (a
study's cell) reads the load again instead of taking the inherited setting for the user's own."""

# Applied here because OpenMP reads its settings once, when torch is imported, and every peftlab entry point
# imports peftlab first (a program that imports torch before peftlab keeps libgomp's defaults; the run
# record says which applied). The load is read once per process: a study starts each cell as a process of
# its own, so a study adapts cell by cell when other work comes or goes. PEFTLAB_THREADS=N sets torch's
# compute threads (OpenMP and MKL) for peftlab and the study cells it starts.
if waiting_setting() in ("", _os.environ.get(CHOSEN_MARK)):
    OTHERS_RUNNING_AT_START = others_running()
    for _name in _WAITING_VARIABLES:
        _os.environ.pop(_name, None)
    _os.environ.update(choose_waiting(OTHERS_RUNNING_AT_START))
    _os.environ[CHOSEN_MARK] = waiting_setting()
if _os.environ.get("PEFTLAB_THREADS"):
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        _os.environ[_name] = _os.environ["PEFTLAB_THREADS"]
