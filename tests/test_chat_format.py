"""The prompt formats (model.prompt_format): the chat template in training, ICL/RAG and generation; raw
unchanged. A tiny tokenizer with a Jinja chat template whose end of turn is EOS, as Qwen's and SmolLM2's is."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from conftest import build_tiny_llama, run_cli_in_process
from transformers import AutoTokenizer

from peftlab.config import load_config
from peftlab.data.examples import IGNORE_INDEX, tokenize_example
from peftlab.data.records import read_jsonl
from peftlab.errors import UserError
from peftlab.methods import get_method
from peftlab.prompting.format import resolve_prompt_format
from peftlab.prompting import build_prompts, random_shots, similar_shots
from peftlab.tasks import get_task
from peftlab.tasks.codegen.prompt import (
    INSTRUCTION_TEMPLATE,
    STOP_STRINGS,
    format_prompt,
)

# Turn markers are special tokens; a turn ends with EOS, then a newline separates it from the next one.
TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] + eos_token + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def _chat_tokenizer(tiny_model_dir, template=TEMPLATE, extra=()):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.add_tokens(["<|user|>", "<|assistant|>", *extra], special_tokens=True)
    tokenizer.chat_template = template
    return tokenizer


@pytest.fixture(scope="module")
def chat_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with a chat template and two added turn tokens (embeddings sized to the new vocab)."""
    directory = tmp_path_factory.mktemp("tiny-chat")
    tokenizer = _chat_tokenizer(tiny_model_dir)
    build_tiny_llama(len(tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _config(model_dir, data_dir, *extra):
    return load_config(None, [f"model.name={model_dir}", f"data.dir={data_dir}", "model.prompt_format=chat",
                              "data.test_size=3", *extra])


def _format(model_dir, data_dir, *extra):
    config = _config(model_dir, data_dir, *extra)
    task = get_task("codegen", config)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return task, tokenizer, resolve_prompt_format(config.model.prompt_format, tokenizer, task)


def _turns(task, shots, problem):
    messages = []
    for shot in shots:
        messages += [{"role": "user", "content": task.user_message(shot)},
                     {"role": "assistant", "content": task.response(shot)}]
    return messages + [{"role": "user", "content": task.user_message(problem)}]


def test_loss_covers_exactly_the_assistant_turn(chat_model_dir, tiny_data_dir):
    task, tokenizer, chat = _format(chat_model_dir, tiny_data_dir)
    record = read_jsonl(tiny_data_dir / "train.jsonl")[0]
    example = chat.training_example(record)
    labels, ids = example["labels"], example["input_ids"]
    prompt_length = labels.count(IGNORE_INDEX)
    assert labels[:prompt_length] == [IGNORE_INDEX] * prompt_length  # the loss is one block at the end
    trained = ids[prompt_length:]
    assert labels[prompt_length:] == trained
    # The assistant content and its end of turn (EOS), nothing of the generation prompt, no second EOS.
    assert trained == tokenizer(record["reference"] + "<eos>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(trained) == record["reference"] + "<eos>"
    assert trained.count(tokenizer.eos_token_id) == 1
    prompt = tokenizer.decode(ids[:prompt_length])
    assert prompt == tokenizer.apply_chat_template(_turns(task, [], record), tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>\n") and record["instruction"] in prompt
    assert chat.end_of_turn == "<eos>" and chat.stop() == []  # EOS stops generation by itself


def test_training_with_the_chat_format_records_it(chat_model_dir, tiny_data_dir, tmp_path):
    from peftlab.stages.train import train

    config = _config(chat_model_dir, tiny_data_dir, f"output_dir={tmp_path}", "train.max_steps=2",
                     "train.batch_size=4")
    metrics = train(config, tmp_path)
    assert metrics["train_steps"] == 2 and metrics["prompt_format"] == "chat"
    assert metrics["prompt_template_sha256"] == hashlib.sha256(TEMPLATE.encode()).hexdigest()


def test_icl_demonstrations_are_prior_turns(chat_model_dir, tiny_data_dir):
    task, tokenizer, chat = _format(chat_model_dir, tiny_data_dir, "method.name=icl", "method.shots=2")
    train, problems = task.load("train"), task.load("test")
    by_id = {example["id"]: example for example in train}
    prompts, stats = get_method(task.config.method).prompts(task, problems, tokenizer, lambda: None, seed=0,
                                                            prompt_format=chat)
    for problem, prompt, ids in zip(problems, prompts, stats["retrieved_ids"], strict=True):
        shots = [by_id[shot] for shot in reversed(ids)]  # rank 1 nearest the question
        assert prompt == tokenizer.apply_chat_template(_turns(task, shots, problem), tokenize=False,
                                                       add_generation_prompt=True)
        assert prompt.count("<|user|>") == 3 and prompt.count("<|assistant|>") == 3
        positions = [prompt.index(shot["reference"]) for shot in shots] + [prompt.index(problem["instruction"])]
        assert positions == sorted(positions)

    # The context budget counts the rendered conversation, exactly as generation tokenizes it.
    def count(text):
        return len(tokenizer(text)["input_ids"])

    alone = max(count(chat.render(problem)) for problem in problems)
    fitted, fitted_stats = build_prompts(problems, train, random_shots(0), shots=2, format_prompt=task.prompt,
                                         format_demo=task.demonstration, tokenizer=tokenizer,
                                         max_prompt_tokens=alone + 5, assemble=lambda s, p: chat.render(p, s))
    assert fitted_stats["dropped_shots"] > 0
    assert fitted_stats["prompt_tokens"] == [count(prompt) for prompt in fitted]
    assert all(count(prompt) <= alone + 5 for prompt in fitted)


@pytest.mark.parametrize("method", ["lora", "zero-shot"])
def test_generation_renders_the_training_prompt(method, chat_model_dir, tiny_data_dir):
    from peftlab.stages.pipeline import _prompts

    task, tokenizer, chat = _format(chat_model_dir, tiny_data_dir, f"method.name={method}")
    problems = task.load("test")
    prompts, _ = _prompts(task.config, task, problems, tokenizer, chat)
    for problem, prompt in zip(problems, prompts, strict=True):
        example = chat.training_example(problem)
        prompt_ids = tokenizer(prompt)["input_ids"]  # as generate_candidates tokenizes a prompt
        assert example["input_ids"][: len(prompt_ids)] == prompt_ids
        assert example["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
        assert example["labels"][len(prompt_ids)] != IGNORE_INDEX


def test_run_records_the_format_and_refuses_to_mix(chat_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    common = [f"model.name={chat_model_dir}", f"data.dir={tiny_data_dir}", "data.test_size=2", "train.max_steps=2",
              "train.batch_size=4", "generation.max_new_tokens=4", "-o", str(run)]
    code, _, err = run_cli_in_process(monkeypatch, capsys, "run", "--method", "lora", "model.prompt_format=auto",
                                      *common)
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["prompt_format"] == "chat"  # auto: the tokenizer has a template
    assert metrics["prompt_template_sha256"] == hashlib.sha256(TEMPLATE.encode()).hexdigest()
    assert len(read_jsonl(run / "predictions.jsonl")) == 2
    # The adapter learnt chat turns: generating from it with raw prompts is refused.
    code, _, err = run_cli_in_process(monkeypatch, capsys, "generate", "--method", "lora", "model.prompt_format=raw",
                                      *common)
    assert code == 2 and "trained with prompt format 'chat'" in err


def test_data_preview_shows_the_rendered_chat_prompt(chat_model_dir, tiny_data_dir, monkeypatch, capsys):
    code, out, err = run_cli_in_process(monkeypatch, capsys, "data", "preview", f"model.name={chat_model_dir}",
                                        f"data.dir={tiny_data_dir}", "model.prompt_format=chat", "-n", "1")
    assert code == 0, err
    assert "prompt format: chat (template sha256 " + hashlib.sha256(TEMPLATE.encode()).hexdigest() in out
    assert "<|user|>" in out and "<|assistant|>" in out
    _, _, chat = _format(chat_model_dir, tiny_data_dir)
    example = chat.training_example(read_jsonl(tiny_data_dir / "train.jsonl")[0])
    with_loss = len(example["labels"]) - example["labels"].count(IGNORE_INDEX)
    assert f"{len(example['input_ids'])} tokens, {with_loss} with loss" in out
    # An evaluation-only task shows its rendered test prompts.
    code, out, err = run_cli_in_process(monkeypatch, capsys, "data", "preview", "task=humaneval",
                                        f"model.name={chat_model_dir}", "model.prompt_format=chat", "-n", "1")
    assert code == 0, err
    assert "HumanEval/0" in out and "Complete the following Python function:" in out


def test_raw_format_is_unchanged(tiny_model_dir, tiny_data_dir):
    config = load_config(None, [f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}"])
    assert config.model.prompt_format == "auto"  # chat only for a tokenizer with a template
    task = get_task("codegen", config)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for name in ("raw", "auto"):  # auto: the tiny tokenizer has no chat template
        raw = resolve_prompt_format(name, tokenizer, task)
        assert raw.name == "raw" and task.stop == list(STOP_STRINGS) and raw.stop() == list(STOP_STRINGS)
    record = read_jsonl(tiny_data_dir / "train.jsonl")[0]
    assert raw.render(record) == format_prompt(record["instruction"]) == task.prompt(record)
    assert raw.training_example(record) == tokenize_example(tokenizer, task.prompt(record), record["reference"])
    train = task.load("train")
    demos = task.demonstration(train[0]) + task.demonstration(train[1])
    assert raw.render(record, train[:2]) == demos + task.prompt(record)
    problems = task.load("test")
    method = get_method(load_config(None, ["method.name=rag", "method.shots=2"]).method)
    kwargs = {"shots": 2, "format_prompt": task.prompt, "format_demo": task.demonstration,
              "tokenizer": tokenizer, "max_prompt_tokens": 200}
    assert (method.prompts(task, problems, tokenizer, lambda: 200, seed=0, prompt_format=raw)
            == build_prompts(problems, train, similar_shots(task.retrieval_text), **kwargs))
    assert raw.record() == {"prompt_format": "raw",
                            "prompt_template_sha256": hashlib.sha256(INSTRUCTION_TEMPLATE.encode()).hexdigest()}
    with pytest.raises(UserError, match="has no chat template"):
        resolve_prompt_format("chat", tokenizer, task)


def test_bos_written_by_the_template_is_not_doubled(tiny_model_dir, tiny_data_dir):
    from tokenizers import processors

    tokenizer = _chat_tokenizer(tiny_model_dir, "{{ '<bos>' }}" + TEMPLATE, extra=("<bos>",))
    bos = tokenizer.convert_tokens_to_ids("<bos>")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", bos)])
    assert tokenizer("x")["input_ids"][0] == bos  # this tokenizer adds a BOS itself, as Llama's does
    task = get_task("codegen", _config(tiny_model_dir, tiny_data_dir))
    chat = resolve_prompt_format("chat", tokenizer, task)
    example = chat.training_example(read_jsonl(tiny_data_dir / "train.jsonl")[0])
    assert example["input_ids"][0] == bos and example["input_ids"].count(bos) == 1
    assert tokenizer(chat.render(task.load("test")[0]))["input_ids"].count(bos) == 1


def test_an_end_of_turn_that_is_not_eos_is_trained_on_and_stops_generation(tiny_model_dir, tiny_data_dir):
    template = TEMPLATE.replace("eos_token", "'<|end|>'")
    tokenizer = _chat_tokenizer(tiny_model_dir, template, extra=("<|end|>",))
    task = get_task("codegen", _config(tiny_model_dir, tiny_data_dir))
    chat = resolve_prompt_format("chat", tokenizer, task)
    record = read_jsonl(tiny_data_dir / "train.jsonl")[0]
    example = chat.training_example(record)
    trained = [token for token, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX]
    assert tokenizer.decode(trained) == record["reference"] + "<|end|>"  # no EOS the model would never emit
    assert chat.stop() == ["<|end|>"]
    assert chat.postprocess("def f():\n    return 1<|end|>junk") == "def f():\n    return 1"


def test_a_template_that_rewrites_the_answer_turn_is_refused(tiny_model_dir, tiny_data_dir):
    # The generation prompt ends with a newline that the rendered assistant turn does not have.
    template = TEMPLATE.replace("'<|assistant|>\n'", "'<|assistant|>\n\n'")
    assert template != TEMPLATE
    tokenizer = _chat_tokenizer(tiny_model_dir, template)
    task = get_task("codegen", _config(tiny_model_dir, tiny_data_dir))
    with pytest.raises(UserError, match="does not render an assistant turn as its generation prompt"):
        resolve_prompt_format("chat", tokenizer, task)


def test_chat_answers_are_post_processed_to_code(chat_model_dir, tiny_data_dir):
    task, _, chat = _format(chat_model_dir, tiny_data_dir)
    answer = "Here it is:\n```python\nimport re\n\n\ndef f(x):\n    return re.escape(x)\n```\nIt escapes x."
    assert chat.postprocess(answer) == "import re\n\n\ndef f(x):\n    return re.escape(x)"
    raw = resolve_prompt_format("raw", AutoTokenizer.from_pretrained(chat_model_dir), task)
    assert raw.postprocess(answer) == "import re"  # why chat answers have their own stop strings


def test_a_chat_answer_redefining_the_humaneval_function_passes(chat_model_dir):
    from peftlab.execution import sandbox
    from peftlab.execution.scoring import score_samples
    from peftlab.tasks.humaneval import execution_problems, load_problems

    if os.name != "posix" or not sandbox.available_backends():
        pytest.skip("no sandbox backend")
    task = get_task("humaneval", load_config(None, ["task=humaneval", "data.test_size=1"]))
    chat = resolve_prompt_format("chat", AutoTokenizer.from_pretrained(chat_model_dir), task)
    problem = load_problems()["HumanEval/0"]
    signature = problem["prompt"].split('    """')[0]
    answer = (f"```python\n{signature}{problem['canonical_solution']}```\n\nExample:\n\n```python\n"
              "print(has_close_elements([1.0, 2.0], 0.5))\n```")
    completion = chat.postprocess(answer)
    assert completion.startswith("from typing import List") and "print(" not in completion
    metrics, _ = score_samples([{"task_id": "HumanEval/0", "completion": completion}],
                               {"HumanEval/0": execution_problems()["HumanEval/0"]}, workers=1, timeout=10.0)
    assert metrics["pass@1"] == 1.0  # prompt + re-definition: the later def wins


@pytest.mark.e2e
def test_bundled_qwen_answers_humaneval_in_its_chat_template(capsys):
    import time

    from peftlab.cache import cache_dir
    from peftlab.config import GenerationConfig
    from peftlab.stages.generate import generate_candidates
    from peftlab.models.loading import BUNDLED_MODELS, load_model, load_tokenizer

    name = "qwen2.5-coder-0.5b"
    if not (cache_dir() / "models" / BUNDLED_MODELS[name].cache_key(name) / "config.json").is_file():
        pytest.skip(f"{name} is not converted yet (that takes minutes)")
    started = time.perf_counter()
    task = get_task("humaneval", load_config(None, ["task=humaneval", "data.test_size=1", f"model.name={name}"]))
    tokenizer = load_tokenizer(name, padding_side="left")
    chat = resolve_prompt_format("auto", tokenizer, task)
    assert chat.name == "chat" and chat.end_of_turn == tokenizer.eos_token == "<|im_end|>"
    problem = task.load("test")[0]
    prompt = chat.render(problem)
    assert prompt.endswith("<|im_start|>assistant\n```python\n" + problem["instruction"])  # the body is asked for
    generation = GenerationConfig(max_new_tokens=40, stop=chat.stop())
    [[candidate]] = generate_candidates(load_model(name), tokenizer, [prompt], generation, chat.postprocess, False)
    with capsys.disabled():
        print(f"\nqwen2.5-coder-0.5b, chat, HumanEval/0, 40 greedy tokens ({time.perf_counter() - started:.0f} s):\n"
              f"{candidate}")
    assert isinstance(candidate, str)
