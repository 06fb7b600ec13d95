"""Continuous batching for greedy decoding and sampling: finished sequences leave the batch and waiting
prompts take their place, so the batch stays full.

Why: on a CPU a decoding step costs about the same for 8 sequences as for 16 (Qwen2.5-Coder-0.5B on 2
cores: 205 vs 239 ms; 15 ms per sequence at 16, 10.5 at 32), so throughput is set by how many sequences
are still running. With ``generate``, a batch runs until its longest answer ends: MBPP answers of 8–84
tokens in one batch of 16 kept on average fewer than 8 rows busy per step (bench/results/generate-speed-*).

The loop, one device, one model (a PEFT model with its adapter applied, unmerged, is just a model here):

1. *Admit*: when a quarter of the slots (``batch_size`` × copies per prompt) is free, the next waiting
   prompts (longest first, as the batched path orders them) are read in one left-padded forward pass;
   their key/value caches are repeated once per candidate and joined to the running cache, left-padded to
   a common length (masked positions get exactly zero attention weight).
2. *Step*: every running sequence gets one token: argmax (greedy) or a draw from the temperature/top-p
   distribution with that candidate's own random generator, seeded with ``seed + prompt index × k +
   candidate``, so a candidate does not depend on which other prompts shared its batch, and an interrupted
   run resumes with exactly the candidates an uninterrupted one gets.
3. *Retire*: a sequence that emits EOS or padding, completes a stop string, or reaches
   ``max_new_tokens`` leaves (its cache rows dropped); columns that are padding for every remaining row are
   cut from the left. A prompt whose candidates have all finished is handed to the caller at once.

Greedy candidates are those of the batched path up to floating-point summation order: a prompt's logits
are computed in another batch, with other padding (the batched path itself differs between batch sizes in
the same way; bench/generate_speed.py counts identical candidates). Beam search and methods that prepend
virtual tokens (prompt and prefix tuning) use the batched path (:mod:`peftlab.stages.generate`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from peftlab.config import GenerationConfig

ADMIT_SHARE = 4
"""Admit waiting prompts once 1/ADMIT_SHARE of the slots is free: one prefill for several prompts."""
PLAIN_DEFAULTS = {"repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0), "min_length": (None, 0),
                  "min_new_tokens": (None, 0), "bad_words_ids": (None,), "suppress_tokens": (None,),
                  "begin_suppress_tokens": (None,), "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
                  "min_p": (None,), "typical_p": (None, 1.0), "epsilon_cutoff": (None, 0.0), "eta_cutoff": (None, 0.0)}
"""Model generation settings that ``generate`` would turn into logits processors this loop does not apply:
a model that sets any of them is decoded by ``generate``."""


def end_tokens(generate_kwargs: dict) -> set[int]:
    """Token ids that end a sequence: EOS and padding (``generate``'s arguments name them)."""
    return {generate_kwargs["eos_token_id"], generate_kwargs["pad_token_id"]} - {None}


def has_finished(tokens: list[int], text: str, ends: set[int], stops: list[str]) -> bool:
    """Whether a sequence whose newest ``tokens`` are these, and whose text so far is ``text``, is done."""
    return any(token in ends for token in tokens) or any(stop in text for stop in stops)


def left_padded_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows, derived from the attention mask as ``generate`` derives them
    (padding gets 1; it is masked, so its value never matters)."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)


def continuous_applies(model, config: GenerationConfig) -> bool:
    """Whether this loop decodes ``model`` with ``config``: ``generation.drop_finished`` on, greedy or
    sampling (no beams), no virtual tokens, and no logits processor from the model's generation config
    (which ``generate`` would apply and this loop does not)."""
    if not config.drop_finished or (not config.do_sample and config.num_beams > 1):
        return False
    if getattr(getattr(model, "active_peft_config", None), "is_prompt_learning", False):
        return False
    settings = getattr(model, "generation_config", None)
    return all(getattr(settings, name, None) in allowed for name, allowed in PLAIN_DEFAULTS.items())


@dataclass
class _Sequence:
    prompt: int
    candidate: int
    prompt_length: int
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)


def _warpers(model, config: GenerationConfig) -> LogitsProcessorList:
    """Temperature, then top-k (when the model's generation config sets one, as ``generate`` applies it),
    then top-p: the order ``generate`` uses."""
    warpers = LogitsProcessorList([TemperatureLogitsWarper(config.temperature)])
    top_k = getattr(getattr(model, "generation_config", None), "top_k", None)
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(config.top_p))
    return warpers


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _join(first: DynamicCache | None, first_mask, second: DynamicCache, second_mask):
    """One cache (and mask) holding ``first``'s rows then ``second``'s, left-padded to a common length."""
    if first is None:
        return second, second_mask
    length = max(first_mask.shape[1], second_mask.shape[1])
    joined = [(torch.cat([_left_pad(k1, length, 2), _left_pad(k2, length, 2)]),
               torch.cat([_left_pad(v1, length, 2), _left_pad(v2, length, 2)]))
              for (k1, v1), (k2, v2) in zip(_layers(first), _layers(second), strict=True)]
    mask = torch.cat([_left_pad(first_mask, length, 1), _left_pad(second_mask, length, 1)])
    return DynamicCache(ddp_cache_data=joined), mask


