"""The ``peftlab`` command line. Every command takes an optional YAML config plus ``key=value`` overrides
and writes into the run directory ``output_dir``. User mistakes end with one line on stderr and exit 2."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from peftlab.api import config as api_config
from peftlab.config import Config
from peftlab.errors import TrainingInterrupted, UserError
from peftlab.runs.disk import full_disk_line, out_of_space

# The registries are cheap to import (no torch, no transformers): the help texts list their names, and a
# config is checked against them before any command imports ``peftlab.stages.pipeline``, which loads torch.
from peftlab.methods import METHODS, TRAINING_METHODS
from peftlab.tasks import TASKS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Build and inspect datasets.")
app.add_typer(data_app, name="data")

ConfigOption = typer.Option(None, "--config", "-c", help="YAML config file.", show_default=False)
OverridesArgument = typer.Argument(None, help="Config overrides such as train.epochs=2 method.r=8.")
ModelOption = typer.Option(None, "--model", help="Shortcut for model.name=...")
MethodOption = typer.Option(None, "--method", help=f"Shortcut for method.name=...: one of {', '.join(METHODS)}.")
TrainMethodOption = typer.Option(
    None, "--method", help=f"Shortcut for method.name=...: one of {', '.join(TRAINING_METHODS)}."
)
OutputOption = typer.Option(None, "--output-dir", "-o", help="Shortcut for output_dir=...")
# Not a click.Choice: a task may also be any importable module that defines one (docs/design.md).
TaskOption = typer.Option(
    None, "--task", help=f"Shortcut for task=...: {', '.join(TASKS)}, or an importable module[:Class] defining a Task."
)


def _config(config_file, overrides, *, check_method: str | None = "any", **shortcuts) -> Config:
    """The command's config, its method (``check_method``: ``"any"``, ``"training"``, or None when the
    command uses none) and its task checked (:func:`peftlab.api.config`; ``shortcuts`` are its ``model``,
    ``method``, ``task`` and ``output_dir``).

    Raises:
        UserError: a bad config, an unknown method or task, or a method option the method does not take;
            all before torch is imported, so a typo costs well under a second.
    """
    return api_config(config_file, list(overrides or []), check_method=check_method, **shortcuts)


@app.command()
def train(
    config_file: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = OverridesArgument,
    model: Optional[str] = ModelOption,
    method: Optional[str] = TrainMethodOption,
    task: Optional[str] = TaskOption,
    output_dir: Optional[str] = OutputOption,
):
    """Fine-tune the model with the configured method; resumes from the last complete checkpoint if interrupted."""
    config = _config(config_file, overrides, check_method="training", model=model, method=method, task=task,
                     output_dir=output_dir)
    from peftlab.stages.pipeline import run_command

    metrics = run_command(config, "train")
    if not metrics:  # a data-parallel helper process: the main one reports
        return
    typer.echo(f"adapter saved in {Path(config.output_dir) / 'adapter'}; trainable params {metrics['trainable_params']:,}")


@app.command()
def generate(
    config_file: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = OverridesArgument,
    model: Optional[str] = ModelOption,
    method: Optional[str] = MethodOption,
    task: Optional[str] = TaskOption,
    output_dir: Optional[str] = OutputOption,
):
    """Generate k candidates per test problem into predictions.jsonl; an interrupted run resumes at the first
    unfinished batch."""
    config = _config(config_file, overrides, model=model, method=method, task=task, output_dir=output_dir)
    from peftlab.stages.pipeline import run_command

    run_command(config, "generate")
    typer.echo(f"predictions written to {Path(config.output_dir) / 'predictions.jsonl'}")


@app.command()
def evaluate(
    config_file: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = OverridesArgument,
    predictions: Optional[Path] = typer.Option(None, help="JSONL to score (default: the run's predictions)."),
    partial: bool = typer.Option(
        False, "--partial", help="Score a file that covers only some test problems (reported as partial)."
    ),
    task: Optional[str] = TaskOption,
    output_dir: Optional[str] = OutputOption,
):
    """Score predictions against the task's test set into metrics.json (ids must match the test set)."""
    config = _config(config_file, overrides, check_method=None, task=task, output_dir=output_dir)
    from peftlab.stages.pipeline import run_command

    metrics = run_command(config, "evaluate", predictions=predictions, partial=partial)
    for key, value in metrics.items():
        typer.echo(f"{key}: {value}")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="Run directory written by `peftlab train` (its -o).", show_default=False),
    output_dir: Path = typer.Option(
        ..., "--output-dir", "-o", help="New directory for the export.", show_default=False
    ),
    merge: bool = typer.Option(
        True,
        "--merge/--adapter-only",
        help="--merge: fold LoRA/(IA)3/QLoRA into float32 base weights and write a plain transformers model "
        "(prompt/prefix tuning cannot be merged). --adapter-only: copy the PEFT adapter.",
    ),
    fmt: str = typer.Option(
        "transformers", "--format", help="transformers: a model directory (or the PEFT adapter). gguf: model.gguf "
        "(merged) for llama.cpp/Ollama, and for LoRA adapter.gguf plus the base.gguf it applies to.",
    ),
    gguf_type: str = typer.Option("f16", "--gguf-type", help="GGUF matrices in f16 or f32 (norms stay f32)."),
    dequantized: bool = typer.Option(
        False,
        "--dequantized",
        help="QLoRA only: merge into the de-quantised 4/8-bit weights the adapter was trained on "
        "(reproduces the qlora-4bit model's outputs) instead of the original float32 weights.",
    ),
):
    """Export a trained run as a standalone model directory plus tokenizer: `peftlab export --merge -o OUT RUN_DIR`.

    See docs/methods.md ("Export")."""
    from peftlab.stages.export import export_run

    info = export_run(run_dir, output_dir, merge, dequantized, fmt, gguf_type)
    typer.echo(f"exported {info['method']} ({info['format']}, {info['size_mb']} MB) to {output_dir}")


