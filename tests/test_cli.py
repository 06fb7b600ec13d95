"""The command line: bad input ends with one line on stderr and exit code 2, never a traceback."""

import json
import subprocess
import sys

import pytest

from peftlab.config import load_config
from peftlab.methods import resolve_method_options
from peftlab.errors import UserError
from peftlab.models.loading import resolve_model_path


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "peftlab.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_source_dir(tmp_path):
    result = run_cli("data", "mine-codegen", "--source", tmp_path / "missing", "--out", tmp_path / "out")
    assert_one_line_error(result, "source directory not found", "missing")


def test_dataset_empty_after_filtering(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("def f():\n    return 1\n")
    result = run_cli("data", "mine-codegen", "--source", tmp_path / "src", "--out", tmp_path / "out", "--tokenizer", "")
    assert_one_line_error(result, "survived the filters")


def test_unknown_model_name(tmp_path):
    result = run_cli("train", "--model", "no-such-model", "-o", tmp_path / "run")
    assert_one_line_error(result, "unknown model 'no-such-model'")


def test_hub_id_offline_names_the_id(tiny_data_dir, tmp_path):
    result = run_cli("generate", "--model", "someorg/some-model", "--method", "zero-shot", f"data.dir={tiny_data_dir}", "-o", tmp_path)
    assert_one_line_error(result, "someorg/some-model", "Hugging Face Hub")


def test_malformed_jsonl_names_file_and_line(tiny_data_dir, tmp_path):
    bad = tmp_path / "predictions.jsonl"
    bad.write_text(json.dumps({"id": "a", "candidates": ["x"], "reference": "x"}) + "\n{not json\n")
    result = run_cli("evaluate", "--predictions", bad, "-o", tmp_path / "run", f"data.dir={tiny_data_dir}")
    assert_one_line_error(result, f"{bad}:2", "malformed JSON")


def test_unknown_config_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  epochz: 2\n")
    result = run_cli("train", "--config", config, "-o", tmp_path / "run")
    assert_one_line_error(result, "unknown config key 'train.epochz'")


def test_wrong_type_override(tmp_path):
    result = run_cli("train", "train.batch_size=lots", "-o", tmp_path / "run")
    assert_one_line_error(result, "bad value for 'train.batch_size'", "lots")


def test_missing_dataset_split(tmp_path):
    result = run_cli("train", f"data.dir={tmp_path}", f"model.name={tmp_path}", "-o", tmp_path / "run")
    assert_one_line_error(result)


@pytest.mark.parametrize("command", ["train", "generate", "evaluate", "run", "study", "report", "export", "data mine-codegen", "data preview"])
def test_every_command_has_help(command):
    result = run_cli(*command.split(), "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method:\n  r: 4\ngeneration:\n  stop: ['a']\n")
    config = load_config(path, ["method.r=8", "train.learning_rate=3e-4", "method.target_modules=[q_proj, v_proj]"])
    assert config.method.r == 8 and "alpha" not in config.method.options()  # as given, before resolution
    resolve_method_options(config)  # the method's defaults filled in
    assert config.method.r == 8 and config.method.alpha == 32
    assert config.train.learning_rate == 3e-4
    assert config.method.target_modules == ["q_proj", "v_proj"]
    assert config.generation.stop == ["a"]
    with pytest.raises(UserError, match="not of the form key=value"):
        load_config(None, ["method.r"])


def test_model_resolution(tiny_model_dir, tmp_path):
    assert resolve_model_path(str(tiny_model_dir)) == (str(tiny_model_dir), None)
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M") == ("HuggingFaceTB/SmolLM2-135M", None)
    with pytest.raises(UserError, match="model path not found"):
        resolve_model_path(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="no config.json"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(UserError, match="GGUF file not found"):
        resolve_model_path(str(tmp_path / "m.gguf"))


def test_train_generate_evaluate_cli_writes_run_directory(tiny_overrides, tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", *tiny_overrides).returncode == 0
    assert run_cli("generate", *tiny_overrides).returncode == 0
    result = run_cli("evaluate", *tiny_overrides)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"trainable_params", "train_time_s", "em@1", "codebleu", "generate_time_s"} <= set(metrics)
    assert (run / "config.yaml").is_file() and (run / "adapter" / "adapter_config.json").is_file()
    versions = json.loads((run / "train.run.json").read_text())
    assert versions["packages"]["torch"] == "2.13.0+cpu" or versions["packages"]["torch"].startswith("2.13.0")
    assert versions["seed"] == 42
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(len(row["candidates"]) == 1 for row in rows)


def test_data_preview_shows_loss_bearing_tokens(tiny_model_dir, tiny_data_dir):
    result = run_cli("data", "preview", f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", "-n", "1")
    assert result.returncode == 0, result.stderr
    assert "train-00000" in result.stdout and "with loss" in result.stdout
    from transformers import AutoTokenizer

    from peftlab.data.records import read_jsonl
    from peftlab.data.examples import tokenize_example
    from peftlab.tasks.codegen.prompt import format_prompt

    record = read_jsonl(tiny_data_dir / "train.jsonl")[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    example = tokenize_example(tokenizer, format_prompt(record["instruction"]), record["reference"])
    with_loss = sum(label != -100 for label in example["labels"])
    assert f"{len(example['input_ids'])} tokens, {with_loss} with loss" in result.stdout


@pytest.mark.parametrize("method", ["zero-shot", "icl", "rag"])
def test_generate_with_prompting_baselines(method, tiny_overrides, tmp_path):
    shots = [] if method == "zero-shot" else ["method.shots=2"]  # zero-shot has no shots to set
    result = run_cli("generate", "--method", method, *shots, *tiny_overrides)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    if method == "zero-shot":
        assert all("shot_ids" not in row for row in rows)
    else:
        assert all(len(row["shot_ids"]) == 2 and row["dropped_shots"] == 0 for row in rows)
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        assert metrics["shots_used_mean"] == 2


def test_more_shots_than_training_examples_is_one_line(tiny_overrides):
    result = run_cli("generate", "--method", "icl", "method.shots=50", *tiny_overrides)
    assert_one_line_error(result, "method.shots=50", "only 11")
