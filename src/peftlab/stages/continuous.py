"""Continuous batching for greedy decoding and sampling: finished sequences leave the batch and waiting
prompts take their place, so the batch stays full.

Why: on a CPU, throughput is set by how many sequences a decoding step carries. A step reads every weight
once whatever the rows: Qwen2.5-Coder-0.5B on 2 cores takes ~100 ms for one row and ~390 ms for 48 (6–7 ms
a row; float32 through oneDNN, :mod:`peftlab.models.onednn`). With ``generate``, a batch runs until its
longest answer ends: MBPP answers of 8–84 tokens in one batch of 16 kept on average fewer than 8 rows busy
per step (bench/results/generate-speed-*).

The loop, one device, one model (a PEFT model with its adapter applied, unmerged, is just a model here):

0. *Shared prefix*: the tokens every prompt of the run begins with (chat template, instruction) are read
   once; each admitted prompt's cache starts as a copy of theirs.
1. *Admit*: when a quarter of the ``slots`` is free, the next waiting prompts (longest first, as the
   batched path orders them) are read in left-padded forward passes of at most ``PREFILL_TOKENS`` padded
   tokens (prompts of like length together, so little padding is computed); their key/value caches are
   repeated once per candidate and joined to the running cache (:mod:`peftlab.stages.kv_rows`).
2. *Step*: every running sequence gets at least one token: argmax (greedy) or a draw from the
   temperature/top-k/top-p distribution, over the few tokens it keeps (:mod:`peftlab.stages.sampling`),
   with that candidate's own random generator, seeded with ``seed + prompt index × k + candidate``, so a
   candidate does not depend on which other prompts shared its batch, and an interrupted run resumes with
   exactly the candidates an uninterrupted one gets. Each row may also feed
   up to ``lookup_tokens`` guessed tokens (:mod:`peftlab.stages.lookup`); the model's choice at each fed
   position is taken in order while it equals the guess, so a step yields one to ``lookup_tokens + 1``
   tokens, each the very token (and, when sampling, the very draw from the same generator) that one-token
   steps give. Rejected guesses' columns are masked. How many positions are fed is priced: the j-th
   guessed position yields a token with probability ~q^j (q: the run's tokens taken per guessed position
   paid for, rows without a guess included) and
   costs one row in a step that costs ``FLOOR_ROWS + n`` rows for ``n`` tokens, so it is fed while
   q^j > n / (FLOOR_ROWS + n): many guesses while few rows run or guesses are good (a repair copying its
   buggy function), none in a full batch of code whose guesses fail.
3. *Retire*: a sequence that emits EOS or padding, completes a stop string, or reaches
   ``max_new_tokens`` leaves (its cache rows dropped); columns that are padding for every remaining row are
   cut from the left. A prompt whose candidates have all finished is handed to the caller at once.

Greedy candidates are those of the batched path up to floating-point summation order: a prompt's logits
are computed in another batch, with other padding and other step widths (the batched path itself differs
between batch sizes in the same way; bench/generate_speed.py counts identical candidates). Beam search uses
the batched path (:mod:`peftlab.stages.generate`).

Prompt and prefix tuning (virtual tokens in front of every input) are decoded here too: their virtual tokens
are the start of the shared prefix. Prompt tuning's trained embeddings are read through the frozen model once
(prefix tuning's trained keys and values are already a cache), the prompts' common tokens are read after them,
and every position counts the virtual tokens, as in training.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from peftlab.config import GenerationConfig
from peftlab.models.adapters import prompt_learning_config
from peftlab.stages.kv_rows import join, layers, left_padded_positions, repeated, trim
from peftlab.stages.lookup import lookup_draft
from peftlab.stages.sampling import Sampler

ADMIT_SHARE = 4
"""Admit waiting prompts once 1/ADMIT_SHARE of the slots is free: one prefill for several prompts."""
PREFILL_TOKENS = 1024
"""Padded prompt tokens per prefill pass: enough rows for the matrix products' full speed (oneDNN reaches it
from ~250 rows here), few enough that prompts of unlike length are not padded to each other."""
FLOOR_ROWS = {"onednn": 14, "onednn-plain": 20, "torch": 36}
"""A decoding step over ``n`` token rows costs about ``FLOOR_ROWS + n`` row-costs: reading the weights
costs as much as this many rows' arithmetic (Qwen2.5-Coder-0.5B on 2 cores, steps of 4–16 rows, by
``generation.cpu_matmul``: ~80 ms a step plus ~5.5 ms a row through oneDNN's blocked weights, ~120 ms plus
~6 ms from the plain ones, ~250 ms plus ~7 ms through torch's MKL). Prompt lookup uses it to price a guessed
position against the tokens it may yield."""
PASS_PADDING = 0.1
"""A prompt joins a prefill pass only if padding it to the pass's longest prompt adds at most this share of
that prompt's length: padded tokens are computed like real ones (48 MBPP prompts: 4,254 padded tokens for
4,044 real, against 4,718 when a pass took every prompt that fit)."""
MIN_SHARED_PREFIX = 4
"""A shared prefix shorter than this is read with each prompt (one more forward pass would cost more)."""
PLAIN_DEFAULTS = {"repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0), "min_length": (None, 0),
                  "min_new_tokens": (None, 0), "bad_words_ids": (None,), "suppress_tokens": (None,),
                  "begin_suppress_tokens": (None,), "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
                  "min_p": (None,), "typical_p": (None, 1.0), "epsilon_cutoff": (None, 0.0), "eta_cutoff": (None, 0.0)}
"""Model generation settings that ``generate`` would turn into logits processors this loop does not apply:
a model that sets any of them is decoded by ``generate``."""


def prefill_pass(lengths: list[int]) -> int:
    """How many of the waiting prompts, whose own token counts are ``lengths`` (longest first), the next
    prefill pass reads: at most ``PREFILL_TOKENS`` padded tokens, each within ``PASS_PADDING`` of the longest."""
    width, count = max(1, lengths[0]), 1
    while (count < len(lengths) and width * (count + 1) <= PREFILL_TOKENS
           and lengths[count] >= width * (1 - PASS_PADDING)):
        count += 1
    return count


def end_tokens(generate_kwargs: dict) -> set[int]:
    """Token ids that end a sequence: EOS and padding (``generate``'s arguments name them)."""
    return {generate_kwargs["eos_token_id"], generate_kwargs["pad_token_id"]} - {None}


def has_finished(tokens: list[int], text: str, ends: set[int], stops: list[str]) -> bool:
    """Whether a sequence whose newest ``tokens`` are these, and whose text so far is ``text``, is done."""
    return any(token in ends for token in tokens) or any(stop in text for stop in stops)


VIRTUAL_TOKEN_TYPES = ("PROMPT_TUNING", "PREFIX_TUNING")
"""PEFT prompt-learning types this loop decodes: trained input embeddings, or a trained key/value prefix."""


def continuous_applies(model, config: GenerationConfig) -> bool:
    """Whether this loop decodes ``model`` with ``config``: ``generation.drop_finished`` on, greedy or
    sampling (no beams), no virtual tokens but prompt or prefix tuning's, and no logits processor from the
    model's generation config (which ``generate`` would apply and this loop does not)."""
    if not config.drop_finished or (not config.do_sample and config.num_beams > 1):
        return False
    virtual = prompt_learning_config(model)
    if virtual is not None and virtual.peft_type not in VIRTUAL_TOKEN_TYPES:
        return False
    settings = getattr(model, "generation_config", None)
    return all(getattr(settings, name, None) in allowed for name, allowed in PLAIN_DEFAULTS.items())


@dataclass
class _Sequence:
    prompt: int
    candidate: int
    prompt_ids: list[int]
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)


