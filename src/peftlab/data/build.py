"""``peftlab data mine-codegen``: mine, measure token lengths, and write the splits and a dataset card."""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

from peftlab.data.mine import MiningOptions, mine
from peftlab.data.records import write_json, write_jsonl
from peftlab.data.template import format_prompt


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


def build_codegen_dataset(out: Path, source: Path | None, seed: int = 0, tokenizer_name: str | None = None) -> dict:
    """Mine ``source`` into ``out/{train,validation,test}.jsonl`` plus ``out/card.json``; return the card.

    Raises:
        UserError: see :func:`peftlab.data.mine.mine`, or the tokenizer cannot be loaded.
    """
    splits, card = mine(source, replace(MiningOptions(), seed=seed))
    if tokenizer_name:
        from peftlab.models import load_tokenizer

        tokenizer = load_tokenizer(tokenizer_name)
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
