"""peftlab: which way of adapting a code LLM is best for the machine you have."""

import os as _os

__version__ = "0.1.0"

DEFAULT_SPINCOUNT = "10000"
"""``GOMP_SPINCOUNT`` unless the user set it or ``OMP_WAIT_POLICY``: how long libgomp's idle threads spin
before they sleep (libgomp's own default is 300,000). Spinning that long wins a little when the CPU is ours
and loses badly when another busy process shares it: its threads wait on ours while ours spin
(bench/results/contention.md: 5.7x slower beside one competitor with libgomp's default)."""

# Applied here because OpenMP reads its settings once, when torch is imported, and every peftlab entry point
# imports peftlab first (a program that imports torch before peftlab keeps libgomp's defaults; the run
# record says which applied). PEFTLAB_THREADS=N sets torch's compute threads (OpenMP and MKL) for peftlab and
# the study cells it starts.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = DEFAULT_SPINCOUNT
if _os.environ.get("PEFTLAB_THREADS"):
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        _os.environ[_name] = _os.environ["PEFTLAB_THREADS"]
