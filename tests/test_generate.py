import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from peftlab.config import GenerationConfig
from peftlab.errors import UserError
from peftlab.stages.generate import generate_candidates

PROMPTS = ["### Instruction:\nAdd\n### Response:\n", "### Instruction:\nReverse a list of words\n### Response:\n", "x"]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize(
    "settings", [{"k": 3, "num_beams": 3}, {"k": 4, "num_beams": 5}, {"k": 3, "do_sample": True}, {"k": 1}]
)
def test_k_candidates_per_prompt(model_and_tokenizer, settings):
    model, tokenizer = model_and_tokenizer
    config = GenerationConfig(max_new_tokens=6, batch_size=2, stop=[], **settings)
    candidates = generate_candidates(model, tokenizer, PROMPTS, config, progress=False)
    assert len(candidates) == len(PROMPTS)
    assert all(len(group) == settings["k"] for group in candidates)
    assert all(isinstance(text, str) for group in candidates for text in group)


def test_batched_equals_one_at_a_time_and_prompt_not_in_output(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    batched = generate_candidates(model, tokenizer, PROMPTS, GenerationConfig(max_new_tokens=6, batch_size=3, stop=[]), progress=False)
    single = generate_candidates(model, tokenizer, PROMPTS, GenerationConfig(max_new_tokens=6, batch_size=1, stop=[]), progress=False)
    assert batched == single
    assert all("### Instruction" not in group[0] for group in batched)


def test_beam_candidates_are_distinct(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    config = GenerationConfig(k=3, num_beams=3, max_new_tokens=6, stop=[])
    for group in generate_candidates(model, tokenizer, PROMPTS[:2], config, progress=False):
        assert len(set(group)) == 3


def test_k_above_beams_without_sampling_is_user_error(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(UserError, match="num_beams >= 4"):
        generate_candidates(model, tokenizer, PROMPTS, GenerationConfig(k=4, num_beams=2), progress=False)
