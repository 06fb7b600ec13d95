"""Code generation on a mined project (``task=project-codegen data.project=SPEC``; its
options are :class:`~peftlab.tasks.mined_projects.MinedProjectOptions`), execution-scored.

The problems are the project's mined functions (:mod:`peftlab.projects.tested_functions`), split by module. The prompt
is the module context the function uses (within ``data.context_chars``), its class header for a method, and
the function's own header (decorators, signature, docstring) verbatim; the model continues with the body.
A candidate body replaces the original in a copy of its module inside the sandbox, and the function's own
tests run there (:mod:`peftlab.projects.bodies`): pass@k and tests passed, beside EM and CodeBLEU against
the original body. Since the original body is gone from that copy, a candidate that imports or calls the
function only calls itself.

Prediction rows: what ``peftlab generate`` writes (``{id, candidates}``), or one row per sample
``{task_id, completion}`` (the body) or ``{task_id, solution}`` (the whole function, header included).
"""

from __future__ import annotations

import logging
from pathlib import Path

from peftlab.errors import UserError
from peftlab.execution import sandbox
from peftlab.execution.scoring import check_samples, sample_counts, summarize
from peftlab.projects.functions import body_of_solution, prompt_context, trim_body
from peftlab.projects.tested_functions import MinedProject
from peftlab.projects.bodies import run_bodies
from peftlab.tasks.executed import ExecutedTask
from peftlab.tasks.mined_projects import MinedProjectOptions, mined_project

log = logging.getLogger(__name__)

STOP_STRINGS = ("\ndef ", "\nclass ", "\n@", "\nif __name__", "\n#")


def build_prompt(record: dict, context_chars: int) -> str:
    """The module context within ``context_chars``, then the class header (a method) and the header."""
    return prompt_context(record, context_chars) + record.get("class_header", "") + record["header"]


class ProjectCodeGeneration(ExecutedTask):
    name = "project-codegen"
    title = "mined-project"
    trainable = True
    default_stop = STOP_STRINGS
    Options = MinedProjectOptions
    _project: MinedProject | None = None

    def project(self) -> MinedProject:
        if self._project is None:
            spec = self.options.project
            if not spec:
                raise UserError("task project-codegen needs data.project: a directory with a test suite or "
                                "NAME==VERSION of a source distribution (see `peftlab data mine --help`)")
            self._project = mined_project(spec, seed=self.options.project_seed, workers=self.config.execution.workers,
                                          progress=lambda message: log.warning("mining %s: %s", spec, message))
        return self._project

    def records(self) -> dict[str, dict]:
        return {record["id"]: record for record in self.project().records}

    def _problem(self, record: dict) -> dict:
        return {"id": record["id"], "instruction": build_prompt(record, self.options.context_chars),
                "reference": record["body"]}

    def load(self, split: str) -> list[dict]:
        self.check_split(split)
        problems = [self._problem(record) for record in self.project().split(split)]
        return self.sized(split, problems)

    def test_problems(self) -> list[dict]:
        return self.load("test")

    def execution_problems(self):  # scored by the project's tests, not by check() functions (see score)
        raise NotImplementedError

    def prepare_data(self, directory: Path) -> dict | None:
        """Mine the project into the cache once for every cell of a study (it is not kept in ``directory``)."""
        return self.project().card

    def retrieval_text(self, problem: dict) -> str:
        return problem["instruction"]

    def score(self, samples: list[dict], ks: list[int], postprocess) -> tuple[dict, list[dict]]:
        records = self.records()
        indices = check_samples(samples, records, self.title)
        _, ks = sample_counts(samples, ks)
        project = self.project()
        items = []
        for row in samples:
            record = records[row["task_id"]]
            if isinstance(row.get("completion"), str):
                completion = postprocess(row["completion"]) if postprocess else row["completion"]
                items.append((record, trim_body(record, completion)))
            else:
                items.append((record, body_of_solution(record, row["solution"])))
        verdicts = run_bodies(project.tree, items, timeout=float(project.card["per_test_timeout_s"]),
                              workers=self.config.execution.workers)
        return summarize(samples, indices, verdicts, ks, sandbox.get_backend().name)
