"""The self-contained HTML report: tables, figures as base64 PNG data URIs, no external resources.

The only line that changes between two builds from the same runs is ``<meta name="generated" ...>``.
A small inline script marks ``<body>`` with ``data-figures-ready="true"`` once every ``<img>`` has
decoded (``complete && naturalWidth > 0``); it exists for the browser test.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from peftlab.report.collect import Collection
from peftlab.report.figures import PARETO_SUFFIX, FigureFile
from peftlab.report.forgetting import NOTE as FORGETTING_NOTE
from peftlab.report.forgetting import forgetting, forgetting_cells
from peftlab.report.hypotheses import HYPOTHESES_NUMERIC, NOTE as HYPOTHESES_NOTE, Answer, hypotheses_cells
from peftlab.report.pairs import PAIRS_NUMERIC, pairs_cells
from peftlab.report.pareto import front_lines
from peftlab.report.stats import GroupStats
from peftlab.report.tables import (
    DISAGREEMENT_NOTE, SIGNIFICANCE_NOTE, VALUES_NOTE, row_notes, disagreement_cells, result_cells,
    significance_cells,
)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1150px; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8rem 0 1.2rem; font-size: .86rem; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { background: #f4f5f7; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 700; background: #eef7ee; }
figure { margin: 1rem 0 1.6rem; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .82rem; color: #555; } .note { font-size: .88rem; color: #444; }
nav ul { font-size: .9rem; } code { background: #f4f5f7; padding: 0 .2rem; }
"""

READY_SCRIPT = """
// For the browser test (tests/test_report_browser.py): mark the body element once every figure has decoded.
(function () {
  function check() {
    var images = Array.prototype.slice.call(document.images);
    var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
    document.body.setAttribute("data-images-loaded", loaded + "/" + images.length);
    if (loaded === images.length) { document.body.setAttribute("data-figures-ready", "true"); }
  }
  check();
  window.addEventListener("load", check);
  Array.prototype.forEach.call(document.images, function (img) { img.addEventListener("load", check); });
})();
"""


