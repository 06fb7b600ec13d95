"""How the code-generation dataset is built (``peftlab data mine-codegen``): mine, measure token lengths, and write the splits and a dataset card."""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

from peftlab.data.contamination import ContaminationIndex, drop_contaminated
from peftlab.data.documented_functions import MiningOptions, mine
from peftlab.data.records import write_json, write_jsonl
from peftlab.data.sources import resolve_source
from peftlab.tasks.benchmarks import benchmark_references
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


def contamination_filter(records: list[dict]) -> tuple[list[dict], dict]:
    """Drop mined records that copy (or nearly copy) a HumanEval or MBPP solution: a model trained on them
    would be scored on what it memorised (peftlab.data.contamination has the rule)."""
    index = ContaminationIndex(benchmark_references())
    return drop_contaminated(records, index)


def build_codegen_dataset(out: Path, source: Path | None | list = None, seed: int = 0, tokenizer=None,
                          tokenizer_name: str | None = None, *, exclude_tests: bool = True,
                          check_contamination: bool = True, provenance: list[dict] | None = None) -> dict:
    """Mine ``source`` (None: the listed stdlib modules; or a list of directories and None, merged) into
    ``out/{train,validation,test}.jsonl`` plus ``out/card.json``; return the card.

    Test files of a source tree are left out unless ``exclude_tests`` is false. With
    ``check_contamination``, records that duplicate a benchmark solution are dropped before the split,
    and the card's ``filtered`` entry says how many and which. With a ``tokenizer`` (named
    ``tokenizer_name`` in the card), the card holds per-split token-length statistics of prompts and
    references, to help choose ``model.max_length``. ``provenance`` (what each source spec resolved to:
    archive hash, licence) goes into the card as ``provenance``.

    Raises:
        UserError: see :func:`peftlab.data.documented_functions.mine`.
    """
    splits, card = mine(source, replace(MiningOptions(), seed=seed), exclude_tests=exclude_tests,
                        filter_records=contamination_filter if check_contamination else None)
    if tokenizer is not None:
        card["tokenizer"] = tokenizer_name
        card["token_lengths"] = {
            name: {
                "prompt": token_length_stats([len(tokenizer(format_prompt(r["instruction"]))["input_ids"]) for r in split]),
                "reference": token_length_stats([len(tokenizer(r["reference"])["input_ids"]) for r in split]),
            }
            for name, split in splits.items()
        }
    if provenance:
        card["provenance"] = provenance
    for name, split in splits.items():
        write_jsonl(out / f"{name}.jsonl", split)
    write_json(out / "card.json", card)
    return card


def build_from_specs(out: Path, specs: list[str], seed: int = 0, **options) -> dict:
    """:func:`build_codegen_dataset` over source specs (``stdlib``, ``NAME==VERSION`` of a pinned source
    distribution, or a directory; see :mod:`peftlab.data.sources`), merged into one dataset. A callable
    ``tokenizer`` option is called (to load it) after the sources resolved.

    Raises:
        UserError: a spec cannot be resolved (unpinned, not found, download failed), or as
            :func:`build_codegen_dataset`.
    """
    resolved = [resolve_source(spec) for spec in specs or ["stdlib"]]
    roots = [source.mine_source for source in resolved]
    if callable(options.get("tokenizer")):  # loaded only once the sources are known good: a typo fails fast
        options["tokenizer"] = options["tokenizer"]()
    return build_codegen_dataset(out, roots if len(roots) > 1 else roots[0], seed,
                                 provenance=[source.card() for source in resolved], **options)
