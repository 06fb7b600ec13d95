"""Padding-free packed training (peftlab.data.packing): the same loss as padded batches, no attention
across example boundaries, and the training path that uses it."""

import pytest
import torch

from peftlab.config import load_config
from peftlab.data.examples import IGNORE_INDEX, CompletionCollator
from peftlab.data.packing import ROW_LENGTHS, PackedCollator, packed_causal_lm_loss
from peftlab.stages.train import train
from tests.conftest import build_tiny_llama

VOCAB = 97


def _examples(lengths_and_prompts, seed=0):
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for length, prompt in lengths_and_prompts:
        ids = torch.randint(1, VOCAB, (length,), generator=generator).tolist()
        examples.append({"input_ids": ids, "labels": [IGNORE_INDEX] * prompt + ids[prompt:]})
    return examples


@pytest.fixture(scope="module")
def model():
    return build_tiny_llama(VOCAB, seed=3).eval()


@pytest.mark.parametrize("row_tokens", [31, 64, 1000], ids=["row-per-example-or-so", "two-rows", "one-row"])
def test_packed_loss_and_gradients_equal_padded(model, row_tokens):
    examples = _examples([(23, 9), (7, 3), (31, 30), (12, 1)])
    padded = CompletionCollator(pad_token_id=0)(examples)
    model.zero_grad()
    reference = model(**padded).loss  # transformers' own shifted causal-LM loss, mean over label tokens
    reference.backward()
    reference_grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    model.zero_grad()
    packed = PackedCollator(0, row_tokens)(examples)
    labels = packed.pop("labels")
    lengths = packed.pop(ROW_LENGTHS).tolist()
    loss = packed_causal_lm_loss(model(**packed), labels)
    loss.backward()

    rows, width = packed["input_ids"].shape
    assert width <= max(row_tokens, 31)
    assert rows == {31: 3, 64: 2, 1000: 1}[row_tokens]
    assert sorted(lengths) == {31: [12, 23 + 7, 31], 64: [12, 31 + 23 + 7], 1000: [73]}[row_tokens]
    assert packed["logits_to_keep"].sum().item() == 14 + 4 + 1 + 11  # logits only where a label follows
    torch.testing.assert_close(loss, reference, rtol=0, atol=1e-5)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, reference_grads[name], rtol=0, atol=1e-5)


def test_loss_divides_by_the_accumulated_label_count(model):
    packed = PackedCollator(0, 64)(_examples([(10, 4), (8, 2)]))
    labels = packed.pop("labels")
    packed.pop(ROW_LENGTHS)
    outputs = model(**packed)
    mean = packed_causal_lm_loss(outputs, labels)
    # The Trainer passes the label count of all micro-batches of one optimiser step.
    assert packed_causal_lm_loss(outputs, labels, num_items_in_batch=24).item() == pytest.approx(mean.item() * 12 / 24)


def test_no_token_attends_across_an_example_boundary(model):
    first, second = _examples([(15, 5), (11, 3)])
    alone = {}
    with torch.no_grad():
        for name, example in (("first", first), ("second", second)):
            alone[name] = model(input_ids=torch.tensor([example["input_ids"]])).logits[0]
        packed = PackedCollator(0, 64)([first, second])
        for key in ("labels", "logits_to_keep", ROW_LENGTHS):
            packed.pop(key)
        logits = model(**packed).logits[0]
        # Change every token of the first example: the second one's logits must not move.
        changed = PackedCollator(0, 64)([{**first, "input_ids": [(t % (VOCAB - 1)) + 1 for t in first["input_ids"][::-1]]}, second])
        for key in ("labels", "logits_to_keep", ROW_LENGTHS):
            changed.pop(key)
        changed_logits = model(**changed).logits[0]
    torch.testing.assert_close(logits[:15], alone["first"], rtol=0, atol=1e-5)
    torch.testing.assert_close(logits[15:], alone["second"], rtol=0, atol=1e-5)
    torch.testing.assert_close(changed_logits[15:], logits[15:], rtol=0, atol=1e-6)


def test_a_response_without_prompt_is_never_predicted_from_the_previous_example():
    packed = PackedCollator(0, 64)(_examples([(5, 2), (4, 0)]))
    # The second example's first token is at position 5: position 4 (the first example's last token)
    # must not be trained to predict it.
    assert packed["labels"][0, 5].item() == IGNORE_INDEX
    assert 4 not in packed["logits_to_keep"].tolist()


def _train(tiny_model_dir, tiny_data_dir, run_dir, *extra):
    config = load_config(None, [
        f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", f"output_dir={run_dir}",
        "train.batch_size=4", "train.max_steps=4", "train.eval_every=0.5", "train.learning_rate=0.01",
        *extra,
    ])
    return train(config, run_dir)


