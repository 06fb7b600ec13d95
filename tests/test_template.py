from transformers import AutoTokenizer

from peftlab.data.examples import IGNORE_INDEX, CompletionCollator, tokenize_example
from peftlab.tasks.codegen.prompt import format_prompt


def test_prompt_tokens_masked_response_and_eos_trained(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = format_prompt("Add two numbers.\n\ndef add(a, b):")
    response = "def add(a, b):\n    return a + b"
    example = tokenize_example(tokenizer, prompt, response)

    prompt_ids = tokenizer(prompt)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    assert example["input_ids"] == prompt_ids + response_ids + [tokenizer.eos_token_id]
    assert example["labels"] == [IGNORE_INDEX] * len(prompt_ids) + response_ids + [tokenizer.eos_token_id]
    assert tokenizer.decode([t for t, l in zip(example["input_ids"], example["labels"]) if l != IGNORE_INDEX]) == (
        response + "<eos>"
    )


def test_template_text():
    assert format_prompt("Do X.") == "### Instruction:\nDo X.\n### Response:\n"


def test_collator_masks_padding_but_keeps_eos_equal_to_pad():
    eos = pad = 0
    short = {"input_ids": [5, 6, 7, eos], "labels": [IGNORE_INDEX, 6, 7, eos]}
    long = {"input_ids": [5, 6, 7, 8, 9, eos], "labels": [IGNORE_INDEX, IGNORE_INDEX, 7, 8, 9, eos]}
    batch = CompletionCollator(pad_token_id=pad)([short, long])

    assert batch["input_ids"].tolist() == [[5, 6, 7, eos, pad, pad], [5, 6, 7, 8, 9, eos]]
    assert batch["labels"].tolist() == [
        [IGNORE_INDEX, 6, 7, eos, IGNORE_INDEX, IGNORE_INDEX],
        [IGNORE_INDEX, IGNORE_INDEX, 7, 8, 9, eos],
    ]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
