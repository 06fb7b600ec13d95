"""Prompt/completion training examples with completion-only loss masking, and their collator.

A training example is ``prompt + response + EOS`` (in the chat format, ``response`` ends with the
template's end-of-turn instead). The prompt's tokens are labelled ``-100`` so the loss
is computed on the response (and EOS) only; padding is labelled ``-100`` by the collator. How a prompt
looks is the task's business (``tasks/<name>/``); this module only tokenizes and pads.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100


def tokenize_example(tokenizer, prompt: str, response: str, eos: bool = True) -> dict[str, list[int]]:
    """Token ids and labels for one example; prompt tokens get ``IGNORE_INDEX``.

    The prompt and the response are tokenized separately and concatenated, so the boundary between them
    is exact (tokenizing the joined string could merge the last prompt token with the first response one).
    The prompt is tokenized as generation tokenizes it (special tokens added). ``eos=False`` appends no
    EOS: a chat response already ends with its template's end-of-turn text, parsed as a special token.
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if eos:
        response_ids = response_ids + [tokenizer.eos_token_id]
    return {
        "input_ids": prompt_ids + response_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids,
    }


@dataclass
class CompletionCollator:
    """Right-pads a batch of tokenized examples; padded label positions are ``IGNORE_INDEX``.

    Padding is told apart from real tokens by length, never by comparing ids with the pad id: many models
    (SmolLM2 among them) use EOS as pad, and the EOS that ends each response must keep its label.
    """

    pad_token_id: int

    def __call__(self, features: list[dict]):
        import torch  # here, not at import time: building datasets and tasks must not pay for torch

        longest = max(len(feature["input_ids"]) for feature in features)
        input_ids, labels, attention = [], [], []
        for feature in features:
            padding = longest - len(feature["input_ids"])
            input_ids.append(feature["input_ids"] + [self.pad_token_id] * padding)
            labels.append(feature["labels"] + [IGNORE_INDEX] * padding)
            attention.append([1] * len(feature["input_ids"]) + [0] * padding)
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(attention),
        }