def test_training_packed_equals_padded(tiny_model_dir, tiny_data_dir, tmp_path):
    from safetensors.torch import load_file

    no_dropout = "method.dropout=0.0"  # dropout masks depend on the batch's shape: off, for exact equality
    packed = _train(tiny_model_dir, tiny_data_dir, tmp_path / "packed", no_dropout)
    padded = _train(tiny_model_dir, tiny_data_dir, tmp_path / "padded", no_dropout, "train.packing=false")
    assert packed["packed"] is True and padded["packed"] is False
    assert packed["train_loss"] == pytest.approx(padded["train_loss"], abs=1e-5)
    assert packed["best_eval_loss"] == pytest.approx(padded["best_eval_loss"], abs=1e-5)
    one = load_file(tmp_path / "packed" / "adapter" / "adapter_model.safetensors")
    other = load_file(tmp_path / "padded" / "adapter" / "adapter_model.safetensors")
    for name in one:
        torch.testing.assert_close(one[name], other[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["prompt-tuning", "prefix-tuning"])
def test_virtual_token_methods_train_row_by_row_as_on_padded_batches(tiny_model_dir, tiny_data_dir, tmp_path, method):
    """Prompt and prefix tuning cannot be packed: they train each example of a padded batch alone, logits
    kept where a label is (peftlab.stages.trainers) — the same losses and weights as whole padded batches."""
    from safetensors.torch import load_file

    rows = _train(tiny_model_dir, tiny_data_dir, tmp_path / "rows", f"method.name={method}")
    padded = _train(tiny_model_dir, tiny_data_dir, tmp_path / "padded", f"method.name={method}", "train.packing=false")
    assert (rows["batch_layout"], padded["batch_layout"]) == ("padded rows", "padded")
    assert rows["packed"] is False and rows["train_steps"] == padded["train_steps"] == 4
    assert rows["train_loss"] == pytest.approx(padded["train_loss"], abs=1e-5)
    assert rows["best_eval_loss"] == pytest.approx(padded["best_eval_loss"], abs=1e-5)
    one = load_file(tmp_path / "rows" / "adapter" / "adapter_model.safetensors")
    other = load_file(tmp_path / "padded" / "adapter" / "adapter_model.safetensors")
    assert one.keys() == other.keys()
    for name in one:
        torch.testing.assert_close(one[name], other[name], rtol=0, atol=1e-5)


def test_a_method_whose_loss_is_the_model_own_trains_on_whole_padded_batches(tiny_model_dir, tiny_data_dir, tmp_path):
    metrics = _train(tiny_model_dir, tiny_data_dir, tmp_path / "ada", "method.name=adalora", "train.max_steps=1")
    assert metrics["batch_layout"] == "padded" and metrics["packed"] is False


@pytest.mark.parametrize("chunk", [1, 5, 1000], ids=["one-position", "several-chunks", "one-chunk"])
def test_the_chunked_memory_saving_loss_equals_the_kept_logits_loss(model, chunk):
    """The memory-saving mode's loss (the head run a chunk of positions at a time and recomputed in backward)
    gives the packed loss and gradients of the model's own kept logits, row by row."""
    from peftlab.stages.trainers import packed_row_loss

    packed = PackedCollator(0, 64)(_examples([(23, 9), (7, 3), (31, 30), (12, 1)]))
    lengths = packed.pop(ROW_LENGTHS).tolist()
    rows = [{key: value[row:row + 1, :length] if torch.is_tensor(value) else value for key, value in packed.items()}
            for row, length in enumerate(lengths)]
    label_count = 30
    model.zero_grad()
    reference = sum(packed_causal_lm_loss(model(**{k: v for k, v in row.items() if k != "labels"}), row["labels"],
                                          label_count) for row in rows)
    reference.backward()
    reference_grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    model.zero_grad()
    loss = sum(packed_row_loss(model, row, chunk, label_count) for row in rows)
    loss.backward()
    assert loss.item() > 1.0  # a real loss (ln 97 ~ 4.6 for a random model), not an empty sum
    torch.testing.assert_close(loss, reference, rtol=0, atol=1e-5)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, reference_grads[name], rtol=0, atol=1e-5)


def test_the_chunked_loss_of_a_row_without_labels_is_zero_and_backpropagates(model):
    from peftlab.stages.trainers import packed_row_loss

    packed = PackedCollator(0, 64)(_examples([(6, 6)]))  # all prompt: e.g. a completion cut off by max_length
    packed.pop(ROW_LENGTHS)
    assert not packed["logits_to_keep"].any()
    model.zero_grad()
    loss = packed_row_loss(model, packed, 4, 10)
    loss.backward()
    assert loss.item() == 0.0


def test_memory_saving_training_uses_the_chunked_loss_and_loses_as_without_it(tiny_model_dir, tiny_data_dir, tmp_path):
    from peftlab.stages.trainers import HEAD_CHUNK

    saving = _train(tiny_model_dir, tiny_data_dir, tmp_path / "saving", "train.gradient_checkpointing=true")
    plain = _train(tiny_model_dir, tiny_data_dir, tmp_path / "plain", "train.gradient_checkpointing=false")
    assert (saving["head_chunk"], plain["head_chunk"]) == (HEAD_CHUNK, None)
    assert saving["train_loss"] == pytest.approx(plain["train_loss"], abs=1e-5)
    assert saving["best_eval_loss"] == pytest.approx(plain["best_eval_loss"], abs=1e-5)
