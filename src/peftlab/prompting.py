"""Prompting baselines: zero-shot, in-context learning (ICL) and retrieval-augmented prompting (RAG).

Nothing is trained; these only build the prompts the generate stage feeds the base model.

Public API::

    PROMPTING_METHODS = ("zero-shot", "icl", "rag")
    RETRIEVERS = ("bm25", "dense")

    build_prompts(
        method: str,
        problems: list[dict],
        train: list[dict],
        shots: int = 3,
        seed: int = 42,
        format_prompt: Callable[[dict], str] = default_format_prompt,
        format_demo: Callable[[dict], str] = default_format_demo,
        tokenizer=None,
        max_prompt_tokens: int | None = None,
        retriever: str | Retriever = "bm25",
        embedding_model: str | Path | None = None,
    ) -> tuple[list[str], dict]

    prompt_token_budget(context: int | object | None, max_new_tokens: int) -> int | None
    make_retriever(kind: str, train_instructions: list[str], embedding_model=None) -> Retriever
    class Retriever(Protocol): top_k(query: str, k: int) -> list[int]; top_k_many(queries, k) -> list[list[int]]
    class BM25Retriever(train_instructions: list[str])
    class DenseRetriever(model_dir: str | Path, train_instructions: list[str], batch_size: int = 32)
    default_format_prompt(problem: dict) -> str       # format_prompt(problem["instruction"])
    default_format_demo(example: dict) -> str         # format_prompt(instruction) + reference + "\\n\\n"

Methods:

- ``zero-shot``: the task's own prompt, ``format_prompt(problem)``; ``train`` and ``shots`` are ignored.
- ``icl``: ``shots`` training examples drawn at random *per problem*, without replacement, from a generator
  seeded by ``(seed, problem index)``. The same seed gives the same shots on every run and machine, and a
  problem keeps its shots when ``data.test_size`` changes (its index does not move); a different seed gives
  different shots.
- ``rag``: the ``shots`` training examples whose instructions are most similar to the problem's instruction,
  by BM25 (``bm25s``; lower-cased word tokens, English stop words removed) or by the cosine similarity of
  mean-pooled embeddings from a local sentence-embedding model directory (``retriever="dense"``). Ties
  are broken by training order. Shots are retrieved even when nothing overlaps (score 0).

Prompt layout: demonstrations, then the test prompt. Each demonstration is ``format_demo(example)``, by
default ``format_prompt(instruction) + reference + "\\n\\n"``. Shots are *ranked*, rank 1 being the shot
placed nearest the test prompt: for RAG the most similar example (so the prompt reads from least to most
similar), for ICL the first one drawn. ``stats["retrieved_ids"]`` lists the shots used in rank order.

Context overflow: with a ``tokenizer`` and ``max_prompt_tokens`` (see :func:`prompt_token_budget`: the
model's context length minus ``generation.max_new_tokens``), shots are dropped from the far end (the
lowest-ranked, i.e. least similar for RAG, first) until the whole prompt fits, counted exactly as the
generate stage tokenizes it. One summary warning is logged for the run. A prompt that does not fit even
with no shots is kept as it is and counted in ``stats["prompts_over_budget"]``.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from peftlab.data.template import format_prompt as _template_prompt
from peftlab.errors import UserError

log = logging.getLogger(__name__)

PROMPTING_METHODS = ("zero-shot", "icl", "rag")
RETRIEVERS = ("bm25", "dense")


def default_format_prompt(problem: dict) -> str:
    """The instruction template around ``problem["instruction"]`` (what the codegen task prompts with)."""
    return _template_prompt(problem["instruction"])


def default_format_demo(example: dict) -> str:
    """One demonstration: the prompt, the reference solution, then a blank line.

    Trailing newlines of the reference are stripped so every demonstration ends in exactly one blank line.
    """
    return _template_prompt(example["instruction"]) + example["reference"].rstrip("\n") + "\n\n"


# --------------------------------------------------------------------------------------------------- retrieval


@runtime_checkable
class Retriever(Protocol):
    """Ranks training examples (by index into the instructions it was built from) for a query."""

    def top_k(self, query: str, k: int) -> list[int]:
        """Indices of the ``k`` most similar training instructions, most similar first."""
        ...

    def top_k_many(self, queries: Sequence[str], k: int) -> list[list[int]]:
        """:meth:`top_k` for each query."""
        ...


def _rank(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` highest scores, ties broken by the lower index."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return [int(index) for index in order[:k]]


class BM25Retriever:
    """Lexical retrieval with ``bm25s`` (Lucene BM25 over lower-cased words, English stop words removed)."""

    def __init__(self, train_instructions: Sequence[str]):
        import bm25s

        self._bm25s = bm25s
        self.size = len(train_instructions)
        corpus = self._tokenize(list(train_instructions))
        self.index = None
        # bm25s cannot index a corpus with no words at all; every score is 0 then (ties: training order).
        if any(corpus):
            self.index = bm25s.BM25()
            self.index.index(corpus, show_progress=False)

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        return self._bm25s.tokenize(texts, return_ids=False, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every training instruction for ``query``."""
        if self.index is None:
            return np.zeros(self.size)
        token_ids = self.index.get_tokens_ids(self._tokenize([query])[0])
        if not token_ids:
            return np.zeros(self.size)
        return self.index.get_scores_from_ids(token_ids)

    def top_k(self, query: str, k: int) -> list[int]:
        return _rank(self.scores(query), k)

    def top_k_many(self, queries: Sequence[str], k: int) -> list[list[int]]:
        return [self.top_k(query, k) for query in queries]


