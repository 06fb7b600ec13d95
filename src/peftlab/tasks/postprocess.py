"""Turning a model's raw continuation into a code candidate."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def cut_at_stop(text: str, stops: list[str]) -> str:
    """Everything before the earliest stop string."""
    cut = len(text)
    for stop in stops:
        position = text.find(stop)
        if position != -1:
            cut = min(cut, position)
    return text[:cut]


def strip_fences(text: str) -> str:
    """The first fenced block's content when the text holds a markdown code fence, else the text."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


def trim_after_function(text: str) -> str:
    """Drop what follows the first top-level function: prose or another definition after its body.

    The function ends at the first non-blank line at column 0 that follows an indented line (decorators
    and the ``def`` line itself are column-0 lines *before* the body and are kept; so are closing brackets
    of a multi-line signature).
    """
    kept: list[str] = []
    seen_body = False
    for line in text.splitlines():
        if line.strip() and not line[0].isspace() and line[0] not in ")]}" and seen_body:
            break
        if line.strip() and line[0].isspace():
            seen_body = True
        kept.append(line)
    return "\n".join(kept)


def extract_code(completion: str, stops: list[str]) -> str:
    """Stop strings, then markdown fences, then trailing prose; trailing whitespace removed."""
    text = strip_fences(cut_at_stop(completion, stops))
    return trim_after_function(text).rstrip()


def _strip_continuation_fences(text: str) -> str:
    lines = text.split("\n")
    fences = [i for i, line in enumerate(lines) if line.lstrip().startswith("```")]
    if not fences:
        return text
    first = fences[0]
    before = [line for line in lines[:first] if line.strip()]
    if lines[first].strip() == "```" and before and before[0][:1] in (" ", "\t"):
        return "\n".join(lines[:first])  # the model continued the body, then closed a fence
    end = fences[1] if len(fences) > 1 else len(lines)
    return "\n".join(lines[first + 1:end]) + "\n"


def continuation(text: str, stops: list[str]) -> str:
    """A completion that continues a prompt's function (HumanEval, MBPP): the fenced code if the model
    wrote a fence (but a body continued and then closed with a fence is kept as the body), cut at the
    first stop string."""
    return cut_at_stop(_strip_continuation_fences(text), stops)
