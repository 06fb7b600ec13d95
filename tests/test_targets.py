"""Target-module resolution: every architecture in the table checked against a tiny random model built
in-process, Conv1D (GPT-2) handled, and unknown architectures inferred without errors."""

from __future__ import annotations

import logging

import pytest
import torch
import transformers as T

from peftlab.config import load_config
from peftlab.errors import UserError
from peftlab.methods import get_method
from peftlab.methods.targets import KNOWN_TARGETS, ROLES, matching_modules, resolve_target_modules, uses_conv1d

LAYERS = 2
_DECODER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=64, pad_token_id=0, bos_token_id=0, eos_token_id=0)
_GPT = dict(n_embd=32, n_layer=LAYERS, n_head=4, vocab_size=64, bos_token_id=0, eos_token_id=0)
TINY_CONFIGS = {
    "llama": lambda: T.LlamaConfig(**_DECODER),
    "mistral": lambda: T.MistralConfig(**_DECODER),
    "qwen2": lambda: T.Qwen2Config(**_DECODER),
    "qwen3": lambda: T.Qwen3Config(**_DECODER, head_dim=8),
    "gemma": lambda: T.GemmaConfig(**_DECODER, head_dim=8),
    "gemma2": lambda: T.Gemma2Config(**_DECODER, head_dim=8),
    "gemma3_text": lambda: T.Gemma3TextConfig(**_DECODER, head_dim=8),
    "olmo2": lambda: T.Olmo2Config(**_DECODER),
    "granite": lambda: T.GraniteConfig(**_DECODER),
    "phi3": lambda: T.Phi3Config(**_DECODER),
    "phi": lambda: T.PhiConfig(**_DECODER),
    "starcoder2": lambda: T.Starcoder2Config(**_DECODER),
    "gpt2": lambda: T.GPT2Config(**_GPT),
    "gpt_bigcode": lambda: T.GPTBigCodeConfig(**_GPT),
    "codegen": lambda: T.CodeGenConfig(**_GPT, rotary_dim=4),
    "gptj": lambda: T.GPTJConfig(**_GPT, rotary_dim=4),
    "gpt_neox": lambda: T.GPTNeoXConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=LAYERS,
                                        num_attention_heads=4, vocab_size=64, bos_token_id=0, eos_token_id=0),
    "falcon": lambda: T.FalconConfig(hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4, vocab_size=64,
                                     bos_token_id=0, eos_token_id=0),
    "bloom": lambda: T.BloomConfig(hidden_size=32, n_layer=LAYERS, n_head=4, vocab_size=64, bos_token_id=0,
                                   eos_token_id=0, pad_token_id=0),
    "gpt_neo": lambda: T.GPTNeoConfig(hidden_size=32, num_layers=LAYERS, num_heads=4, vocab_size=64,
                                      attention_types=[[["global", "local"], 1]], bos_token_id=0, eos_token_id=0),
    "t5": lambda: T.T5Config(d_model=32, d_ff=64, d_kv=8, num_layers=LAYERS, num_heads=4, vocab_size=64),
}


def tiny_model(model_type: str):
    torch.manual_seed(0)
    config = TINY_CONFIGS[model_type]()
    if model_type == "t5":
        return T.T5ForConditionalGeneration(config)
    return T.AutoModelForCausalLM.from_config(config)


def test_every_table_entry_has_a_tiny_model_check():
    # gemma3 (the multimodal wrapper) shares gemma3_text's names; building it needs a vision tower
    assert set(KNOWN_TARGETS) - {"gemma3"} == set(TINY_CONFIGS)


@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_table_names_exist_in_every_layer(model_type, caplog):
    model = tiny_model(model_type)
    assert model.config.model_type == model_type
    with caplog.at_level(logging.WARNING, logger="peftlab.methods.targets"):
        for role in ROLES:
            names = resolve_target_modules(model, role)
            assert names == KNOWN_TARGETS[model_type][role]
            for name in names:
                assert len(matching_modules(model, [name])) >= LAYERS, (role, name)
    assert not caplog.records  # a known architecture is never "inferred"
    # feed-forward output and attention never overlap (c_proj in GPT-2 is told apart by its prefix)
    attention = set(matching_modules(model, KNOWN_TARGETS[model_type]["attention"]))
    assert not attention & set(matching_modules(model, KNOWN_TARGETS[model_type]["feedforward_out"]))


