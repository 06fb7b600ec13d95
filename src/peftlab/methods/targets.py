"""Which modules an adapter targets, per architecture, with an inference fallback for unknown ones.

Three roles are known:

* ``attention``: the attention projections (LoRA and QLoRA adapt these by default);
* ``key_value``: the projections producing keys and values ((IA)^3 rescales their outputs). Where an
  architecture fuses q, k and v into one layer (GPT-2 ``c_attn``, GPT-NeoX ``query_key_value``) that fused
  layer is the closest match and is used;
* ``feedforward_out``: the feed-forward output projection ((IA)^3 rescales its input).

Names are matched by PEFT against the end of each module's dotted path, so ``"attn.c_proj"`` selects the
attention output of GPT-2 but not the MLP's ``mlp.c_proj``. GPT-2 builds its layers from ``Conv1D``
(weights stored transposed); PEFT needs ``fan_in_fan_out=True`` for those, see :func:`uses_conv1d`.
"""

from __future__ import annotations

import logging
import re

from pydantic import field_validator

from peftlab.config import OwnedOptions
from peftlab.errors import UserError

log = logging.getLogger(__name__)

ROLES = ("attention", "key_value", "feedforward_out")


class TargetModules(OwnedOptions):
    """The option of every method that adapts chosen modules (LoRA and its kin, (IA)^3)."""

    target_modules: list[str] | None = None
    """Module names to adapt; ``None`` resolves them from the model's architecture."""

    @field_validator("target_modules")
    @classmethod
    def _not_empty(cls, value):
        if value is not None and not value:
            raise ValueError("an empty list; name at least one module or use null (automatic)")
        return value

    def targets(self, model, role: str = "attention") -> list[str]:
        """The modules given, else those of ``role`` in ``model``'s architecture."""
        return self.target_modules or resolve_target_modules(model, role)

_LLAMA_LIKE = {
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "key_value": ["k_proj", "v_proj"],
    "feedforward_out": ["down_proj"],
}
_GPT2_LIKE = {  # fused qkv in c_attn; c_proj exists in both attention and MLP, hence the prefixes
    "attention": ["attn.c_attn", "attn.c_proj"],
    "key_value": ["attn.c_attn"],
    "feedforward_out": ["mlp.c_proj"],
}
_NEOX_LIKE = {
    "attention": ["query_key_value", "dense"],
    "key_value": ["query_key_value"],
    "feedforward_out": ["dense_4h_to_h"],
}

# model_type -> role -> module names. Every entry is checked against a tiny random model in
# tests/test_targets.py (except "gemma3", the multimodal wrapper, whose text stack is "gemma3_text").
KNOWN_TARGETS: dict[str, dict[str, list[str]]] = {
    **{name: _LLAMA_LIKE for name in (
        "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text", "olmo2", "granite",
    )},
    "phi3": {"attention": ["qkv_proj", "o_proj"], "key_value": ["qkv_proj"], "feedforward_out": ["down_proj"]},
    "phi": {"attention": ["q_proj", "k_proj", "v_proj", "dense"], "key_value": ["k_proj", "v_proj"],
            "feedforward_out": ["fc2"]},
    "starcoder2": {"attention": ["q_proj", "k_proj", "v_proj", "o_proj"], "key_value": ["k_proj", "v_proj"],
                   "feedforward_out": ["c_proj"]},
    "gpt2": _GPT2_LIKE,
    "gpt_bigcode": _GPT2_LIKE,  # same names as GPT-2, but nn.Linear instead of Conv1D
    "gpt_neox": _NEOX_LIKE,
    "falcon": _NEOX_LIKE,
    "bloom": _NEOX_LIKE,
    "codegen": {"attention": ["qkv_proj", "out_proj"], "key_value": ["qkv_proj"], "feedforward_out": ["fc_out"]},
    "gptj": {"attention": ["q_proj", "k_proj", "v_proj", "out_proj"], "key_value": ["k_proj", "v_proj"],
             "feedforward_out": ["fc_out"]},
    "gpt_neo": {"attention": ["q_proj", "k_proj", "v_proj", "out_proj"], "key_value": ["k_proj", "v_proj"],
                "feedforward_out": ["mlp.c_proj"]},
    "t5": {"attention": ["q", "k", "v", "o"], "key_value": ["k", "v"], "feedforward_out": ["wo"]},
}

# Leaf-name patterns used to infer roles in architectures missing from KNOWN_TARGETS.
_INFERENCE_PATTERNS = {
    "attention": re.compile(
        r"(q|k|v|o|query|key|value|qkv|wq|wk|wv|wo_attn|wqkv|c_attn|query_key_value|in_proj|out_proj|"
        r"(q|k|v|o|qkv|out|attn)_proj)",
        re.IGNORECASE,
    ),
    "key_value": re.compile(r"(k|v|key|value|wk|wv|k_proj|v_proj)", re.IGNORECASE),
    "key_value_fused": re.compile(r"(qkv|wqkv|qkv_proj|c_attn|query_key_value|in_proj)", re.IGNORECASE),
    "feedforward_out": re.compile(r"(down_proj|fc2|fc_out|w2|wo|dense_4h_to_h|ffn_out|mlp_out|out_ff)",
                                  re.IGNORECASE),
}


def _adaptable_modules(model) -> dict[str, object]:
    """Full name -> module for every Linear or Conv1D layer, except the output head."""
    import torch
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, Conv1D)) and module is not head and name.split(".")[-1] != "lm_head"
    }


def _leaf_names(modules: dict[str, object]) -> list[str]:
    return sorted({name.split(".")[-1] for name in modules})


def _infer(model, role: str) -> list[str]:
    leaves = _leaf_names(_adaptable_modules(model))
    if not leaves:
        raise UserError(f"model {type(model).__name__} has no Linear or Conv1D layers an adapter could target")
    found = [leaf for leaf in leaves if _INFERENCE_PATTERNS[role].fullmatch(leaf)]
    if not found and role == "key_value":
        found = [leaf for leaf in leaves if _INFERENCE_PATTERNS["key_value_fused"].fullmatch(leaf)]
    if found:
        return found
    return leaves


def resolve_target_modules(model, role: str) -> list[str]:
    """Module names for ``role`` (one of :data:`ROLES`) in ``model``.

    Architectures in :data:`KNOWN_TARGETS` use the table. Others are inferred from the model's Linear and
    Conv1D layers (the output head excluded): layers whose names look like the role, or, if none do, all of
    them. Inference is logged as a warning, never an error.

    Raises:
        UserError: ``role`` is unknown, or the model has no Linear/Conv1D layer at all.
    """
    if role not in ROLES:
        raise UserError(f"unknown target role '{role}'; known: {', '.join(ROLES)}")
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    known = KNOWN_TARGETS.get(model_type, {}).get(role)
    if known:
        return list(known)
    inferred = _infer(model, role)
    log.warning("no %s modules known for model type %r; inferred from its layers: %s", role, model_type, inferred)
    return inferred


def matching_modules(model, names: list[str]) -> dict[str, object]:
    """The adaptable modules whose dotted path equals or ends with one of ``names`` (PEFT's rule)."""
    return {
        full: module
        for full, module in _adaptable_modules(model).items()
        if any(full == name or full.endswith("." + name) for name in names)
    }


def uses_conv1d(model, names: list[str]) -> bool:
    """Whether any module selected by ``names`` is a transformers ``Conv1D`` (needs ``fan_in_fan_out``)."""
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(module, Conv1D) for module in matching_modules(model, names).values())
