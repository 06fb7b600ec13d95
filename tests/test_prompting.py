"""Prompting baselines: zero-shot, ICL sampling, BM25 and dense RAG, context-overflow dropping."""

from __future__ import annotations

import logging

import pytest

from peftlab.config import load_config
from peftlab.data.records import read_jsonl
from peftlab.errors import UserError
from peftlab.prompting import build_prompts as _build_prompts
from peftlab.prompting import prompt_token_budget, random_shots, similar_shots
from peftlab.prompting.retrieval import BM25Retriever, DenseRetriever, make_retriever
from peftlab.tasks.codegen import CodeGeneration
from peftlab.tasks.codegen.prompt import format_prompt

CODEGEN = CodeGeneration(load_config(None, []))
default_format_demo = CODEGEN.demonstration


def build_prompts(method, problems, train, *, seed=42, retriever="bm25", embedding_model=None, query=None, **kwargs):
    """The prompts the ``method`` baseline builds (its shot selector), with the codegen task's prompt and
    demonstration formats, as the generate stage passes them."""
    kwargs.setdefault("format_prompt", CODEGEN.prompt)
    kwargs.setdefault("format_demo", CODEGEN.demonstration)
    select = {"zero-shot": None, "icl": random_shots(seed),
              "rag": similar_shots(query or (lambda problem: problem["instruction"]), retriever, embedding_model)}[method]
    return _build_prompts(problems, train, select, **kwargs)

TRAIN = [
    {"id": "t0", "instruction": "Return the area of a circle with the given radius.", "reference": "return 1"},
    {"id": "t1", "instruction": "Compute the Euclidean distance between two points.", "reference": "return 2"},
    {"id": "t2", "instruction": "Reverse the order of the words in a sentence.", "reference": "return 3"},
    {"id": "t3", "instruction": "Count how many vowels appear in the given text.", "reference": "return 4"},
    {"id": "t4", "instruction": "Check whether a string reads the same forwards and backwards.", "reference": "5"},
    {"id": "t5", "instruction": "Remove every element from the queue and return them as a list.", "reference": "x"},
    {"id": "t6", "instruction": "Multiply two numbers together and return their product value.", "reference": "y"},
    {"id": "t7", "instruction": "Limit a value to the closed interval between low and high.", "reference": "z"},
]


def _problem(instruction: str, index: int = 0) -> dict:
    return {"id": f"p{index}", "instruction": instruction, "reference": "pass"}


PROBLEMS = [_problem(example["instruction"], index) for index, example in enumerate(TRAIN[::-1])]


def test_zero_shot_is_the_task_prompt():
    prompts, stats = build_prompts("zero-shot", PROBLEMS, [], shots=5, seed=0)
    assert prompts == [format_prompt(problem["instruction"]) for problem in PROBLEMS]
    assert stats["shots_used_mean"] == 0 and stats["retrieved_ids"] == [[] for _ in PROBLEMS]


def test_icl_is_deterministic_per_seed_and_formats_demos():
    first, stats = build_prompts("icl", PROBLEMS, TRAIN, shots=3, seed=1)
    again, stats_again = build_prompts("icl", PROBLEMS, TRAIN, shots=3, seed=1)
    other, stats_other = build_prompts("icl", PROBLEMS, TRAIN, shots=3, seed=2)
    assert first == again and stats["retrieved_ids"] == stats_again["retrieved_ids"]
    assert stats["retrieved_ids"] != stats_other["retrieved_ids"]
    # Sampled per problem: not every problem gets the same shots.
    assert len({tuple(ids) for ids in stats["retrieved_ids"]}) > 1
    by_id = {example["id"]: example for example in TRAIN}
    for problem, prompt, ids in zip(PROBLEMS, first, stats["retrieved_ids"], strict=True):
        assert len(set(ids)) == 3
        demos = "".join(default_format_demo(by_id[shot]) for shot in reversed(ids))
        assert prompt == demos + format_prompt(problem["instruction"])
    assert stats["shots_used_mean"] == 3 and stats["dropped_shots"] == 0
    # A problem keeps its shots when later problems are cut off.
    _, fewer = build_prompts("icl", PROBLEMS[:2], TRAIN, shots=3, seed=1)
    assert fewer["retrieved_ids"] == stats["retrieved_ids"][:2]


def test_demo_format():
    assert default_format_demo({"instruction": "Add.", "reference": "def f(): pass\n"}) == (
        "### Instruction:\nAdd.\n### Response:\ndef f(): pass\n\n"
    )


@pytest.mark.parametrize("method", ["icl", "rag"])
def test_more_shots_than_training_examples_is_a_user_error(method):
    with pytest.raises(UserError, match=r"^method.shots=50 but the training split has only 8 examples$"):
        build_prompts(method, PROBLEMS, TRAIN, shots=50, seed=0)


def test_unknown_retriever_is_a_user_error():
    # (an unknown method is the method registry's one-line error: tests/test_methods.py)
    with pytest.raises(UserError, match="unknown method.retriever 'sparse'"):
        build_prompts("rag", PROBLEMS, TRAIN, retriever="sparse")


