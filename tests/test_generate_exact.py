"""The generation speed-ups are exact: longest-first batching and the shared prompt prefill give the very
candidates of the plain path (file-order batches, ``generate`` reading each prompt once per beam)."""

import pytest

from peftlab.config import GenerationConfig, load_config
from peftlab.stages.generate import generate_candidates

SETTINGS = {
    "greedy": {"k": 1},
    "beams": {"k": 2, "num_beams": 3},
    "beams-k-equals-beams": {"k": 4, "num_beams": 4},
}
PLAIN = {"sort_by_length": False, "share_prefill": False}


@pytest.fixture(scope="module")
def setup(tiny_generation_setup):
    model, tokenizer, prompts = tiny_generation_setup
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
@pytest.mark.parametrize("slots", [1, 2, 4, 64])
def test_continuous_batching_gives_the_greedy_candidates_of_whole_batches(setup, stop, slots):
    """Waiting prompts take the places of finished ones (2 slots with 7 prompts: several admissions,
    caches of different lengths joined); every candidate is the whole-batch path's."""
    model, tokenizer, prompts = setup
    base = {"max_new_tokens": 12, "batch_size": 3, "stop": stop, "k": 1}
    plain = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, drop_finished=False),
                                progress=False)
    continuous = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, slots=slots),
                                     progress=False)
    assert continuous == plain
    assert len({c for group in plain for c in group}) > 3


def test_sampled_candidates_do_not_depend_on_the_batch(setup):
    """Each sampled candidate draws from its own generator (seed, prompt, candidate): the same candidates
    whatever else shares the batch, and different seeds give different ones."""
    model, tokenizer, prompts = setup
    base = {"max_new_tokens": 10, "stop": [], "k": 3, "do_sample": True, "temperature": 1.0}
    one = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, slots=3), progress=False)
    three = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, slots=9), progress=False)
    assert one == three
    assert any(len(set(group)) > 1 for group in one)
    other = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, slots=9, seed=7),
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


def _decode_directly(model, tokenizer, prompts, config):
    """Run the continuous decoder itself (to read what it did), candidates in prompt order."""
    from peftlab.stages.continuous import ContinuousDecoder

    decoder = ContinuousDecoder(model, tokenizer, config, config.stop or [], {tokenizer.eos_token_id})
    out = {}
    decoder.run(dict(enumerate(prompts)), range(len(prompts)), lambda index, texts: out.__setitem__(index, texts))
    return decoder, [out[index] for index in range(len(prompts))]


@pytest.mark.parametrize("slots", [1, 64])
def test_a_shared_prompt_prefix_read_once_and_prompt_lookup_give_the_same_greedy_candidates(setup, slots):
    """Prompts that begin alike (a chat template's system turn) share one prefill; prompt-lookup guesses
    are fed and some are taken; every candidate is still the whole-batch path's."""
    model, tokenizer, prompts = setup
    prompts = ["You are a careful programmer. Answer with code only.\n" + prompt for prompt in prompts]
    base = {"max_new_tokens": 16, "batch_size": 3, "stop": [], "k": 1}
    plain = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, drop_finished=False),
                                progress=False)
    decoder, fast = _decode_directly(model, tokenizer, prompts, GenerationConfig(**base, slots=slots))
    assert decoder.shared >= 8, "the common prefix was read once"
    if slots == 1:  # one row: guesses are cheap, so they are fed (at 7 rows this model's misses soon stop them)
        assert decoder.counts["accepted"] > 0, "prompt lookup took some guesses"
        assert decoder.counts["accepted"] < decoder.counts["tested"], "and rejected others"
    assert fast == plain
    unguessed, off = _decode_directly(model, tokenizer, prompts, GenerationConfig(**base, slots=slots, lookup_tokens=0))
    assert unguessed.counts["guessed"] == 0 and off == plain


def test_prompt_lookup_keeps_each_sampled_candidate(setup):
    """Sampling with guesses fed gives the candidates of one-token steps (each candidate's own generator)."""
    model, tokenizer, prompts = setup
    base = {"max_new_tokens": 16, "stop": [], "k": 3, "do_sample": True, "temperature": 0.5, "slots": 3}
    guessed, with_lookup = _decode_directly(model, tokenizer, prompts, GenerationConfig(**base))
    _, without = _decode_directly(model, tokenizer, prompts, GenerationConfig(**base, lookup_tokens=0))
    assert guessed.counts["tested"] > 0
    assert with_lookup == without
    assert any(len(set(group)) > 1 for group in without)


