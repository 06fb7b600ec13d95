"""The task interface: problems in, prompts out, completions scored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from peftlab.config import Config, OwnedOptions, check_owned_options
from peftlab.data.contamination import joined_code
from peftlab.data.hub import NamedLoader
from peftlab.errors import UserError
from peftlab.metrics.specs import describe


@dataclass
class Evaluation:
    metrics: dict[str, float]
    """Corpus-level metrics, merged into ``metrics.json``."""
    scored: list[dict]
    """One row per problem with its own ``scores`` (written to ``scored.jsonl``; the report reads it)."""
    files: dict[str, list[dict]] = field(default_factory=dict)
    """Further JSONL files for the run directory, by file name (e.g. per-sample verdicts)."""


SIZE_KEYS = {"train": "train_size", "validation": "validation_size", "test": "test_size"}
"""Each split and the ``data`` key that truncates it."""


class NoOptions(OwnedOptions):
    """A task that takes no ``data.*`` options of its own."""


def own_options(options: type[OwnedOptions], config: Config, owner: str) -> OwnedOptions:
    """``options`` read from ``config.data``: the keys it declares (other tasks' options are left to them;
    :func:`peftlab.tasks.resolve_task_options` checks that every key has an owner), defaults filled in.

    Raises:
        UserError: a bad value, one line.
    """
    given = {key: value for key, value in (config.data.__pydantic_extra__ or {}).items() if key in options.model_fields}
    return check_owned_options("data", given, options, owner, lambda key: ())


class Task(ABC):
    """A task names everything that is its own: where its problems come from (and how its dataset is
    built), its prompt format and stop strings, post-processing, and the metrics it reports.

    Add one as a folder ``tasks/<name>/`` plus an entry in ``tasks.TASKS``, or outside peftlab as any
    importable module holding a ``Task`` subclass (``task: mypackage.mytask``); see docs/design.md.
    """

    name: ClassVar[str]
    Options: ClassVar[type[OwnedOptions]] = NoOptions
    """The ``data.*`` options this task takes (typed fields with defaults and docstrings); an instance reads
    them as ``self.options``. A run's config holds those of its ``task`` and its ``data.train_task``."""
    test_set_options: ClassVar[tuple[str, ...]] = ()
    """Those of :attr:`Options` that choose only the scored test set (repair's ``bugs``): they do not change
    what is trained (a study shares one adapter across them), and the report names the dataset by them."""
    loaders: ClassVar[tuple[NamedLoader, ...]] = ()
    """The named datasets (``data.loader``) whose schema this task converts into its records."""
    metric_families: ClassVar[tuple] = ()
    """Metric families of the task's own (builders of :mod:`peftlab.metrics.specs`), beside the generic ones:
    :meth:`metric_specs` declares them."""
    trainable: ClassVar[bool] = True
    """Whether the task has a training split (HumanEval, for instance, is evaluation-only)."""
    prediction_keys: ClassVar[tuple[str, ...]] = ("id", "candidates")
    """Keys every row of a predictions file must have for :meth:`evaluate`."""
    extra_outputs: ClassVar[tuple[str, ...]] = ()
    """Files :meth:`evaluate` writes besides ``scored.jsonl`` (the keys of ``Evaluation.files``)."""
    default_stop: ClassVar[tuple[str, ...]] = ()
    """Stop strings of the task's prompt format; ``generation.stop`` replaces them when set."""
    chat_stop: ClassVar[tuple[str, ...]] = ()
    """Stop strings when the model answers in a chat turn (``model.prompt_format=chat``). The turn ends at
    the template's end-of-turn token, and the answer is usually a whole function (often fenced), so the
    continuation markers of ``default_stop`` (a new ``def``, three newlines) would cut it."""
    raw_template: ClassVar[str | None] = None
    """The text of the raw prompt format, recorded by hash with the run (``prompt_template_sha256``);
    None for a task that does not declare one."""
    chat: bool = False
    """Whether prompts are chat conversations. Set by :mod:`peftlab.prompting.format` once the tokenizer has
    resolved ``model.prompt_format``; :attr:`stop` (and so post-processing) follows it."""

    def __init__(self, config: Config):
        self.config = config
        self.options = own_options(self.Options, config, self.name)

    def named_loader(self) -> NamedLoader | None:
        """The loader ``data.loader`` names when it is one of this task's (another task's is not read here)."""
        return next((loader for loader in self.loaders if loader.name == self.config.data.loader), None)

    def metric_specs(self, metrics) -> dict[str, dict]:
        """``metric_specs`` for ``metrics.json``: the declarations of the table metrics among ``metrics``."""
        return describe(metrics, self.metric_families)

    @abstractmethod
    def load(self, split: str) -> list[dict]:
        """Problems of ``split``: each a dict with at least ``id``, ``instruction`` and ``reference``."""

    @abstractmethod
    def prompt(self, problem: dict) -> str:
        """The text the model continues (the raw prompt format; see :meth:`user_message` for chat)."""

    def user_message(self, problem: dict) -> str:
        """What the user turn says in the chat format: the task's request for ``problem``. The default is
        the raw prompt; a task whose raw prompt is a text to continue should ask for the answer instead."""
        return self.prompt(problem)

    def answer_prefix(self, problem: dict) -> str:
        """The chat format's start of the assistant turn, written for the model, which continues it; the
        training target (:meth:`response`) follows it. Default: nothing."""
        return ""

    def response(self, problem: dict) -> str:
        """The training target for ``problem`` (in the chat format, the assistant turn's content)."""
        return problem["reference"]

    def reference_code(self, problem: dict) -> str | None:
        """The problem's solution as code, for the train/test overlap check (:mod:`peftlab.stages.overlap`):
        the instruction and reference together where they parse as one program (HumanEval: signature, then
        body), else the reference; None where the problem ships no solution (MultiPL-E's MBPP)."""
        return joined_code(problem.get("instruction"), problem.get("reference"))

    def demonstration(self, example: dict) -> str:
        """One in-context demonstration (ICL, RAG): the prompt, the response, then a blank line. Trailing
        newlines of the response are stripped so every demonstration ends in exactly one blank line."""
        return self.prompt(example) + self.response(example).rstrip("\n") + "\n\n"

    def retrieval_text(self, problem: dict) -> str:
        """What RAG compares between a test problem and the training examples."""
        return problem["instruction"]

    @property
    def stop(self) -> list[str]:
        """Stop strings for generation: ``generation.stop`` if set, else the task's own (for the format)."""
        configured = self.config.generation.stop
        own = self.chat_stop if self.chat else self.default_stop
        return list(own if configured is None else configured)

    def prepare_data(self, directory: Path) -> dict | None:
        """Build the task's default dataset in ``directory`` if it has to be built (a study calls this once
        for all its cells); return its card, or None for a task whose problems ship with a package."""
        return None

    @staticmethod
    def check_split(split: str) -> None:
        """Raises: UserError for a split other than train, validation and test."""
        if split not in SIZE_KEYS:
            raise UserError(f"unknown split '{split}'; known: {', '.join(SIZE_KEYS)}")

    def sized(self, split: str, records: list[dict]) -> list[dict]:
        """The first ``data.<split>_size`` records (all of them when it is unset)."""
        size = getattr(self.config.data, SIZE_KEYS[split])
        return records[:size] if size else records

    @abstractmethod
    def postprocess(self, completion: str) -> str:
        """Turn raw generated text (prompt already removed) into the candidate that is scored."""

    @abstractmethod
    def evaluate(self, predictions: list[dict], partial: bool = False) -> Evaluation:
        """Score prediction rows (``{id, candidates, ...}`` as ``generate`` writes them) against the test
        split; references always come from the dataset. Ids must match the test split (see
        :func:`match_test_ids`); with ``partial``, missing ids are allowed and reported in the metrics.
        The metrics include ``metric_specs`` (see :mod:`peftlab.metrics.specs`)."""


