"""The report's tables as Markdown, CSV and LaTeX.

Every format is built from the same cells (:func:`result_cells`, :func:`significance_cells`), so they
agree to the digit. The best value of each metric per model is bold in Markdown, HTML and LaTeX, and
listed in the CSV's ``best`` column. Values are "value [95% CI low, high]": the mean over test items, except
CodeBLEU (corpus), which is corpus-level like metrics.json (docs/report.md).
"""

from __future__ import annotations

import csv
import io

from peftlab.report.stats import GroupStats, metric_title

VALUES_NOTE = (
    "CodeBLEU (corpus) is corpus-level, as in metrics.json, with a bootstrap interval over resampled test "
    "items; CodeBLEU (item mean) averages per-item scores (descriptive, untested); every other value is a "
    "mean over test items (with several seeds: of each item's mean over the seeds, and 'seeds low–high' gives "
    "the lowest and highest single seed's value). Intervals are 95% percentile bootstrap (1000 resamples)"
)
SIGNIFICANCE_NOTE = (
    "Each method against the best method of the same model and task, on the test items both share: "
    "McNemar's exact test for 0/1 scores (EM, pass@k), a paired permutation test on the corpus statistic for "
    "CodeBLEU (items' outputs swapped between the two methods), a paired sign-flip permutation test otherwise "
    "(seed-averaged or fractional scores). Difference = method − best. Exploratory: p (Holm) is the pair's "
    "adjusted p among all pairs of the same model and metric (the best method is chosen after looking, so "
    "adjusting over its comparisons alone would overstate significance)."
)
DISAGREEMENT_NOTE = (
    "Pairs of methods of one model that a metric's corpus value and its item mean rank in opposite order. "
    "Trust the corpus value (the one the tables and tests use); the item mean weighs every problem equally, "
    "so short candidates on short references move it (docs/metrics.md)."
)

LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "–": "--",
}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (``_ % & # $ { } ~ ^ \\``)."""
    return "".join(LATEX_SPECIAL.get(char, char) for char in str(text))


def format_params(count, percent) -> str:
    if count is None:  # no training keys: a prompting baseline
        return "0"
    text = f"{int(round(count)):,}"
    if percent is None or not count:
        return text
    return f"{text} ({percent:.2f}%)" if percent >= 0.1 else f"{text} ({percent:.2g}%)"


def _shown_columns(stats: GroupStats) -> tuple[bool, bool]:
    """Whether the sweep and seeds columns are needed."""
    sweep = any(row.row.sweep for row in stats.rows)
    seeds = any(len(row.row.runs) > 1 for row in stats.rows)
    return sweep, seeds


def result_cells(stats: GroupStats) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Header and rows of a group's results table: each cell is (text, is_best)."""
    sweep, seeds = _shown_columns(stats)
    header = ["Model", "Method"] + (["Sweep"] if sweep else []) + (["Seeds"] if seeds else [])
    header += ["Trainable params"] + [metric_title(metric, stats.specs) for metric in stats.metrics]
    rows = []
    for row_stats in stats.rows:
        row = row_stats.row
        cells = [(row.model, False), (row.method, False)]
        if sweep:
            cells.append((row.sweep_text or "–", False))
        if seeds:
            cells.append((str(len(row.runs)), False))
        cells.append((format_params(row.metric("trainable_params"), row.metric("trainable_percent")), False))
        for metric in stats.metrics:
            estimate = row_stats.estimates.get(metric)
            text = estimate.text() if estimate else "–"
            cells.append((text + seed_spread(row_stats, metric), metric in row_stats.best))
        rows.append(cells)
    return header, rows


def seed_spread(row_stats, metric: str) -> str:
    """`` seeds 0.500–0.550`` (each seed's own mean, lowest to highest) for a row with more than one seed."""
    means = row_stats.seed_means.get(metric) or []
    return f" seeds {min(means):.3f}–{max(means):.3f}" if len(means) > 1 else ""


def _p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def significance_cells(groups: list[GroupStats]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the significance table: every row against the best row of its model."""
    header = ["Task", "Model", "Metric", "Method", "Best method", "Difference", "n", "p", "p (Holm)", "Test"]
    rows = []
    for stats in groups:
        for c in stats.comparisons:
            rows.append([
                stats.group.title, c.model, metric_title(c.metric, stats.specs), c.method, c.best, f"{c.difference:+.3f}",
                str(c.n), _p_text(c.p), _p_text(c.p_holm), c.test,
            ])
    return header, rows


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _md_table(header: list[str], rows: list[list[str]], numeric: range) -> str:
    align = ["---:" if index in numeric else "---" for index in range(len(header))]
    lines = ["| " + " | ".join(_md_escape(cell) for cell in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_md_escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown_table(stats: GroupStats) -> str:
    header, rows = result_cells(stats)
    first_number = header.index("Trainable params")
    texts = [[f"**{text}**" if best else text for text, best in row] for row in rows]
    return _md_table(header, texts, range(first_number, len(header)))


def significance_markdown(groups: list[GroupStats]) -> str:
    header, rows = significance_cells(groups)
    if not rows:
        return "No comparisons: every model has a single method per task.\n"
    return _md_table(header, rows, range(header.index("Difference"), header.index("Test")))


def _csv_text(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _number(value, digits: int = 6) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.{digits}f}"
    return str(int(value))


def results_csv(stats: GroupStats) -> str:
    """One line per row: labels, costs, and value, CI low and CI high per metric (full precision);
    ``best`` lists the metrics for which the row is the best of its model."""
    header = ["task", "dataset", "model", "method", "sweep", "seeds", "runs", "n_items", "trainable_params",
              "trainable_percent", "peak_memory_mb", "train_time_s"]
    for metric in stats.metrics:
        header += [metric, f"{metric}_ci_low", f"{metric}_ci_high", f"{metric}_seed_min", f"{metric}_seed_max"]
    header.append("best")
    rows = []
    for row_stats in stats.rows:
        row = row_stats.row
        line = [
            stats.group.task, stats.group.dataset, row.model, row.method, row.sweep_text,
            " ".join(str(run.seed) for run in row.runs), " ".join(run.name for run in row.runs), len(row_stats.ids),
            _number(row.metric("trainable_params") or 0), _number(row.metric("trainable_percent") or 0),
            _number(row.metric("peak_memory_mb"), 1), _number(row.metric("train_time_s"), 1),
        ]
        for metric in stats.metrics:
            estimate = row_stats.estimates.get(metric)
            line += [_number(estimate.value), _number(estimate.low), _number(estimate.high)] if estimate else ["", "", ""]
            means = row_stats.seed_means.get(metric) or []
            line += [_number(min(means)), _number(max(means))] if len(means) > 1 else ["", ""]
        line.append(";".join(metric for metric in stats.metrics if metric in row_stats.best))
        rows.append(line)
    return _csv_text(header, rows)


def significance_csv(groups: list[GroupStats]) -> str:
    header = ["task", "dataset", "model", "metric", "method", "best_method", "difference", "n", "p", "p_holm", "test"]
    rows = [
        [stats.group.task, stats.group.dataset, c.model, c.metric, c.method, c.best, _number(c.difference),
         c.n, f"{c.p:.6g}", f"{c.p_holm:.6g}", c.test]
        for stats in groups for c in stats.comparisons
    ]
    return _csv_text(header, rows)


def latex_table(stats: GroupStats) -> str:
    """A ``table`` environment with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
    header, rows = result_cells(stats)
    first_number = header.index("Trainable params")
    spec = "l" * first_number + "r" * (len(header) - first_number)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(cell) for cell in header) + r" \\",
        r"\midrule",
    ]
    previous_model = None
    for row in rows:
        if previous_model is not None and row[0][0] != previous_model:
            lines.append(r"\midrule")
        previous_model = row[0][0]
        cells = [rf"\textbf{{{latex_escape(text)}}}" if best else latex_escape(text) for text, best in row]
        lines.append(" & ".join(cells) + r" \\")
    caption = (
        f"Results on {latex_escape(stats.group.title)}: mean over test items (CodeBLEU (corpus): corpus-level) "
        "with 95\\% bootstrap confidence interval; best value per model in bold."
    )
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{caption}}}",
        rf"\label{{tab:{stats.group.slug}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def _ranking(pair: tuple[float, float]) -> str:
    high, low = pair
    return f"{high:.3f} {'>' if high > low else '<'} {low:.3f}"