class ContinuousDecoder:
    """Decode prompts with continuous batching (see the module docstring)."""

    def __init__(self, model, tokenizer, config: GenerationConfig, stops: list[str], ends: set[int]):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.stops, self.ends = list(stops), set(ends)
        self.copies = config.k if config.do_sample else 1
        self.slots = max(self.copies, config.slots // self.copies * self.copies)
        # temperature, then top-k where the model's generation config sets one (as ``generate`` does), then top-p
        top_k = getattr(getattr(model, "generation_config", None), "top_k", None)
        self.sampler = Sampler(config.temperature, top_k, config.top_p) if config.do_sample else None
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        virtual = prompt_learning_config(model)
        self.virtual_type = getattr(virtual.peft_type, "value", virtual.peft_type) if virtual is not None else None
        self.virtual = virtual.num_virtual_tokens if virtual is not None else 0
        """Positions in front of every prompt that are not its tokens (prompt or prefix tuning)."""
        # PEFT adds the virtual tokens only inside its own forward and generate; the frozen model they wrap
        # reads them here as a cache in front of every row
        self.forward_model = model.get_base_model() if virtual is not None else model
        self.shared, self.prefix = 0, None
        self.counts = {"steps": 0, "guessed": 0, "paid": 0, "tested": 0, "accepted": 0}
        """What prompt lookup did in the last ``run``: decoding steps, guessed tokens fed, positions paid for
        beyond each row's newest token, guesses whose turn came (those before the first miss, and the miss),
        guesses taken."""

    def _choose(self, logits: torch.Tensor, sequences: list[_Sequence]) -> list[int]:
        """One token per row from ``logits`` (rows × vocabulary)."""
        return [tokens[0] for tokens in self._verify(logits[:, None, :], sequences, [[] for _ in sequences])]

    def _verify(self, logits: torch.Tensor, sequences: list[_Sequence], guesses: list[list[int]]) -> list[list[int]]:
        """Per row, the model's choices at the fed positions (rows × positions × vocabulary), in order, up to
        and including the first that differs from the row's guess for that position."""
        positions = logits.shape[1]
        if self.sampler is None:
            choices = logits.argmax(dim=-1).tolist()
        else:  # every row's and position's kept tokens at once; each draw then uses its candidate's generator
            supports = self.sampler.supports(logits.reshape(-1, logits.shape[-1]))
        taken = []
        for row, (sequence, guess) in enumerate(zip(sequences, guesses, strict=True)):
            tokens = []
            for position in range(len(guess) + 1):
                if self.sampler is None:
                    token = choices[row][position]
                else:
                    token = self.sampler.draw(supports[row * positions + position], sequence.generator)
                tokens.append(token)
                if position == len(guess) or token != guess[position]:
                    break
            taken.append(tokens)
        return taken

    def _finished(self, sequence: _Sequence) -> bool:
        if len(sequence.tokens) >= self.config.max_new_tokens:
            return True
        text = self.tokenizer.decode(sequence.tokens, skip_special_tokens=True) if self.stops else ""
        return has_finished(sequence.tokens[-1:], text, self.ends, self.stops)

    def _read_prefix(self, ids: dict[int, list[int]]) -> None:
        """Prefill the token prefix every prompt of this run shares (the chat template's system turn and the
        task's instruction: a quarter of an MBPP prompt) once; admissions then read only what follows it.
        Every prompt keeps at least one token of its own, whose logits choose its first new token. Prompt or
        prefix tuning's virtual tokens come first in this prefix, even when the prompts share no tokens."""
        rows = list(ids.values())
        shared = min(len(row) for row in rows) - 1 if rows else 0
        first = rows[0] if rows else []
        for row in rows[1:]:
            shared = next((at for at in range(shared) if row[at] != first[at]), shared)
        self.shared, self.prefix = 0, None
        shared = shared if shared >= MIN_SHARED_PREFIX else 0
        if shared == 0 and not self.virtual:
            return
        tokens = torch.tensor([first[:shared]], dtype=torch.long, device=self.model.device)
        past, inputs = None, {"input_ids": tokens}
        if self.virtual_type == "PROMPT_TUNING":  # trained embeddings, then the shared tokens' own
            embeddings = self.forward_model.get_input_embeddings()(tokens)
            virtual = self.model.get_prompt(batch_size=1).to(embeddings.dtype)
            inputs = {"inputs_embeds": torch.cat([virtual, embeddings], dim=1)}
        elif self.virtual_type == "PREFIX_TUNING":  # trained keys and values: a cache already
            past = self.model.get_prompt(batch_size=1)
            if shared == 0:
                self.prefix = layers(past)
                return
            inputs |= {"attention_mask": torch.ones((1, self.virtual + shared), dtype=torch.long, device=tokens.device),
                       "position_ids": self.virtual + torch.arange(shared, device=tokens.device)[None]}
        output = self.forward_model(**inputs, past_key_values=past, use_cache=True, logits_to_keep=1)
        self.shared, self.prefix = shared, layers(output.past_key_values)

    def _prefill(self, ids: dict[int, list[int]], indices: list[int]):
        """Read the admitted prompts' own tokens after the shared prefix's cache: each row's cache is
        ``[prefix | padding | own tokens]`` (padding is masked, so it weighs nothing, and positions count the
        prompt's real tokens only)."""
        own = [ids[index][self.shared:] for index in indices]
        width = max(len(tokens) for tokens in own)
        device = self.model.device
        input_ids = torch.tensor([[self.pad] * (width - len(tokens)) + tokens for tokens in own], device=device)
        mask = torch.tensor([[0] * (width - len(tokens)) + [1] * len(tokens) for tokens in own], device=device)
        positions = left_padded_positions(mask) + self.virtual + self.shared
        past = None
        if self.prefix is not None:
            past = repeated(self.prefix, len(indices))
            mask = torch.cat([mask.new_ones((len(indices), self.virtual + self.shared)), mask], dim=1)
        output = self.forward_model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                    past_key_values=past, use_cache=True, logits_to_keep=1)
        cache, logits = output.past_key_values, output.logits[:, -1, :]
        if self.copies > 1:
            cache.batch_repeat_interleave(self.copies)
            logits, mask = logits.repeat_interleave(self.copies, 0), mask.repeat_interleave(self.copies, 0)
        sequences = []
        for index in indices:
            for candidate in range(self.copies):
                generator = None
                if self.sampler is not None:
                    seed = self.config.seed + index * self.copies + candidate
                    generator = torch.Generator(device="cpu").manual_seed(seed)
                sequences.append(_Sequence(index, candidate, ids[index], generator))
        return cache, mask, logits, sequences

    def _admit(self, ids: dict[int, list[int]], admitted: list[int], cache, mask, running: list[_Sequence]):
        """Prefill ``admitted`` in passes of at most ``PREFILL_TOKENS`` padded tokens, prompts of like length
        together, join their caches to the running one and append their sequences to ``running``; returns
        the cache, the mask and the newcomers' first tokens."""
        admitted = sorted(admitted, key=lambda index: -len(ids[index]))
        first = []
        while admitted:
            count = prefill_pass([len(ids[index]) - self.shared for index in admitted])
            new_cache, new_mask, logits, newcomers = self._prefill(ids, admitted[:count])
            cache, mask = join(cache, mask, new_cache, new_mask)
            first += [[token] for token in self._choose(logits, newcomers)]
            running += newcomers
            admitted = admitted[count:]
        return cache, mask, first

    def _step(self, cache, mask, running: list[_Sequence]):
        """One forward pass over every running sequence: its newest token and the prompt-lookup guesses worth
        feeding. Returns the cache, the mask with rejected guesses' columns masked, and each row's new tokens."""
        width = self._guess_length(len(running))
        guesses = [lookup_draft(s.prompt_ids + s.tokens, width) if width > 0 else [] for s in running]
        width = 1 + max(len(guess) for guess in guesses)
        device = self.model.device
        # a row with a shorter guess repeats its newest token in the spare positions; none of them is taken
        fed = torch.tensor([[s.tokens[-1]] + g + [s.tokens[-1]] * (width - 1 - len(g))
                            for s, g in zip(running, guesses, strict=True)], device=device)
        start = torch.tensor([[self.virtual + len(s.prompt_ids) + len(s.tokens) - 1] for s in running],
                             device=device)
        mask = torch.cat([mask, mask.new_ones((len(running), width))], dim=1)
        positions = start + torch.arange(width, device=device)
        output = self.forward_model(input_ids=fed, attention_mask=mask, position_ids=positions, past_key_values=cache,
                                    use_cache=True)
        taken = self._verify(output.logits, running, guesses)
        for row, tokens in enumerate(taken):
            # the columns of the newest token and of the guesses taken stay; the rest are masked for good
            mask[row, mask.shape[1] - width + len(tokens):] = 0
        self.counts["steps"] += 1
        self.counts["guessed"] += sum(len(guess) for guess in guesses)
        self.counts["paid"] += len(running) * (width - 1)
        self.counts["accepted"] += sum(len(tokens) - 1 for tokens in taken)
        self.counts["tested"] += sum(min(len(tokens), len(guess)) for tokens, guess in zip(taken, guesses))
        return output.past_key_values, mask, taken

    def _guess_length(self, rows: int) -> int:
        """Guessed positions worth feeding each of ``rows`` sequences this step (module docstring, step 2)."""
        # tokens taken per guessed position paid for, counting the positions of rows that had no guess or a
        # shorter one (every row pays the step's width): an unconditional rate, so q^j prices deep positions low
        taken_rate = (self.counts["accepted"] + 1) / (self.counts["paid"] + 2)  # 1/2 before any evidence
        worth = rows / (FLOOR_ROWS[self.config.cpu_matmul] + rows)
        length = 0
        while length < self.config.lookup_tokens and taken_rate ** (length + 1) > worth:
            length += 1
        return length

    @torch.inference_mode()
    def run(self, prompts: dict[int, str], order: Iterable[int], on_done: Callable[[int, list[str]], None]) -> None:
        """Decode ``prompts[i]`` for ``i`` in ``order``; call ``on_done(i, texts)`` (``k`` decoded texts,
        candidate order) as soon as prompt ``i`` has finished."""
        waiting = deque(order)
        ids = {index: self.tokenizer(prompts[index])["input_ids"] for index in waiting}
        self._read_prefix(ids)
        self.counts = dict.fromkeys(self.counts, 0)
        running: list[_Sequence] = []
        done: dict[int, dict[int, str]] = {}
        cache = mask = None
        while waiting or running:
            free = self.slots - len(running)
            if waiting and (not running or free >= max(self.copies, self.slots // ADMIT_SHARE)):
                admitted = [waiting.popleft() for _ in range(min(len(waiting), max(1, free // self.copies)))]
                already = len(running)
                cache, mask, first = self._admit(ids, admitted, cache, mask, running)
                taken = [[]] * already + first
            else:
                cache, mask, taken = self._step(cache, mask, running)
            keep = []
            for row, (sequence, tokens) in enumerate(zip(running, taken, strict=True)):
                finished = False
                for token in tokens:  # one at a time: a sequence ends at its first finishing token
                    sequence.tokens.append(token)
                    if finished := self._finished(sequence):
                        break
                if not finished:
                    keep.append(row)
                    continue
                texts = done.setdefault(sequence.prompt, {})
                texts[sequence.candidate] = self.tokenizer.decode(sequence.tokens, skip_special_tokens=True)
                if len(texts) == self.copies:
                    on_done(sequence.prompt, [texts[c] for c in range(self.copies)])
                    del done[sequence.prompt]
            if len(keep) < len(running):
                running[:] = [running[row] for row in keep]
                if running:
                    cache.batch_select_indices(torch.tensor(keep, device=mask.device))
                    cache, mask = trim(cache, mask[keep])
                else:
                    cache = mask = None
