"""How a task's prompt is rendered for the model (``model.prompt_format``): ``raw`` or ``chat``.

The task decides *what* is said (``Task.prompt``, ``Task.user_message``, ``Task.response``); the format
decides how it is rendered. One object per (task, tokenizer) renders the prompt for training, for ICL/RAG
(demonstrations included) and for generation, so all three see the same text for the same problem.

Public API::

    PROMPT_FORMATS = ("raw", "chat", "auto")
    resolve_prompt_format(name: str, tokenizer, task, shot_task=None) -> PromptFormat   # "auto" resolved
    PromptFormat.name                                  # "raw" or "chat"
    PromptFormat.render(problem, shots=()) -> str      # shots: demonstration records, in prompt order
    PromptFormat.training_example(record) -> dict      # input_ids and labels (loss on the answer only)
    PromptFormat.stop() -> list[str]                   # stop strings for generation
    PromptFormat.postprocess(text) -> str              # generated text -> scored candidate
    PromptFormat.record() -> dict                      # {"prompt_format", "prompt_template_sha256"}

- ``raw``: the task's prompt, continued as is; demonstrations are ``Task.demonstration`` strings joined
  before it; the training example is ``prompt + response + EOS``. Exactly what peftlab did before formats.
- ``chat``: ``tokenizer.apply_chat_template`` over ``[user, assistant]`` per demonstration, then the
  problem's user turn, with the generation prompt, then the task's ``answer_prefix`` (the start of the
  assistant turn written for the model: an execution-scored task writes the function's signature and
  docstring, so the model continues its body). No system prompt is added (a template that adds its
  own default, as Qwen's does, keeps it: the template's hash records it). The training response is the
  assistant content after that prefix plus the template's end-of-turn text (up to and including EOS), so
  the labels cover exactly the answer and its end of turn, never the generation prompt.

Demonstrations (``shots``) come from ``shot_task`` (default: the task itself): a study that trains on one
task's data and evaluates on another draws its ICL/RAG examples from the training task, rendered in that
task's own words.
"""

from __future__ import annotations

import hashlib
import json

from peftlab.data.examples import tokenize_example
from peftlab.errors import UserError
from peftlab.tasks.postprocess import cut_at_stop

PROMPT_FORMATS = ("raw", "chat", "auto")


def _sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


class PromptFormat:
    """What every format shares: the task and the tokenizer it renders for."""

    name: str

    def __init__(self, task, tokenizer, shot_task=None):
        self.task, self.tokenizer = task, tokenizer
        self.shot_task = shot_task or task


class RawFormat(PromptFormat):
    """The task's own text: ``Task.prompt`` continued, demonstrations as ``Task.demonstration`` strings."""

    name = "raw"

    def render(self, problem: dict, shots: list[dict] | tuple = ()) -> str:
        return "".join(self.shot_task.demonstration(shot) for shot in shots) + self.task.prompt(problem)

    def training_example(self, record: dict) -> dict:
        return tokenize_example(self.tokenizer, self.render(record), self.task.response(record))

    def stop(self) -> list[str]:
        return self.task.stop

    def postprocess(self, text: str) -> str:
        return self.task.postprocess(text)

    def record(self) -> dict:
        return {"prompt_format": self.name, "prompt_template_sha256": _sha256(self.task.raw_template)}