def disagreement_cells(groups: list[GroupStats]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the item-mean vs corpus table: per pair, the corpus's higher row first."""
    header = ["Task", "Model", "Metric", "Corpus ranks higher", "Corpus ranks lower", "Corpus", "Item mean"]
    rows = [
        [stats.group.title, d.model, metric_title(d.metric, stats.specs), d.higher, d.lower, _ranking(d.corpus),
         _ranking(d.item_mean)]
        for stats in groups for d in stats.disagreements
    ]
    return header, rows


def row_notes(groups: list[GroupStats]) -> list[str]:
    """One line per row scored on part of its test set, whose training data copies test items, or whose
    CodeBLEU needed recomputing, fell back to the item mean, or carries codebleu's corpus data-flow quirk."""
    notes = []
    for stats in groups:
        for row in stats.rows:
            where = f"{stats.group.title} / {row.row.model} / {row.row.label}"
            for run in row.row.partial_runs:
                total = run.metrics.get("test_problems_total", "?")
                missing = run.metrics.get("missing_ids", 0)
                scored = total - missing if isinstance(total, int) else "?"
                notes.append(f"{where}: {run.name} was scored on {scored} of {total} test problems "
                             "(evaluate --partial); its values are not comparable with complete runs.")
            for run in row.row.runs:
                copies = (run.metrics.get("overlap_exact") or 0) + (run.metrics.get("overlap_near") or 0)
                if copies:
                    notes.append(f"{where}: {run.name} saw {copies} training items that copy its test items' "
                                 f"solutions ({run.metrics.get('overlap_exact', 0)} exact, "
                                 f"{run.metrics.get('overlap_near', 0)} near; data_card.json lists them): its "
                                 "score may come from memory.")
            if row.recomputed:
                notes.append(f"{where}: CodeBLEU statistics of {row.recomputed} items recomputed from the stored "
                             "top candidate and reference (scored.jsonl predates per-item statistics).")
            if row.fallback:
                notes.append(f"{where}: no CodeBLEU statistics and no stored candidates to recompute them from; "
                             "no corpus value, and the item mean is the stored per-item codebleu (the library's "
                             "own per-item rule, data flow 0 counted as 1).")
            if row.library_codebleu is not None:
                notes.append(f"{where}: no data-flow edge matches; codebleu 0.7.0 counts that as a perfect "
                             f"data-flow match (metrics.json: {row.library_codebleu:.3f}), the report as 0 "
                             "(or leaves data flow out where no side has any).")
    return notes


def disagreement_markdown(groups: list[GroupStats]) -> str:
    header, rows = disagreement_cells(groups)
    text = DISAGREEMENT_NOTE + "\n\n"
    text += _md_table(header, rows, range(5, 7)) if rows else "None: item mean and corpus rank every pair alike.\n"
    notes = row_notes(groups)
    if notes:
        text += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    return text