@app.command("export-samples")
def export_samples_command(
    run_dir: Path = typer.Argument(..., help="Run directory with predictions.jsonl (its -o).", show_default=False),
    out: Path = typer.Option(..., "--out", help="File to write (.jsonl for evalplus, .json for bigcode).",
                             show_default=False),
    fmt: str = typer.Option("evalplus", "--format", help="evalplus: {task_id, solution} JSONL rows. bigcode: a "
                            "JSON list of generations per problem (bigcode-evaluation-harness --load_generations_path)."),
):
    """Write an execution-scored run's candidates as whole programs for EvalPlus or bigcode-evaluation-harness;
    `peftlab evaluate --predictions FILE` reads both back."""
    from peftlab.interop.samples import export_samples

    count = export_samples(run_dir, fmt, out)
    typer.echo(f"wrote {count} samples ({fmt}) to {out}")


@data_app.command("mine-codegen")
def mine_codegen(
    out: Path = typer.Option(..., "--out", help="Directory for train/validation/test.jsonl and card.json."),
    source: Optional[list[str]] = typer.Option(
        None, "--source",
        help="stdlib (the default: listed stdlib modules), a pinned source distribution NAME==VERSION "
        "(e.g. algorithms==1.0.1, fetched once from PyPI and cached), or a local directory. Repeat to merge.",
    ),
    seed: int = typer.Option(0, help="Seed of the split by file."),
    tokenizer: str = typer.Option("smollm2-135m", help="Tokenizer for the card's token-length statistics."),
    include_tests: bool = typer.Option(False, "--include-tests", help="Also mine a source tree's test files."),
    contamination_check: bool = typer.Option(
        True, "--contamination-check/--no-contamination-check",
        help="Drop functions that duplicate a HumanEval or MBPP solution (counted in the card).",
    ),
):
    """Mine documented functions from Python source trees into a code-generation dataset."""
    from peftlab.tasks.codegen.build import build_from_specs

    loaded = None
    if tokenizer:
        def loaded():  # after the sources resolve: a missing one must not wait for a model conversion
            from peftlab.models.loading import load_tokenizer

            return load_tokenizer(tokenizer)
    card = build_from_specs(out, list(source or []), seed, tokenizer=loaded, tokenizer_name=tokenizer or None,
                            exclude_tests=not include_tests, check_contamination=contamination_check)
    counts = card["counts"]
    dropped = card.get("filtered", {}).get("dropped", 0)
    typer.echo(f"wrote {out}: train {counts['train']}, validation {counts['validation']}, test {counts['test']}"
               f"; {dropped} dropped as benchmark duplicates")


