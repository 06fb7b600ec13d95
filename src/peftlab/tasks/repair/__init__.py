"""Automated program repair (``task=repair``): given a buggy function, write the fixed one; a fix counts
when it passes every test.

Options (:class:`RepairOptions`): the test set (``data.bugs``): ``humaneval`` (the default: HumanEval with one injected bug per problem),
``quixbugs`` (:mod:`peftlab.tasks.repair.quixbugs`), or a JSONL file in the bug format of
:mod:`peftlab.tasks.repair.data`. Training and validation: bugs injected into a mined project's
functions (``data.project``, ``data.project_seed``), kept only when the function's own tests then fail
(:mod:`peftlab.tasks.repair.training`). ``data.show_failing_test`` adds the name and message of one failing
test to the prompt (the studies differ on it); scoring always runs every test. ``data.bugsinpy`` adds
BugsInPy's one-hunk fixes to the training split (:mod:`peftlab.tasks.repair.bugsinpy`).

Scores (per problem over its k candidates, as pass@k): ``plausible@k`` (passes every test, and is not the
buggy code itself, compared as ASTs), ``exact_fix@k`` (AST-equal to the known fix, docstrings aside, where
the bug has one), ``compiles@k``; ``metrics.json`` also has plausible@1 per mutation operator.
"""

from __future__ import annotations

import ast
import random

from peftlab import pyparse
from peftlab.errors import UserError
from peftlab.execution import harness, passk, sandbox
from peftlab.execution.scoring import check_samples, sample_counts, summarize
from peftlab.metrics.specs import at_k
from peftlab.tasks.postprocess import cut_at_stop, strip_fences
from peftlab.tasks.base import Evaluation, Task, check_candidate_rows, match_test_ids
from peftlab.tasks.mined_projects import MinedProjectOptions
from peftlab.tasks.repair.data import function_source, humaneval_bugs, read_bugs, top_level_function

STOP_STRINGS = ("\n### ", "\nif __name__", "\n\n\n\n")
TEMPLATE = "### Buggy function:\n{buggy}\n### Fixed function:\n"
REQUEST = "Fix the bug in this Python function. Answer with the whole fixed function.\n```python\n{buggy}```"
REPORTED_KS = (1, 5, 10)
# Among the top k candidates, one passes every test / equals the known fix / compiles.
METRIC_FAMILIES = (at_k("plausible", "plausible", 8), at_k("exact_fix", "exact fix", 9), at_k("compiles", "compiles", 10))


class RepairOptions(MinedProjectOptions):
    """``repair``'s ``data.*`` options: the mined project its training bugs are injected into, and these."""

    bugs: str | None = None
    """The test set: ``humaneval`` (default: one injected bug per HumanEval problem), ``quixbugs`` (QuixBugs
    Python, from the pinned pyimprove==0.0.3 sdist), or a JSONL file of bugs in the documented format
    (docs/repair.md)."""
    show_failing_test: bool = False
    """Add the name and message of one failing test to the prompt (where the bug has one)."""
    bugsinpy: bool = False
    """Also train on BugsInPy's 275 one-hunk Python fixes shipped in ``tests4py==1.0.0`` (static pairs, never
    executed; the sdist is fetched once into the cache), shuffled in with the injected bugs."""


def _function_ast(program: str, entry_point: str) -> str | None:
    """The entry point's AST without its docstring, dumped; None when the program has no such function."""
    node = top_level_function(program, entry_point)
    if node is None:
        return None
    if node.body and isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None),
                                                                       ast.Constant):
        node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(node, annotate_fields=False)


