"""Batched generation of k candidates per prompt: greedy, beam search or sampling."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from peftlab.config import GenerationConfig
from peftlab.errors import UserError


def generation_kwargs(config: GenerationConfig, tokenizer) -> dict:
    """Arguments for ``model.generate`` that return ``config.k`` candidates per prompt.

    Raises:
        UserError: ``k`` > 1 with neither sampling nor at least ``k`` beams.
    """
    kwargs = {
        "max_new_tokens": config.max_new_tokens,
        "num_return_sequences": config.k,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if config.stop:
        kwargs.update(stop_strings=list(config.stop), tokenizer=tokenizer)
    if config.do_sample:
        kwargs.update(do_sample=True, temperature=config.temperature, top_p=config.top_p, num_beams=1)
    else:
        if config.k > config.num_beams:
            raise UserError(
                f"generation.k={config.k} needs generation.num_beams >= {config.k} or generation.do_sample=true"
            )
        kwargs.update(do_sample=False, num_beams=config.num_beams, early_stopping=config.num_beams > 1)
    return kwargs


@torch.inference_mode()
def generate_candidates(
    model,
    tokenizer,
    prompts: list[str],
    config: GenerationConfig,
    postprocess: Callable[[str], str] = lambda text: text,
    progress: bool = True,
) -> list[list[str]]:
    """``config.k`` post-processed candidates per prompt, best first (beam score order for beams).

    Prompts are left-padded in batches of ``config.batch_size``; only the newly generated tokens are
    decoded, so the prompt never leaks into a candidate.
    """
    kwargs = generation_kwargs(config, tokenizer)
    tokenizer.padding_side = "left"
    torch.manual_seed(config.seed)
    model.eval()
    results: list[list[str]] = []
    batches = range(0, len(prompts), config.batch_size)
    for start in tqdm(batches, desc="generate", unit="batch", disable=not progress):
        batch = prompts[start : start + config.batch_size]
        encoded = tokenizer(batch, return_tensors="pt", padding=True).to(model.device)
        output = model.generate(**encoded, **kwargs)
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for index in range(len(batch)):
            group = texts[index * config.k : (index + 1) * config.k]
            results.append([postprocess(text) for text in group])
    return results
