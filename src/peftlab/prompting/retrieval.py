"""Retrieval for RAG prompts: rank training examples by similarity to a test problem.

::

    RETRIEVERS = ("bm25", "dense")
    make_retriever(kind, train_texts, embedding_model=None) -> Retriever
    class Retriever(Protocol): top_k(query, k) -> list[int]; top_k_many(queries, k) -> list[list[int]]
    class BM25Retriever(train_texts)         # bm25s: Lucene BM25, lower-cased words, English stop words out
    class DenseRetriever(model_dir, train_texts, batch_size=32)   # mean-pooled (or CLS) embeddings, cosine

Ties are broken by training order. What text a problem is compared by is the task's choice
(``Task.retrieval_text``: the instruction, by default).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from peftlab.errors import UserError

RETRIEVERS = ("bm25", "dense")


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


