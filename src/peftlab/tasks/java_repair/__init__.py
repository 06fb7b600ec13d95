"""Automated program repair in Java (``task=java-repair``): given a buggy class, write the fixed class; a
fix counts when it passes every test, run in the sandbox by :mod:`peftlab.execution.java`.

Options (:class:`JavaRepairOptions`): the test set (``data.bugs``): ``quixbugs`` (the default: QuixBugs' 40
Java programs, vendored, :mod:`peftlab.tasks.java_repair.quixbugs`), ``humaneval-x`` (one injected bug per
problem of a fixed half of HumanEval-X Java), or a JSONL file in the bug format of
:mod:`peftlab.tasks.java_repair.data`. Training and validation: the execution-validated bugs injected into
the other HumanEval-X problems (:mod:`peftlab.tasks.java_repair.training`).

Scores, as the Python repair task's (per bug over its k candidates, as pass@k): ``plausible@k`` (passes every
test, and is not the buggy class itself), ``exact_fix@k`` (the known fix, where the bug has one), both
compared as token streams of the type declarations, without comments, whitespace, package and imports;
``compiles@k`` (javac accepts the candidate with the tests, as in ``humaneval-x-java``: an answer that renames
the method the tests call does not compile); ``metrics.json`` also has plausible@1 per mutation operator.
"""

from __future__ import annotations

from peftlab.config import OwnedOptions
from peftlab.execution.java import run_java_batch
from peftlab.execution.java.toolchain import toolchain
from peftlab.tasks.java_repair.data import candidate_program, chosen_bugs, java_job
from peftlab.tasks.java_repair.source import declaration_tokens, extract_class, without_package
from peftlab.tasks.postprocess import cut_at_stop, strip_fences
from peftlab.tasks.repair import ProgramRepair, not_the_bug

STOP_STRINGS = ("\n### ", "\n\n\n\n")
TEMPLATE = "### Buggy class:\n{buggy}\n### Fixed class:\n"
REQUEST = "Fix the bug in this Java class. Answer with the whole fixed class.\n```java\n{buggy}```"


class JavaRepairOptions(OwnedOptions):
    """``java-repair``'s ``data.*`` options."""

    bugs: str | None = None
    """The test set: ``quixbugs`` (default: QuixBugs Java, vendored), ``humaneval-x`` (one injected bug per
    problem of the HumanEval-X Java test half), or a JSONL file of Java bugs in the documented format
    (docs/repair.md, "Java")."""


def _shown(source: str) -> str:
    """A class as the model sees it: without its package declaration (the program run gets the bug's own)."""
    return without_package(source).strip("\n") + "\n" if source else ""


class JavaProgramRepair(ProgramRepair):
    """The Python repair task's evaluation (prediction rows, pass@k over candidates) with Java bugs, prompts,
    post-processing and execution."""

    name = "java-repair"
    default_stop = STOP_STRINGS
    chat_stop = ("\n```",)
    raw_template = TEMPLATE
    Options = JavaRepairOptions
    test_set_options = ("bugs",)

    def bugs(self, split: str) -> list[dict]:
        if split == "test":
            return chosen_bugs(self.options.bugs)
        from peftlab.tasks.java_repair.training import training_bugs

        return training_bugs(split)

    def _problem(self, bug: dict) -> dict:
        return {"id": bug["id"], "instruction": _shown(bug["buggy"]), "reference": _shown(bug.get("fixed") or "")}

    def prompt(self, problem: dict) -> str:
        return TEMPLATE.format(buggy=problem["instruction"])

    def user_message(self, problem: dict) -> str:
        return REQUEST.format(buggy=problem["instruction"])

    def answer_prefix(self, problem: dict) -> str:
        return "```java\n"

    def postprocess(self, completion: str) -> str:
        return extract_class(strip_fences(cut_at_stop(completion, self.stop))).strip("\n") + "\n"

    def _judge(self, samples: list[dict], bugs: dict[str, dict]) -> tuple[list[dict], list[dict]]:
        """The Java part of scoring: each sample's verdict ``{status, reason, tests_passed, tests_total}`` and
        flags ``{identical_to_buggy, exact_fix, compiles}``."""
        toolchain()  # once, before the worker threads: a machine without Java fails in one line
        known = {task_id: (declaration_tokens(bug["buggy"]), declaration_tokens(bug["fixed"]) if bug.get("fixed")
                           else None) for task_id, bug in bugs.items()}
        flags, jobs = [], []
        for row in samples:
            bug, (buggy, fixed) = bugs[row["task_id"]], known[row["task_id"]]
            shape = declaration_tokens(row["solution"])
            flags.append({"identical_to_buggy": shape == buggy, "exact_fix": fixed is not None and shape == fixed})
            jobs.append(java_job(bug, candidate_program(bug, row["solution"]), self.config.execution.timeout))
        verdicts = []
        for verdict, flag in zip(run_java_batch(jobs, self.config.execution.workers), flags):
            verdicts.append(not_the_bug(verdict, flag))
            flag["compiles"] = verdict.compiled is True
        return verdicts, flags
