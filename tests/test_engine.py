"""The int8 generation engine, and options added since cells were hashed keep old cells and runs valid."""

from __future__ import annotations

import pytest
import torch
import yaml

from peftlab.config import GenerationConfig, dump_config, load_config
from peftlab.errors import UserError
from peftlab.models.int8 import int8_for_generation
from peftlab.stages.generate import generate_candidates


def test_int8_engine_quantises_every_linear_of_a_merged_adapter(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=2, target_modules=["q_proj"]))
    quantised = int8_for_generation(model)
    linears = [m for m in quantised.modules() if type(m) is torch.nn.Linear]
    dynamic = [m for m in quantised.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__]
    assert not linears and dynamic  # merged (no LoRA layers left) and quantised
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    candidates = generate_candidates(quantised, tokenizer, ["def f(x):", "import os\n"],
                                     GenerationConfig(max_new_tokens=6, stop=[]), progress=False)
    assert all(len(group) == 1 and isinstance(group[0], str) for group in candidates)


def test_int8_engine_refuses_an_already_quantised_base():
    import bitsandbytes as bnb

    with pytest.raises(UserError, match="already 4/8-bit"):
        int8_for_generation(torch.nn.Sequential(bnb.nn.Linear8bitLt(4, 4, has_fp16_weights=False)))


def test_an_added_option_at_its_default_keeps_hashes_and_old_runs(tmp_path):
    from peftlab.runs.directory import config_differences
    from peftlab.study.spec import config_hash

    config = load_config(None, ["method.name=lora"])
    dumped = config.model_dump(mode="json")
    assert dumped["generation"]["engine"] == "exact"
    added = {"engine", "slots", "lookup_tokens", "cpu_matmul"}  # generation options added after cells were hashed
    before = {**dumped, "generation": {k: v for k, v in dumped["generation"].items() if k not in added}}
    assert config_differences(before, dumped) == []  # a run written before the option resumes
    int8 = load_config(None, ["method.name=lora", "generation.engine=int8"])
    assert config_differences(before, int8.model_dump(mode="json")) == ["generation.engine: None -> 'int8'"]
    wide = load_config(None, ["method.name=lora", "generation.slots=16"])
    assert config_differences(before, wide.model_dump(mode="json")) == ["generation.slots: None -> 16"]
    assert config_hash(wide) != config_hash(config)
    assert config_hash(int8) != config_hash(config)
    mkl = load_config(None, ["method.name=lora", "generation.cpu_matmul=torch"])
    assert config_differences(before, mkl.model_dump(mode="json")) == ["generation.cpu_matmul: None -> 'torch'"]
    # the hash of a default-engine cell is the hash of its config as written before the option existed
    import hashlib
    import json

    old = {k: v for k, v in before.items() if k != "output_dir"}
    assert config_hash(config) == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:12]
    assert "engine: exact" in dump_config(config) or yaml.safe_load(dump_config(config))["generation"]["engine"] == "exact"
