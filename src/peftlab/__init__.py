"""peftlab: which way of adapting a code LLM is best for the machine you have."""

import os as _os

__version__ = "0.1.0"

# Thread settings for torch's OpenMP pool, applied here because OpenMP reads them once, when torch is
# imported, and every peftlab entry point imports peftlab first. Both reach the study cells peftlab starts.
# - Waiting threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE) unless the user chose a policy:
#   beside another busy process, spinning made the same work 6.4x slower, sleeping 1.55x
#   (bench/results/contention.md; docs/decisions.md, "Threads on a shared CPU").
# - PEFTLAB_THREADS=N sets the number of compute threads (OpenMP and MKL).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if _os.environ.get("PEFTLAB_THREADS"):
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        _os.environ[_name] = _os.environ["PEFTLAB_THREADS"]
