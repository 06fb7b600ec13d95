"""Prompting baselines as methods that do not train: zero-shot, in-context learning, retrieval-augmented
prompting. The prompt building itself (shot sampling, retrieval, context budget) is
:mod:`peftlab.prompting`; docs/prompting.md describes it."""

from __future__ import annotations

from peftlab.errors import UserError
from peftlab.methods.base import PromptingBaseline
from peftlab.prompting import build_prompts


class ZeroShot(PromptingBaseline):
    name = "zero-shot"
    source = "the task's own prompt, no demonstrations"

    def prompts(self, task, problems, tokenizer, prompt_budget, seed, prompt_format=None, shot_task=None):
        """``prompt_format`` (:mod:`peftlab.prompting.format`) renders the prompts; None: the raw prompt."""
        render = prompt_format.render if prompt_format is not None else task.prompt
        return [render(problem) for problem in problems], None


class _WithShots(PromptingBaseline):
    options = ("shots",)

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
            self.name, problems, source.load("train"), shots=self.config.shots, seed=seed,
            format_prompt=task.prompt, format_demo=source.demonstration, query=task.retrieval_text,
            assemble=assemble, tokenizer=tokenizer, max_prompt_tokens=prompt_budget(),
            retriever=self.config.retriever, embedding_model=self.config.embedding_model,
        )


class ICL(_WithShots):
    name = "icl"
    source = "3 demonstrations drawn at random per problem, seeded"


class RAG(_WithShots):
    name = "rag"
    options = ("shots", "retriever", "embedding_model")
    source = "the 3 most similar training examples by BM25 (or dense embeddings)"
