"""GGUF files for llama.cpp and Ollama: a whole (merged) model, or a LoRA adapter alone.

Written with the ``gguf`` package (llama.cpp's own writer and tensor-name tables), the way llama.cpp's
``convert_hf_to_gguf.py`` and ``convert_lora_to_gguf.py`` write them, for the two architectures peftlab
bundles: ``llama`` (SmolLM2) and ``qwen2`` (Qwen2.5-Coder). Three things llama.cpp expects that a plain
tensor dump would miss:

* **Names** come from ``gguf.get_tensor_name_map`` (``model.layers.0.self_attn.q_proj.weight`` ->
  ``blk.0.attn_q.weight``).
* **Llama's query and key rows are permuted**: llama.cpp's rotary embedding pairs neighbouring dimensions,
  Hugging Face's pairs the two halves. For a LoRA adapter only ``lora_b`` (the output side) is permuted.
* **The tokenizer goes inside**: byte-level BPE tokens by id, their types, and the merges (``gpt2``
  model), padded with unused tokens up to the model's embedding rows, with the chat template.

A LoRA adapter file has ``general.type = adapter``, ``adapter.type = lora`` and ``adapter.lora.alpha``;
llama.cpp scales it by alpha / r, as PEFT does, so only plain LoRA is written (rsLoRA's and DoRA's
scaling has no field there).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from peftlab.errors import UserError

ARCHITECTURES = ("llama", "qwen2")
_PERMUTED = ("q_proj", "k_proj")  # llama only


def _arch(config) -> str:
    if config.model_type not in ARCHITECTURES:
        raise UserError(f"GGUF export writes {' and '.join(ARCHITECTURES)} models; this one is "
                        f"'{config.model_type}' (export it as a transformers model and use llama.cpp's converter)")
    return config.model_type


def _name_map(config):
    import gguf

    arch = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}[_arch(config)]
    return gguf.get_tensor_name_map(arch, config.num_hidden_layers)


def _gguf_name(names, hf_name: str) -> str:
    found = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if found is None:
        raise UserError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
    return found


def permute_rows(weights: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's rotary layout (halves) -> llama.cpp's (neighbours), as llama.cpp's converter does."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2) \
        .reshape(weights.shape)


def _heads_of(config, hf_name: str) -> int | None:
    """How many heads a llama query/key matrix's rows hold (None: not permuted)."""
    if config.model_type != "llama" or not any(f"{part}." in hf_name for part in _PERMUTED):
        return None
    return config.num_key_value_heads if "k_proj." in hf_name else config.num_attention_heads


def _rope_theta(config) -> float:
    theta = getattr(config, "rope_theta", None)
    return float(theta if theta is not None else (getattr(config, "rope_parameters", None) or {}).get("rope_theta",
                                                                                                      10000.0))


def _hyperparameters(writer, config, name: str) -> None:
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)  # else a reader counts tokens, and may count added ones twice
    if config.model_type == "llama":
        writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)


def _tokenizer(writer, tokenizer, config) -> None:
    import gguf

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    if backend["model"]["type"] != "BPE":
        raise UserError("GGUF export writes byte-level BPE tokenizers (Qwen2.5, SmolLM2); this one is "
                        f"{backend['model']['type']}")
    vocab = tokenizer.get_vocab()
    by_id = {index: token for token, index in vocab.items()}
    added = {token.content: token.special for token in tokenizer.added_tokens_decoder.values()}
    rows = max(config.vocab_size, len(by_id))
    tokens, types = [], []
    for index in range(rows):
        token = by_id.get(index)
        if token is None:  # embedding rows past the tokenizer: llama.cpp needs a token for each
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL if token not in added
                         else gguf.TokenType.CONTROL if added[token] else gguf.TokenType.USER_DEFINED)
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in backend["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2" if config.model_type == "qwen2" else "smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for token, add in ((tokenizer.bos_token, writer.add_bos_token_id), (tokenizer.eos_token, writer.add_eos_token_id),
                       (tokenizer.pad_token, writer.add_pad_token_id)):
        if token is not None:
            add(vocab[token])
    writer.add_add_bos_token(False)  # neither bundled model's prompts start with one
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def _finish(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_model(model, tokenizer, path: Path, name: str, half: bool = False) -> None:
    """``model`` (a plain, merged ``PreTrainedModel``) and its tokenizer as one GGUF file: float32 tensors,
    or with ``half`` the matrices in float16 (llama.cpp's ``MOSTLY_F16``; norms stay float32)."""
    import gguf

    config = model.config
    names = _name_map(config)
    writer = gguf.GGUFWriter(str(path), _arch(config))
    _hyperparameters(writer, config, name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if half else gguf.LlamaFileType.ALL_F32)
    _tokenizer(writer, tokenizer, config)
    tied = getattr(config, "tie_word_embeddings", False)
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reads the output matrix from token_embd when output.weight is absent
        data = tensor.detach().to(torch.float32).numpy()
        if (heads := _heads_of(config, hf_name)) is not None and hf_name.endswith(".weight"):
            data = permute_rows(data, heads)
        if half and data.ndim == 2:
            data = data.astype(np.float16)
        writer.add_tensor(_gguf_name(names, hf_name), np.ascontiguousarray(data))
    _finish(writer)


def plain_lora(adapter: Path) -> bool:
    """Whether a PEFT adapter is LoRA that llama.cpp applies as PEFT does: scaled by alpha/r everywhere."""
    settings = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    return (settings.get("peft_type") == "LORA" and not settings.get("use_rslora") and not settings.get("use_dora")
            and not settings.get("rank_pattern") and not settings.get("alpha_pattern"))


def write_lora(adapter: Path, base_config, path: Path, name: str) -> dict:
    """A PEFT LoRA adapter directory as llama.cpp's LoRA GGUF (float32); returns its rank and alpha.

    Raises:
        UserError: the adapter is not plain LoRA (rsLoRA, DoRA, per-layer ranks or alphas), or it adapts
            a module llama.cpp has no name for (embeddings included).
    """
    import gguf
    from safetensors.torch import load_file

    settings = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    if not plain_lora(adapter):
        raise UserError("a GGUF LoRA adapter holds plain LoRA only (llama.cpp scales it by alpha/r); this adapter "
                        "is not (rsLoRA, DoRA or per-layer ranks): export the merged model instead")
    names = _name_map(base_config)
    writer = gguf.GGUFWriter(str(path), _arch(base_config))
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(settings["lora_alpha"]))
    for key, tensor in sorted(load_file(str(adapter / "adapter_model.safetensors")).items()):
        module, _, part = key.removeprefix("base_model.model.").rpartition(".lora_")  # part: "A.weight"/"B.weight"
        data = tensor.to(torch.float32).numpy()
        if part == "B.weight" and (heads := _heads_of(base_config, module + ".")) is not None:
            data = permute_rows(data, heads)
        suffix = {"A.weight": "lora_a", "B.weight": "lora_b"}.get(part)
        if suffix is None:
            raise UserError(f"GGUF LoRA export: unexpected tensor {key} in {adapter}")
        writer.add_tensor(f"{_gguf_name(names, module + '.weight')}.{suffix}", np.ascontiguousarray(data))
    _finish(writer)
    return {"rank": settings["r"], "alpha": settings["lora_alpha"]}
