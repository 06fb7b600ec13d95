"""What kind of PEFT adapter a loaded model carries, asked in one place (generation and the int8 engine both
need to know whether the model prepends virtual tokens)."""

from __future__ import annotations


def prompt_learning_config(model):
    """The active PEFT config when ``model`` prepends virtual tokens (prompt or prefix tuning), else ``None``."""
    peft_config = getattr(model, "active_peft_config", None)
    return peft_config if getattr(peft_config, "is_prompt_learning", False) else None
