"""Prompt-lookup drafts: guess a sequence's next tokens from its own earlier tokens.

Answers copy their prompts (a repaired function repeats the buggy one; a test names the function under
test; code repeats its identifiers), so the tokens that followed the last occurrence of a sequence's newest
n-gram are a cheap guess of what comes next (Saxena's prompt lookup decoding; transformers'
``prompt_lookup_num_tokens``). The model then checks the whole guess in one forward pass: on a CPU a pass
over a few rows costs about the same for one token per row as for eight, since reading the weights, not
arithmetic, sets its time. Guesses only decide how many tokens one pass yields, never which tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_NGRAM = 3
"""Longest n-gram matched; shorter ones are tried when it has no earlier occurrence."""


def lookup_draft(tokens: Sequence[int], length: int, max_ngram: int = MAX_NGRAM) -> list[int]:
    """Up to ``length`` tokens that followed the most recent earlier occurrence of ``tokens``' last n-gram
    (the longest n from ``max_ngram`` down to 1 that has one); ``[]`` when none has."""
    if length <= 0:
        return []
    for size in range(min(max_ngram, len(tokens) - 1), 0, -1):
        tail = list(tokens[-size:])
        for start in range(len(tokens) - size - 1, -1, -1):
            if tokens[start] == tail[0] and list(tokens[start:start + size]) == tail:
                return list(tokens[start + size:start + size + length])
    return []
