"""Sandboxed execution of untrusted programs and execution-based scoring.

* :mod:`peftlab.execution.sandbox` - run a program in a confined, disposable process tree.
* :mod:`peftlab.execution.harness` - run a program against assert-style tests and attest the verdict.
* :mod:`peftlab.execution.passk` - unbiased pass@k and the tests-passed average.

See docs/sandbox.md for what the sandbox guarantees on each platform.
"""

from peftlab.execution.harness import Verdict, run_batch, run_tests
from peftlab.execution.passk import mean_pass_at_k, mean_tests_passed, pass_at_k
from peftlab.execution.sandbox import Backend, Limits, RunResult, available_backends, get_backend, run

__all__ = [
    "Backend", "Limits", "RunResult", "Verdict", "available_backends", "get_backend", "mean_pass_at_k",
    "mean_tests_passed", "pass_at_k", "run", "run_batch", "run_tests",
]
