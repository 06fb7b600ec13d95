"""Named loaders (data.loader): fixtures written in each dataset's published schema load into the task's
records, and a study cell trains and scores on each."""

import json
import subprocess
import sys

import pytest
import yaml

from peftlab.config import load_config
from peftlab.errors import UserError
from peftlab.tasks import get_task

FUNCTIONS = [
    ("reverse a list `x`", "x[::-1]"), ("sort dict `d` by value", "sorted(d.items(), key=lambda kv: kv[1])"),
    ("get the last element of list `a`", "a[-1]"), ("join strings `s` with commas", "','.join(s)"),
    ("remove duplicates from list `l`", "list(set(l))"), ("convert string `s` to int", "int(s)"),
    ("count occurrences of `c` in `s`", "s.count(c)"), ("lowercase string `s`", "s.lower()"),
]


def _conala_dir(tmp_path):
    """DocPrompting-CoNaLa's schema: question_id, nl, cmd, oracle_man (list), canonical_cmd, cmd_name."""
    directory = tmp_path / "conala"
    directory.mkdir()
    for split, rows in (("train", FUNCTIONS[:5]), ("validation", FUNCTIONS[5:6]), ("test", FUNCTIONS[6:])):
        with (directory / f"{split}.jsonl").open("w") as handle:
            for index, (nl, cmd) in enumerate(rows):
                handle.write(json.dumps({"question_id": f"{split}{index}_0", "nl": nl, "cmd": cmd,
                                         "oracle_man": ["python.library.functions#sorted"],
                                         "canonical_cmd": cmd.replace("x", "VAR_STR"), "cmd_name": f"{split}{index}"}) + "\n")
    return directory


def _codealpaca_file(tmp_path):
    """CodeAlpaca-20k's schema: a JSON list of {instruction, input, output}, languages mixed."""
    rows = [{"instruction": f"Write Python code to {nl}.", "input": "", "output": f"def f():\n    return {cmd}\n"}
            for nl, cmd in FUNCTIONS]
    rows[2]["input"] = "a = [1, 2, 3]"
    rows.insert(3, {"instruction": "Write a JavaScript function that adds two numbers.", "input": "",
                    "output": "function add(a, b) { return a + b; }"})
    rows.insert(5, {"instruction": "What does HTML stand for?", "input": "", "output": "HyperText"})
    path = tmp_path / "code_alpaca_20k.json"
    path.write_text(json.dumps(rows))
    return path, rows


def test_conala_fixture_loads_by_split(tmp_path):
    config = load_config(None, ["data.loader=conala", f"data.source={_conala_dir(tmp_path)}"])
    task = get_task("codegen", config)
    train, test = task.load("train"), task.load("test")
    assert [(r["id"], r["instruction"], r["reference"]) for r in test] == [
        ("test0_0", FUNCTIONS[6][0], FUNCTIONS[6][1]), ("test1_0", FUNCTIONS[7][0], FUNCTIONS[7][1])]
    assert len(train) == 5 and len(task.load("validation")) == 1


def test_codealpaca_keeps_python_answers_and_folds_the_input_in(tmp_path):
    path, rows = _codealpaca_file(tmp_path)
    # one file, the loader's own split: train[:90%] (9 of 10 rows), of which the JavaScript and the prose
    # answers are left out
    config = load_config(None, ["data.loader=codealpaca-python", f"data.source={path}"])
    train = get_task("codegen", config).load("train")
    assert all(r["reference"].startswith("def f():") for r in train) and len(train) == 7
    assert train[2]["instruction"] == "Write Python code to get the last element of list `a`.\n\nInput: a = [1, 2, 3]"
    assert [r["id"] for r in train][:3] == ["codealpaca-00000", "codealpaca-00001", "codealpaca-00002"]


def test_a_source_in_another_schema_or_an_unknown_loader_is_one_line(tmp_path):
    with pytest.raises(UserError, match="is not in the conala schema: no column question_id, nl, cmd"):
        get_task("codegen", load_config(None, ["data.loader=conala", f"data.source={_codealpaca_file(tmp_path)[0]}",
                                               "data.splits.train=train"])).load("train")
    with pytest.raises(UserError, match="unknown data.loader 'apps'; known: conala, codealpaca-python"):
        get_task("codegen", load_config(None, ["data.loader=apps"])).load("train")


def test_a_study_cell_trains_and_scores_on_each_loader(tiny_model_dir, tmp_path):
    alpaca, _ = _codealpaca_file(tmp_path)
    study = {
        "name": "loaders", "output_dir": str(tmp_path / "study"), "models": [str(tiny_model_dir)],
        "tasks": [{"name": "codegen", "overrides": {"data.loader": "conala", "data.source": str(_conala_dir(tmp_path))}},
                  {"name": "codegen", "overrides": {"data.loader": "codealpaca-python", "data.source": str(alpaca),
                                                    "data.splits.test": "train[:3]"}}],
        "methods": ["lora"],
        "base": {"train": {"max_steps": 1, "batch_size": 2}, "generation": {"max_new_tokens": 4, "stop": []}},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    result = subprocess.run([sys.executable, "-m", "peftlab.cli", "study", str(tmp_path / "study.yaml"), "--no-report"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = {}
    for cell in (tmp_path / "study" / "cells").iterdir():
        config = yaml.safe_load((cell / "config.yaml").read_text())
        metrics[config["data"]["loader"]] = json.loads((cell / "metrics.json").read_text())
    assert metrics["conala"]["test_problems"] == 2 and metrics["codealpaca-python"]["test_problems"] == 3
    assert all(m["train_steps"] == 1 and "codebleu" in m for m in metrics.values())
