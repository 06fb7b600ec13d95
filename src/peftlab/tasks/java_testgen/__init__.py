"""Unit-test generation for Java (``task=java-testgen``): given a focal method in its class, write a JUnit 4
test; scored by running it (docs/testgen.md, "Java, executed").

Training and validation: by default, offline, HumanEval-X Java's problems outside the test half, each its
focal class -> its own test rewritten as a JUnit 4 class (:mod:`peftlab.tasks.java_testgen.training`: 69
train, 9 validation); or Methods2Test (Tufano et al., 2022) from ``data.loader=methods2test``
(``andstor/methods2test_small``, or a local copy in its schema; ``data.subset`` picks the context level,
default ``fm+fc+c+m+f+t+tc``) or any ``data.source`` with ``instruction``/``reference`` columns: a focal
method with its class context -> the test method its developers wrote.

The test set (``data.focal``, :class:`JavaTestgenOptions`): ``humaneval-x`` (the ``Solution`` classes of
HumanEval-X Java's test half, 86 problems, focal method = the entry point; the other half is the built-in
training data), ``quixbugs`` (QuixBugs Java's 40 corrected programs;
:mod:`peftlab.tasks.java_testgen.focal`), or ``source``: the test split of the loader/source, scored by EM and
CodeBLEU parsed as Java as before (Methods2Test ships methods, not buildable projects, so its own tests
cannot run). Unset, it is ``source`` where a loader or source is set, else ``humaneval-x``; a study that
trains on Methods2Test scores that one adapter on each.

Executed scores per candidate (:mod:`peftlab.tasks.java_testgen.junit_scoring`): compiles, passes on the
correct class, JaCoCo line and branch coverage of the focal method, mutation score; per problem the best and
the mean over its k candidates, in the Python ``testgen`` task's metric families (``test_valid`` is
"compiles" here), and CodeBLEU (Java) against the dataset's own test.

Prediction rows: ``{id, candidates}`` (``peftlab generate``) or one row per sample ``{task_id, test, ...extra}``
from any tool; ``verdicts.jsonl`` has one row per sample with the extra keys carried through.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Literal

from peftlab.config import OwnedOptions
from peftlab.errors import UserError
from peftlab.tasks.base import Evaluation, check_candidate_rows, match_test_ids
from peftlab.tasks.codegen import CodeGeneration
from peftlab.tasks.java_testgen import methods2test
from peftlab.tasks.java_testgen.focal import focal_record
from peftlab.tasks.java_testgen.junit_scoring import FocalClass, score_junit_tests
from peftlab.tasks.java_repair.source import imports_of
from peftlab.tasks.java_testgen.main_to_junit import test_class_head
from peftlab.tasks.java_testgen.test_class import extract_test
from peftlab.tasks.postprocess import cut_at_stop
from peftlab.tasks.testgen import METRIC_FAMILIES, summarize_tests

# The chat turn for a Methods2Test record: the source holds the focal method and its context, and the
# reference is one test method.
CHAT_REQUEST = (
    "Write one JUnit test method for the focal method below (its class context is included). "
    "Reply with the test method's Java code only.\n\n{instruction}"
)
# The chat turn for an executed focal class: the whole class is shown, a whole test class is asked for.
REQUEST = (
    "Write a JUnit 4 test class for the method `{method}` of the Java class `{name}` below. Use `org.junit.Test` "
    "and `org.junit.Assert`; the test class is compiled in the same package as `{name}`, so do not repeat it. "
    "Reply with the test class's Java code only.\n```java\n{source}```"
)
FAMILIES = {"test_valid": "compiles", "test_pass": "passes", "line_cov": "line_coverage",
            "branch_cov": "branch_coverage", "mutation": "mutation_score"}
"""Each metric family (the Python testgen task's, so one table lines both up) and the verdict field it is the
best and the mean of."""


class JavaTestgenOptions(OwnedOptions):
    """``java-testgen``'s ``data.*`` options."""

    focal: Literal["humaneval-x", "quixbugs", "source"] | None = None
    """The test set: ``humaneval-x`` (the Solution classes of HumanEval-X Java's test half), ``quixbugs``
    (QuixBugs Java's corrected programs), both scored by running the generated JUnit tests; ``source`` (the
    test split of ``data.loader``/``data.source``, scored by EM and CodeBLEU). Unset: ``source`` when a loader
    or source is set, else ``humaneval-x``."""


class JavaTestGeneration(CodeGeneration):
    name = "java-testgen"
    loaders = (methods2test.LOADER,)
    language = "java"
    chat_request = CHAT_REQUEST
    chat_stop = ("\n```",)
    Options = JavaTestgenOptions
    test_set_options = ("focal",)
    metric_families = METRIC_FAMILIES

    def test_set(self) -> str:
        """``data.focal``, its default resolved (see :class:`JavaTestgenOptions`)."""
        return self.options.focal or ("source" if self._from_source() else "humaneval-x")

    @property
    def executed(self) -> bool:
        return self.test_set() != "source"

    @property
    def prediction_keys(self) -> tuple[str, ...]:  # executed: generated rows or one row per sample
        return () if self.executed else ("id", "candidates")

    @property
    def extra_outputs(self) -> tuple[str, ...]:
        return ("verdicts.jsonl",) if self.executed else ()

    def load(self, split: str) -> list[dict]:
        self.check_split(split)
        if split == "test" and self.executed:
            return self.sized(split, [focal_record(f) for f in self.focal_classes().values()])
        if self._from_source():
            return super().load(split)
        if split == "test":
            raise UserError("data.focal=source scores the test split of data.loader=methods2test (or of a "
                            "data.source with instruction/reference columns); neither is set")
        from peftlab.tasks.java_testgen.training import training_records

        return self.sized(split, training_records(split))

    def focal_classes(self) -> dict[str, FocalClass]:
        """The executed test set's focal classes by id (the first ``data.test_size``), built once."""
        if not hasattr(self, "_focal_classes"):
            from peftlab.tasks.java_testgen.focal import humaneval_x_focal, quixbugs_focal

            size = self.config.data.test_size
            chosen = (humaneval_x_focal(size, test_half=True) if self.test_set() == "humaneval-x"
                      else quixbugs_focal(size, self.config.execution.workers))
            self._focal_classes = {focal.id: focal for focal in chosen}
        return self._focal_classes

    def user_message(self, problem: dict) -> str:
        if "focal_class" not in problem:  # a Methods2Test record (training, or data.focal=source)
            return super().user_message(problem)
        return REQUEST.format(method=problem["focal_method"], name=problem["focal_class"].rpartition(".")[2],
                              source=problem["focal_source"].strip() + "\n")

    @staticmethod
    def head(problem: dict) -> str:
        """For a focal class, the start of its test class (:func:`main_to_junit.test_class_head`: the focal
        class's imports, JUnit's, ``public class <Focal>Test {``), which the prompt ends with and the model
        continues, as the Python task's prompt ends with ``def test_<name>():``. Without it a small model
        mostly re-types the focal class and never reaches a test. Empty for a Methods2Test record."""
        if "focal_class" not in problem:
            return ""
        return test_class_head(imports_of(problem["focal_source"]), problem["focal_class"].rpartition(".")[2])

    def prompt(self, problem: dict) -> str:
        return super().prompt(problem) + self.head(problem)

    def answer_prefix(self, problem: dict) -> str:
        """The chat answer starts as a Java fence (its end is the chat stop), then :meth:`head`."""
        return "```java\n" + self.head(problem)

    def response(self, problem: dict) -> str:
        """The training target: the reference test after :meth:`head` (a rewritten HumanEval-X test starts
        with it), or all of it."""
        head, reference = self.head(problem), problem["reference"]
        return reference[len(head):] if head and reference.startswith(head) else reference

    def postprocess(self, completion: str) -> str:
        if not self.executed:
            return super().postprocess(completion)
        # a continuation of the head, inside the code from its first character: a closing fence ends it in
        # either format (in chat it is the stop). evaluate puts head and continuation together.
        return cut_at_stop(completion, [*self.stop, "\n```"])

    def evaluate(self, predictions: list[dict], partial: bool = False) -> Evaluation:
        if not self.executed:
            return super().evaluate(predictions, partial)
        focal = self.focal_classes()
        if predictions and all("candidates" in row for row in predictions):
            check_candidate_rows(predictions)
            coverage = match_test_ids([row["id"] for row in predictions], list(focal), partial=partial)
            heads = {task_id: self.head(focal_record(f)) for task_id, f in focal.items()}
            samples = [{"task_id": row["id"], "test": extract_test(heads[row["id"]] + candidate, self.stop)}
                       for row in predictions for candidate in row["candidates"]]
        else:
            for number, row in enumerate(predictions, start=1):
                if not isinstance(row.get("task_id"), str) or not isinstance(row.get("test"), str):
                    raise UserError(f"prediction row {number} needs a string 'task_id' and a string 'test'")
            coverage = match_test_ids([row["task_id"] for row in predictions], list(focal), partial=partial,
                                      repeats=True)
            samples = [{**row, "test": extract_test(row["test"], self.stop)} for row in predictions]
        verdicts = score_junit_tests([(focal[row["task_id"]], row["test"]) for row in samples],
                                     timeout=self.config.execution.timeout, workers=self.config.execution.workers)
        return self._summary(samples, verdicts, focal, coverage)

    def _summary(self, samples: list[dict], verdicts: list[dict], focal: dict[str, FocalClass],
                 coverage: dict) -> Evaluation:
        """Per-problem best and mean of each family, CodeBLEU against the dataset's test, corpus means."""
        references = {task_id: focal[task_id].reference for task_id in focal}
        metrics, scored, rows = summarize_tests(samples, verdicts, references, FAMILIES, lang="java")
        metrics.update(coverage, tasks=len(scored), samples=len(rows),
                       mutants_per_task=fmean(len(focal[row["id"]].mutants) for row in scored),
                       unfinished_tail_dropped=fmean(bool(row.get("tail_dropped")) for row in rows),
                       wrapped_in_class=fmean(bool(row.get("wrapped")) for row in rows),
                       run_errors=fmean(row["status"] == "error" for row in rows))
        metrics["metric_specs"] = self.metric_specs(metrics)
        return Evaluation(metrics, scored, files={"verdicts.jsonl": rows})

    def prepare_data(self, directory: Path) -> dict | None:
        """Nothing to build (the built-in training data ships with the package; a loader or source is read
        as is): the built-in data's card, else None."""
        if self._from_source():
            return None
        from peftlab.tasks.java_testgen.training import training_card

        return training_card()
