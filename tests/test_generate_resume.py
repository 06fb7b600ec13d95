"""Generation appends each finished batch (continuous batching: each finished prompt) and a re-run generates
only the rest, with the same candidates an uninterrupted run gives (sampling included: the batched path seeds
per batch, continuous batching per candidate)."""

import inspect
import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from peftlab.stages import pipeline
from peftlab.config import GenerationConfig, load_config
from peftlab.stages.generate import RESUME_FILE, ResumeFile, generate_candidates
from peftlab.tasks import get_task

SETTINGS = {
    "greedy": {"k": 1},
    "beams": {"k": 2, "num_beams": 2},
    "sampling": {"k": 3, "do_sample": True},
}


class Counting:
    """The model, counting its ``generate`` calls; raises KeyboardInterrupt instead of call ``stop_at + 1``."""

    def __init__(self, model, stop_at: int | None = None):
        self._model, self._stop_at, self.calls = model, stop_at, 0

    def generate(self, **kwargs):
        if self._stop_at is not None and self.calls >= self._stop_at:
            raise KeyboardInterrupt
        self.calls += 1
        return self._model.generate(**kwargs)

    def __call__(self, *args, **kwargs):  # the shared prefill is a plain forward pass
        return self._model(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def problems(tiny_data_dir):
    """Six prompts of the tiny dataset: three batches of two."""
    task = get_task("codegen", load_config(None, [f"data.dir={tiny_data_dir}"]))
    chosen = task.load("train")[:6]
    return [problem["id"] for problem in chosen], [task.prompt(problem) for problem in chosen]


def _config(name: str, **changes) -> GenerationConfig:
    """The batched path (``drop_finished`` off), whose calls to ``generate`` these tests count."""
    return GenerationConfig(**{"max_new_tokens": 6, "batch_size": 2, "stop": [], "drop_finished": False,
                               **SETTINGS[name], **changes})


def _stop_after_first_batch(done, total):
    raise KeyboardInterrupt


def _interrupted(model, tokenizer, problems, config, resume) -> None:
    """One batch generated and saved, then Ctrl-C."""
    ids, prompts = problems
    counting = Counting(model)
    with pytest.raises(KeyboardInterrupt):
        generate_candidates(counting, tokenizer, prompts, config, progress=False, ids=ids, resume=resume,
                            on_batch=_stop_after_first_batch)
    assert counting.calls == 1


def _resumed(model, tokenizer, problems, config, resume) -> tuple[list[list[str]], int]:
    ids, prompts = problems
    counting = Counting(model)
    candidates = generate_candidates(counting, tokenizer, prompts, config, progress=False, ids=ids, resume=resume)
    return candidates, counting.calls


@pytest.mark.parametrize("name", list(SETTINGS))
def test_interrupted_run_resumes_with_only_the_rest_and_the_same_candidates(model_and_tokenizer, problems, tmp_path, capsys, name):
    model, tokenizer = model_and_tokenizer
    config = _config(name)
    uninterrupted = generate_candidates(model, tokenizer, problems[1], config, progress=False)
    path = tmp_path / RESUME_FILE

    _interrupted(model, tokenizer, problems, config, path)
    assert "2 of 6 prompts saved" in capsys.readouterr().err
    rows = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    longest_first = sorted(range(6), key=lambda i: -len(tokenizer(problems[1][i])["input_ids"]))
    assert [row["id"] for row in rows] == [problems[0][i] for i in longest_first[:2]]  # sort_by_length

    resumed, calls = _resumed(model, tokenizer, problems, config, path)
    assert calls == 2, "only the two batches not in the file are generated"
    assert "resuming generation: 2 of 6" in capsys.readouterr().err
    assert resumed == uninterrupted
    assert all(len(group) == config.k for group in resumed)
    if name == "sampling":  # the comparison means something only if the draws really differ
        assert any(len(set(group)) > 1 for group in resumed)


def test_other_settings_or_context_start_over_and_say_so(model_and_tokenizer, problems, tmp_path, capsys):
    model, tokenizer = model_and_tokenizer
    path = tmp_path / RESUME_FILE
    for earlier, now in [
        ((_config("sampling"), None), (_config("sampling", seed=7), None)),
        ((_config("greedy"), None), (_config("greedy", batch_size=3), None)),
        ((_config("greedy"), {"adapter": "first training"}), (_config("greedy"), {"adapter": "second training"})),
    ]:
        _interrupted(model, tokenizer, problems, earlier[0], ResumeFile(path, earlier[1]))
        capsys.readouterr()
        config, context = now
        candidates, calls = _resumed(model, tokenizer, problems, config, ResumeFile(path, context))
        assert calls == -(-6 // config.batch_size), "nothing from the other settings is reused"
        assert "other generation settings" in capsys.readouterr().err
        assert candidates == generate_candidates(model, tokenizer, problems[1], config, progress=False)
        path.unlink()

    _interrupted(model, tokenizer, problems, _config("greedy"), path)
    changed = (problems[0], [problems[1][0] + " ", *problems[1][1:]])  # one prompt's text changed
    assert _resumed(model, tokenizer, changed, _config("greedy"), path)[1] == 3


def test_torn_line_and_half_written_batch_are_generated_again(model_and_tokenizer, problems, tmp_path):
    model, tokenizer = model_and_tokenizer
    config = _config("sampling")
    uninterrupted = generate_candidates(model, tokenizer, problems[1], config, progress=False)
    path = tmp_path / RESUME_FILE

    _interrupted(model, tokenizer, problems, config, path)
    path.write_text(path.read_text() + '{"index": 2, "id": "tr')  # killed while writing the second batch
    resumed, calls = _resumed(model, tokenizer, problems, config, path)
    assert (calls, resumed) == (2, uninterrupted)

    path.unlink()
    _interrupted(model, tokenizer, problems, config, path)
    header, first, _second = path.read_text().splitlines()
    path.write_text(header + "\n" + first + "\n")  # only half of the first batch made it to disk
    resumed, calls = _resumed(model, tokenizer, problems, config, path)
    assert (calls, resumed) == (3, uninterrupted)


def test_run_resume_file_names_model_method_and_training_run(tmp_path):
    config = load_config(None, ["model.name=m", "method.name=lora", f"output_dir={tmp_path}"])
    before = ResumeFile.in_run(config, tmp_path)
    assert before.path == tmp_path / RESUME_FILE
    assert before.context["trained"] is None and before.context["model"] == "m"
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "train.json").write_text(json.dumps({"stage": "train", "run": {"finished": "t1"}}))
    after = ResumeFile.in_run(config, tmp_path)
    assert after.context["trained"] == {"finished": "t1"} and after.context != before.context
    after.path.write_text("x")
    after.discard()
    assert not after.path.exists()
    after.discard()  # nothing to remove is fine


@pytest.mark.skipif("ResumeFile" not in inspect.getsource(pipeline),
                    reason="pipeline.generate does not pass a ResumeFile yet (see generate.ResumeFile.in_run)")
def test_generate_stage_interrupted_after_one_batch_generates_only_the_rest(tiny_overrides, tmp_path, monkeypatch, capsys):
    overrides = [*tiny_overrides, "method.name=zero-shot", "generation.batch_size=1", "generation.k=2",
                 "generation.do_sample=true", "generation.drop_finished=false"]
    whole = load_config(None, [*overrides, f"output_dir={tmp_path / 'whole'}"])
    pipeline.run_command(whole, "generate")
    expected = (tmp_path / "whole" / "predictions.jsonl").read_text()
    assert len(expected.splitlines()) == 3  # three test problems: three batches

    original = pipeline.load_for_generation
    models = []

    def counting_loader(config, run_dir, stop_at=None):
        models.append(Counting(original(config, run_dir), stop_at))
        return models[-1]

    config = load_config(None, overrides)
    monkeypatch.setattr(pipeline, "load_for_generation", lambda c, r: counting_loader(c, r, stop_at=1))
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_command(config, "generate")
    run = tmp_path / "run"
    assert models[-1].calls == 1 and not (run / "predictions.jsonl").exists()
    monkeypatch.setattr(pipeline, "load_for_generation", counting_loader)
    pipeline.run_command(config, "generate")
    assert models[-1].calls == 2
    assert (run / "predictions.jsonl").read_text() == expected
    assert not (run / RESUME_FILE).exists(), "the resume file is removed once predictions.jsonl is written"


@pytest.mark.parametrize("name", ["greedy", "sampling"])
def test_continuous_batching_resumes_each_finished_prompt(model_and_tokenizer, problems, tmp_path, capsys, name):
    """Interrupted once the first prompt is saved: the re-run decodes the five others and gives every
    candidate an uninterrupted run gives (sampling too: each candidate has its own seeded generator)."""
    model, tokenizer = model_and_tokenizer
    ids, prompts = problems
    config = _config(name, drop_finished=True)
    uninterrupted = generate_candidates(model, tokenizer, prompts, config, progress=False)
    path = tmp_path / RESUME_FILE
    with pytest.raises(KeyboardInterrupt):
        generate_candidates(model, tokenizer, prompts, config, progress=False, ids=ids, resume=path,
                            on_batch=_stop_after_first_batch)
    assert len(path.read_text().splitlines()) == 2  # the header and one prompt
    capsys.readouterr()
    resumed = generate_candidates(model, tokenizer, prompts, config, progress=False, ids=ids, resume=path)
    assert "resuming generation: 1 of 6" in capsys.readouterr().err
    assert resumed == uninterrupted
    if name == "sampling":
        assert any(len(set(group)) > 1 for group in resumed)
