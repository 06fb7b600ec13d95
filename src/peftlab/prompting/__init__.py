"""Prompts for the prompting baselines: in-context learning (ICL) and retrieval-augmented prompting (RAG).

Nothing is trained; these only build the prompts the generate stage feeds the base model. The methods
themselves are :mod:`peftlab.methods.baselines`; the prompt and demonstration formats are the task's.

Public API::

    ShotSelector = Callable[[list[dict], list[dict], int], list[list[int]]]
        # (problems, train, shots) -> per problem, the indices of its shots in rank order

    random_shots(seed) -> ShotSelector                                   # ICL
    similar_shots(query=instruction, retriever="bm25", embedding_model=None) -> ShotSelector   # RAG

    build_prompts(
        problems: list[dict],
        train: list[dict],
        select: ShotSelector | None,               # None: no shots (the task's own prompt)
        *,
        format_prompt: Callable[[dict], str],      # the task's prompt (Task.prompt)
        format_demo: Callable[[dict], str],        # one demonstration (Task.demonstration)
        assemble: Callable[[list[dict], dict], str] | None = None,  # shots (prompt order) + problem -> prompt
        shots: int = 3,
        tokenizer=None,
        max_prompt_tokens: int | None = None,
    ) -> tuple[list[str], dict]

    prompt_token_budget(context: int | object | None, max_new_tokens: int) -> int | None

Retrievers are in :mod:`peftlab.prompting.retrieval`.

Shot selection (the baselines in :mod:`peftlab.methods.baselines` each pick one):

- no selector (zero-shot): the task's own prompt, ``format_prompt(problem)``; ``train`` and ``shots`` unused.
- :func:`random_shots` (ICL): ``shots`` training examples drawn at random *per problem*, without
  replacement, from a generator seeded by ``(seed, problem index)``. The same seed gives the same shots on
  every run and machine, and a problem keeps its shots when ``data.test_size`` changes (its index does not
  move); a different seed gives different shots.
- :func:`similar_shots` (RAG): the ``shots`` training examples whose ``query`` text (the instruction, by
  default) is most similar to the problem's, by BM25 (``bm25s``; lower-cased word tokens, English stop
  words removed) or by the cosine similarity of mean-pooled embeddings from a local sentence-embedding
  model directory (``retriever="dense"``). Ties are broken by training order. Shots are retrieved even
  when nothing overlaps (score 0).

Prompt layout: demonstrations, then the test prompt. Each demonstration is ``format_demo(example)``.
``assemble(shots, problem)`` replaces that layout (the chat format renders the shots as prior turns,
:mod:`peftlab.prompting.format`); ``format_demo`` then only estimates a shot's token cost for the budget.
Shots are *ranked*, rank 1 being the shot placed nearest the test prompt: for RAG the most similar
example (so the prompt reads from least to most similar), for ICL the first one drawn.
``stats["retrieved_ids"]`` lists the shots used in rank order.

Context overflow: with a ``tokenizer`` and ``max_prompt_tokens`` (see :func:`prompt_token_budget`: the
model's context length minus ``generation.max_new_tokens``), shots are dropped from the far end (the
lowest-ranked, i.e. least similar for RAG, first) until the whole prompt fits, counted exactly as the
generate stage tokenizes it. One summary warning is logged for the run. A prompt that does not fit even
with no shots is kept as it is and counted in ``stats["prompts_over_budget"]``.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable
from pathlib import Path

from peftlab.errors import UserError
from peftlab.prompting.retrieval import Retriever, make_retriever

log = logging.getLogger(__name__)

ShotSelector = Callable[[list[dict], list[dict], int], list[list[int]]]
"""(problems, training examples, shots) -> for each problem, the indices of its shots in rank order."""


def instruction(problem: dict) -> str:
    return problem["instruction"]


# ------------------------------------------------------------------------------------------- context budget


_CONTEXT_ATTRIBUTES = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def prompt_token_budget(context: int | object | None, max_new_tokens: int) -> int | None:
    """Tokens a prompt may take so that ``max_new_tokens`` still fit in the model's context.

    ``context`` is a context length, or a model config (or model) whose ``max_position_embeddings`` (or
    ``n_positions``, ...) gives it. Returns ``None`` when the context length is unknown (no limit).

    Raises:
        UserError: ``max_new_tokens`` leaves no room for a prompt.
    """
    if context is not None and not isinstance(context, int):
        context = getattr(context, "config", context)
        context = next(
            (getattr(context, name) for name in _CONTEXT_ATTRIBUTES if isinstance(getattr(context, name, None), int)),
            None,
        )
    if context is None:
        return None
    budget = context - max_new_tokens
    if budget <= 0:
        raise UserError(
            f"generation.max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's "
            f"{context}-token context"
        )
    return budget


def _count_tokens(tokenizer, text: str) -> int:
    # The same call the generate stage makes (special tokens included), so the count is exact.
    return len(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])


def _fit_shots(
    tokenizer, assemble: Callable[[int], str], budget: int, demo_lengths: list[int], prompt_length: int
) -> tuple[int, int]:
    """How many shots (``demo_lengths`` in rank order) fit within ``budget``; and the prompt's length.

    ``assemble(n)`` is the whole prompt with the ``n`` best-ranked shots. An estimate from per-part token
    counts picks the starting point; the assembled text is then counted exactly (tokens can merge across
    the seams, a chat template adds turn markers) and the count adjusted one shot at a time.
    """
    used, total = 0, prompt_length
    while used < len(demo_lengths) and total + demo_lengths[used] <= budget:
        total += demo_lengths[used]
        used += 1
    length = _count_tokens(tokenizer, assemble(used))
    while length > budget and used > 0:
        used -= 1
        length = _count_tokens(tokenizer, assemble(used))
    while used < len(demo_lengths) and length <= budget:
        longer = _count_tokens(tokenizer, assemble(used + 1))
        if longer > budget:
            break
        used, length = used + 1, longer
    return used, length


# --------------------------------------------------------------------------------------------------- prompts


def random_shots(seed: int) -> ShotSelector:
    """ICL: ``shots`` examples drawn per problem from a generator seeded by ``(seed, problem index)``."""

    def select(problems: list[dict], train: list[dict], shots: int) -> list[list[int]]:
        # A string seed is hashed with SHA-512 by `random`, so the draw is the same on every run and platform.
        return [random.Random(f"icl:{seed}:{index}").sample(range(len(train)), shots) for index in range(len(problems))]

    return select


def similar_shots(query: Callable[[dict], str] = instruction, retriever: str | Retriever = "bm25",
                  embedding_model: str | Path | None = None) -> ShotSelector:
    """RAG: the ``shots`` examples whose ``query`` text is most similar to the problem's, most similar first.
    ``retriever``: ``"bm25"``, ``"dense"`` (with a local ``embedding_model`` directory) or a ready
    :class:`Retriever` over the training examples' query texts."""

    def select(problems: list[dict], train: list[dict], shots: int) -> list[list[int]]:
        if shots == 0:
            return [[] for _ in problems]
        found = retriever
        if isinstance(found, str):
            found = make_retriever(found, [query(example) for example in train], embedding_model)
        return found.top_k_many([query(problem) for problem in problems], shots)

    return select


