"""The code-generation task's prompt format: an instruction template, and the stop strings that end a
completion where the model starts a new instruction or response of its own."""

from __future__ import annotations

INSTRUCTION_TEMPLATE = "### Instruction:\n{instruction}\n### Response:\n"
STOP_STRINGS = ("\n### Instruction", "\n### Response", "\n\n\n")


def format_prompt(instruction: str) -> str:
    return INSTRUCTION_TEMPLATE.format(instruction=instruction)