def test_a_sampled_guess_is_taken_when_the_draw_equals_it(setup):
    """At each fed position the row's generator draws once, as a one-token step would; the guess is taken
    while the draw equals it, and the first draw that differs is the row's last new token."""
    import torch

    from peftlab.stages.continuous import ContinuousDecoder, _Sequence

    model, tokenizer, _ = setup
    decoder = ContinuousDecoder(model, tokenizer, GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0), [],
                                set())
    vocabulary, guess = 6, [2, 4, 1, 3, 5]
    logits = torch.full((1, len(guess) + 1, vocabulary), -3.0)
    for position, token in enumerate(guess):
        logits[0, position, token] = 3.0  # each guess is drawn with probability ~0.94
    for seed in range(20):
        sequence = _Sequence(0, 0, [], torch.Generator().manual_seed(seed))
        taken = decoder._verify(logits, [sequence], [guess])[0]
        one_at_a_time, generator = [], torch.Generator().manual_seed(seed)
        for position in range(len(guess) + 1):  # one-token steps: one draw each from the row's generator
            support = decoder.sampler.supports(logits[0, position:position + 1])[0]
            one_at_a_time.append(decoder.sampler.draw(support, generator))
            if position == len(guess) or one_at_a_time[-1] != guess[position]:
                break
        assert taken == one_at_a_time
        assert taken[:-1] == guess[:len(taken) - 1]
    assert len(decoder._verify(logits, [_Sequence(0, 0, [], torch.Generator().manual_seed(0))], [guess])[0]) > 1


@pytest.fixture(scope="module", params=["prompt-tuning", "prefix-tuning"])
def virtual_tokens_model(request, tiny_model_dir):
    """A randomly initialised prompt- or prefix-tuning adapter on the tiny model (its virtual tokens really
    change what the model writes)."""
    import torch

    from peftlab.methods import get_method
    from peftlab.models.loading import load_model

    torch.manual_seed(0)
    config = load_config(None, [f"method.name={request.param}", "method.num_virtual_tokens=5"])
    model = get_method(config.method).apply(load_model(str(tiny_model_dir))).eval()
    if request.param == "prefix-tuning":  # PEFT starts the prefix at N(0, 1)-ish values; make them matter
        with torch.no_grad():
            for parameter in model.prompt_encoder.parameters():
                parameter.mul_(4.0)
    return request.param, model


@pytest.mark.parametrize("common_start", [False, True], ids=["virtual-only-prefix", "with-shared-tokens"])
@pytest.mark.parametrize("slots", [2, 64])
def test_prompt_and_prefix_tuning_are_decoded_continuously_with_the_batched_paths_candidates(
        setup, virtual_tokens_model, slots, common_start):
    """Virtual tokens become the front of the shared prefix: every greedy candidate is the batched path's
    (``generate`` through PEFT, left-padded batches of 3), and differs from the base model's."""
    from peftlab.stages.continuous import continuous_applies

    base_model, tokenizer, prompts = setup
    name, model = virtual_tokens_model
    if common_start:
        prompts = ["You are a careful programmer. Answer with code only.\n" + prompt for prompt in prompts]
    else:  # no two prompts begin alike: the shared prefix is the virtual tokens alone
        prompts = [f"{'ABCDEFGHIJ'[index]}: {prompt}" for index, prompt in enumerate(prompts)]
    base = {"max_new_tokens": 12, "batch_size": 3, "stop": [], "k": 1}
    assert continuous_applies(model, GenerationConfig(**base))
    batched = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, drop_finished=False),
                                  progress=False)
    decoder, continuous = _decode_directly(model, tokenizer, prompts, GenerationConfig(**base, slots=slots))
    assert decoder.virtual == 5 and decoder.prefix is not None
    assert decoder.shared >= 8 if common_start else decoder.shared == 0
    assert continuous == batched, name
    untuned = generate_candidates(base_model, tokenizer, prompts, GenerationConfig(**base), progress=False)
    assert untuned != batched  # the virtual tokens are really read
    assert len({c for group in batched for c in group}) > 3


def test_sampling_with_virtual_tokens_does_not_depend_on_the_batch(setup, virtual_tokens_model):
    """k sampled candidates per prompt through the virtual-token prefix: each candidate's own generator, so the
    same candidates at 3 slots as at 9, and not the untuned model's (at temperature 0.3: the random tiny model's
    near-uniform distributions, only nudged by the virtual tokens, would otherwise give the same draws)."""
    base_model, tokenizer, prompts = setup
    _, model = virtual_tokens_model
    base = {"max_new_tokens": 10, "stop": [], "k": 3, "do_sample": True, "temperature": 0.3}
    three = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, slots=3), progress=False)
    nine = generate_candidates(model, tokenizer, prompts, GenerationConfig(**base, slots=9), progress=False)
    assert three == nine
    assert any(len(set(group)) > 1 for group in three)
    assert generate_candidates(base_model, tokenizer, prompts, GenerationConfig(**base, slots=9),
                               progress=False) != three