class _Demonstrations:
    """Demonstration texts and their token counts, each computed once per run."""

    def __init__(self, train: list[dict], format_demo: Callable[[dict], str], tokenizer):
        self.train, self.format_demo, self.tokenizer = train, format_demo, tokenizer
        self._texts: dict[int, str] = {}
        self._lengths: dict[int, int] = {}

    def text(self, index: int) -> str:
        if index not in self._texts:
            self._texts[index] = self.format_demo(self.train[index])
        return self._texts[index]

    def length(self, index: int) -> int:
        if index not in self._lengths:
            self._lengths[index] = len(self.tokenizer(self.text(index), add_special_tokens=False, verbose=False)["input_ids"])
        return self._lengths[index]


def _warn_about_budget(dropped: list[int], over_budget: int, max_prompt_tokens: int | None) -> None:
    total, with_drops = sum(dropped), sum(1 for count in dropped if count)
    if total:
        log.warning("dropped %d shot%s in %d of %d prompts to fit the %d-token prompt budget",
                    total, "" if total == 1 else "s", with_drops, len(dropped), max_prompt_tokens)
    if over_budget:
        log.warning("%d of %d prompts are longer than the %d-token prompt budget even without shots",
                    over_budget, len(dropped), max_prompt_tokens)


def build_prompts(
    problems: list[dict],
    train: list[dict],
    select: ShotSelector | None,
    *,
    format_prompt: Callable[[dict], str],
    format_demo: Callable[[dict], str],
    assemble: Callable[[list[dict], dict], str] | None = None,
    shots: int = 3,
    tokenizer=None,
    max_prompt_tokens: int | None = None,
) -> tuple[list[str], dict]:
    """One prompt per problem for a prompting baseline, and statistics about the shots used.

    Args:
        problems: test problems (dicts with ``instruction``; ``format_prompt`` may need more).
        train: the training split, the pool of demonstrations (dicts with ``id``, ``instruction``,
            ``reference``); unused without ``select``.
        select: how shots are chosen (:func:`random_shots`, :func:`similar_shots`); None for no shots.
        shots: demonstrations per prompt (``method.shots``); unused without ``select``.
        format_prompt: the task's prompt for a problem (``task.prompt``).
        format_demo: the text of one demonstration (``task.demonstration``).
        assemble: the prompt from the shots (training examples, in prompt order: farthest first) and the
            problem; None joins ``format_demo`` of each shot, then ``format_prompt(problem)``.
        tokenizer, max_prompt_tokens: when both are given, shots that would push a prompt past
            ``max_prompt_tokens`` tokens are dropped, lowest-ranked first.

    Returns:
        ``(prompts, stats)``; ``stats`` holds ``shots_requested``, ``shots_used`` (per problem),
        ``shots_used_mean``, ``dropped_per_problem``, ``dropped_shots`` (total), ``prompts_with_drops``,
        ``prompts_over_budget`` (too long even with no shots), ``prompt_tokens`` (per problem, or ``None``
        without a tokenizer and budget) and ``retrieved_ids`` (ids of the shots used per problem, rank 1
        first: nearest the test prompt, the most similar for RAG).

    Raises:
        UserError: ``shots`` is negative or exceeds the training split, or the dense retriever has no
            usable local ``embedding_model``.
    """
    if shots < 0:
        raise UserError(f"method.shots must be >= 0, got {shots}")
    if select is None:
        shots = 0
    if shots > len(train):
        raise UserError(f"method.shots={shots} but the training split has only {len(train)} examples")
    if max_prompt_tokens is not None and tokenizer is None:
        raise ValueError("max_prompt_tokens needs a tokenizer to count tokens")
    ranked = select(problems, train, shots) if select is not None else [[] for _ in problems]
    demos = _Demonstrations(train, format_demo, tokenizer)

    def joined(shot_indices: list[int], problem: dict, n: int) -> str:
        # Shots are ranked (rank 1 nearest the test prompt), so the n best go in reversed, farthest first.
        if assemble is None:
            return "".join(demos.text(index) for index in reversed(shot_indices[:n])) + format_prompt(problem)
        return assemble([train[index] for index in reversed(shot_indices[:n])], problem)

    budgeted = tokenizer is not None and max_prompt_tokens is not None
    prompts, used_counts, dropped, prompt_tokens, retrieved_ids, over_budget = [], [], [], [], [], 0
    for problem, shot_indices in zip(problems, ranked, strict=True):
        used = len(shot_indices)
        if budgeted:
            used, length = _fit_shots(
                tokenizer, functools.partial(joined, shot_indices, problem), max_prompt_tokens,
                [demos.length(index) for index in shot_indices],
                _count_tokens(tokenizer, joined(shot_indices, problem, 0)),
            )
            prompt_tokens.append(length)
            over_budget += length > max_prompt_tokens
        prompts.append(joined(shot_indices, problem, used))
        used_counts.append(used)
        dropped.append(len(shot_indices) - used)
        retrieved_ids.append([train[index].get("id", index) for index in shot_indices[:used]])
    _warn_about_budget(dropped, over_budget, max_prompt_tokens)
    stats = {
        "shots_requested": shots,
        "shots_used": used_counts,
        "shots_used_mean": sum(used_counts) / len(used_counts) if used_counts else 0.0,
        "dropped_per_problem": dropped,
        "dropped_shots": sum(dropped),
        "prompts_with_drops": sum(1 for count in dropped if count),
        "prompts_over_budget": over_budget,
        "prompt_tokens": prompt_tokens if budgeted else None,
        "retrieved_ids": retrieved_ids,
    }
    return prompts, stats
