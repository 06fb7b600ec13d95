"""APPS (Hendrycks et al., 2021): programming problems stated in prose, solved by a whole Python program
(standard input to standard output) or a LeetCode-style function (``fn_name``), scored by running the
answer on the problem's input/output pairs in the sandbox (:mod:`peftlab.tasks.apps.programs`).

Records come from ``data.loader=apps`` (``codeparrot/apps``, or a local copy in its schema): train and
validation (``train[:95%]`` / ``train[95%:]``) keep the problems with a solution, the training target
being the first; test keeps those with test cases. Scores: pass@k and tests passed, plus EM and CodeBLEU
against the first solution where every scored problem has one.
"""

from __future__ import annotations

import functools

from peftlab.data.hub import load_source_split
from peftlab.errors import UserError
from peftlab.execution.scoring import ExecutionProblem, score_samples
from peftlab.tasks.postprocess import cut_at_stop, strip_fences
from peftlab.tasks.apps import dataset
from peftlab.tasks.apps.programs import entry_point, runnable, tests_module
from peftlab.tasks.codegen.prompt import INSTRUCTION_TEMPLATE, STOP_STRINGS
from peftlab.tasks.executed import ExecutedTask

REQUEST = "Solve this programming problem in Python. Reply with the code only.\n\n{instruction}"


def _statement(problem: dict) -> str:
    """The problem as the model reads it: the prose, what form the answer takes, and any starter code."""
    if problem.get("fn_name"):
        how = f"Write the function `{problem['fn_name']}` (in a class Solution where the starter code has one)."
    else:
        how = "Write a program that reads the input from standard input and prints the answer."
    starter = f"\n\nStarter code:\n{problem['starter_code']}" if problem.get("starter_code") else ""
    return f"{problem['instruction'].strip()}\n\n{how}{starter}"


class Apps(ExecutedTask):
    name = "apps"
    title = "APPS"
    trainable = True
    default_stop = STOP_STRINGS
    raw_template = INSTRUCTION_TEMPLATE
    chat_stop = ("\n```",)
    loaders = (dataset.LOADER,)

    def load(self, split: str) -> list[dict]:
        return list(self._test) if split == "test" else self._records(split)

    @functools.cached_property
    def _test(self) -> list[dict]:
        return self._records("test")  # read once per task: APPS's test split is large (inputs of megabytes)

    def _records(self, split: str) -> list[dict]:
        self.check_split(split)
        loader = self.named_loader()
        if loader is None:
            raise UserError("the apps task reads data.loader=apps (the hub's codeparrot/apps, or a local copy "
                            "in its schema as data.source)")
        wanted = "inputs" if split == "test" else "reference"  # tests to score, or a solution to train on
        records = [r for r in load_source_split(self.config.data, split, {}, loader) if r.get(wanted)]
        if not records:
            raise UserError(f"data.source {self.config.data.source or 'codeparrot/apps'}: split '{split}' has no "
                            f"problem with {'test cases' if split == 'test' else 'a solution'}")
        return self.sized(split, records)

    def test_problems(self) -> list[dict]:
        return self.load("test")

    def execution_problems(self) -> dict[str, ExecutionProblem]:
        # the program is built per answer (score), so no prompt; the entry point is the wrapper's
        return {p["id"]: ExecutionProblem("", entry_point(p.get("fn_name")),
                                          tests_module(p["inputs"], p["outputs"], p.get("fn_name")))
                for p in self.test_problems()}

    def prompt(self, problem: dict) -> str:
        return INSTRUCTION_TEMPLATE.format(instruction=_statement(problem))

    def user_message(self, problem: dict) -> str:
        return REQUEST.format(instruction=_statement(problem))

    def answer_prefix(self, problem: dict) -> str:
        return "```python\n"

    def retrieval_text(self, problem: dict) -> str:
        return problem["instruction"]

    def postprocess(self, completion: str) -> str:
        return strip_fences(cut_at_stop(completion, self.stop)).rstrip() + "\n"

    def score(self, samples: list[dict], ks: list[int], postprocess) -> tuple[dict, list[dict]]:
        """Each answer wrapped into its runnable module, then scored as a whole program (``solution``)."""
        problems = {p["id"]: p for p in self.test_problems()}
        wrapped = []
        for row in samples:
            answer = row.get("completion", row.get("solution"))
            if not isinstance(answer, str) or row.get("task_id") not in problems:
                wrapped.append(row)  # score_samples names what is wrong with it
                continue
            answer = postprocess(answer) if postprocess else answer
            module = runnable(answer, problems[row["task_id"]].get("fn_name"))
            rest = {key: value for key, value in row.items() if key not in ("completion", "solution")}
            wrapped.append({**rest, "answer": answer, "solution": module})
        return score_samples(wrapped, self.execution_problems(), workers=self.config.execution.workers,
                             timeout=self.config.execution.timeout, ks=ks, kind=self.title)