def test_bm25_ranks_an_exact_duplicate_first():
    retriever = BM25Retriever([example["instruction"] for example in TRAIN])
    for index, example in enumerate(TRAIN):
        assert retriever.top_k(example["instruction"], 3)[0] == index
    # No words in common: every score is 0, ties broken by training order.
    assert retriever.top_k("zzz qqq", 3) == [0, 1, 2]


def test_rag_places_the_most_similar_shot_nearest_the_test_prompt():
    problem = _problem("Reverse the order of the words in a sentence.")
    prompts, stats = build_prompts("rag", [problem], TRAIN, shots=2, seed=0)
    assert stats["retrieved_ids"][0][0] == "t2"
    nearest = default_format_demo(TRAIN[2]) + format_prompt(problem["instruction"])
    assert prompts[0].endswith(nearest)
    assert prompts[0].count("### Instruction:") == 3


def test_rag_on_the_mined_dataset(tiny_data_dir):
    train = read_jsonl(tiny_data_dir / "train.jsonl")
    problems = [dict(train[4], id="dup"), *read_jsonl(tiny_data_dir / "test.jsonl")]
    prompts, stats = build_prompts("rag", problems, train, shots=3, seed=0)
    assert stats["retrieved_ids"][0][0] == train[4]["id"]
    assert len(prompts) == len(problems) and stats["shots_used_mean"] == 3


def test_overflowing_shots_are_dropped_farthest_first(tiny_model_dir, caplog):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def count(text):
        return len(tokenizer(text)["input_ids"])

    _, full = build_prompts("rag", PROBLEMS, TRAIN, shots=4, seed=0)
    longest_alone = max(count(format_prompt(problem["instruction"])) for problem in PROBLEMS)
    demo_length = max(count(default_format_demo(example)) for example in TRAIN)
    budget = longest_alone + demo_length + 5  # room for about one shot, never four
    with caplog.at_level(logging.WARNING, logger="peftlab.prompting"):
        prompts, stats = build_prompts(
            "rag", PROBLEMS, TRAIN, shots=4, seed=0, tokenizer=tokenizer, max_prompt_tokens=budget
        )
    assert all(count(prompt) <= budget for prompt in prompts)
    assert stats["prompt_tokens"] == [count(prompt) for prompt in prompts]
    assert all(used >= 1 for used in stats["shots_used"])
    assert stats["dropped_per_problem"] == [4 - used for used in stats["shots_used"]]
    assert stats["dropped_shots"] == sum(stats["dropped_per_problem"]) > 0
    assert stats["prompts_with_drops"] == len(PROBLEMS)
    assert stats["prompts_over_budget"] == 0
    # What is kept is the best-ranked prefix: the least similar shots went first.
    for kept, ranked in zip(stats["retrieved_ids"], full["retrieved_ids"], strict=True):
        assert kept == ranked[: len(kept)]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"dropped {stats['dropped_shots']} shots in {len(PROBLEMS)} of {len(PROBLEMS)}")

    # A budget too small for the bare prompt keeps the prompt and counts it.
    prompts, stats = build_prompts("icl", PROBLEMS, TRAIN, shots=2, seed=0, tokenizer=tokenizer, max_prompt_tokens=3)
    assert prompts == [format_prompt(problem["instruction"]) for problem in PROBLEMS]
    assert stats["prompts_over_budget"] == len(PROBLEMS) and stats["dropped_shots"] == 2 * len(PROBLEMS)


def test_prompt_token_budget():
    class Config:
        max_position_embeddings = 512

    assert prompt_token_budget(Config(), 128) == 384
    assert prompt_token_budget(2048, 48) == 2000
    assert prompt_token_budget(None, 128) is None
    with pytest.raises(UserError, match="generation.max_new_tokens=600 leaves no room"):
        prompt_token_budget(Config(), 600)


def test_dense_retriever_needs_a_local_model(tmp_path):
    with pytest.raises(UserError, match=r"^method.retriever=dense needs method.embedding_model: .*offline"):
        build_prompts("rag", PROBLEMS, TRAIN, shots=2, retriever="dense")
    with pytest.raises(UserError, match="method.embedding_model not found"):
        make_retriever("dense", ["a"], embedding_model=str(tmp_path / "missing"))
    with pytest.raises(UserError, match="not a Hugging Face model directory"):
        make_retriever("dense", ["a"], embedding_model=str(tmp_path))


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A random 2-layer BERT (hidden 32) with a word-level tokenizer over the training words."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = sorted({word for example in TRAIN for word in example["instruction"].lower().replace(".", " ").split()})
    vocab = {token: index for index, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    directory = tmp_path_factory.mktemp("tiny-bert")
    BertModel(config).save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def test_dense_retriever_ranks_an_exact_duplicate_first(tiny_bert_dir):
    retriever = DenseRetriever(tiny_bert_dir, [example["instruction"] for example in TRAIN], batch_size=3)
    assert retriever.embeddings.shape[0] == len(TRAIN)
    for index, example in enumerate(TRAIN):
        assert retriever.top_k(example["instruction"], 3)[0] == index
    prompts, stats = build_prompts(
        "rag", PROBLEMS, TRAIN, shots=2, seed=0, retriever="dense", embedding_model=str(tiny_bert_dir)
    )
    assert [ids[0] for ids in stats["retrieved_ids"]] == [example["id"] for example in TRAIN[::-1]]
    assert all(prompt.count("### Instruction:") == 3 for prompt in prompts)