def _table(header: list[str], rows: list[list[tuple[str, bool]]], numeric: range = range(0)) -> str:
    def cell(tag: str, text: str, index: int, best: bool = False) -> str:
        classes = " ".join(name for name, on in (("num", index in numeric), ("best", best)) if on)
        attribute = f' class="{classes}"' if classes else ""
        return f"<{tag}{attribute}>{escape(text)}</{tag}>"

    head = "".join(cell("th", text, index) for index, text in enumerate(header))
    body = "\n".join(
        "<tr>" + "".join(cell("td", text, index, best) for index, (text, best) in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _disagreements(groups: list[GroupStats]) -> list[str]:
    header, rows = disagreement_cells(groups)
    parts = ['<h2 id="item-mean-vs-corpus">Item mean vs corpus</h2>',
             f'<p class="note">{escape(DISAGREEMENT_NOTE)}</p>']
    parts.append(_table(header, [[(text, False) for text in row] for row in rows], range(5, 7))
                 if rows else "<p>None: item mean and corpus rank every pair alike.</p>")
    notes = row_notes(groups)
    if notes:
        parts.append("<ul>\n" + "\n".join(f'<li class="note">{escape(note)}</li>' for note in notes) + "\n</ul>")
    return parts


def _figure(out_dir: Path, figure: FigureFile) -> str:
    data = base64.b64encode((out_dir / figure.path).read_bytes()).decode("ascii")
    return (
        f'<figure>\n<img src="data:image/png;base64,{data}" alt="{escape(figure.title)}">\n'
        f"<figcaption>{escape(figure.title)}. {escape(figure.caption)}</figcaption>\n</figure>"
    )


def render_html(
    collection: Collection, groups: list[GroupStats], figures: dict[str, list[FigureFile]], out_dir: Path,
    generated: str, answers: list[Answer] = (),
) -> str:
    """The report page; ``figures`` maps a group slug to its figures (PNG files under ``out_dir``)."""
    name = collection.study or collection.root.name
    runs, skipped = len(collection.runs), len(collection.skipped)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta name="generated" content="{escape(generated)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>peftlab report: {escape(name)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>peftlab report: {escape(name)}</h1>",
        f'<p class="note">{runs} finished run{"s" * (runs != 1)} in {len(groups)} table{"s" * (len(groups) != 1)}'
        f"; {skipped} skipped. {escape(VALUES_NOTE)}; the best value per model is bold. Rebuild with "
        f"<code>peftlab report {escape(collection.root.name)}</code>.</p>",
        "<nav><ul>",
    ]
    parts.append('<li><a href="#hypotheses">Hypotheses</a></li>')
    parts += [f'<li><a href="#{stats.group.slug}">{escape(stats.group.title)}</a></li>' for stats in groups]
    parts += ['<li><a href="#significance">Significance</a></li>', '<li><a href="#pairs">All pairs</a></li>',
              '<li><a href="#item-mean-vs-corpus">Item mean vs corpus</a></li>',
              '<li><a href="#skipped">Skipped runs</a></li>', "</ul></nav>"]
    parts.append('<h2 id="hypotheses">Hypotheses</h2>')
    if answers:
        header, rows = hypotheses_cells(list(answers), {k: v for stats in groups for k, v in stats.specs.items()})
        parts += [f'<p class="note">{escape(HYPOTHESES_NOTE)}</p>',
                  _table(header, [[(text, False) for text in row] for row in rows], HYPOTHESES_NUMERIC)]
    else:
        parts.append('<p class="note">The study declared no hypotheses: every table below is exploratory.</p>')
    for stats in groups:
        header, rows = result_cells(stats)
        parts.append(f'<h2 id="{stats.group.slug}">{escape(stats.group.title)}</h2>')
        parts.append(_table(header, rows, range(header.index("Trainable params"), len(header))))
        intro, lines = front_lines(stats)
        front = [f'<p class="note">{escape(intro)}</p>',
                 "<ul>\n" + "\n".join(f"<li>{escape(line)}</li>" for line in lines) + "\n</ul>"] if intro else []
        for figure in figures.get(stats.group.slug, []):  # the front's text under its figure, as in report.md
            parts.append(_figure(out_dir, figure))
            if figure.path.endswith(PARETO_SUFFIX):
                parts += front
                front = []
        parts += front
    changes = forgetting(groups)
    if changes:
        header, rows = forgetting_cells(changes)
        parts += ['<h2 id="forgetting">Forgetting</h2>', f'<p class="note">{escape(FORGETTING_NOTE)}</p>',
                  _table(header, [[(text, False) for text in row] for row in rows], range(5, 10))]
    header, rows = significance_cells(groups)
    parts.append('<h2 id="significance">Significance</h2>')
    parts.append(f'<p class="note">{escape(SIGNIFICANCE_NOTE)}</p>')
    numeric = range(header.index("Difference"), header.index("Test"))
    parts.append(_table(header, [[(text, False) for text in row] for row in rows], numeric)
                 if rows else "<p>No comparisons: every model has a single method per task.</p>")
    note, header, rows = pairs_cells(groups)
    parts += ['<h2 id="pairs">All pairs</h2>', f'<p class="note">{escape(note)}</p>']
    if rows:
        parts.append(_table(header, [[(text, False) for text in row] for row in rows], PAIRS_NUMERIC))
    parts += _disagreements(groups)
    parts.append('<h2 id="skipped">Skipped runs</h2>')
    if collection.skipped:
        skipped_rows = [[(item.name, False), (item.labels or "–", False), (item.status, False), (item.reason, False)]
                        for item in collection.skipped]
        parts.append(_table(["Run", "Labels", "Status", "Reason"], skipped_rows))
    else:
        parts.append("<p>None: every run found was finished.</p>")
    parts += [f"<script>{READY_SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"
