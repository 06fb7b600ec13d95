"""Training on one task's data and scoring on another's (``data.train_task``), adapters given by path
(``model.adapter``), and a study whose cells share one trained adapter across tasks."""

import json

import pytest
from conftest import run_cli_in_process

from peftlab.config import load_config
from peftlab.data.records import read_jsonl
from peftlab.study.spec import StudySpec, expand
from peftlab.tasks import get_task, get_training_task

TRAIN = ["train.batch_size=4", "train.max_steps=2", "generation.max_new_tokens=6", "generation.stop=[]"]


def _run(monkeypatch, capsys, *args):
    code, out, err = run_cli_in_process(monkeypatch, capsys, *args)
    assert code == 0, err
    return out


def test_icl_on_humaneval_takes_its_shots_from_the_training_task(tiny_model_dir, tiny_data_dir):
    from peftlab.stages.pipeline import _prompts
    from peftlab.prompting.format import resolve_prompt_format
    from transformers import AutoTokenizer

    config = load_config(None, [f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", "task=humaneval",
                                "data.train_task=codegen", "data.test_size=1", "method.name=icl", "method.shots=2"])
    task, shots_from = get_task("humaneval", config), get_training_task(config)
    assert shots_from.name == "codegen"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt_format = resolve_prompt_format("raw", tokenizer, task, shots_from)
    problems = task.load("test")
    prompts, stats = _prompts(config, task, problems, tokenizer, prompt_format, shots_from)
    train_ids = {record["id"] for record in shots_from.load("train")}
    for prompt, problem, used in zip(prompts, problems, stats["retrieved_ids"], strict=True):
        assert prompt.endswith(problem["instruction"])  # the HumanEval prompt, continued as published
        # codegen's demonstrations (as many as fit the tiny model's context)
        assert prompt.count("### Instruction:") == len(used) >= 1 and set(used) <= train_ids


def test_without_train_task_an_evaluation_only_task_cannot_train_or_draw_shots(tiny_model_dir, tmp_path,
                                                                               monkeypatch, capsys):
    code, _, err = run_cli_in_process(monkeypatch, capsys, "train", "task=humaneval", "--method", "lora",
                                      f"model.name={tiny_model_dir}", "-o", str(tmp_path / "run"))
    assert code == 2 and "no training split" in err and "data.train_task" in err and len(err.strip().splitlines()) == 1


def test_lora_trained_on_codegen_scored_on_humaneval(tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _run(monkeypatch, capsys, "run", "--task", "humaneval", "--method", "lora", f"model.name={tiny_model_dir}",
         f"data.dir={tiny_data_dir}", "data.train_task=codegen", "data.test_size=2", "-o", str(run), *TRAIN)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_steps"] == 2 and metrics["test_problems"] == 2 and "pass@1" in metrics
    assert [row["id"] for row in read_jsonl(run / "predictions.jsonl")] == ["HumanEval/0", "HumanEval/1"]


def test_given_adapter_generates_exactly_what_its_own_run_generates(tiny_model_dir, tiny_data_dir, tmp_path,
                                                                    monkeypatch, capsys):
    common = [f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", "data.test_size=3", *TRAIN]
    owner, borrower = tmp_path / "owner", tmp_path / "borrower"
    _run(monkeypatch, capsys, "run", "--method", "lora", "-o", str(owner), *common)
    out = _run(monkeypatch, capsys, "run", "--method", "lora", "-o", str(borrower),
               f"model.adapter={owner / 'adapter'}", *common)
    assert "lora: train" not in out  # nothing trained
    assert not (borrower / "adapter").exists()
    assert read_jsonl(borrower / "predictions.jsonl") == read_jsonl(owner / "predictions.jsonl")
    mine, theirs = (json.loads((d / "metrics.json").read_text()) for d in (borrower, owner))
    assert mine["adapter_from"] == str(owner / "adapter")
    assert mine["trainable_params"] == theirs["trainable_params"] and mine["train_time_s"] == theirs["train_time_s"]


@pytest.mark.parametrize("case", ["wrong kind", "not an adapter", "train with one"])
def test_bad_given_adapter_is_one_line(case, tiny_model_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    common = [f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", "data.test_size=2", *TRAIN]
    owner = tmp_path / "owner"
    _run(monkeypatch, capsys, "train", "--method", "lora", "-o", str(owner), *common)
    command, method, adapter, expected = {
        "wrong kind": ("generate", "ia3", owner / "adapter", "is a LORA adapter, but method ia3 loads IA3"),
        "not an adapter": ("generate", "lora", owner, "not a PEFT adapter directory"),
        "train with one": ("train", "lora", owner / "adapter", "nothing to train"),
    }[case]
    code, _, err = run_cli_in_process(monkeypatch, capsys, command, "--method", method, f"model.adapter={adapter}",
                                      "-o", str(tmp_path / "other"), *common)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err


def test_study_cells_share_one_adapter_across_tasks(tmp_path):
    spec = StudySpec.model_validate({
        "output_dir": str(tmp_path / "s"),
        "tasks": ["codegen", {"name": "humaneval", "overrides": {"data.train_task": "codegen", "data.test_size": 5}}],
        "base": {"data": {"test_size": 3}},
        "methods": ["zero-shot", "icl", "lora", "ia3"],
    })
    cells = expand(spec, default_data_root=str(tmp_path / "s" / "data"))
    by = {(c.labels["task"], c.labels["method"]): c for c in cells}
    assert len(cells) == 8
    # both tasks' cells read the mined data; HumanEval keeps its own test size
    assert {c.config.data.dir for c in cells} == {str(tmp_path / "s" / "data" / "codegen")}
    assert by["humaneval", "lora"].config.data.test_size == 5 and by["codegen", "lora"].config.data.test_size == 3
    for method in ("lora", "ia3"):
        owner, borrower = by["codegen", method], by["humaneval", method]
        assert owner.config.model.adapter is None
        assert borrower.config.model.adapter == f"{owner.config.output_dir}/adapter"
        assert borrower.labels["adapter_from"] == owner.key
        assert cells.index(owner) < cells.index(borrower)  # trained before it is borrowed
        assert borrower.config.output_dir.endswith(borrower.key) and borrower.key != owner.key
    assert by["humaneval", "zero-shot"].config.model.adapter is None
    # another training setting: its own adapter
    spec.tasks[1].overrides["train.max_steps"] = 3
    cells = expand(spec, default_data_root=str(tmp_path / "s" / "data"))
    assert all(c.config.model.adapter is None for c in cells)