@data_app.command("mine")
def mine_project_command(
    project: str = typer.Argument(..., help="A directory with a test suite, or NAME==VERSION of a source "
                                  "distribution (e.g. algorithms==1.0.1, fetched once from PyPI).", show_default=False),
    seed: int = typer.Option(0, help="Seed of the split by module (the mined-project tasks' seed option, docs/config.md)."),
    workers: int = typer.Option(2, help="Sandboxes run at once while every function is checked."),
    tokenizer: str = typer.Option("smollm2-135m", help="Tokenizer for the card's token-length statistics "
                                  "('' for none)."),
    force: bool = typer.Option(False, "--force", help="Mine again even if the cache has this project."),
):
    """Run a project's tests once under coverage and record every function with the tests that exercise it
    (cached by source hash; the mined-project tasks, project-codegen, testgen and repair, read it from there)."""
    from peftlab.tasks.mined_projects import mined_project

    loaded = None
    if tokenizer:
        def loaded():  # called only if the project must be mined, once its source resolved
            from peftlab.models.loading import load_tokenizer

            return load_tokenizer(tokenizer)
    mined = mined_project(project, seed=seed, tokenizer=loaded, tokenizer_name=tokenizer, workers=workers,
                          progress=lambda message: typer.echo(message, err=True), force=force)
    card = mined.card
    functions, counts = card["functions"], card["counts"]
    typer.echo(f"{mined.spec}: {functions['records']} functions with tests ({functions['with_direct_test']} with a "
               f"direct test) from {card['tests']['kept']}/{card['tests']['total']} tests kept; train "
               f"{counts['train']}, validation {counts['validation']}, test {counts['test']}; "
               f"{card['seconds']['total']:g} s; card: {mined.directory / 'card.json'}")


@data_app.command("preview")
def preview(
    config_file: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = OverridesArgument,
    count: int = typer.Option(2, "--count", "-n", help="How many training records to show."),
):
    """Show how training records are tokenized: prompt tokens (no loss) dimmed, loss-bearing tokens bold."""
    config = _config(config_file, overrides, check_method=None)
    from peftlab.stages.preview import show_preview

    show_preview(config, count)


@app.command()
def run(
    config_file: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = OverridesArgument,
    model: Optional[str] = ModelOption,
    method: Optional[str] = MethodOption,
    task: Optional[str] = TaskOption,
    output_dir: Optional[str] = OutputOption,
):
    """Train (for a training method), generate and evaluate in one go; finished stages are skipped."""
    config = _config(config_file, overrides, model=model, method=method, task=task, output_dir=output_dir)
    from peftlab.stages.pipeline import run_stages

    metrics = run_stages(config, announce=lambda stage: typer.echo(f"== {stage}"))
    if metrics:  # empty in a data-parallel helper process: the main one reports
        typer.echo(json.dumps(metrics, indent=2))


