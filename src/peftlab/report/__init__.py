"""Reports rebuilt from run directories alone: tables (Markdown, CSV, LaTeX) with bootstrap confidence
intervals, paired significance tests, declared hypotheses answered with verdicts, figures, and one
self-contained HTML page. See docs/report.md."""

__all__ = ["build_report"]


def __getattr__(name: str):
    # Lazy: the study spec imports peftlab.report.declared, which must not pull in the statistics and plots.
    if name == "build_report":
        from peftlab.report.build import build_report

        return build_report
    raise AttributeError(f"module 'peftlab.report' has no attribute '{name}'")
