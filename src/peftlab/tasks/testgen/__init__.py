"""Unit-test generation (``task=testgen``): given a focal function, write a test for it; scored by running it.

Training and validation pairs come from a mined project (``data.project``, with ``data.project_seed`` and
``data.context_chars``: :class:`~peftlab.tasks.mined_projects.MinedProjectOptions`; focal function -> one of its
direct tests, split by module, :mod:`peftlab.tasks.testgen.data`); the test set is HumanEval's 164
functions (prompt + canonical solution), whose own ``check`` is the reference test. A test may be pytest
functions, ``unittest.TestCase`` methods or a ``check(candidate)``; the focal module's functions are in its
namespace and importable ``from focal import ...``.

Per candidate (:mod:`peftlab.tasks.testgen.generated_tests`): parses, passes on the correct function, line and branch
coverage of the focal function's body, mutation score (share of the behaviour-changing mutants it kills),
and CodeBLEU against the reference test. Per problem the best and the mean over its k candidates.

Prediction rows: ``{id, candidates}`` (``peftlab generate``) or one row per sample ``{task_id, test,
...extra}`` from any tool; ``verdicts.jsonl`` has one row per sample with the extra keys carried through.
"""

from __future__ import annotations

from statistics import fmean

from peftlab import pyparse
from peftlab.errors import UserError
from peftlab.metrics import match_scores
from peftlab.metrics.specs import best_and_mean
from peftlab.tasks.postprocess import cut_at_stop, strip_fences
from peftlab.tasks.base import Evaluation, Task, check_candidate_rows, match_test_ids
from peftlab.tasks.mined_projects import MinedProjectOptions, mined_project
from peftlab.tasks.testgen.data import humaneval_focal, mined_pairs
from peftlab.tasks.testgen.generated_tests import FocalProblem, score_tests

STOP_STRINGS = ("\nif __name__", "\n```", "\nclass ", "\n\n\n\n")
REQUEST = ("Write a pytest test function with assertions for the function `{name}` below (it is in scope; "
           "do not repeat it).\n```python\n{focal}```")
FAMILIES = {"test_valid": "valid", "test_pass": "passed", "line_cov": "line_coverage",
            "branch_cov": "branch_coverage", "mutation": "mutation_score"}
"""Each metric family and the field of a candidate's verdict it is the best and the mean of."""
METRIC_FAMILIES = (
    best_and_mean("test_valid", "valid", 3),
    best_and_mean("test_pass", "pass", 4),
    best_and_mean("line_cov", "line cov.", 5),
    best_and_mean("branch_cov", "branch cov.", 6),
    best_and_mean("mutation", "mutation score", 7),
)


MAX_TRIMMED_LINES = 5


def drop_unfinished_tail(test: str) -> tuple[str, int]:
    """A test cut off by ``generation.max_new_tokens`` ends in an unfinished statement; drop trailing lines
    (at most MAX_TRIMMED_LINES) until it parses. Returns (text, lines dropped); unchanged when it parses
    already or cannot be made to by this alone (then it is invalid)."""
    lines = test.rstrip("\n").split("\n")
    for dropped in range(0, min(MAX_TRIMMED_LINES, len(lines) - 1) + 1):
        text = "\n".join(lines[:len(lines) - dropped]) + "\n"
        try:
            pyparse.parse(text)
            return text, dropped
        except (SyntaxError, ValueError):
            continue
    return test, 0



def summarize_tests(samples: list[dict], verdicts: list[dict], references: dict[str, str], families: dict[str, str],
                    lang: str = "python") -> tuple[dict, list[dict], list[dict]]:
    """Generated tests' scores, shared by ``testgen`` and ``java-testgen``: per problem the best and the mean
    over its candidates of each family (``families``: family -> the verdict field it reads), and CodeBLEU
    against the problem's reference test; returns (corpus means with corpus CodeBLEU, one scored row per
    problem, one verdict row per sample in input order)."""
    grouped: dict[str, list[dict]] = {}
    rows = []
    for row, verdict in zip(samples, verdicts, strict=True):
        index = len(grouped.setdefault(row["task_id"], []))
        grouped[row["task_id"]].append(verdict)
        rows.append({**row, "candidate": index, **verdict})
    match_metrics, match_rows = match_scores(
        [{"candidates": [r["test"] for r in samples if r["task_id"] == task_id], "reference": references[task_id]}
         for task_id in grouped], lang=lang)
    scored = []
    for (task_id, group), match_row in zip(grouped.items(), match_rows, strict=True):
        scores = {}
        for family, field in families.items():
            values = [float(v[field]) for v in group]
            scores[f"{family}_best"], scores[f"{family}_mean"] = max(values), fmean(values)
        scores.update({k: v for k, v in match_row["scores"].items() if k.startswith("codebleu")})
        scored.append({"id": task_id, "scores": scores, "candidates": match_row["candidates"],
                       "reference": match_row["reference"], "codebleu_stats": match_row["codebleu_stats"]})
    metrics = {key: fmean(row["scores"][key] for row in scored) for key in scored[0]["scores"]
               if not key.startswith("codebleu")}
    metrics.update({k: v for k, v in match_metrics.items() if k.startswith("codebleu")})
    return metrics, scored, rows