@app.command()
def study(
    study_file: Optional[Path] = typer.Argument(None, help="Study YAML (default: the built-in preset)."),
    preset: str = typer.Option("default", help="Built-in study when no file is given: default, separation, full, testgen, repair, decide-codegen, decide-repair, decide-testgen, java-repair or java-testgen."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", "-o", help="Overrides the study's output_dir."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed cells again."),
    devices: Optional[str] = typer.Option(
        None, "--devices", help="Run cells in parallel, one per GPU: auto (every visible GPU) or ids such as 0,1. "
        "Default: one cell at a time.", show_default=False,
    ),
    shard: Optional[str] = typer.Option(
        None, "--shard", help="Run only shard i/n of the cells (e.g. $SLURM_ARRAY_TASK_ID/4 in a job array); "
        "an adapter and the cells that reuse it stay in one shard.", show_default=False,
    ),
    executor: Optional[str] = typer.Option(
        None, "--executor", help="Where the cells run: local, ray (a Ray cluster) or slurm (a job array through "
        "submitit). Default: the study file's executor.kind, else local.", show_default=False,
    ),
    report: bool = typer.Option(True, help="Write the report when the matrix is complete."),
    dry_run: bool = typer.Option(
        False, "--dry-run",
        help="List the cells (hash, status, time estimate) and exit: nothing is trained, built or written.",
    ),
    plan: bool = typer.Option(
        False, "--plan",
        help="The dry run plus each declared hypothesis's power at the study's size; nothing is run.",
    ),
):
    """Run a study matrix (models x tasks x seeds x methods, plus sweeps); re-running skips finished cells."""
    from peftlab.study.command import parse_shard

    part = parse_shard(shard)
    if dry_run or plan:
        from peftlab.study.command import dry_run_study

        raise typer.Exit(dry_run_study(study_file, preset, output_dir, retry_failed, shard=part))
    from peftlab.study.command import parse_devices, run_study_command

    code = run_study_command(study_file, preset, output_dir, retry_failed, report, parse_devices(devices), part,
                             executor)
    raise typer.Exit(code)


@app.command("run-many")
def run_many(
    run_dirs: list[Path] = typer.Argument(..., help="Trained run directories of one base model.", show_default=False),
):
    """Finish several trained runs of one base model: generation loads the base once and switches adapters
    (PEFT multi-adapter; the same predictions as one load per run), then each run is evaluated."""
    from peftlab.runs.directory import RunDir
    from peftlab.stages.pipeline import run_stages
    from peftlab.stages.shared_base import generate_with_one_base

    configs = [RunDir(run_dir).read_config() for run_dir in run_dirs]
    generate_with_one_base(configs, announce=lambda stage: typer.echo(f"== {stage}"))
    for config in configs:
        metrics = run_stages(config, announce=lambda stage: typer.echo(f"== {stage}"))
        typer.echo(f"{config.output_dir}: " + ", ".join(f"{key} {value:.3f}" for key, value in metrics.items()
                                                        if key in ("pass@1", "em@1", "codebleu", "plausible@1")))


@app.command()
def report(
    runs_dir: Path = typer.Argument(..., help="A study directory, or a directory holding run directories."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report directory (default: RUNS_DIR/report)."),
):
    """Rebuild tables (Markdown, CSV, LaTeX), figures and report.html with bootstrap CIs from run directories."""
    from peftlab.report import build_report

    written = build_report(runs_dir, out)
    typer.echo(f"wrote {len(written)} files; open {written['report.html']}")


def main() -> None:
    # bitsandbytes warns at import that an optional hub-fetched CPU kernel is missing; we never fetch it.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        app()
    except UserError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        sys.exit(2)
    except TrainingInterrupted as stopped:
        typer.secho(str(stopped), fg="yellow", err=True)
        sys.exit(130)
    except Exception as error:  # a full disk outside the stages' own checks (a study's records, a report)
        if not out_of_space(error):
            raise
        where = Path(getattr(error, "filename", None) or Path.cwd())
        typer.secho(f"error: {full_disk_line(where, f'writing {where}')}", fg="red", err=True)
        sys.exit(2)



if __name__ == "__main__":
    main()
