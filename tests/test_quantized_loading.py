"""QLoRA's base is quantised while it is read (peftlab.models.loading): one float32 tensor at a time, never the
whole model. The quantised weights, and so the losses, must be those of transformers' own loading."""

from __future__ import annotations

import pytest
import torch

from peftlab.config import load_config
from peftlab.methods import get_training_method
from peftlab.models.loading import load_model


def _quantization(bits: int):
    config = load_config(None, [f"method.name=qlora-{bits}bit"])
    return get_training_method(config.method).quantization_config()


@pytest.fixture(scope="module")
def sharded_model_dir(tmp_path_factory):
    """The tiny model saved in several safetensors shards (as large models are)."""
    from tests.conftest import build_tiny_llama

    directory = tmp_path_factory.mktemp("tiny-sharded")
    build_tiny_llama(400, seed=3).save_pretrained(directory, max_shard_size="20KB")
    assert len(list(directory.glob("*.safetensors"))) > 2
    return directory


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("directory", ["tiny_model_dir", "sharded_model_dir"])
def test_reading_and_quantising_gives_transformers_own_quantised_model(request, bits, directory):
    from transformers import AutoModelForCausalLM

    path = request.getfixturevalue(directory)
    ours = load_model(str(path), _quantization(bits))
    theirs = AutoModelForCausalLM.from_pretrained(path, quantization_config=_quantization(bits), dtype=torch.float32)
    quantised = type(theirs.model.layers[0].mlp.up_proj)
    assert quantised.__module__.startswith("bitsandbytes") and type(ours.model.layers[0].mlp.up_proj) is quantised
    ours_state, their_state = ours.state_dict(), theirs.state_dict()
    assert ours_state.keys() == their_state.keys()
    for name, tensor in their_state.items():
        assert torch.equal(ours_state[name], tensor), name
    for model in (ours, theirs):  # as QLoRA runs them: no bf16 repacking (peftlab.methods.qlora)
        for module in model.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
    ids = torch.tensor([[5, 17, 101, 3, 250, 42]])
    with torch.no_grad():
        assert torch.equal(ours(ids, labels=ids).loss, theirs(ids, labels=ids).loss)
    assert ours.generation_config.eos_token_id == theirs.generation_config.eos_token_id


@pytest.mark.parametrize(("method", "override", "saving"), [
    ("qlora-4bit", None, True), ("qlora-8bit", None, True), ("lora", None, False),
    ("qlora-4bit", "false", False), ("lora", "true", True)])
def test_qlora_trains_in_the_memory_saving_mode_unless_told_not_to(method, override, saving):
    from peftlab.stages.train import memory_saving

    extra = [f"train.gradient_checkpointing={override}"] if override else []
    config = load_config(None, [f"method.name={method}", *extra])
    assert memory_saving(config, get_training_method(config.method)) is saving


MAPPED = """
import ctypes
from peftlab.stages.memory import freed_blocks_given_back

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def mapped_alone(size=17 * 2**20):  # a de-quantised Qwen2.5-Coder-0.5B MLP weight
    block = libc.malloc(size)
    alone = libc.mallinfo2().hblks  # blocks given their own mmap
    libc.free(block)
    return alone - libc.mallinfo2().hblks

with freed_blocks_given_back() as on:
    inside = mapped_alone()
print(on, inside, mapped_alone())
"""


def test_freed_blocks_are_given_back_while_training_and_come_from_the_heap_after():
    """The allocator half of memory-saving training (glibc's mallopt; CI's machine has glibc). Inside the block
    a 17 MB block gets its own mapping (returned to the system when freed); after it, such blocks come from
    the heap and are reused. Generation after training must not map and fault in every de-quantised weight
    at every step: the default study's QLoRA-4bit cell generated in 82 s with the threshold raised after
    training, 184 s without (bench/results/study-default.md)."""
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's mallopt")
    shown = subprocess.run([sys.executable, "-c", MAPPED], capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["True", "1", "0"]


@pytest.mark.parametrize("method", ["qlora-4bit", "qlora-8bit"])
def test_a_memory_saving_qlora_run_records_it_and_loses_as_before(method, tiny_model_dir, tiny_data_dir, tmp_path):
    """Recomputing activations changes no loss: the same losses with the mode on and off. 8-bit recomputes
    with reentrant checkpointing (frozen embeddings: the LoRA weights get gradients only because the inputs
    are made to require them; were they not, steps 2 and 3 would lose as at step 1)."""
    from peftlab.stages.train import train

    def run(name, *extra):
        config = load_config(None, [
            f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", f"output_dir={tmp_path / name}",
            f"method.name={method}", "train.batch_size=4", "train.max_steps=3", "train.eval_every=1.0",
            "train.learning_rate=0.01", *extra])
        return train(config, tmp_path / name)

    saving, fast = run("saving"), run("fast", "train.gradient_checkpointing=false")
    assert saving["gradient_checkpointing"] is True and fast["gradient_checkpointing"] is False
    assert saving["train_loss"] == pytest.approx(fast["train_loss"], abs=1e-6)
    assert saving["best_eval_loss"] == pytest.approx(fast["best_eval_loss"], abs=1e-6)
