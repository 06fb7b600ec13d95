"""Export a trained run as a directory that plain ``transformers`` (or PEFT) can load without peftlab.

``--merge`` (the default) folds a weight-space adapter into the base weights with PEFT's
``merge_and_unload`` and writes an ordinary Hugging Face model plus tokenizer:

* LoRA and (IA)^3: merged into the float32 base;
* QLoRA (4- and 8-bit): by default the base is loaded *without* quantisation (float32) and the adapter
  merged into it, so the export is the original full-precision model plus the adapter. Its outputs differ
  from the quantised model the adapter was trained on (whose weights carried the quantisation error).
  ``dequantized=True`` (``--dequantized``) instead merges into the de-quantised 4/8-bit weights, which
  reproduces the QLoRA model's own behaviour in a float32 model (same size as the other);
* full fine-tuning: already a plain model; it is re-saved with the tokenizer;
* prompt and prefix tuning learn virtual-token inputs, not weight updates, so they cannot be merged
  (one-line :class:`~peftlab.errors.UserError`); ``--adapter-only`` exports them.

``--adapter-only`` copies the trained adapter (loadable with ``peft.AutoPeftModelForCausalLM``) plus the
tokenizer. Both forms add ``peftlab_export.json`` saying where the export came from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from peftlab.errors import UserError
from peftlab.methods import get_training_method
from peftlab.models.loading import load_model, load_tokenizer
from peftlab.runs.directory import RunDir

EXPORT_INFO = "peftlab_export.json"


def _check_output_dir(run_dir: Path, output_dir: Path) -> None:
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())):
        raise UserError(f"export directory {output_dir} already exists and is not empty; pick another or remove it")
    resolved, run = output_dir.resolve(), run_dir.resolve()
    if resolved == run or run in resolved.parents:
        raise UserError(f"export directory {output_dir} must be outside the run directory {run_dir}")


def _is_prompt_learning(adapter: Path) -> bool:
    from peft import PeftConfig

    return PeftConfig.from_pretrained(str(adapter)).is_prompt_learning


def dequantized_base(config, method):
    """A float32 model whose linear layers hold the de-quantised weights of ``method``'s quantised load."""
    import bitsandbytes as bnb
    from peft.utils.integrations import dequantize_bnb_weight

    quantized = load_model(config.model.name, quantization_config=method.quantization_config())
    base = load_model(config.model.name)
    with torch.no_grad():
        for name, module in quantized.named_modules():
            if isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
                weight = dequantize_bnb_weight(module.weight, state=getattr(module, "state", None))
                base.get_submodule(name).weight.copy_(weight.to(torch.float32))
    return base


def merged_model(config, adapter: Path, dequantized: bool = False):
    """The run's model with its adapter folded into float32 base weights (a plain ``PreTrainedModel``).

    Raises:
        UserError: the method learns virtual tokens (prompt/prefix tuning), which cannot be merged, or
            ``dequantized`` was asked for a method that does not quantise.
    """
    method = get_training_method(config.method)
    if dequantized and method.quantization_config() is None:
        raise UserError(f"--dequantized applies to the QLoRA methods only; '{method.name}' is not quantised")
    if method.replaces_base_model:
        return method.load(None, adapter)
    if _is_prompt_learning(adapter):
        raise UserError(
            f"{method.name} learns virtual-token inputs, not weight updates, so it cannot be merged; "
            "use `peftlab export --adapter-only`"
        )
    from peft import PeftModel

    # By default never quantised: QLoRA adapters merge into the original float32 weights.
    base = dequantized_base(config, method) if dequantized else load_model(config.model.name)
    return PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().eval()


def export_run(run_dir: Path, output_dir: Path, merge: bool = True, dequantized: bool = False,
               fmt: str = "transformers", gguf_type: str = "f16") -> dict:
    """Write the trained model of ``run_dir`` to ``output_dir``; return a summary of what was written.

    ``fmt="gguf"`` writes ``model.gguf`` (the merged model) and, for LoRA, ``adapter.gguf`` (llama.cpp's
    LoRA format) with ``base.gguf`` (the base it applies to), matrices in ``gguf_type`` (f16 or f32).

    Raises:
        UserError: ``run_dir`` has no config or trained adapter, ``output_dir`` is not empty or lies inside
            the run, ``merge`` was asked for a method that cannot be merged, ``dequantized`` for a method
            that is not quantised or without ``merge``, or GGUF for a model llama.cpp's names do not cover.
    """
    if fmt not in ("transformers", "gguf") or gguf_type not in ("f16", "f32"):
        raise UserError(f"--format takes transformers or gguf and --gguf-type f16 or f32, not {fmt}/{gguf_type}")
    if fmt == "gguf" and not merge:
        raise UserError("--format gguf writes the merged model (and, for LoRA, the adapter too); drop --adapter-only")
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    run = RunDir(run_dir)
    config = run.read_config()
    adapter = run.adapter
    if not adapter.is_dir():
        raise UserError(f"no trained adapter in {adapter}; run `peftlab train` with the same output_dir first")
    _check_output_dir(run_dir, output_dir)
    if dequantized and not merge:
        raise UserError("--dequantized only applies when merging; drop --adapter-only")
    method = get_training_method(config.method)
    tokenizer = load_tokenizer(config.model.name)

    if fmt == "gguf":
        output_dir.mkdir(parents=True, exist_ok=True)
        written = _write_gguf(config, method, adapter, tokenizer, output_dir, dequantized, gguf_type == "f16")
    elif merge:
        model = merged_model(config, adapter, dequantized)
        output_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(output_dir)
    else:
        shutil.copytree(adapter, output_dir, dirs_exist_ok=True)
    if fmt != "gguf":
        tokenizer.save_pretrained(output_dir)

    info = {
        "run_dir": str(run_dir.resolve()),
        "method": method.name,
        "base_model": config.model.name,
        "merged": merge,
        "merged_into": ("dequantized weights" if dequantized else "float32 weights") if merge else None,
        "format": ("gguf: " + ", ".join(written) if fmt == "gguf"
                   else "transformers model" if merge or method.replaces_base_model else "peft adapter"),
        "size_mb": round(sum(f.stat().st_size for f in output_dir.rglob("*") if f.is_file()) / 2**20, 2),
    }
    (output_dir / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return info


def _write_gguf(config, method, adapter: Path, tokenizer, output_dir: Path, dequantized: bool, half: bool) -> list[str]:
    """``model.gguf`` (merged); for a LoRA adapter also ``adapter.gguf`` and the ``base.gguf`` it applies to."""
    from peftlab.stages.gguf_export import plain_lora, write_lora, write_model

    name = f"{Path(config.model.name).name}-{method.name}"
    model = merged_model(config, adapter, dequantized)
    write_model(model, tokenizer, output_dir / "model.gguf", name, half)
    written = ["model.gguf"]
    if not method.replaces_base_model and plain_lora(adapter):  # rsLoRA/DoRA: llama.cpp has no field for them
        write_lora(adapter, model.config, output_dir / "adapter.gguf", name)
        write_model(load_model(config.model.name), tokenizer, output_dir / "base.gguf", Path(config.model.name).name,
                    half)
        written += ["adapter.gguf", "base.gguf"]
    return written