def _method(name: str, *options: str):
    rank = ["method.r=4"] if name != "ia3" else []  # (IA)3 has no rank: setting one is an error
    return get_method(load_config(None, [f"method.name={name}", *rank, *options]).method)


def test_gpt2_conv1d_lora_and_ia3():
    model = tiny_model("gpt2")
    hidden, inner = 32, 4 * 32
    assert uses_conv1d(model, KNOWN_TARGETS["gpt2"]["attention"])
    lora = _method("lora").apply(model).eval()  # eval: no LoRA dropout
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert trainable == LAYERS * 4 * ((hidden + 3 * hidden) + (hidden + hidden))  # c_attn: 32 -> 96, c_proj 32 -> 32

    # LoRA on Conv1D needs fan_in_fan_out: merging must give the same outputs as the unmerged adapter
    for name, parameter in lora.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    ids = torch.randint(0, 64, (1, 6))
    with torch.no_grad():
        unmerged = lora(input_ids=ids).logits
        merged = lora.merge_and_unload()(input_ids=ids).logits
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)

    ia3 = _method("ia3").apply(tiny_model("gpt2"))
    assert ia3.peft_config["default"].fan_in_fan_out
    trainable = sum(p.numel() for p in ia3.parameters() if p.requires_grad)
    assert trainable == LAYERS * (3 * hidden + inner)  # c_attn outputs (fused q,k,v) + mlp.c_proj inputs


def test_gpt_neox_lora_and_ia3_counts():
    hidden, inner = 32, 64
    lora = _method("lora").apply(tiny_model("gpt_neox"))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert trainable == LAYERS * 4 * ((hidden + 3 * hidden) + 2 * hidden)  # query_key_value 32 -> 96, dense
    ia3 = _method("ia3").apply(tiny_model("gpt_neox"))
    assert sum(p.numel() for p in ia3.parameters() if p.requires_grad) == LAYERS * (3 * hidden + inner)


class CustomBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = (torch.nn.Linear(8, 8) for _ in range(3))
        self.fc_up, self.fc2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 8)


class CustomModel(torch.nn.Module):
    """No ``config`` at all, like a hand-written model."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([CustomBlock(), CustomBlock()])
        self.lm_head = torch.nn.Linear(8, 50)


class OddModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.mixer, self.lm_head = torch.nn.Linear(8, 8), torch.nn.Linear(8, 50)


def test_unknown_architecture_is_inferred_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="peftlab.methods.targets"):
        assert resolve_target_modules(CustomModel(), "attention") == ["key", "query", "value"]
        assert resolve_target_modules(CustomModel(), "key_value") == ["key", "value"]
        assert resolve_target_modules(CustomModel(), "feedforward_out") == ["fc2"]
        # nothing looks like the role: every Linear except the output head
        assert resolve_target_modules(OddModel(), "attention") == ["mixer"]
    assert len(caplog.records) == 4 and "inferred" in caplog.records[0].getMessage()


def test_unknown_hf_model_type_falls_back_to_inference(caplog):
    model = tiny_model("llama")
    model.config.model_type = "my-new-llama"
    with caplog.at_level(logging.WARNING, logger="peftlab.methods.targets"):
        assert resolve_target_modules(model, "attention") == ["k_proj", "o_proj", "q_proj", "v_proj"]
        assert resolve_target_modules(model, "key_value") == ["k_proj", "v_proj"]
        assert resolve_target_modules(model, "feedforward_out") == ["down_proj"]
    assert caplog.records
    ia3 = _method("ia3").apply(model)  # and the methods still apply
    assert ia3.peft_config["default"].feedforward_modules == {"down_proj"}


def test_no_linear_layers_or_unknown_role_is_a_user_error():
    with pytest.raises(UserError, match="no Linear or Conv1D"):
        resolve_target_modules(torch.nn.Sequential(torch.nn.ReLU()), "attention")
    with pytest.raises(UserError, match="unknown target role"):
        resolve_target_modules(tiny_model("llama"), "everything")
