"""The shared shape of execution-scored tasks (HumanEval, MBPP, ...): evaluation-only, prompts that a
causal LM continues, candidates run in the sandbox against each problem's tests.

A subclass provides :meth:`test_problems` (each with ``id``, ``instruction`` — the prompt the model
continues — and ``reference``, the solution where the dataset has one, else None) and
:meth:`execution_problems`; scoring is :mod:`peftlab.execution.scoring`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from peftlab.errors import UserError
from peftlab.execution.scoring import ExecutionProblem, check_samples, per_item_scores, score_samples
from peftlab.metrics import match_scores
from peftlab.tasks.postprocess import continuation
from peftlab.tasks.base import Evaluation, Task, check_candidate_rows, match_test_ids


class ExecutedTask(Task):
    """``evaluate`` accepts the rows ``peftlab generate`` writes (``{id, candidates}``) or external rows
    ``{task_id, completion, ...}`` or EvalPlus's ``{task_id, solution, ...}`` (one per sample, extra keys
    carried through; bigcode generation files are turned into solution rows by :mod:`peftlab.interop.samples`). It writes per-sample
    verdicts in input order to ``verdicts.jsonl`` and reports pass@1, pass@k (k = samples per task) and
    tests passed; for generated rows, where the dataset has reference solutions, also EM and CodeBLEU."""

    trainable = False
    language = "python"
    """The language of the programs: the chat fence, the request, and how CodeBLEU parses them."""
    raw_template = "{instruction}"  # the published prompt, continued as is
    chat_stop = ("\n```", "\nif __name__", "\nprint(", "\nassert ")
    """The chat answer starts as a fenced copy of the published prompt (:meth:`answer_prefix`), so the model
    continues the body: the closing fence ends it, and top-level test or demo code is cut."""
    prediction_keys = ()
    extra_outputs = ("verdicts.jsonl",)
    title: ClassVar[str] = ""
    """How error messages name the dataset (e.g. 'unknown HumanEval task_id')."""
    why_no_training: ClassVar[str] = "it is a benchmark"

    @abstractmethod
    def test_problems(self) -> list[dict]:
        """Every problem, in dataset order, as :meth:`load` returns them."""

    @abstractmethod
    def execution_problems(self) -> dict[str, ExecutionProblem]:
        """Every problem of the dataset by id, as the sandbox runs it."""

    def load(self, split: str) -> list[dict]:
        if split != "test":
            raise UserError(f"{self.title} has only a test split, not '{split}' ({self.why_no_training})")
        problems = self.test_problems()
        return self.sized("test", problems)

    def prompt(self, problem: dict) -> str:
        return problem["instruction"]  # the published prompt, continued as is

    def user_message(self, problem: dict) -> str:
        # The published prompt is a text to continue; a chat turn asks for the function.
        unit = "method" if self.language == "java" else "function"
        code = self._code(problem)
        return f"Complete the following {self.language.capitalize()} {unit}:\n```{self.language}\n{code}```"

    def answer_prefix(self, problem: dict) -> str:
        # The answer is appended to the published prompt to form the program. Writing the prompt as the
        # start of the answer lets the model continue the body (as bigcode's instruct-humaneval does)
        # instead of re-typing signature and docstring, which doubles the tokens generated on a CPU.
        return f"```{self.language}\n{self._code(problem)}"

    @staticmethod
    def _code(problem: dict) -> str:
        return problem["instruction"] if problem["instruction"].endswith("\n") else problem["instruction"] + "\n"

    def postprocess(self, completion: str) -> str:
        return continuation(completion, self.stop)  # keeps the code of a fenced answer

    def score(self, samples: list[dict], ks: list[int], postprocess) -> tuple[dict, list[dict]]:
        """(metrics, per-sample verdict rows) for sample rows (see :func:`score_samples`, whose shape a
        task that runs its candidates differently keeps)."""
        return score_samples(samples, self.execution_problems(), workers=self.config.execution.workers,
                             timeout=self.config.execution.timeout, ks=ks, kind=self.title, postprocess=postprocess)

    def item_scores(self, verdicts: list[dict], ks: list[int]) -> list[dict]:
        """One row per problem with its scores, from :meth:`score`'s verdict rows."""
        return per_item_scores(verdicts, ks)

    def evaluate(self, predictions: list[dict], partial: bool = False) -> Evaluation:
        generated = bool(predictions) and all("candidates" in row for row in predictions)
        test = {problem["id"]: problem for problem in self.load("test")}
        if generated:
            check_candidate_rows(predictions)
            coverage = match_test_ids([row["id"] for row in predictions], list(test), partial=partial)
            samples = [{"task_id": row["id"], "completion": c} for row in predictions for c in row["candidates"]]
        else:
            check_samples(predictions, test, self.title)
            coverage = match_test_ids([row["task_id"] for row in predictions], list(test), partial=partial,
                                      repeats=True)
            samples = predictions
        per_task: dict[str, int] = {}
        for row in samples:
            per_task[row["task_id"]] = per_task.get(row["task_id"], 0) + 1
        ks = sorted({1, min(per_task.values(), default=1)})
        # generate already post-processed its candidates
        metrics, verdicts = self.score(samples, ks, postprocess=None if generated else self.postprocess)
        scored = self.item_scores(verdicts, ks)
        metrics.update(coverage)
        if generated and all(test[row["id"]].get("reference") for row in predictions):
            # references from the dataset, never from the predictions file
            match_metrics, match_rows = match_scores(
                [{**row, "reference": test[row["id"]]["reference"]} for row in predictions], lang=self.language
            )
            metrics.update(match_metrics)
            for row, match_row in zip(scored, match_rows, strict=True):
                row.update(candidates=match_row["candidates"], reference=match_row["reference"],
                           codebleu_stats=match_row["codebleu_stats"])
                row["scores"].update(match_row["scores"])
        metrics["metric_specs"] = self.metric_specs(metrics)
        return Evaluation(metrics, scored, files={"verdicts.jsonl": verdicts})
