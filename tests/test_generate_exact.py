"""The generation speed-ups are exact: longest-first batching and the shared prompt prefill give the very
candidates of the plain path (file-order batches, ``generate`` reading each prompt once per beam)."""

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from peftlab.config import GenerationConfig, load_config
from peftlab.stages.generate import generate_candidates
from peftlab.tasks import get_task

SETTINGS = {
    "greedy": {"k": 1},
    "beams": {"k": 2, "num_beams": 3},
    "beams-k-equals-beams": {"k": 4, "num_beams": 4},
}
PLAIN = {"sort_by_length": False, "share_prefill": False}


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tiny_data_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    task = get_task("codegen", load_config(None, [f"data.dir={tiny_data_dir}"]))
    prompts = [task.prompt(problem) for problem in task.load("train")[:7]]
    lengths = {len(tokenizer(p)["input_ids"]) for p in prompts}
    assert len(lengths) > 3  # the batches really are padded differently when sorted
    return model, tokenizer, prompts


@pytest.mark.parametrize("name", list(SETTINGS))
@pytest.mark.parametrize("change", [{"sort_by_length": True}, {"share_prefill": True},
                                    {"sort_by_length": True, "share_prefill": True}],
                         ids=["sorted", "shared-prefill", "both"])
def test_faster_paths_give_identical_candidates(setup, name, change):
    model, tokenizer, prompts = setup
    base = {"max_new_tokens": 10, "batch_size": 3, "stop": [], **SETTINGS[name]}
    plain = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, **PLAIN), progress=False)
    faster = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, **{**PLAIN, **change}),
                                 progress=False)
    assert faster == plain
    assert len({c for group in plain for c in group}) > 3  # not a degenerate, all-equal output


def test_shared_prefill_with_sampling_gives_k_candidates(setup):
    model, tokenizer, prompts = setup
    config = GenerationConfig(max_new_tokens=8, batch_size=3, stop=[], k=3, do_sample=True)
    candidates = generate_candidates(model, tokenizer, prompts, config, progress=False)
    assert all(len(group) == 3 for group in candidates)
    assert any(len(set(group)) > 1 for group in candidates)


@pytest.mark.parametrize("stop", [[], ["\n", "e"]], ids=["no-stop", "stops"])
@pytest.mark.parametrize("every", [1, 3, 32])
def test_dropping_finished_sequences_in_chunks_gives_identical_candidates(setup, stop, every):
    """The chunked path (used where continuous batching does not apply)."""
    model, tokenizer, prompts = setup
    base = {"max_new_tokens": 12, "batch_size": 4, "stop": stop, "k": 1}
    plain = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, drop_finished=False),
                                progress=False)
    dropping = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, drop_finished_every=every),
                                   progress=False, continuous=False)
    assert dropping == plain
    assert len({c for group in plain for c in group}) > 3
    if stop:  # rows really finished at different times, so some left their batch early
        assert len({len(c) for group in plain for c in group}) > 2


@pytest.mark.parametrize("stop", [[], ["\n", "e"]], ids=["no-stop", "stops"])
@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_continuous_batching_gives_the_greedy_candidates_of_whole_batches(setup, stop, batch_size):
    """Waiting prompts take the places of finished ones (batch_size 2 with 7 prompts: several admissions,
    caches of different lengths joined); every candidate is the whole-batch path's."""
    model, tokenizer, prompts = setup
    base = {"max_new_tokens": 12, "batch_size": batch_size, "stop": stop, "k": 1}
    plain = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, drop_finished=False),
                                progress=False)
    continuous = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base), progress=False)
    assert continuous == plain
    assert len({c for group in plain for c in group}) > 3


def test_sampled_candidates_do_not_depend_on_the_batch(setup):
    """Each sampled candidate draws from its own generator (seed, prompt, candidate): the same candidates
    whatever else shares the batch, and different seeds give different ones."""
    model, tokenizer, prompts = setup
    base = {"max_new_tokens": 10, "stop": [], "k": 3, "do_sample": True, "temperature": 1.0}
    one = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, batch_size=1), progress=False)
    three = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, batch_size=3), progress=False)
    assert one == three
    assert any(len(set(group)) > 1 for group in one)
    other = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, batch_size=3, seed=7),
                                progress=False)
    assert other != one


def test_a_model_asking_for_logits_processors_is_decoded_by_generate(setup):
    from peftlab.stages.continuous import continuous_applies

    model, _, _ = setup
    assert continuous_applies(model, GenerationConfig())
    assert not continuous_applies(model, GenerationConfig(k=2, num_beams=2))
    assert not continuous_applies(model, GenerationConfig(drop_finished=False))
    penalised = model.generation_config.repetition_penalty
    try:
        model.generation_config.repetition_penalty = 1.3
        assert not continuous_applies(model, GenerationConfig())
    finally:
        model.generation_config.repetition_penalty = penalised
