"""HumanEval-X Java (Zheng et al., 2023, CodeGeeX): the 164 HumanEval problems in Java, scored by running
each problem's ``Main`` test (it throws ``AssertionError`` on a wrong answer) in the sandbox.

Evaluation-only, like HumanEval: the raw prompt is the published one (imports, ``class Solution``, the
javadoc, the method's declaration and its ``{``), continued as is; in the chat format the user asks for
the Java method and the answer starts as a fenced copy of the prompt, so the model continues the body.
A continuation is kept up to the brace that closes the class, and braces the model did not write are
appended (:func:`data.complete_method`): the program is the prompt plus the completion, as published.
The data (vendored, hash-checked) and the sandbox job are :mod:`.data`; scoring is :mod:`.scoring`;
execution-validated injected bugs for repair are :mod:`.bugs`.

Metrics: pass@1 and pass@k (k = samples per problem), ``compiles@k``, ``tests_passed``; for generated
rows also EM and CodeBLEU (parsed as Java) against the canonical solution. ``verdicts.jsonl`` holds one
row per sample, as for the Python tasks, with ``compiles``. Where Java is missing, evaluating fails in one
line naming the packages to install; nothing else here needs Java.
"""

from __future__ import annotations

from typing import Literal

from peftlab.config import OwnedOptions
from peftlab.execution.scoring import ExecutionProblem
from peftlab.metrics.specs import at_k
from peftlab.tasks.executed import ExecutedTask
from peftlab.tasks.humaneval_x_java.data import complete_method, problems
from peftlab.tasks.humaneval_x_java.scoring import java_item_scores, score_java_samples
from peftlab.tasks.postprocess import continuation

STOP_STRINGS = ("\n}", "\nclass ", "\npublic class ", "\nimport ")
"""The class closes at column 0 (``\\n}``): the completion ends there and :func:`data.complete_method`
puts the brace back. A method of the body never starts a line with ``}``; helper methods after the entry
method are kept. The others end a model that starts another class without closing this one."""
# Among the top k candidates, one compiles (the same family, and column, as repair's compiles@k).
METRIC_FAMILIES = (at_k("compiles", "compiles", 10),)


class HumanEvalXJavaOptions(OwnedOptions):
    """``humaneval-x-java``'s ``data.*`` options."""

    problems: Literal["all", "test-half"] = "all"
    """``all``: the 164 problems. ``test-half``: the 86 that the Java tasks keep for testing (a salted hash of
    the id, :func:`peftlab.tasks.java_repair.data.in_test_half`), which their built-in training data never
    shows: the forgetting check of an adapter trained by ``java-testgen`` or ``java-repair``."""


class HumanEvalXJava(ExecutedTask):
    """The shape of :class:`ExecutedTask` (prompts, evaluate, EM/CodeBLEU as Java); candidates run as Java."""

    name = "humaneval-x-java"
    title = "HumanEval-X Java"
    language = "java"
    default_stop = STOP_STRINGS
    chat_stop = ("\n```",)
    """The chat answer starts as a fenced copy of the prompt (:meth:`answer_prefix`): the closing fence
    ends it; what follows the class's closing brace is cut by post-processing."""
    metric_families = METRIC_FAMILIES
    Options = HumanEvalXJavaOptions
    test_set_options = ("problems",)

    def test_problems(self) -> list[dict]:
        if self.options.problems == "test-half":
            from peftlab.tasks.java_repair.data import in_test_half

            chosen = [p for p in problems() if in_test_half(p["id"])]
        else:
            chosen = problems()
        return [{"id": p["id"], "instruction": p["prompt"], "reference": p["canonical_solution"]} for p in chosen]

    def execution_problems(self) -> dict[str, ExecutionProblem]:
        """Each problem's program parts (the program is the prompt plus a completion, as for EvalPlus and
        bigcode files); :meth:`score` runs them as Java, never through the Python harness."""
        return {p["id"]: ExecutionProblem(p["prompt"], p["entry_point"], p["test"]) for p in problems()}

    def reference_code(self, problem: dict) -> str | None:
        """The canonical ``Solution`` source (prompt, then solution), for the train/test overlap check."""
        return problem["instruction"] + problem["reference"]

    def postprocess(self, completion: str) -> str:
        return complete_method(continuation(completion, self.stop))

    def score(self, samples: list[dict], ks: list[int], postprocess) -> tuple[dict, list[dict]]:
        by_id = {p["id"]: p for p in problems()}
        # execution.timeout is the test's budget; the JVM start and the compile get their own on top
        return score_java_samples(samples, by_id, workers=self.config.execution.workers,
                                  timeout=self.config.execution.timeout, ks=ks, kind=self.title,
                                  postprocess=postprocess)

    def item_scores(self, verdicts: list[dict], ks: list[int]) -> list[dict]:
        return java_item_scores(verdicts, ks)
