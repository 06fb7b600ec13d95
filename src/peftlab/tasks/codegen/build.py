"""How the code-generation dataset is built (``peftlab data mine-codegen``): mine, measure token lengths, and write the splits and a dataset card."""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

from peftlab.data.mine import MiningOptions, mine
from peftlab.data.records import write_json, write_jsonl
from peftlab.tasks.codegen.prompt import format_prompt


def token_length_stats(lengths: list[int]) -> dict[str, float]:
    if not lengths:
        return {}
    ordered = sorted(lengths)
    return {
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p90": ordered[int(0.9 * (len(ordered) - 1))],
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def build_codegen_dataset(out: Path, source: Path | None, seed: int = 0, tokenizer=None, tokenizer_name: str | None = None) -> dict:
    """Mine ``source`` into ``out/{train,validation,test}.jsonl`` plus ``out/card.json``; return the card.

    With a ``tokenizer`` (named ``tokenizer_name`` in the card), the card holds per-split token-length
    statistics of prompts and references, to help choose ``model.max_length``.

    Raises:
        UserError: see :func:`peftlab.data.mine.mine`.
    """
    splits, card = mine(source, replace(MiningOptions(), seed=seed))
    if tokenizer is not None:
        card["tokenizer"] = tokenizer_name
        card["token_lengths"] = {
            name: {
                "prompt": token_length_stats([len(tokenizer(format_prompt(r["instruction"]))["input_ids"]) for r in split]),
                "reference": token_length_stats([len(tokenizer(r["reference"])["input_ids"]) for r in split]),
            }
            for name, split in splits.items()
        }
    for name, split in splits.items():
        write_jsonl(out / f"{name}.jsonl", split)
    write_json(out / "card.json", card)
    return card
