"""Batched generation of k candidates per prompt: greedy, beam search or sampling.

Generation can be resumed. Given a :class:`ResumeFile`, every finished batch is appended to it (raw decoded
texts, flushed to disk), and a re-run generates only the batches not in it. The file's first line is a
fingerprint of everything the texts depend on (generation settings, ids and prompt texts, the caller's
context such as model and adapter, library versions, device): rows written under another fingerprint are
never reused. Sampling is seeded per batch (``seed + index of the batch's first prompt``), so a run that was
interrupted and resumed gives exactly the candidates of one that was not.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from peftlab.config import Config, GenerationConfig
from peftlab.errors import UserError
from peftlab.runs.directory import RunDir, training_run
from peftlab.models.adapters import prompt_learning_config
from peftlab.models.onednn import generation_matmul
from peftlab.stages.continuous import ContinuousDecoder, continuous_applies, end_tokens, has_finished
from peftlab.stages.kv_rows import left_padded_positions

# Not ``predictions.jsonl.partial``: that is the temporary name ``write_jsonl`` renames into place.
RESUME_FILE = "predictions.unfinished.jsonl"
# 2: greedy and sampled candidates from continuous batching (stages/continuous.py); 3: with a shared prefix,
# chunked prefill and prompt lookup (same tokens up to floating-point summation order)
_FORMAT = 3


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


@dataclass(frozen=True)
class ResumeFile:
    """Where finished batches are appended, plus what else (beyond the generation settings and prompts) the
    candidates depend on: ``context`` is any JSON-able value, e.g. which model and which trained adapter."""

    path: Path
    context: Any = None

    @classmethod
    def in_run(cls, config: Config, run_dir: str | Path) -> ResumeFile:
        """The resume file of a run directory. Its context names the model, the method and the training run
        that wrote the adapter (its start and end times), so a re-trained adapter never reuses old rows."""
        owner = training_run(config, Path(run_dir))
        trained = owner.stage_record("train") if owner else None
        context = {
            "model": config.model.name,
            "method": config.method.model_dump(mode="json"),
            "trained": trained.get("run") if trained else None,
            "adapter": config.model.adapter,
        }
        return cls(Path(run_dir) / RESUME_FILE, context)

    def discard(self) -> None:
        """Remove the file: call it once the final predictions are safely written."""
        self.path.unlink(missing_ok=True)


def _fingerprint(config: GenerationConfig, ids: list[str], prompts: Sequence[str], context: Any, model,
                 engine: str = "batched") -> str:
    # batch_size and seed are in the settings: both decide which random numbers (and which padding) a prompt
    # gets; versions and device because the same seed draws differently across them.
    digest = hashlib.sha256()
    header = {
        "format": _FORMAT, "engine": engine, "generation": config.model_dump(mode="json"), "context": context,
        "torch": torch.__version__, "transformers": version("transformers"),
        "device": str(getattr(model, "device", "")), "dtype": str(getattr(model, "dtype", "")),
    }
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for problem_id, prompt in zip(ids, prompts, strict=True):
        digest.update(json.dumps([problem_id, prompt]).encode() + b"\n")
    return digest.hexdigest()


def _read_resume(path: Path, fingerprint: str, ids: list[str], k: int) -> dict[int, list[str]]:
    """Texts by prompt index from an earlier attempt; ``{}`` when there is none or it does not match."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("fingerprint") != fingerprint:
        print(f"{path} was written with other generation settings, prompts or model; generating from the start",
              file=sys.stderr)
        return {}
    done: dict[int, list[str]] = {}
    for line in lines[1:]:
        try:
            row = json.loads(line)
        except ValueError:
            break  # a torn last line: the process was killed while writing that batch
        if not isinstance(row, dict):
            continue
        index, texts = row.get("index"), row.get("texts")
        if (isinstance(index, int) and 0 <= index < len(ids) and row.get("id") == ids[index]
                and isinstance(texts, list) and len(texts) == k and all(isinstance(t, str) for t in texts)):
            done[index] = texts
    return done


