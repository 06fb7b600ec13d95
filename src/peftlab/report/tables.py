"""The report's tables as Markdown, CSV and LaTeX.

Every format is built from the same cells (:func:`result_cells`, :func:`significance_cells`), so they
agree to the digit. The best value of each metric per model is bold in Markdown, HTML and LaTeX, and
listed in the CSV's ``best`` column. Values are "mean [95% CI low, high]" over test items.
"""

from __future__ import annotations

import csv
import io

from peftlab.report.stats import GroupStats, metric_title

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
    header += ["Trainable params"] + [metric_title(metric) for metric in stats.metrics]
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
            cells.append((estimate.text() if estimate else "–", metric in row_stats.best))
        rows.append(cells)
    return header, rows


def _p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def significance_cells(groups: list[GroupStats]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the significance table: every row against the best row of its model."""
    header = ["Task", "Model", "Metric", "Method", "Best method", "Difference", "n", "p", "p (Holm)", "Test"]
    rows = []
    for stats in groups:
        for c in stats.comparisons:
            rows.append([
                stats.group.title, c.model, metric_title(c.metric), c.method, c.best, f"{c.difference:+.3f}",
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
        header += [metric, f"{metric}_ci_low", f"{metric}_ci_high"]
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
        f"Results on {latex_escape(stats.group.title)}: mean over test items with 95\\% bootstrap confidence "
        "interval; best value per model in bold."
    )
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{caption}}}",
        rf"\label{{tab:{stats.group.slug}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"