def check_candidate_rows(rows: list[dict]) -> None:
    """Every row has a string ``id`` and a non-empty list of string ``candidates``.

    Raises:
        UserError: naming the first bad row (1-based) and what is wrong with it.
    """
    for number, row in enumerate(rows, start=1):
        if not isinstance(row.get("id"), str):
            raise UserError(f"prediction row {number}: 'id' must be a string, got {type(row.get('id')).__name__}")
        candidates = row.get("candidates")
        if not isinstance(candidates, list) or not candidates or not all(isinstance(c, str) for c in candidates):
            raise UserError(
                f"prediction row {number} ({row['id']}): 'candidates' must be a non-empty list of strings, "
                f"got {type(candidates).__name__}"
            )


def match_test_ids(ids: list[str], test_ids: list[str], *, partial: bool, repeats: bool = False) -> dict:
    """Check prediction ids against the test split; return metrics describing coverage.

    ``repeats`` allows one id on several rows (one row per sample). Returns ``{}`` for a complete file,
    else ``{"partial": True, "missing_ids": N, "test_problems_total": M}``.

    Raises:
        UserError: no rows, an id not in the test split, a repeated id (unless ``repeats``), or missing
            ids (unless ``partial``).
    """
    if not ids:
        raise UserError("no predictions to evaluate (the predictions file is empty)")
    known = set(test_ids)
    unknown = [i for i in dict.fromkeys(ids) if i not in known]
    if unknown:
        raise UserError(
            f"{len(unknown)} prediction id(s) are not in the test split, e.g. {unknown[0]!r}; "
            "predictions must come from this task and data.dir"
        )
    if not repeats and len(set(ids)) != len(ids):
        seen: set[str] = set()
        duplicate = next(i for i in ids if i in seen or seen.add(i))
        raise UserError(f"prediction id {duplicate!r} appears more than once")
    present = set(ids)
    missing = [i for i in test_ids if i not in present]
    if missing and not partial:
        raise UserError(
            f"the predictions cover {len(test_ids) - len(missing)} of {len(test_ids)} test problems "
            f"(missing e.g. {missing[0]!r}); pass --partial to score only those present"
        )
    return {"partial": True, "missing_ids": len(missing), "test_problems_total": len(test_ids)} if missing else {}
