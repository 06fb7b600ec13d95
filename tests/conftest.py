"""Shared fixtures: a tiny random Llama with a tiny BPE tokenizer, built in-process, and a mined dataset.

The model is saved to a directory so tests go through the same loading path as real models
(``model.name=<dir>``). Its tokenizer uses EOS as the pad token, as SmolLM2 does, so masking bugs that
confuse padding with the final EOS show up here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Tests never reach the Hugging Face Hub: a hub id must fail fast, as it does on an offline machine.
os.environ["HF_HUB_OFFLINE"] = "1"

FIXTURES = Path(__file__).parent / "fixtures"
MINI_PROJECT = FIXTURES / "mini_project"


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [path.read_text() for path in sorted(MINI_PROJECT.rglob("*.py"))]
    corpus.append("### Instruction:\n### Response:\n" * 4)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<eos>")


def build_tiny_llama(vocab_size: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        eos_token_id=0,
        pad_token_id=0,
        bos_token_id=0,
    )
    return LlamaForCausalLM(config)


def _save_tiny(directory: Path, seed: int) -> Path:
    tokenizer = _train_tokenizer()
    build_tiny_llama(len(tokenizer), seed=seed).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer random Llama (hidden 32) and a 400-token BPE tokenizer, saved as an HF directory."""
    return _save_tiny(tmp_path_factory.mktemp("tiny-llama"), seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir_b(tmp_path_factory) -> Path:
    """A second tiny model (same shape, other weights), for matrices over models."""
    return _save_tiny(tmp_path_factory.mktemp("tiny-llama-b"), seed=1)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """The fixture project mined into train/validation/test JSONL (no tokenizer statistics)."""
    from peftlab.tasks.codegen.build import build_codegen_dataset

    directory = tmp_path_factory.mktemp("tiny-data")
    # No contamination check: the fixture's gcd is a near-copy of HumanEval/13, and the pinned losses of
    # tests/test_train.py are about training mechanics on this exact set (test_contamination.py covers the check).
    build_codegen_dataset(directory, MINI_PROJECT, seed=0, check_contamination=False)
    return directory


@pytest.fixture(scope="module")
def tiny_generation_setup(tiny_model_dir, tiny_data_dir):
    """What the generation tests decode: the tiny model, its tokenizer and 7 code-generation prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from peftlab.config import load_config
    from peftlab.tasks import get_task

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    task = get_task("codegen", load_config(None, [f"data.dir={tiny_data_dir}"]))
    return model, tokenizer, [task.prompt(problem) for problem in task.load("train")[:7]]


@pytest.fixture
def tiny_overrides(tiny_model_dir, tiny_data_dir, tmp_path) -> list[str]:
    """Config overrides that point a run at the tiny model and data, small enough to train in seconds."""
    return [
        f"model.name={tiny_model_dir}",
        f"data.dir={tiny_data_dir}",
        f"output_dir={tmp_path / 'run'}",
        "train.batch_size=4",
        "train.max_steps=4",
        "generation.max_new_tokens=8",
        "generation.stop=[]",
    ]


def run_cli_in_process(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``peftlab ARGS`` in-process, with the installed command's error handling: (exit code, out, err)."""
    import sys

    from peftlab.cli import main

    monkeypatch.setattr(sys, "argv", ["peftlab", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
