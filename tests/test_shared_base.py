"""Issue 29, point 2: several trained runs of one base generate with the base loaded once and adapters
switched, and predict exactly what one load per run predicts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import run_cli_in_process as run_cli
from peftlab.config import load_config
from peftlab.errors import UserError
from peftlab.stages.pipeline import run_command, run_stages
from peftlab.stages.shared_base import generate_with_one_base, why_not_shared

SETTINGS = ["train.batch_size=4", "train.max_steps=3", "train.eval_every=1.0", "generation.max_new_tokens=6",
            "generation.stop=[]"]


def _config(tiny_model_dir, tiny_data_dir, run_dir, *extra):
    return load_config(None, [f"model.name={tiny_model_dir}", f"data.dir={tiny_data_dir}", f"output_dir={run_dir}",
                              *SETTINGS, *extra])


@pytest.mark.parametrize("method, variants, generation", [
    ("lora", [["method.r=4", "train.learning_rate=0.03"], ["method.r=8", "train.learning_rate=0.03", "train.seed=7"],
              ["method.r=8", "train.learning_rate=0.01"]], []),
    ("lora", [["train.learning_rate=0.03"], ["train.learning_rate=0.01"]],
     ["generation.k=3", "generation.do_sample=true", "generation.temperature=0.9"]),
    ("ia3", [["train.learning_rate=1.0"], ["train.learning_rate=0.3"]], []),
])
def test_one_base_gives_the_predictions_of_one_load_per_run(method, variants, generation, tiny_model_dir,
                                                            tiny_data_dir, tmp_path):
    separate, shared = [], []
    for number, variant in enumerate(variants):
        config = _config(tiny_model_dir, tiny_data_dir, tmp_path / f"separate-{number}", f"method.name={method}",
                         *variant, *generation)
        run_command(config, "train")
        shutil.copytree(tmp_path / f"separate-{number}", tmp_path / f"shared-{number}")
        separate.append(config)
        shared.append(config.model_copy(update={"output_dir": str(tmp_path / f"shared-{number}")}))
    for config in separate:
        run_stages(config, announce=lambda _: None)
    said = []
    generate_with_one_base(shared, announce=said.append)
    assert said == [f"{method}: generate"] * len(variants)
    predictions = [(Path(c.output_dir) / "predictions.jsonl").read_text() for c in separate]
    assert [(Path(c.output_dir) / "predictions.jsonl").read_text() for c in shared] == predictions
    assert len(set(predictions)) == len(predictions)  # the adapters differ, so a stale adapter would show
    again = []
    generate_with_one_base(shared, announce=again.append)  # done: nothing generated twice
    assert again == []


def test_what_cannot_share_one_base_is_refused_in_one_line(tiny_model_dir, tiny_model_dir_b, tiny_data_dir,
                                                            tmp_path, monkeypatch, capsys):
    lora = _config(tiny_model_dir, tiny_data_dir, tmp_path / "lora", "method.name=lora")
    ia3 = _config(tiny_model_dir, tiny_data_dir, tmp_path / "ia3", "method.name=ia3")
    other_base = _config(tiny_model_dir_b, tiny_data_dir, tmp_path / "b", "method.name=lora")
    quantised = _config(tiny_model_dir, tiny_data_dir, tmp_path / "q", "method.name=qlora-4bit")
    for config in (lora, ia3):
        run_command(config, "train")
    assert why_not_shared([lora, ia3]) == "their adapters are of different PEFT types"
    assert why_not_shared([lora, other_base]) == "they use different base models"
    assert "has no PEFT adapter on a float32 base" in why_not_shared([lora, quantised])
    with pytest.raises(UserError, match="cannot share one loaded base: their adapters are of different PEFT types"):
        generate_with_one_base([lora, ia3])
    capsys.readouterr()  # the training's progress bars
    code, out, err = run_cli(monkeypatch, capsys, "run-many", str(tmp_path / "lora"), str(tmp_path / "ia3"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "different PEFT types" in err
    code, out, err = run_cli(monkeypatch, capsys, "run-many", str(tmp_path / "lora"))
    assert code == 0, err
    assert "lora: generate" in out and "lora: evaluate" in out and "em@1" in out