class ChatFormat(PromptFormat):
    """The model's own chat template: demonstrations as prior turns, the answer as the assistant turn."""

    name = "chat"

    def __init__(self, task, tokenizer, shot_task=None):
        super().__init__(task, tokenizer, shot_task)
        template = tokenizer.chat_template
        self.template = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
        self._added_prefix = _added_prefix(tokenizer)
        # Probed once: the end-of-turn text does not depend on the answer (each training example
        # re-derives and checks its own), and generation needs it before any example exists.
        self.end_of_turn = self._end_of_turn([{"role": "user", "content": "x"}], "y")

    def _apply(self, messages: list[dict], generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        # A template that writes the BOS text itself (Llama's, Gemma's) would get a second BOS from the
        # tokenizer, which adds one when training, generation and budget counting tokenize the prompt.
        if self._added_prefix and text.startswith(self._added_prefix):
            text = text[len(self._added_prefix):]
        return text

    def _messages(self, problem: dict, shots) -> list[dict]:
        messages = []
        for shot in shots:
            messages += [{"role": "user", "content": self.shot_task.user_message(shot)},
                         {"role": "assistant",
                          "content": self.shot_task.answer_prefix(shot) + self.shot_task.response(shot)}]
        return messages + [{"role": "user", "content": self.task.user_message(problem)}]

    def render(self, problem: dict, shots: list[dict] | tuple = ()) -> str:
        return self._apply(self._messages(problem, shots), generation_prompt=True) + self.task.answer_prefix(problem)

    def _end_of_turn(self, messages: list[dict], content: str, prompt: str | None = None) -> str:
        """What the template writes after the assistant's ``content``: the full conversation's render minus
        the generation-prompt render and the content. Cut after EOS (what follows, the separator before a
        next turn, is never generated); without EOS in it, its text without trailing whitespace (then a
        stop string, :meth:`stop`), or EOS when the template marks no end at all."""
        prompt = self._apply(messages, generation_prompt=True) if prompt is None else prompt
        full = self._apply([*messages, {"role": "assistant", "content": content}], generation_prompt=False)
        if not full.startswith(prompt + content):
            raise UserError(
                f"the chat template of {self.tokenizer.name_or_path} does not render an assistant turn as its "
                "generation prompt followed by the answer, so the answer's tokens cannot be told apart for "
                "training; use model.prompt_format=raw"
            )
        tail = full[len(prompt) + len(content):]
        eos = self.tokenizer.eos_token
        if eos and eos in tail:
            return tail[: tail.index(eos) + len(eos)]
        if tail.rstrip():
            return tail.rstrip()
        if not eos:
            raise UserError(f"the chat template of {self.tokenizer.name_or_path} marks no end of the assistant "
                            "turn and the tokenizer has no EOS token; use model.prompt_format=raw")
        return eos

    def training_example(self, record: dict) -> dict:
        prompt = self.render(record)  # the very text generation gets for this problem
        prefix, content = self.task.answer_prefix(record), self.task.response(record)
        end = self._end_of_turn(self._messages(record, ()), prefix + content, prompt[: len(prompt) - len(prefix)])
        return tokenize_example(self.tokenizer, prompt, content + end, eos=False)

    @property
    def _extra_stop(self) -> list[str]:
        # Generation stops at EOS by itself; an end of turn that is not EOS (Gemma's <end_of_turn>) must
        # also stop it, and be cut from a candidate when it is plain text (special tokens are not decoded).
        eos = self.tokenizer.eos_token
        return [] if eos and eos in self.end_of_turn else [self.end_of_turn.strip()]

    def stop(self) -> list[str]:
        return [*self.task.stop, *self._extra_stop]

    def postprocess(self, text: str) -> str:
        return self.task.postprocess(cut_at_stop(text, self._extra_stop) if self._extra_stop else text)

    def record(self) -> dict:
        return {"prompt_format": self.name, "prompt_template_sha256": _sha256(self.template)}


def _added_prefix(tokenizer) -> str:
    """The text of the special tokens the tokenizer puts before every text (a BOS), or ''."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    special = tokenizer("a", add_special_tokens=True)["input_ids"]
    added = len(special) - len(plain)
    if added <= 0 or special[added:] != plain:
        return ""
    return tokenizer.decode(special[:added])


def resolve_prompt_format(name: str, tokenizer, task, shot_task=None) -> PromptFormat:
    """The format ``model.prompt_format`` names, for ``task`` and ``tokenizer`` (``auto``: chat when the
    tokenizer has a chat template, else raw), with demonstrations from ``shot_task`` (default ``task``).
    Sets ``task.chat`` so its stop strings follow the format.

    Raises:
        UserError: an unknown name; ``chat`` for a tokenizer without a chat template, or a template whose
            assistant turn cannot be separated from its prompt.
    """
    if name not in PROMPT_FORMATS:
        raise UserError(f"unknown model.prompt_format '{name}'; known: {', '.join(PROMPT_FORMATS)}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if name == "chat" and not has_template:
        raise UserError(
            f"model.prompt_format=chat but the tokenizer of {tokenizer.name_or_path} has no chat template; "
            "use raw, or auto (chat only where the model has a template)"
        )
    chosen = ChatFormat if name == "chat" or (name == "auto" and has_template) else RawFormat
    prompt_format = chosen(task, tokenizer, shot_task)
    task.chat = chosen is ChatFormat
    if shot_task is not None:
        shot_task.chat = task.chat
    return prompt_format
