"""Every training method on the tiny random Llama, through the CLI: loss falls, the trainable-parameter
count matches the method's closed form, save -> load reproduces the trained model's generations (greedy
and 2-beam, left-padded batch), and batched cached generation equals an uncached reference decoder.
Plus the one-line errors for unknown methods and incompatible options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_cli_in_process as run_cli
from transformers import AutoConfig

import peftlab.stages.train
from peftlab.config import GenerationConfig, load_config
from peftlab.stages.generate import generation_kwargs
from peftlab.methods import TRAINING_METHODS, get_method
from peftlab.models.loading import load_model, load_tokenizer
from peftlab.stages.pipeline import load_for_generation
from peftlab.tasks import get_task

# Learning rates for the tiny random model (the real defaults are tuned for pretrained models and barely
# move a random one in a few steps) and the relative drop of the training-set loss each method must reach
# in STEPS steps. Observed drops on this machine are noted (seeded runs; stable up to float noise).
TINY_LEARNING_RATES = {
    "full": (3e-2, 0.15),  # observed 6.67 -> 4.61 (-31%)
    "lora": (3e-2, 0.05),  # 6.67 -> 5.89 (-11.7%)
    "ia3": (1.0, 0.03),  # 6.67 -> 6.28 (-5.8%)
    "prompt-tuning": (1.0, 0.012),  # 6.66 -> 6.50 (-2.5%)
    "prefix-tuning": (3e-1, 0.03),  # 6.64 -> 6.18 (-6.8%)
    "qlora-8bit": (3e-2, 0.05),  # 6.67 -> 5.89 (-11.6%)
    "qlora-4bit": (3e-2, 0.05),  # 6.67 -> 5.88 (-11.9%)
}
STEPS = 8


@pytest.fixture(scope="session")
def sharp_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with its output head scaled by 10.

    The fixture's random head (std 0.02, hidden 32) gives near-uniform logits (std ~0.1), which caps how
    far any method that leaves the head frozen can lower the loss (~1% at best). A 10x head gives logits
    of std ~1, as in a trained model, so every method has room to learn.
    """
    directory = tmp_path_factory.mktemp("sharp-tiny-llama")
    model = load_model(str(tiny_model_dir))
    with torch.no_grad():
        model.lm_head.weight.mul_(10)
    model.save_pretrained(directory)
    load_tokenizer(str(tiny_model_dir)).save_pretrained(directory)
    return directory


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def expected_trainable(method: str, model_dir: Path, r: int = 16, virtual_tokens: int = 20) -> int:
    """The closed-form trainable-parameter count, from the model config alone."""
    c = AutoConfig.from_pretrained(model_dir)
    hidden, inter, layers, vocab = c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.vocab_size
    kv = c.num_key_value_heads * (hidden // c.num_attention_heads)  # GQA: keys/values are narrower
    if method == "full":
        per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter + 2 * hidden  # q,o,k,v,mlp,norms
        embeddings = vocab * hidden * (1 if c.tie_word_embeddings else 2)
        return embeddings + layers * per_layer + hidden
    if method in ("lora", "qlora-8bit", "qlora-4bit"):  # r * (in + out) for q, k, v, o
        return layers * r * ((hidden + hidden) + 2 * (hidden + kv) + (hidden + hidden))
    if method == "ia3":  # a vector per k and v output, one per down_proj input
        return layers * (kv + kv + inter)
    if method == "prompt-tuning":
        return virtual_tokens * hidden
    if method == "prefix-tuning":  # a key and a value vector per layer per virtual token
        return virtual_tokens * layers * 2 * kv
    raise AssertionError(method)


def generate_ids(model, tokenizer, prompts: list[str], num_beams: int) -> list[list[int]]:
    """New token ids, through the production generation arguments, for a left-padded batch."""
    config = GenerationConfig(k=num_beams, num_beams=num_beams, max_new_tokens=8, stop=[])
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    model.eval()
    with torch.inference_mode():
        output = model.generate(**encoded, **generation_kwargs(config, tokenizer))
    return output[:, encoded["input_ids"].shape[1] :].tolist()


@torch.inference_mode()
def reference_beam_search(model, input_ids: list[int], steps: int, beams: int, banned: int) -> list[list[int]]:
    """Beam search without any cache or padding: a full forward pass per hypothesis per step."""
    hypotheses = [(torch.tensor(input_ids), 0.0)]
    for _ in range(steps):
        candidates = []
        for sequence, score in hypotheses:
            logits = model(input_ids=sequence[None], attention_mask=torch.ones(1, len(sequence), dtype=torch.long))
            logprobs = torch.log_softmax(logits.logits[0, -1].float(), dim=-1)
            logprobs[banned] = -float("inf")
            top = torch.topk(logprobs, beams)
            candidates += [(torch.cat([sequence, t[None]]), score + v.item()) for v, t in zip(top.values, top.indices)]
        hypotheses = sorted(candidates, key=lambda c: -c[1])[:beams]
    return [sequence[len(input_ids) :].tolist() for sequence, _ in hypotheses]


@pytest.fixture
def capture_trainer(monkeypatch):
    """Record the Trainer that ``peftlab.stages.train`` builds, and its loss on the training set before the first
    step and after the last (deterministic: the same examples, no dropout)."""
    captured: dict = {}

    def recording(base):
        class RecordingTrainer(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                captured["trainer"] = self

            def train(self, *args, **kwargs):
                captured["train_loss_before"] = self.evaluate(eval_dataset=self.train_dataset)["eval_loss"]
                result = super().train(*args, **kwargs)
                captured["train_loss_after"] = self.evaluate(eval_dataset=self.train_dataset)["eval_loss"]
                return result

        return RecordingTrainer

    # Packed (LoRA, IA3, full, QLoRA) and padded (prompt and prefix tuning) training use different classes.
    monkeypatch.setattr(peftlab.stages.train, "Trainer", recording(peftlab.stages.train.Trainer))
    monkeypatch.setattr(peftlab.stages.train, "PackedTrainer", recording(peftlab.stages.train.PackedTrainer))
    return captured


@pytest.mark.parametrize("method", list(TINY_LEARNING_RATES))
def test_method_trains_saves_loads_and_generates(
    method, sharp_model_dir, tiny_overrides, tmp_path, monkeypatch, capsys, capture_trainer
):
    learning_rate, min_drop = TINY_LEARNING_RATES[method]
    run_dir = tmp_path / "run"
    overrides = tiny_overrides + [
        f"model.name={sharp_model_dir}", f"train.max_steps={STEPS}", f"train.learning_rate={learning_rate}",
        "train.eval_every=1.0",
    ]
    code, out, err = run_cli(monkeypatch, capsys, "train", "--method", method, *overrides)
    assert code == 0, err
    assert "trainable params" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())

    # 1. the loss falls: training-set loss before the first step vs after the last
    before, after = capture_trainer["train_loss_before"], capture_trainer["train_loss_after"]
    assert after < before * (1 - min_drop), (before, after)

    # 2. trainable parameters = the method's closed form
    assert metrics["trainable_params"] == expected_trainable(method, sharp_model_dir)

    # 3. save -> load reproduces the in-memory trained model, and training changed the model
    config = load_config(None, overrides + [f"method.name={method}"])
    trained = capture_trainer["trainer"].model.eval()
    reloaded = load_for_generation(config, run_dir).eval()
    tokenizer = load_tokenizer(config.model.name, padding_side="left")
    task = get_task("codegen", config)
    prompts = [task.prompt(problem) for problem in task.load("test")]
    assert len({len(tokenizer(p)["input_ids"]) for p in prompts}) > 1  # the batch really is left-padded
    encoded = tokenizer(prompts[:1], return_tensors="pt")
    with torch.inference_mode():
        trained_logits = trained(**encoded).logits
        reloaded_logits = reloaded(**encoded).logits
        base_logits = load_model(config.model.name)(**encoded).logits
    assert torch.equal(trained_logits, reloaded_logits)
    assert (trained_logits[:, -1] - base_logits[:, -1]).abs().max() > 1e-3
    for beams in (1, 2):
        assert generate_ids(trained, tokenizer, prompts, beams) == generate_ids(reloaded, tokenizer, prompts, beams)

    # 4. cached, batched, left-padded generation (greedy and beams) = an uncached one-prompt-at-a-time decoder
    for beams in (1, 2):
        config_kwargs = GenerationConfig(k=beams, num_beams=beams, max_new_tokens=5, stop=[])
        tokenizer.padding_side = "left"
        batch = tokenizer(prompts, return_tensors="pt", padding=True)
        kwargs = generation_kwargs(config_kwargs, tokenizer) | {"suppress_tokens": [tokenizer.eos_token_id]}
        with torch.inference_mode():
            output = reloaded.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :].tolist()
        for index, prompt in enumerate(prompts):
            ids = tokenizer(prompt)["input_ids"]
            expected = reference_beam_search(reloaded, ids, 5, beams, tokenizer.eos_token_id)
            assert output[index * beams : (index + 1) * beams] == expected, (method, beams, index)