def _rewrite(path: Path, fingerprint: str, ids: list[str], done: dict[int, list[str]]) -> None:
    """Start the file afresh (atomically) with its header and the rows kept, dropping anything torn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"fingerprint": fingerprint, "format": _FORMAT}) + "\n")
        for index in sorted(done):
            handle.write(_row(index, ids[index], done[index]))
    os.replace(temporary, path)


def _row(index: int, problem_id: str, texts: list[str]) -> str:
    return json.dumps({"index": index, "id": problem_id, "texts": texts}, ensure_ascii=False) + "\n"


def _batches(prompts: list[str], tokenizer, config: GenerationConfig) -> list[list[int]]:
    """Prompt indices, ``config.batch_size`` at a time: in file order, or longest first with
    ``sort_by_length`` (prompts of one batch then have similar lengths, so little padding is computed)."""
    order = list(range(len(prompts)))
    if config.sort_by_length:
        lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=True)["input_ids"]]
        order.sort(key=lambda index: -lengths[index])  # stable: equal lengths keep file order
    return [order[start:start + config.batch_size] for start in range(0, len(order), config.batch_size)]


def _expansion(config: GenerationConfig) -> int:
    """How many copies of each prompt ``generate`` runs: one per beam, or one per sampled candidate."""
    return config.k if config.do_sample else config.num_beams


def _prepends_virtual_tokens(model) -> bool:
    """PEFT prompt and prefix tuning feed their own virtual tokens or cache: no cache can be handed in."""
    return prompt_learning_config(model) is not None


def _prefill(model, encoded, copies: int):
    """The key/value cache of every prompt but its last token, computed once and repeated ``copies`` times.

    Why: ``generate`` repeats each prompt once per beam (or sampled candidate) *before* its first forward
    pass, so with k = 4 beams every prompt is read four times. ``generate`` computes only what the cache
    lacks (here the last prompt token) and repeats inputs but never a cache, so it is repeated here, in the
    order ``generate`` repeats inputs (``repeat_interleave``). Positions are derived from the attention
    mask exactly as ``generate`` derives them for left-padded prompts.
    """
    ids, mask = encoded["input_ids"][:, :-1], encoded["attention_mask"][:, :-1]
    cache = model(input_ids=ids, attention_mask=mask, position_ids=left_padded_positions(mask),
                  use_cache=True).past_key_values
    cache.batch_repeat_interleave(copies)
    return cache


def _generate_dropping_finished(model, tokenizer, encoded, kwargs: dict, config: GenerationConfig) -> list[str]:
    """Greedy decoding of one batch, ``drop_finished_every`` new tokens at a time; the texts generated.

    Why: ``generate`` runs a batch until its longest answer ends (or ``max_new_tokens``), computing every
    step for every row; on a CPU one runaway answer makes a batch of 16 cost 16 runaways. Between chunks,
    rows that emitted EOS (or padding) or a stop string are taken out, cache included
    (``batch_select_indices``), and the rest continue from their cache (``generate`` feeds only the tokens
    the cache lacks, as with :func:`_prefill`). Each row's computation is the one it gets in the full batch.
    """
    from transformers import StoppingCriteriaList, StopStringCriteria

    kwargs = dict(kwargs)
    stops = kwargs.pop("stop_strings", None) or []
    kwargs.pop("tokenizer", None)
    if stops:  # built once: building it indexes the whole vocabulary
        kwargs["stopping_criteria"] = StoppingCriteriaList([StopStringCriteria(tokenizer, stops)])
    ends = end_tokens(kwargs)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    rows = list(range(ids.shape[0]))  # batch position of each row still generating
    generated: list[list[int]] = [[] for _ in rows]
    cache, left = None, config.max_new_tokens
    while rows and left > 0:
        step = min(config.drop_finished_every, left)
        output = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache,
                                return_dict_in_generate=True, **{**kwargs, "max_new_tokens": step})
        new = output.sequences[:, ids.shape[1]:]
        left -= new.shape[1]
        keep = []
        for offset, row in enumerate(rows):
            tokens = new[offset].tolist()
            generated[row] += tokens
            text = tokenizer.decode(generated[row], skip_special_tokens=True) if stops else ""
            if not has_finished(tokens, text, ends, stops) and new.shape[1] == step:
                keep.append(offset)
        if not keep or left <= 0:
            break
        rows = [rows[offset] for offset in keep]
        index = torch.tensor(keep, device=ids.device)
        cache = output.past_key_values
        cache.batch_select_indices(index)
        ids = output.sequences[index]
        mask = torch.cat([mask, torch.ones_like(new)], dim=1)[index]
    return tokenizer.batch_decode([torch.tensor(tokens, dtype=torch.long) for tokens in generated],
                                  skip_special_tokens=True)


@torch.inference_mode()
def _resumed_batches(resume: ResumeFile, fingerprint: str, ids: list[str], batches: list[list[int]],
                     k: int) -> dict[int, list[str]]:
    """The candidates of the batches an interrupted run finished (``resume``'s file, same fingerprint), the
    file rewritten to hold just those."""
    earlier = _read_resume(resume.path, fingerprint, ids, k)
    texts = {  # only whole batches count: one cut short mid-write is generated again
        index: earlier[index]
        for batch in batches
        if all(index in earlier for index in batch)
        for index in batch
    }
    if texts:
        print(f"resuming generation: {len(texts)} of {len(ids)} prompts already done in {resume.path}",
              file=sys.stderr)
    _rewrite(resume.path, fingerprint, ids, texts)
    return texts


def _batch_decoder(model, tokenizer, config: GenerationConfig, kwargs: dict) -> Callable[[list[str]], list[str]]:
    """A function from a batch of prompts to their ``k`` decoded continuations each, by the fastest exact
    path the settings allow: one shared prefill per prompt for beams and samples, finished rows dropped
    between chunks for greedy decoding (neither for methods that prepend virtual tokens)."""
    copies = _expansion(config)
    share_prefill = config.share_prefill and copies > 1 and not _prepends_virtual_tokens(model)
    drop_finished = (config.drop_finished and not config.do_sample and config.num_beams == 1
                     and not _prepends_virtual_tokens(model))

    def decode(batch_prompts: list[str]) -> list[str]:
        encoded = tokenizer(batch_prompts, return_tensors="pt", padding=True).to(model.device)
        if drop_finished:
            return _generate_dropping_finished(model, tokenizer, encoded, kwargs, config)
        # A one-token prompt leaves nothing to prefill.
        prefill = share_prefill and bool(encoded["attention_mask"][:, :-1].sum(1).min() > 0)
        extra = {"past_key_values": _prefill(model, encoded, copies)} if prefill else {}
        output = model.generate(**encoded, **extra, **kwargs)
        return tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)

    return decode


def generate_candidates(
    model,
    tokenizer,
    prompts: list[str],
    config: GenerationConfig,
    postprocess: Callable[[str], str] = lambda text: text,
    progress: bool = True,
    *,
    ids: Sequence[str] | None = None,
    resume: ResumeFile | Path | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    continuous: bool = True,
) -> list[list[str]]:
    """``config.k`` post-processed candidates per prompt, best first (beam score order for beams).

    Prompts are left-padded in batches of ``config.batch_size`` (longest first with
    ``config.sort_by_length``); with several copies per prompt (beams, samples) and ``config.share_prefill``
    the prompt is read once and its cache repeated. Only the newly generated tokens are decoded, so the
    prompt never leaks into a candidate. With ``resume``, each finished batch is appended
    to that file and batches already in it (same fingerprint, same ``ids``) are not generated again; the
    caller discards the file once it has written the final predictions. ``ids`` (default: the prompts'
    positions) name the prompts in that file. ``on_batch(prompts_done, total)`` is called after each batch
    is saved.

    Greedy decoding and sampling use continuous batching (:mod:`peftlab.stages.continuous`; each prompt is
    saved as soon as its candidates are done) wherever it applies, unless ``continuous`` is false (the
    batched path, kept for beams, for prompt-learning types other than prompt and prefix tuning, and for
    comparison in bench/generate_speed.py). Float32 linear layers on a CPU multiply through oneDNN unless
    ``config.cpu_matmul`` is ``torch`` (:mod:`peftlab.models.onednn`).
    """
    kwargs = generation_kwargs(config, tokenizer)
    ids = [str(index) for index in range(len(prompts))] if ids is None else [str(item) for item in ids]
    if len(ids) != len(prompts):
        raise ValueError(f"{len(ids)} ids for {len(prompts)} prompts")
    tokenizer.padding_side = "left"
    model.eval()
    streaming = continuous and continuous_applies(model, config)
    batches = _batches(prompts, tokenizer, config)
    if streaming:  # every prompt is saved (and resumed) on its own
        batches = [[index] for batch in batches for index in batch]
    texts: dict[int, list[str]] = {}
    handle = None
    if resume is not None:
        resume = resume if isinstance(resume, ResumeFile) else ResumeFile(Path(resume))
        texts = _resumed_batches(resume, _fingerprint(config, ids, prompts, resume.context, model,
                                                       "continuous" if streaming else "batched"), ids, batches,
                                 config.k)
        handle = resume.path.open("a", encoding="utf-8")
    todo = [number for number, batch in enumerate(batches) if batch[0] not in texts]

    def save(batch: list[int], decoded: list[str]) -> None:
        rows = []
        for offset, index in enumerate(batch):
            texts[index] = decoded[offset * config.k : (offset + 1) * config.k]
            rows.append(_row(index, ids[index], texts[index]))
        if handle is not None:
            handle.write("".join(rows))  # one write per batch; flushed so a kill keeps it
            handle.flush()
            os.fsync(handle.fileno())
        bar.update(1)
        if on_batch is not None:
            on_batch(len(texts), len(prompts))

    try:
        bar = tqdm(total=len(batches), initial=len(batches) - len(todo), desc="generate",
                   unit="prompt" if streaming else "batch", disable=not progress)
        with generation_matmul(config.cpu_matmul):
            if streaming:
                decoder = ContinuousDecoder(model, tokenizer, config, kwargs.get("stop_strings") or [],
                                            end_tokens(kwargs))
                decoder.run({batches[n][0]: prompts[batches[n][0]] for n in todo}, [batches[n][0] for n in todo],
                            lambda index, decoded: save([index], decoded))
                todo = []
            decode = _batch_decoder(model, tokenizer, config, kwargs)
            for number in todo:
                batch = batches[number]
                # Per batch, not per run: a resumed run draws for each batch what an uninterrupted one draws.
                torch.manual_seed(config.seed + number * config.batch_size)
                save(batch, decode([prompts[i] for i in batch]))
        bar.close()
    except KeyboardInterrupt:
        if handle is not None:
            print(f"generation interrupted: {len(texts)} of {len(prompts)} prompts saved in {resume.path}; "
                  "re-run the same command to generate the rest", file=sys.stderr)
        raise
    finally:
        if handle is not None:
            handle.close()
    return [[postprocess(text) for text in texts[index]] for index in range(len(prompts))]
