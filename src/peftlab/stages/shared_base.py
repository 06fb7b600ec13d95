"""Many adapters, one base: the generate stage of several trained runs with the base model loaded once.

A rank sweep, a data-size sweep or several seeds train many adapters of one kind on one base model; generating
for each run in its own process loads the base each time. Here it is loaded once, each run's adapter is
attached under its own name (PEFT's multi-adapter ``load_adapter``), and each run's generate stage runs with
its adapter active (``set_adapter``) through the same :func:`peftlab.stages.pipeline.run_stage` as a single
run: same checks, same records, the same predictions (test). Runs whose generation is already done are skipped.

What can share: runs of one base model whose adapters are of one PEFT type, loaded by PEFT's own loader on a
float32 base (not QLoRA: its base is quantised; not a full fine-tune: it has no base), with the exact engine.
"""

from __future__ import annotations

import json
from pathlib import Path

from peftlab.config import Config
from peftlab.errors import UserError
from peftlab.methods import get_training_method
from peftlab.methods.base import AdaptationMethod
from peftlab.models.devices import resolve_placement
from peftlab.models.loading import load_model
from peftlab.runs.directory import RunDir
from peftlab.stages.pipeline import adapter_dir, run_stage, trains


def _adapter_type(config: Config) -> str:
    adapter = adapter_dir(config, Path(config.output_dir))
    settings = adapter / "adapter_config.json"
    if not settings.is_file():
        raise UserError(f"{config.output_dir}: no trained adapter in {adapter}; train it first (`peftlab train`)")
    return json.loads(settings.read_text(encoding="utf-8")).get("peft_type", "?")


def why_not_shared(configs: list[Config]) -> str | None:
    """Why these runs cannot generate from one loaded base, or None when they can."""
    if len({config.model.name for config in configs}) > 1:
        return "they use different base models"
    for config in configs:
        method = get_training_method(config.method) if trains(config) else None
        if method is None or method.replaces_base_model or method.quantization_config() is not None \
                or type(method).load is not AdaptationMethod.load:
            return f"{config.output_dir} ({config.method.name}) has no PEFT adapter on a float32 base"
        if config.generation.engine != "exact":
            return f"{config.output_dir} generates with the {config.generation.engine} engine"
    if len({_adapter_type(config) for config in configs}) > 1:
        return "their adapters are of different PEFT types"
    return None


def generate_with_one_base(configs: list[Config], announce=print) -> list[dict]:
    """Run the generate stage of every run in ``configs`` that has not done it, loading the base once;
    return each run's metrics (as recorded).

    Raises:
        UserError: :func:`why_not_shared` names a reason, or a run's checks fail (as ``peftlab generate``).
    """
    from peft import PeftModel

    reason = why_not_shared(configs)
    if reason:
        raise UserError(f"these runs cannot share one loaded base: {reason}")
    todo = [config for config in configs if not RunDir(config.output_dir).is_done("generate")]
    if todo:
        placement = resolve_placement(todo[0].model)
        model = None
        for number, config in enumerate(todo):
            adapter = str(adapter_dir(config, Path(config.output_dir)))
            if model is None:  # the base, loaded once
                model = PeftModel.from_pretrained(load_model(config.model.name, placement=placement), adapter,
                                                  adapter_name=f"run{number}")
            else:
                model.load_adapter(adapter, adapter_name=f"run{number}")
        model = (model.to(placement.device) if placement.on_gpu else model).eval()
        for number, config in enumerate(todo):
            model.set_adapter(f"run{number}")
            run = RunDir(config.output_dir)
            with run.lock():
                run.check_same_config(config)
                run_stage(config, "generate", announce, model=model)
    return [RunDir(config.output_dir).read_metrics() for config in configs]
