"""peftlab: which way of adapting a code LLM is best for the machine you have."""

import os as _os

__version__ = "0.1.0"

# PEFTLAB_THREADS=N sets torch's compute threads (OpenMP and MKL) for peftlab and the study cells it starts.
# Applied here because OpenMP reads its settings once, when torch is imported, and every peftlab entry
# point imports peftlab first. On a CPU shared with other busy work, also set OMP_WAIT_POLICY=PASSIVE:
# beside a competing job the same work then took 1.7x as long instead of 5.7x, but alone generation was
# ~20% slower, so it is not the default (bench/results/contention.md; docs/decisions.md).
if _os.environ.get("PEFTLAB_THREADS"):
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        _os.environ[_name] = _os.environ["PEFTLAB_THREADS"]
