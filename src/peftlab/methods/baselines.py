"""Prompting baselines as methods that do not train: zero-shot, in-context learning, retrieval-augmented
prompting. The prompt building itself (shot sampling, retrieval, context budget) is
:mod:`peftlab.prompting`; docs/prompting.md describes it."""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

from pydantic import Field

from peftlab.config import OwnedOptions
from peftlab.errors import UserError
from peftlab.methods.base import PromptingBaseline
from peftlab.prompting import ShotSelector, build_prompts, random_shots, similar_shots


class ZeroShot(PromptingBaseline):
    name = "zero-shot"
    source = "the task's own prompt, no demonstrations"

    def prompts(self, task, problems, tokenizer, prompt_budget, seed, prompt_format=None, shot_task=None):
        """``prompt_format`` (:mod:`peftlab.prompting.format`) renders the prompts; None: the raw prompt."""
        render = prompt_format.render if prompt_format is not None else task.prompt
        return [render(problem) for problem in problems], None


class ShotOptions(OwnedOptions):
    shots: int = Field(3, ge=0)
    """Number of training examples put in the prompt."""


class RetrievalOptions(ShotOptions):
    retriever: Literal["bm25", "dense"] = "bm25"
    """Lexical BM25 (bm25s) or dense embeddings from ``embedding_model``."""
    embedding_model: str | None = None
    """With the dense retriever: a local sentence-embedding model directory."""


class _WithShots(PromptingBaseline):
    Options = ShotOptions

    def prompts(self, task, problems, tokenizer, prompt_budget, seed, prompt_format=None, shot_task=None):
        """``prompt_format`` renders each prompt with its shots (chat: as prior turns); None: raw.
        ``shot_task`` (default ``task``) is the task whose training split the shots come from."""
        source = shot_task or task
        if not source.trainable:
            raise UserError(f"{self.name} draws demonstrations from the training split, which task "
                            f"'{source.name}' does not have; take them from another task's with data.train_task")
        assemble = None
        if prompt_format is not None:
            def assemble(shots, problem):
                return prompt_format.render(problem, shots)
        return build_prompts(
            problems, source.load("train"), self.shot_selector(seed, task), shots=self.options.shots,
            format_prompt=task.prompt, format_demo=source.demonstration, assemble=assemble,
            tokenizer=tokenizer, max_prompt_tokens=prompt_budget(),
        )

    @abstractmethod
    def shot_selector(self, seed: int, task) -> ShotSelector:
        """How this baseline picks its demonstrations for ``task``'s problems."""


class ICL(_WithShots):
    name = "icl"
    source = "3 demonstrations drawn at random per problem, seeded"

    def shot_selector(self, seed, task):
        return random_shots(seed)


class RAG(_WithShots):
    name = "rag"
    Options = RetrievalOptions
    source = "the 3 most similar training examples by BM25 (or dense embeddings)"

    def shot_selector(self, seed, task):
        return similar_shots(task.retrieval_text, self.options.retriever, self.options.embedding_model)
