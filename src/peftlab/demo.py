"""The main job: mine the default dataset, LoRA-tune the bundled model, compare it with zero-shot.

Every stage is skipped when its output already exists, so an interrupted demo resumes where it stopped
(training itself resumes from its last checkpoint).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.table import Table

from peftlab.config import load_config
from peftlab.pipeline import run_stages

DEMO_CONFIG = files("peftlab") / "configs" / "demo.yaml"


def results_table(results: dict[str, dict], k: int) -> Table:
    table = Table(title="peftlab demo: mined stdlib code generation, SmolLM2-135M")
    for column in ("method", "EM@1", f"EM@{k}", "CodeBLEU", "trainable params", "train time (s)"):
        table.add_column(column, justify="right")
    for method, metrics in results.items():
        train_time = metrics.get("train_time_s")
        table.add_row(
            method,
            f"{metrics['em@1']:.3f}",
            f"{metrics.get(f'em@{k}', metrics['em@1']):.3f}",
            f"{metrics['codebleu']:.3f}",
            f"{metrics.get('trainable_params', 0):,}",
            f"{train_time:.0f}" if train_time else "-",
        )
    return table


def run_demo(output_dir: Path, overrides: list[str]) -> dict[str, dict]:
    """Run (or resume) the demo under ``output_dir`` and print the comparison table."""
    from peftlab.data.build import build_codegen_dataset

    console = Console()
    data_dir = output_dir / "data"
    if not (data_dir / "card.json").is_file():
        console.rule("[bold]mine the stdlib code-generation dataset")
        card = build_codegen_dataset(data_dir, None, seed=0, tokenizer_name=None)
        console.print(f"counts: {card['counts']}")
    results = {}
    for method in ("zero-shot", "lora"):
        config = load_config(
            DEMO_CONFIG,
            [f"data.dir={data_dir}", f"output_dir={output_dir / method}", f"method.name={method}", *overrides],
        )
        results[method] = run_stages(config, announce=lambda stage: console.rule(f"[bold]{stage}"))
    console.print(results_table(results, config.generation.k))
    console.print(f"run directories: {output_dir}/<method>/ (config.yaml, metrics.json, predictions.jsonl)")
    return results