class TestGeneration(Task):
    name = "testgen"
    default_stop = STOP_STRINGS
    chat_stop = ("\n```",)
    raw_template = "{instruction}\n\n# Unit tests for `{entry_point}`, with assertions:\n"
    prediction_keys = ()
    extra_outputs = ("verdicts.jsonl",)
    Options = MinedProjectOptions
    metric_families = METRIC_FAMILIES

    def load(self, split: str) -> list[dict]:
        self.check_split(split)
        if split == "test":
            problems = list(self._test().values())
        else:
            if not self.options.project:
                raise UserError("testgen trains on a mined project's function -> test pairs: set data.project "
                                "(e.g. data.project=algorithms==1.0.1)")
            project = mined_project(self.options.project, seed=self.options.project_seed,
                                    workers=self.config.execution.workers)
            problems = [{**p, "instruction": p["focal"]} for p in mined_pairs(project, split, self.options.context_chars)]
        return self.sized(split, problems)

    def _test(self) -> dict[str, dict]:
        if not hasattr(self, "_test_problems"):
            from peftlab.tasks.humaneval import load_problems

            ids = list(load_problems())
            size = self.config.data.test_size
            focal = humaneval_focal(ids[:size] if size else ids, self.config.execution.workers)
            self._test_problems = {i: {**p, "instruction": p["focal"]} for i, p in focal.items()}
        return self._test_problems

    @staticmethod
    def head(problem: dict) -> str:
        """The start of the test, written for the model (raw prompt's end, chat answer's start): without it a
        small model mostly re-types the focal function and runs out of tokens before any test."""
        return f"def test_{problem['entry_point'].split('.')[-1]}():\n"

    def prompt(self, problem: dict) -> str:
        return self.raw_template.format(instruction=problem["instruction"].rstrip("\n"),
                                        entry_point=problem["entry_point"]) + self.head(problem)

    def user_message(self, problem: dict) -> str:
        return REQUEST.format(name=problem["entry_point"], focal=problem["instruction"])

    def answer_prefix(self, problem: dict) -> str:
        return "```python\n" + self.head(problem)

    def response(self, problem: dict) -> str:
        return problem.get("response") or problem["reference"]

    def retrieval_text(self, problem: dict) -> str:
        return problem["instruction"]

    def postprocess(self, completion: str) -> str:
        # Not extract_code: a test is often several functions (or imports and a class), which its cut
        # after the first top-level function would lose. Nothing else is repaired: validity is a score.
        return strip_fences(cut_at_stop(completion, self.stop)).rstrip() + "\n"

    def evaluate(self, predictions: list[dict], partial: bool = False) -> Evaluation:
        test = self._test()
        if predictions and all("candidates" in row for row in predictions):
            check_candidate_rows(predictions)
            coverage = match_test_ids([row["id"] for row in predictions], list(test), partial=partial)
            # a generated candidate continues the head the prompt ends with
            samples = []
            for row in predictions:
                for candidate in row["candidates"]:
                    text, dropped = drop_unfinished_tail(self.head(test[row["id"]]) + candidate)
                    samples.append({"task_id": row["id"], "test": text, "dropped_lines": dropped})
        else:
            for number, row in enumerate(predictions, start=1):
                if not isinstance(row.get("task_id"), str) or not isinstance(row.get("test"), str):
                    raise UserError(f"prediction row {number} needs a string 'task_id' and a string 'test'")
            coverage = match_test_ids([row["task_id"] for row in predictions], list(test), partial=partial,
                                      repeats=True)
            samples = [{**row, "test": self.postprocess(row["test"])} for row in predictions]
        focal = {task_id: FocalProblem(p["focal"], p["entry_point"], tuple(p["mutants"])) for task_id, p in test.items()}
        verdicts = score_tests([(focal[row["task_id"]], row["test"]) for row in samples],
                               timeout=self.config.execution.timeout, workers=self.config.execution.workers)
        references = {task_id: test[task_id]["reference"] for task_id in test}
        metrics, scored, rows = summarize_tests(samples, verdicts, references, FAMILIES)
        metrics.update(coverage, tasks=len(scored), samples=len(rows),
                       mutants_per_task=fmean(len(focal[row["id"]].mutants) for row in scored),
                       unfinished_tail_dropped=fmean(bool(row.get("dropped_lines")) for row in rows))
        metrics["metric_specs"] = self.metric_specs(metrics)
        return Evaluation(metrics, scored, files={"verdicts.jsonl": rows})