def _trim(cache: DynamicCache, mask: torch.Tensor):
    """Drop the leading columns that are padding for every row (they cost attention, weigh nothing)."""
    start = int((mask.sum(0) > 0).nonzero()[0]) if mask.numel() else 0
    if start == 0:
        return cache, mask
    return DynamicCache(ddp_cache_data=[(k[:, :, start:], v[:, :, start:]) for k, v in _layers(cache)]), mask[:, start:]


class ContinuousDecoder:
    """Decode prompts with continuous batching (see the module docstring)."""

    def __init__(self, model, tokenizer, config: GenerationConfig, stops: list[str], ends: set[int]):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.stops, self.ends = list(stops), set(ends)
        self.copies = config.k if config.do_sample else 1
        self.slots = max(self.copies, config.batch_size * self.copies)
        self.warpers = _warpers(model, config) if config.do_sample else None

    def _choose(self, logits: torch.Tensor, sequences: list[_Sequence]) -> list[int]:
        if self.warpers is None:
            return logits.argmax(dim=-1).tolist()
        # temperature, top-k and top-p read only the scores: one call for the whole batch (top-p sorts the
        # vocabulary); each row then draws with its own candidate's generator
        context = torch.zeros((len(sequences), 1), dtype=torch.long, device=logits.device)
        probabilities = torch.softmax(self.warpers(context, logits.float()), dim=-1)
        return [int(torch.multinomial(probabilities[row], 1, generator=sequence.generator))
                for row, sequence in enumerate(sequences)]

    def _finished(self, sequence: _Sequence) -> bool:
        if len(sequence.tokens) >= self.config.max_new_tokens:
            return True
        text = self.tokenizer.decode(sequence.tokens, skip_special_tokens=True) if self.stops else ""
        return has_finished(sequence.tokens[-1:], text, self.ends, self.stops)

    def _prefill(self, prompts: dict[int, str], indices: list[int]):
        encoded = self.tokenizer([prompts[i] for i in indices], return_tensors="pt", padding=True).to(self.model.device)
        mask = encoded["attention_mask"]
        positions = left_padded_positions(mask)
        output = self.model(input_ids=encoded["input_ids"], attention_mask=mask, position_ids=positions,
                            use_cache=True, logits_to_keep=1)
        cache, logits = output.past_key_values, output.logits[:, -1, :]
        lengths = mask.sum(1).tolist()
        if self.copies > 1:
            cache.batch_repeat_interleave(self.copies)
            logits, mask = logits.repeat_interleave(self.copies, 0), mask.repeat_interleave(self.copies, 0)
        sequences = []
        for offset, index in enumerate(indices):
            for candidate in range(self.copies):
                generator = None
                if self.warpers is not None:
                    generator = torch.Generator(device="cpu").manual_seed(self.config.seed + index * self.copies + candidate)
                sequences.append(_Sequence(index, candidate, int(lengths[offset]), generator))
        return cache, mask, logits, sequences

    @torch.inference_mode()
    def run(self, prompts: dict[int, str], order: Iterable[int], on_done: Callable[[int, list[str]], None]) -> None:
        """Decode ``prompts[i]`` for ``i`` in ``order``; call ``on_done(i, texts)`` (``k`` decoded texts,
        candidate order) as soon as prompt ``i`` has finished."""
        waiting = deque(order)
        running: list[_Sequence] = []
        done: dict[int, dict[int, str]] = {}
        cache = mask = None
        while waiting or running:
            free = self.slots - len(running)
            if waiting and (not running or free >= max(self.copies, self.slots // ADMIT_SHARE)):
                admitted = [waiting.popleft() for _ in range(min(len(waiting), max(1, free // self.copies)))]
                new_cache, new_mask, logits, newcomers = self._prefill(prompts, admitted)
                cache, mask = _join(cache, mask, new_cache, new_mask)
                chosen = [None] * len(running) + self._choose(logits, newcomers)
                running += newcomers
            else:
                last = torch.tensor([[sequence.tokens[-1]] for sequence in running], device=self.model.device)
                positions = torch.tensor([[s.prompt_length + len(s.tokens) - 1] for s in running], device=self.model.device)
                mask = torch.cat([mask, mask.new_ones((len(running), 1))], dim=1)
                output = self.model(input_ids=last, attention_mask=mask, position_ids=positions, past_key_values=cache,
                                    use_cache=True)
                cache = output.past_key_values
                chosen = self._choose(output.logits[:, -1, :], running)
            keep = []
            for row, (sequence, token) in enumerate(zip(running, chosen, strict=True)):
                if token is not None:
                    sequence.tokens.append(token)
                if token is None or not self._finished(sequence):
                    keep.append(row)
                    continue
                texts = done.setdefault(sequence.prompt, {})
                texts[sequence.candidate] = self.tokenizer.decode(sequence.tokens, skip_special_tokens=True)
                if len(texts) == self.copies:
                    on_done(sequence.prompt, [texts[c] for c in range(self.copies)])
                    del done[sequence.prompt]
            if len(keep) < len(running):
                running = [running[row] for row in keep]
                if running:
                    cache.batch_select_indices(torch.tensor(keep, device=mask.device))
                    cache, mask = _trim(cache, mask[keep])
                else:
                    cache = mask = None