def _check_embedding_model(model_dir: str | Path | None) -> Path:
    if model_dir is None or str(model_dir).strip() == "":
        raise UserError(
            "method.retriever=dense needs method.embedding_model: a local sentence-embedding model directory "
            "(offline, hub ids cannot be downloaded)"
        )
    path = Path(model_dir).expanduser()
    if not path.exists():
        raise UserError(
            f"method.embedding_model not found: {path} (the dense retriever needs a local model directory)"
        )
    if not (path / "config.json").is_file():
        raise UserError(f"method.embedding_model {path} is not a Hugging Face model directory (no config.json)")
    return path


class DenseRetriever:
    """Cosine similarity of sentence embeddings from a local encoder directory (``transformers.AutoModel``).

    Embeddings are the attention-masked mean of the last hidden states (CLS token instead, when the
    directory is a sentence-transformers model whose ``1_Pooling/config.json`` asks for CLS pooling),
    L2-normalised. Runs on the CPU; nothing is fetched from the Hub.

    Raises:
        UserError: ``model_dir`` is not given, does not exist, or does not hold a loadable model.
    """

    def __init__(self, model_dir: str | Path | None, train_instructions: Sequence[str], batch_size: int = 32):
        path = _check_embedding_model(model_dir)
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UserError(f"cannot load method.embedding_model {path}: {first_line}") from None
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()
        self.model = model.eval()
        self._takes_token_types = "token_type_ids" in inspect.signature(model.forward).parameters
        self.batch_size = batch_size
        self.cls_pooling = self._wants_cls_pooling(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        limits = [512, getattr(model.config, "max_position_embeddings", None), self.tokenizer.model_max_length]
        self.max_length = min(limit for limit in limits if isinstance(limit, int) and limit > 0)
        self.embeddings = self.embed(list(train_instructions))

    @staticmethod
    def _wants_cls_pooling(path: Path) -> bool:
        pooling = path / "1_Pooling" / "config.json"
        if not pooling.is_file():
            return False
        try:
            settings = json.loads(pooling.read_text())
        except (OSError, ValueError):
            return False
        return bool(settings.get("pooling_mode_cls_token")) and not settings.get("pooling_mode_mean_tokens")

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised embeddings, one row per text."""
        import torch

        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                if not self._takes_token_types:
                    batch.pop("token_type_ids", None)
                hidden = self.model(**batch).last_hidden_state.float()
                if self.cls_pooling:
                    pooled = hidden[:, 0]
                else:
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        if not rows:
            return np.zeros((0, 1), dtype=np.float32)
        return np.concatenate(rows)

    def top_k(self, query: str, k: int) -> list[int]:
        return self.top_k_many([query], k)[0]

    def top_k_many(self, queries: Sequence[str], k: int) -> list[list[int]]:
        if not queries:
            return []
        similarities = self.embed(list(queries)) @ self.embeddings.T
        return [_rank(row, k) for row in similarities]


def make_retriever(
    kind: str, train_instructions: Sequence[str], embedding_model: str | Path | None = None
) -> Retriever:
    """A :class:`BM25Retriever` (``"bm25"``) or :class:`DenseRetriever` (``"dense"``) over the instructions.

    Raises:
        UserError: ``kind`` is unknown, or ``"dense"`` without a usable local ``embedding_model``.
    """
    if kind == "bm25":
        return BM25Retriever(train_instructions)
    if kind == "dense":
        return DenseRetriever(embedding_model, train_instructions)
    raise UserError(f"unknown method.retriever '{kind}'; known: {', '.join(RETRIEVERS)}")


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
    tokenizer, demos: list[str], prompt: str, budget: int, demo_lengths: list[int], prompt_length: int
) -> tuple[int, int]:
    """How many of ``demos`` (rank order) fit before ``prompt`` within ``budget``; and the prompt's length.

    An estimate from per-part token counts picks the starting point; the joined text is then counted
    exactly (tokens can merge across the seams) and the count adjusted one shot at a time.
    """

    def assemble(n: int) -> str:
        return "".join(reversed(demos[:n])) + prompt

    used, total = 0, prompt_length
    while used < len(demos) and total + demo_lengths[used] <= budget:
        total += demo_lengths[used]
        used += 1
    length = _count_tokens(tokenizer, assemble(used))
    while length > budget and used > 0:
        used -= 1
        length = _count_tokens(tokenizer, assemble(used))
    while used < len(demos) and length <= budget:
        longer = _count_tokens(tokenizer, assemble(used + 1))
        if longer > budget:
            break
        used, length = used + 1, longer
    return used, length


# --------------------------------------------------------------------------------------------------- prompts


def _icl_shots(train_size: int, shots: int, seed: int, index: int) -> list[int]:
    # A string seed is hashed with SHA-512 by `random`, so the draw is the same on every run and platform.
    return random.Random(f"icl:{seed}:{index}").sample(range(train_size), shots)


def build_prompts(
    method: str,
    problems: list[dict],
    train: list[dict],
    shots: int = 3,
    seed: int = 42,
    format_prompt: Callable[[dict], str] = default_format_prompt,
    format_demo: Callable[[dict], str] = default_format_demo,
    tokenizer=None,
    max_prompt_tokens: int | None = None,
    retriever: str | Retriever = "bm25",
    embedding_model: str | Path | None = None,
) -> tuple[list[str], dict]:
    """One prompt per problem for a prompting baseline, and statistics about the shots used.

    Args:
        method: one of :data:`PROMPTING_METHODS`.
        problems: test problems (dicts with ``instruction``; ``format_prompt`` may need more).
        train: the training split, the pool of demonstrations (dicts with ``id``, ``instruction``,
            ``reference``); unused by ``zero-shot``.
        shots: demonstrations per prompt (``method.shots``); unused by ``zero-shot``.
        seed: ICL sampling seed (``train.seed``).
        format_prompt: the task's prompt for a problem (``task.prompt``).
        format_demo: the text of one demonstration.
        tokenizer, max_prompt_tokens: when both are given, shots that would push a prompt past
            ``max_prompt_tokens`` tokens are dropped, lowest-ranked first.
        retriever: ``"bm25"``, ``"dense"`` or a ready :class:`Retriever` over ``train``'s instructions (RAG).
        embedding_model: local model directory for ``retriever="dense"``.

    Returns:
        ``(prompts, stats)``; ``stats`` holds ``method``, ``shots_requested``, ``shots_used`` (per problem),
        ``shots_used_mean``, ``dropped_per_problem``, ``dropped_shots`` (total), ``prompts_with_drops``,
        ``prompts_over_budget`` (too long even with no shots), ``prompt_tokens`` (per problem, or ``None``
        without a tokenizer and budget) and ``retrieved_ids`` (ids of the shots used per problem, rank 1
        first: nearest the test prompt, the most similar for RAG).

    Raises:
        UserError: the method or retriever is unknown, ``shots`` exceeds the training split, or the dense
            retriever has no usable local ``embedding_model``.
    """
    if method not in PROMPTING_METHODS:
        raise UserError(f"unknown prompting method '{method}'; known: {', '.join(PROMPTING_METHODS)}")
    if shots < 0:
        raise UserError(f"method.shots must be >= 0, got {shots}")
    if method == "zero-shot":
        shots = 0
    if shots > len(train):
        raise UserError(f"method.shots={shots} but the training split has only {len(train)} examples")
    if max_prompt_tokens is not None and tokenizer is None:
        raise ValueError("max_prompt_tokens needs a tokenizer to count tokens")

    if method == "icl":
        ranked = [_icl_shots(len(train), shots, seed, index) for index in range(len(problems))]
    elif method == "rag" and shots > 0:
        if isinstance(retriever, str):
            retriever = make_retriever(retriever, [example["instruction"] for example in train], embedding_model)
        ranked = retriever.top_k_many([problem["instruction"] for problem in problems], shots)
    else:
        ranked = [[] for _ in problems]

    budgeted = tokenizer is not None and max_prompt_tokens is not None
    demo_cache: dict[int, tuple[str, int]] = {}

    def demo(index: int) -> tuple[str, int]:
        if index not in demo_cache:
            text = format_demo(train[index])
            length = len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]) if budgeted else 0
            demo_cache[index] = (text, length)
        return demo_cache[index]

    prompts: list[str] = []
    used_counts: list[int] = []
    dropped: list[int] = []
    prompt_tokens: list[int] = []
    over_budget = 0
    retrieved_ids: list[list] = []
    for problem, shot_indices in zip(problems, ranked, strict=True):
        prompt = format_prompt(problem)
        demos = [demo(index)[0] for index in shot_indices]
        used = len(demos)
        if budgeted:
            prompt_length = _count_tokens(tokenizer, prompt)
            used, length = _fit_shots(
                tokenizer,
                demos,
                prompt,
                max_prompt_tokens,
                [demo(index)[1] for index in shot_indices],
                prompt_length,
            )
            prompt_tokens.append(length)
            over_budget += length > max_prompt_tokens
        prompts.append("".join(reversed(demos[:used])) + prompt)
        used_counts.append(used)
        dropped.append(len(demos) - used)
        retrieved_ids.append([train[index].get("id", index) for index in shot_indices[:used]])

    total_dropped = sum(dropped)
    with_drops = sum(1 for count in dropped if count)
    if total_dropped:
        log.warning(
            "dropped %d shot%s in %d of %d prompts to fit the %d-token prompt budget",
            total_dropped,
            "" if total_dropped == 1 else "s",
            with_drops,
            len(problems),
            max_prompt_tokens,
        )
    if over_budget:
        log.warning(
            "%d of %d prompts are longer than the %d-token prompt budget even without shots",
            over_budget,
            len(problems),
            max_prompt_tokens,
        )
    stats = {
        "method": method,
        "shots_requested": shots,
        "shots_used": used_counts,
        "shots_used_mean": sum(used_counts) / len(used_counts) if used_counts else 0.0,
        "dropped_per_problem": dropped,
        "dropped_shots": total_dropped,
        "prompts_with_drops": with_drops,
        "prompts_over_budget": over_budget,
        "prompt_tokens": prompt_tokens if budgeted else None,
        "retrieved_ids": retrieved_ids,
    }
    return prompts, stats