def _imports(program: str) -> str:
    try:
        tree = pyparse.parse(program)
    except (SyntaxError, ValueError):
        return ""
    return "".join(ast.unparse(n) + "\n" for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def not_the_bug(verdict, flag: dict) -> dict:
    """A verdict row; a candidate identical to the buggy code never passes (a weak test set does not make
    the bug a fix)."""
    status, reason = verdict.status, verdict.reason
    if flag["identical_to_buggy"] and status == "passed":
        status, reason = "failed", "identical to the buggy code"
    return {"status": status, "reason": reason, "tests_passed": verdict.tests_passed, "tests_total": verdict.tests_total}


def candidate_program(bug: dict, answer: str) -> str:
    """What runs: the buggy program's imports (an answer often leaves them out), then the answer."""
    return _imports(bug["buggy"]) + answer


class ProgramRepair(Task):
    name = "repair"
    default_stop = STOP_STRINGS
    chat_stop = ("\n```",)
    raw_template = TEMPLATE
    prediction_keys = ()
    extra_outputs = ("verdicts.jsonl",)
    Options = RepairOptions
    test_set_options = ("bugs",)
    metric_families = METRIC_FAMILIES

    def bugs(self, split: str) -> list[dict]:
        if split == "test":
            chosen = self.options.bugs or "humaneval"
            if chosen == "humaneval":
                return humaneval_bugs(workers=self.config.execution.workers, limit=self.config.data.test_size)
            if chosen == "quixbugs":
                from peftlab.tasks.repair.quixbugs import quixbugs_bugs

                return quixbugs_bugs()[0]
            return read_bugs(chosen)
        if not self.options.project:
            raise UserError("repair trains on bugs injected into a mined project: set data.project "
                            "(e.g. data.project=algorithms==1.0.1)")
        from peftlab.tasks.repair.training import training_bugs

        bugs = training_bugs(self.options.project, split, seed=self.options.project_seed,
                             workers=self.config.execution.workers)
        if split == "train" and self.options.bugsinpy:
            from peftlab.tasks.repair.bugsinpy import bugsinpy_pairs

            # shuffled in, so that data.train_size takes both kinds
            bugs = bugs + bugsinpy_pairs()[0]
            random.Random(self.options.project_seed).shuffle(bugs)
        return bugs

    def load(self, split: str) -> list[dict]:
        self.check_split(split)
        problems = [self._problem(bug) for bug in self.bugs(split)]
        return self.sized(split, problems)

    def _problem(self, bug: dict) -> dict:
        shown = function_source(bug["buggy"], bug["entry_point"]) or bug["buggy"]
        if self.options.show_failing_test and bug.get("failing_test"):
            shown += f"\n# A failing test: {bug['failing_test']}"
        return {"id": bug["id"], "instruction": shown.rstrip("\n") + "\n",
                "reference": function_source(bug.get("fixed") or "", bug["entry_point"]) or bug.get("fixed") or ""}

    def prompt(self, problem: dict) -> str:
        return TEMPLATE.format(buggy=problem["instruction"])

    def user_message(self, problem: dict) -> str:
        return REQUEST.format(buggy=problem["instruction"])

    def answer_prefix(self, problem: dict) -> str:
        return "```python\n"

    def postprocess(self, completion: str) -> str:
        return strip_fences(cut_at_stop(completion, self.stop)).rstrip() + "\n"

    def evaluate(self, predictions: list[dict], partial: bool = False) -> Evaluation:
        bugs = {bug["id"]: bug for bug in self.bugs("test")}
        if self.config.data.test_size:
            bugs = dict(list(bugs.items())[:self.config.data.test_size])
        if predictions and all("candidates" in row for row in predictions):
            check_candidate_rows(predictions)
            coverage = match_test_ids([row["id"] for row in predictions], list(bugs), partial=partial)
            samples = [{"task_id": row["id"], "solution": c} for row in predictions for c in row["candidates"]]
        else:
            check_samples(predictions, bugs, "repair")
            coverage = match_test_ids([row["task_id"] for row in predictions], list(bugs), partial=partial,
                                      repeats=True)
            samples = [{**row, "solution": self.postprocess(row.get("solution", row.get("completion", "")))}
                       for row in predictions]
        return self._score(samples, bugs, coverage)

    def _judge(self, samples: list[dict], bugs: dict[str, dict]) -> tuple[list[dict], list[dict]]:
        """Each sample's verdict ``{status, reason, tests_passed, tests_total}`` and flags
        ``{identical_to_buggy, exact_fix, compiles}``: the language-specific part of :meth:`_score`."""
        backend = sandbox.get_backend().name
        jobs, flags = [], []
        for row in samples:
            bug = bugs[row["task_id"]]
            program = candidate_program(bug, row["solution"]) + bug.get("suffix", "")
            shape = _function_ast(program, bug["entry_point"])
            flag = {"identical_to_buggy": shape is not None and shape == _function_ast(bug["buggy"], bug["entry_point"]),
                    "exact_fix": shape is not None and bool(bug.get("fixed"))
                    and shape == _function_ast(bug["fixed"], bug["entry_point"])}
            try:
                compile(program, "<candidate>", "exec")
                flag["compiles"] = True
            except (SyntaxError, ValueError):
                flag["compiles"] = False
            flags.append(flag)
            jobs.append({"program": program, "entry_point": bug.get("call", bug["entry_point"]), "tests": bug["tests"],
                         "setup": bug.get("setup", ""), "timeout": self.config.execution.timeout, "backend": backend})
        verdicts = []
        for verdict, flag in zip(harness.run_batch(jobs, self.config.execution.workers), flags):
            verdicts.append(not_the_bug(verdict, flag))
        return verdicts, flags

    def _score(self, samples: list[dict], bugs: dict[str, dict], coverage: dict) -> Evaluation:
        """Per-bug plausible/exact-fix/compiles@k, their means, plausible@1 per operator, verdict counts."""
        indices = check_samples(samples, bugs, "repair")
        per_task, _ = sample_counts(samples, [1])
        fewest = min(per_task.values())
        # the studies report plausible@1/@5/@10: those the samples allow, and @k for k = samples per bug
        counts, ks = sample_counts(samples, [k for k in REPORTED_KS if k <= fewest] + [fewest])
        verdicts, flags = self._judge(samples, bugs)
        metrics, rows = summarize(samples, indices, verdicts, ks, sandbox.get_backend().name)
        for row, flag in zip(rows, flags):
            row.update(flag)
        scored = []
        for task_id in counts:
            group = [r for r in rows if r["task_id"] == task_id]
            # metric -> the verdict row's flag it counts; exact fixes only where the bug has a known fix
            columns = {"plausible": "passed", "compiles": "compiles"}
            if bugs[task_id].get("fixed"):
                columns["exact_fix"] = "exact_fix"
            scores = {f"{name}@{k}": passk.pass_at_k(len(group), sum(r[column] for r in group), k)
                      for k in ks for name, column in columns.items()}
            scored.append({"id": task_id, "scores": scores, "operator": bugs[task_id].get("operator")})
        out = {key: sum(s["scores"][key] for s in scored) / len(scored) for key in scored[0]["scores"]
               if all(key in s["scores"] for s in scored)}
        by_operator: dict[str, list[float]] = {}
        for item in scored:
            by_operator.setdefault(item["operator"] or "unknown", []).append(item["scores"]["plausible@1"])
        out["plausible@1_by_operator"] = {op: sum(v) / len(v) for op, v in sorted(by_operator.items())}
        out.update({k: metrics[k] for k in ("tasks", "samples", "n_per_task", "sandbox_backend")},
                   tests_passed=metrics["tests_passed"], **coverage)
        out.update({f"verdict_{s}": metrics[f"verdict_{s}"] for s in harness.STATUSES})
        out["metric_specs"] = self.metric_specs(out)
        return Evaluation(out, scored, files={"verdicts.jsonl": rows})