def test_prefix_projection_and_text_init_parameter_counts(tiny_model_dir):
    c = AutoConfig.from_pretrained(tiny_model_dir)
    hidden, layers = c.hidden_size, c.num_hidden_layers
    kv_all = layers * 2 * c.num_key_value_heads * (hidden // c.num_attention_heads)
    options = ["method.name=prefix-tuning", "method.prefix_projection=true", "method.num_virtual_tokens=5"]
    config = load_config(None, options)
    model = get_method(config.method).apply(load_model(str(tiny_model_dir)))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # PEFT sizes the prefix embedding by the key/value width (GQA-aware), then an MLP
    # Linear(kv -> encoder_hidden_size = hidden) -> Linear(hidden -> layers*2*kv), with biases
    kv = c.num_key_value_heads * (hidden // c.num_attention_heads)
    assert trainable == 5 * kv + (kv * hidden + hidden) + (hidden * kv_all + kv_all)

    text = "def add(a, b):"
    options = ["method.name=prompt-tuning", "method.prompt_init=text", f"method.prompt_init_text='{text}'"]
    config = load_config(None, options)
    base = load_model(str(tiny_model_dir))
    model = get_method(config.method).apply(base)
    token_ids = load_tokenizer(str(tiny_model_dir))(text, add_special_tokens=False)["input_ids"]
    repeated = (token_ids * 20)[:20]
    prompt = model.prompt_encoder["default"].embedding.weight
    assert torch.equal(prompt, base.get_input_embeddings().weight[repeated])


def test_unknown_method_is_one_line_error(monkeypatch, capsys, tiny_overrides):
    code, _, err = run_cli(monkeypatch, capsys, "train", "--method", "adapterz", *tiny_overrides)
    assert_one_line_error(code, err, "unknown method 'adapterz'", "qlora-4bit", "prefix-tuning")


@pytest.mark.parametrize(
    ("method", "options", "fragment"),
    [
        ("full", ["method.compute_dtype=bfloat16"], "does not apply to full; it applies to qlora-4bit"),
        ("lora", ["method.compute_dtype=float16"], "does not apply to lora; it applies to qlora-4bit"),
        ("qlora-8bit", ["method.compute_dtype=bfloat16"], "it applies to qlora-4bit"),
        ("lora", ["method.prefix_projection=true"], "it applies to prefix-tuning"),
        ("prefix-tuning", ["method.prompt_init=text"], "it applies to prompt-tuning"),
        ("prompt-tuning", ["method.prompt_init=text", "method.prompt_init_text=' '"], "non-empty"),
        ("prompt-tuning", ["method.target_modules=[q_proj]"], "does not apply to prompt-tuning"),
        ("prefix-tuning", ["method.target_modules=[q_proj]"], "does not apply to prefix-tuning"),
        ("full", ["method.target_modules=[q_proj]"], "does not apply to full"),
        ("ia3", ["method.target_modules=[]"], "empty list"),
        ("ia3", ["method.r=8"], "method.r=8 does not apply to ia3; it applies to lora, qlora-8bit, qlora-4bit"),
        ("lora", ["method.shots=5"], "it applies to icl, rag"),
    ],
)
def test_incompatible_options_are_one_line_errors(method, options, fragment, monkeypatch, capsys, tiny_overrides):
    code, _, err = run_cli(monkeypatch, capsys, "train", "--method", method, *tiny_overrides, *options)
    assert_one_line_error(code, err, fragment)


def test_installed_command_reports_one_line_without_traceback(tiny_overrides):
    command = Path(sys.executable).parent / "peftlab"
    result = subprocess.run(
        [str(command), "train", "--method", "full", *tiny_overrides, "method.compute_dtype=bfloat16"],
        capture_output=True, text=True, timeout=120,
    )
    assert_one_line_error(result.returncode, result.stderr, "does not apply to full")


def test_every_method_has_a_documented_default():
    names = set(TRAINING_METHODS)
    assert names == {"full", "lora", "ia3", "prompt-tuning", "prefix-tuning", "qlora-8bit", "qlora-4bit"}
    docs = (Path(__file__).parents[1] / "docs" / "methods.md").read_text()
    for name, method in TRAINING_METHODS.items():
        assert f"`{name}`" in docs
        assert method.source
