"""``peftlab report``: rebuild every table, figure and the HTML page from run directories alone.

Output layout (``OUT`` defaults to ``RUNS_DIR/report``)::

    OUT/report.md                 all tables, the significance table, item-mean vs corpus flags, figure
                                  links, the memory-vs-score Pareto fronts, skipped runs
    OUT/report.html               the same, self-contained (figures embedded as data URIs)
    OUT/significance.{md,csv}     each method vs the best method of its model, per task and metric (the
                                  Markdown also carries the item-mean vs corpus flags)
    OUT/pairs.{md,json}           every pair of methods per task, model and item-level metric, Holm-adjusted
    OUT/forgetting.md             methods trained on another task's data vs the zero-shot base, per metric
    OUT/hypotheses.{md,json}      the study's declared hypotheses answered, with verdicts (confirmatory)
    OUT/tables/<task>.{md,csv,tex}
    OUT/figures/<task>-*.png

Every file is reproducible byte for byte from the same runs, except the ``<meta name="generated">`` line
of ``report.html`` (fixed too when ``SOURCE_DATE_EPOCH`` is set).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from peftlab.errors import UserError
from peftlab.report.collect import Collection, collect_runs, group_runs
from peftlab.report.engines import engine_agreement, engines_markdown
from peftlab.report.figures import PARETO_SUFFIX, FigureFile, group_figures
from peftlab.report.forgetting import forgetting, forgetting_markdown
from peftlab.report.html import render_html
from peftlab.report.hypotheses import Answer, answer_hypotheses, hypotheses_json, hypotheses_markdown, read_hypotheses
from peftlab.report.pairs import pairs_json, pairs_markdown
from peftlab.report.pareto import front_markdown
from peftlab.report.stats import GroupStats, group_stats
from peftlab.report.tables import (
    SIGNIFICANCE_NOTE, VALUES_NOTE, disagreement_markdown, latex_table, markdown_table, results_csv,
    significance_csv, significance_markdown,
)

OWNED = {"figures": ".png", "tables": (".md", ".csv", ".tex")}
"""Sub-folders of the output directory that the report owns: stale files of these types are removed."""


def _generated() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = time.gmtime(int(epoch)) if epoch and epoch.isdigit() else time.gmtime()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)


def _specs(groups: list[GroupStats]) -> dict:
    return {key: spec for stats in groups for key, spec in stats.specs.items()}


def _markdown(collection: Collection, groups: list[GroupStats], figures: dict[str, list[FigureFile]],
              answers: list[Answer]) -> str:
    name = collection.study or collection.root.name
    lines = [
        f"# peftlab report: {name}",
        "",
        f"{len(collection.runs)} finished runs, {len(collection.skipped)} skipped. {VALUES_NOTE}; the best "
        "value per model is bold. See docs/report.md for the statistics.",
        "",
        "## Hypotheses",
        "",
        hypotheses_markdown(answers, _specs(groups)),
    ]
    for stats in groups:
        lines += [f"## {stats.group.title}", "", markdown_table(stats)]
        front = front_markdown(stats)  # listed under the Pareto figure (after the figures when there is none)
        for figure in figures.get(stats.group.slug, []):
            lines += [f"![{figure.title}]({figure.path})", "", f"*{figure.caption}*", ""]
            if figure.path.endswith(PARETO_SUFFIX) and front:
                lines.append(front)
                front = ""
        if front:
            lines += [front]
    changes = forgetting(groups)
    if changes:
        lines += ["## Forgetting", "", forgetting_markdown(changes)]
    engines = engines_markdown(engine_agreement(groups))
    if engines:
        lines += ["## Engines", "", engines]
    lines += ["## Significance", "", SIGNIFICANCE_NOTE, "", significance_markdown(groups),
              "## All pairs", "", pairs_markdown(groups),
              "## Item mean vs corpus", "", disagreement_markdown(groups), "## Skipped runs", ""]
    if collection.skipped:
        lines += [f"- `{item.name}`{' ' + item.labels if item.labels else ''}: {item.status} ({item.reason})"
                  for item in collection.skipped]
    else:
        lines.append("None.")
    return "\n".join(lines).rstrip("\n") + "\n"


def _write(out_dir: Path, relative: str, text: str, written: dict[str, Path]) -> None:
    path = out_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    written[relative] = path


def _remove_stale(out_dir: Path, written: dict[str, Path]) -> None:
    for folder, suffixes in OWNED.items():
        directory = out_dir / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            relative = f"{folder}/{path.name}"
            if path.is_file() and path.name.endswith(suffixes) and relative not in written:
                path.unlink()


def build_report(runs_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the report of every finished run below ``runs_dir`` into ``out_dir`` (default
    ``runs_dir/report``); return ``{path relative to out_dir: absolute path}`` of every file written.

    Raises:
        UserError: ``runs_dir`` does not exist, or holds no finished run (``metrics.json`` and
            ``scored.jsonl``; in a study, a cell with status ``done``).
    """
    runs_path = Path(runs_dir)
    out_path = Path(out_dir) if out_dir is not None else runs_path / "report"
    collection = collect_runs(runs_path, exclude=out_path)
    if not collection.runs:
        why = f"; {len(collection.skipped)} unfinished or failed" if collection.skipped else ""
        raise UserError(f"no finished runs in {runs_path} (a run needs metrics.json and scored.jsonl{why})")
    out_path = out_path.resolve()
    out_path.mkdir(parents=True, exist_ok=True)
    groups = [group_stats(group) for group in group_runs(collection.runs)]
    written: dict[str, Path] = {}
    figures: dict[str, list[FigureFile]] = {}
    for stats in groups:
        slug = stats.group.slug
        _write(out_path, f"tables/{slug}.md", markdown_table(stats), written)
        _write(out_path, f"tables/{slug}.csv", results_csv(stats), written)
        _write(out_path, f"tables/{slug}.tex", latex_table(stats), written)
        figures[slug] = group_figures(stats, out_path)
        written.update({figure.path: out_path / figure.path for figure in figures[slug]})
    significance = significance_markdown(groups) + "\n## Item mean vs corpus\n\n" + disagreement_markdown(groups)
    _write(out_path, "significance.md", significance, written)
    _write(out_path, "significance.csv", significance_csv(groups), written)
    _write(out_path, "pairs.md", pairs_markdown(groups), written)
    _write(out_path, "forgetting.md", forgetting_markdown(forgetting(groups)), written)
    _write(out_path, "pairs.json", pairs_json(groups), written)
    answers = answer_hypotheses(read_hypotheses(runs_path), groups)
    _write(out_path, "hypotheses.md", hypotheses_markdown(answers, _specs(groups)), written)
    _write(out_path, "hypotheses.json", hypotheses_json(answers), written)
    _write(out_path, "report.md", _markdown(collection, groups, figures, answers), written)
    _write(out_path, "report.html", render_html(collection, groups, figures, out_path, _generated(), answers), written)
    _remove_stale(out_path, written)
    return dict(sorted(written.items()))
