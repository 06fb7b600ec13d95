"""Reports rebuilt from run directories alone: tables (Markdown, CSV, LaTeX) with bootstrap confidence
intervals, paired significance tests, figures, and one self-contained HTML page. See docs/report.md."""

from peftlab.report.build import build_report

__all__ = ["build_report"]
