"""The report's figures: PNGs drawn with matplotlib's Agg backend, reproducible byte for byte.

Per table group: effectiveness against trainable parameters (log x; prompting baselines, which train no
parameters, sit in a shaded strip one decade left of the smallest trained method), effectiveness against
peak training memory (trained methods only: prompting baselines record none), the memory-vs-score Pareto
front of the primary metric (:mod:`peftlab.report.pareto`), EM@k over k, training and
validation loss per step of every trained row (its first seed's ``loss_history.jsonl``), and one figure
per swept config key (x = the key's value, a line per model × method). Error bars and bands are the 95%
bootstrap intervals of the tables. CodeBLEU is drawn at corpus level only; the secondary item-mean column
stays in the tables. PNGs carry no metadata (no Software, no date), and drawing runs under
matplotlib's default style, so a user's matplotlibrc does not change the bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.style
from matplotlib.figure import Figure  # pyplot-free: savefig renders PNGs with the Agg canvas, whatever the backend
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from peftlab.report.collect import sweep_key
from peftlab.report.pareto import group_fronts
from peftlab.report.stats import ITEM_MEAN, GroupStats, RowStats, metric_title

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
DPI = 100
PARETO_SUFFIX = "-pareto.png"


@dataclass
class FigureFile:
    path: str
    """Relative to the report directory (POSIX)."""
    title: str
    caption: str


def _plotted(stats: GroupStats) -> list[str]:
    return [metric for metric in stats.metrics if metric != ITEM_MEAN]


def _palette(stats: GroupStats) -> tuple[dict, dict]:
    colors = matplotlib.colormaps["tab10"].colors
    methods = sorted({row.row.method for row in stats.rows})
    models = sorted({row.row.model for row in stats.rows})
    return (
        {method: colors[index % len(colors)] for index, method in enumerate(methods)},
        {model: MARKERS[index % len(MARKERS)] for index, model in enumerate(models)},
    )


def _legend(fig: Figure, rows: list[RowStats], colors: dict, markers: dict) -> None:
    """Colour per method and (with several models) marker per model, for the methods and models drawn."""
    methods, models = {row.row.method for row in rows}, {row.row.model for row in rows}
    handles = [Line2D([], [], color=color, marker="o", linestyle="", label=method)
               for method, color in colors.items() if method in methods]
    if len(models) > 1:
        handles += [Line2D([], [], color="0.3", marker=marker, linestyle="", label=model)
                    for model, marker in markers.items() if model in models]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)


def _grid(count: int, title: str) -> tuple[Figure, list]:
    columns = min(3, count)
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(3.6 * columns + 1.8, 3.1 * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel().tolist()
    for extra in axes[count:]:
        extra.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return fig, axes[:count]


def _save(fig: Figure, out_dir: Path, name: str) -> str:
    path = out_dir / "figures" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return f"figures/{name}"


def _errorbar(ax, x, estimate, color, marker) -> None:
    ax.errorbar(
        [x], [estimate.value], yerr=[[estimate.value - estimate.low], [estimate.high - estimate.value]],
        color=color, marker=marker, markersize=6, capsize=3, linestyle="", alpha=0.9,
    )


def _decade_ticks(zero_x: float, largest: float, has_zero: bool) -> tuple[list[float], list[str]]:
    """Decade ticks from the baseline strip to the largest count; the strip's tick reads "0"."""
    first, last = round(math.log10(zero_x)), math.ceil(math.log10(largest))
    step = max(1, math.ceil((last - first) / 7))
    exponents = list(range(first, last + 1, step))
    labels = ["0" if has_zero and exponent == first else f"$10^{{{exponent}}}$" for exponent in exponents]
    return [10.0**exponent for exponent in exponents], labels


def effect_vs_params(stats: GroupStats, out_dir: Path) -> FigureFile | None:
    rows = [row for row in stats.rows if row.estimates]
    if not rows:
        return None
    colors, markers = _palette(stats)
    params = {id(row): row.row.metric("trainable_params") or 0 for row in rows}
    positive = [value for value in params.values() if value > 0]
    zero_x = 10 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1.0
    fig, axes = _grid(len(_plotted(stats)), f"{stats.group.title}: effectiveness vs trainable parameters")
    for ax, metric in zip(axes, _plotted(stats)):
        if any(value == 0 for value in params.values()):
            ax.axvspan(zero_x / 3, zero_x * 3, color="0.92", zorder=0)
            ax.text(zero_x, 0.98, "0 params", transform=blended_transform_factory(ax.transData, ax.transAxes),
                    ha="center", va="top", fontsize=7, color="0.35")
        for row in rows:
            if metric in row.estimates:
                x = params[id(row)] or zero_x
                _errorbar(ax, x, row.estimates[metric], colors[row.row.method], markers[row.row.model])
                if row.row.sweep:
                    ax.annotate(row.row.sweep_text, (x, row.estimates[metric].value), fontsize=6,
                                xytext=(4, 2), textcoords="offset points", color="0.3")
        ax.set_xscale("log")
        ax.set_xlim(zero_x / 4, max(positive + [zero_x]) * 4)
        ax.set_xticks(*_decade_ticks(zero_x, max(positive + [zero_x]), any(value == 0 for value in params.values())))
        ax.minorticks_off()
        ax.set_xlabel("trainable parameters (log)")
        ax.set_ylabel(metric_title(metric, stats.specs))
        ax.grid(True, alpha=0.3)
    _legend(fig, rows, colors, markers)
    name = _save(fig, out_dir, f"{stats.group.slug}-effect-vs-params.png")
    return FigureFile(name, f"{stats.group.title}: effectiveness vs trainable parameters",
                      "Value (CodeBLEU corpus-level, others mean over items) with 95% bootstrap CI. Prompting baselines (0 trainable parameters) are drawn in the "
                      "shaded strip on the left, one decade below the smallest trained method.")


def effect_vs_memory(stats: GroupStats, out_dir: Path) -> FigureFile | None:
    rows = [row for row in stats.rows if row.estimates and row.row.metric("peak_memory_mb") is not None]
    if not rows:
        return None
    colors, markers = _palette(stats)
    fig, axes = _grid(len(_plotted(stats)), f"{stats.group.title}: effectiveness vs peak training memory")
    for ax, metric in zip(axes, _plotted(stats)):
        for row in rows:
            if metric in row.estimates:
                x = row.row.metric("peak_memory_mb")
                _errorbar(ax, x, row.estimates[metric], colors[row.row.method], markers[row.row.model])
        ax.set_xlabel("peak training memory (MB)")
        ax.set_ylabel(metric_title(metric, stats.specs))
        ax.grid(True, alpha=0.3)
    _legend(fig, rows, colors, markers)
    name = _save(fig, out_dir, f"{stats.group.slug}-effect-vs-memory.png")
    return FigureFile(name, f"{stats.group.title}: effectiveness vs peak training memory",
                      "Value with 95% bootstrap CI against peak training memory; prompting baselines record no "
                      "training memory and are left out.")


def _strip(measured: list[float]) -> tuple[float, float]:
    """x and half-width of the "no training" strip: left of the smallest measured memory, on a linear axis
    that does not start at 0 (a strip at 0 MB would squash GB-sized training peaks to the right edge)."""
    if not measured:
        return 0.0, 1.0
    low, high = min(measured), max(measured)
    half = max(high - low, 0.2 * low, 1.0) * 0.08
    return low - 3 * half, half


def pareto(stats: GroupStats, out_dir: Path) -> FigureFile | None:
    fronts = [front for front in group_fronts(stats) if front.points]
    if not fronts:
        return None
    colors, markers = _palette(stats)
    metric = fronts[0].metric
    title = f"{stats.group.title}: Pareto front, memory vs {metric_title(metric, stats.specs)}"
    fig, axes = _grid(len(fronts), title)
    for ax, front in zip(axes, fronts):
        measured = [point.memory for point in front.points if not point.baseline]
        strip_x, half = _strip(measured)
        x = {id(point): strip_x if point.baseline else point.memory for point in front.points}
        for point in front.points:
            estimate, at, color = point.row.estimates[metric], x[id(point)], colors[point.row.row.method]
            ax.errorbar([at], [estimate.value], color="0.75", capsize=2, linestyle="", zorder=1,
                        yerr=[[estimate.value - estimate.low], [estimate.high - estimate.value]])
            ax.plot([at], [estimate.value], linestyle="", marker=markers[front.model], zorder=3,
                    markersize=8 if point.optimal else 6, markerfacecolor=color if point.optimal else "white",
                    markeredgecolor="black" if point.optimal else color)
            ax.annotate(point.row.row.label, (at, estimate.value), fontsize=7, xytext=(5, 3),
                        textcoords="offset points", color="0.2")
        # The front as a staircase: the best value reachable within each memory budget.
        best = [(x[id(point)], point.row.estimates[metric].value) for point in front.optimal]
        right = max(x.values())
        if best:  # never empty for a non-empty set of points; guarded all the same
            ax.step([px for px, _ in best] + [right + half], [py for _, py in best] + [best[-1][1]],
                    where="post", color="black", linewidth=1, alpha=0.6, zorder=2)
        ax.set_xlim(strip_x - 2 * half, right + 4 * half)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        if any(point.baseline for point in front.points):
            ax.axvspan(strip_x - half, strip_x + half, color="0.92", zorder=0)
            # The strip is not a memory value: its tick reads "no training" and the MB ticks start right of it.
            ticks = [tick for tick in ax.get_xticks() if strip_x + 2 * half < tick <= right + 4 * half]
            ax.set_xticks([strip_x] + ticks, ["no\ntraining"] + [f"{tick:g}" for tick in ticks])
        ax.set_title(front.model, fontsize=9)
        ax.set_xlabel("peak training memory (MB)")
        ax.set_ylabel(metric_title(metric, stats.specs))
        ax.grid(True, alpha=0.3)
    handles = [Line2D([], [], color="black", alpha=0.6, label="Pareto front"),
               Line2D([], [], color="0.3", marker="o", markerfacecolor="0.3", markeredgecolor="black", linestyle="",
                      label="Pareto-optimal"),
               Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linestyle="", label="dominated")]
    fig.legend(handles=handles, loc="outside right lower", fontsize=8, frameon=False)
    name = _save(fig, out_dir, stats.group.slug + PARETO_SUFFIX)
    return FigureFile(name, title,
                      "Each row at its peak training memory and value (grey bars: 95% bootstrap CI); filled points "
                      "joined by the staircase are Pareto-optimal within their model (no other row has at most their "
                      "memory and at least their value, one strictly better), on the point values. Prompting "
                      "baselines train nothing and sit in the \"no training\" strip, below every trained row.")


def em_at_k(stats: GroupStats, out_dir: Path) -> FigureFile | None:
    rows = [row for row in stats.rows if row.em_curve]
    if not rows or max(len(row.em_curve) for row in rows) < 2:
        return None
    palette = matplotlib.colormaps["tab10"].colors
    labels = list(dict.fromkeys(row.row.label for row in rows))
    colors = {label: palette[index % len(palette)] for index, label in enumerate(labels)}
    _, markers = _palette(stats)
    models = sorted({row.row.model for row in rows})
    fig, axes = _grid(len(models), f"{stats.group.title}: EM@k over k")
    for ax, model in zip(axes, models):
        for row in (row for row in rows if row.row.model == model):
            ks = list(range(1, len(row.em_curve) + 1))
            color = colors[row.row.label]
            ax.plot(ks, [e.value for e in row.em_curve], color=color, marker=markers[model])
            ax.fill_between(ks, [e.low for e in row.em_curve], [e.high for e in row.em_curve], color=color, alpha=0.1)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("k (candidates)")
        ax.set_ylabel("EM@k")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
    handles = [Line2D([], [], color=colors[label], marker="o", label=label) for label in labels]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    name = _save(fig, out_dir, f"{stats.group.slug}-em-at-k.png")
    return FigureFile(name, f"{stats.group.title}: EM@k over k",
                      "EM@k for k = 1..K from each run's ranked candidates (normalised exact match), averaged "
                      "over seeds; bands are 95% bootstrap CIs.")


def _loss_history(row: RowStats) -> list[dict]:
    """The first of the row's runs that has a loss history (borrowers of a shared adapter have none)."""
    for run in row.row.runs:
        path = Path(run.path) / "loss_history.jsonl"
        if path.is_file():
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return []


def loss_curves(stats: GroupStats, out_dir: Path) -> FigureFile | None:
    histories = {id(row): history for row in stats.rows if (history := _loss_history(row))}
    rows = [row for row in stats.rows if id(row) in histories]
    if not rows:
        return None
    palette = matplotlib.colormaps["tab10"].colors
    labels = list(dict.fromkeys(row.row.label for row in rows))
    colors = {label: palette[index % len(palette)] for index, label in enumerate(labels)}
    models = sorted({row.row.model for row in rows})
    fig, axes = _grid(len(models), f"{stats.group.title}: training loss")
    for ax, model in zip(axes, models):
        for row in (row for row in rows if row.row.model == model):
            history, color = histories[id(row)], colors[row.row.label]
            train = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
            evals = [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry]
            if train:
                ax.plot(*zip(*train), color=color, linewidth=1.2)
            if evals:
                ax.plot(*zip(*evals), color=color, linestyle="--", marker="o", markersize=4)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
    handles = [Line2D([], [], color=colors[label], label=label) for label in labels]
    handles += [Line2D([], [], color="0.3", label="training"),
                Line2D([], [], color="0.3", linestyle="--", marker="o", markersize=4, label="validation")]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    name = _save(fig, out_dir, f"{stats.group.slug}-loss.png")
    return FigureFile(name, f"{stats.group.title}: training loss",
                      "Training loss per logged step (solid) and validation loss (dashed) of each trained row's first "
                      "seed, from its loss_history.jsonl; rows that reused another cell's adapter are drawn by "
                      "that cell.")


def _numeric(values) -> bool:
    return all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)


def sweep_figures(stats: GroupStats, out_dir: Path) -> list[FigureFile]:
    colors, markers = _palette(stats)
    keys = sorted({key for row in stats.rows for key, _ in row.row.sweep})
    made = []
    for key in keys:
        lines: dict[tuple, list[tuple[object, RowStats]]] = {}
        for row in stats.rows:
            sweep = dict(row.row.sweep)
            if key in sweep:
                others = tuple((k, v) for k, v in row.row.sweep if k != key)
                lines.setdefault((row.row.model, row.row.method, sweep_key(others)), []).append((sweep[key], row))
        for row in stats.rows:  # a study's unswept cell of the same method is the sweep's point at its own value
            line, config = (row.row.model, row.row.method, ()), row.row.runs[0].config if row.row.runs else {}
            if not row.row.sweep and line in lines and key in config \
                    and all(value != config[key] for value, _ in lines[line]):
                lines[line].append((config[key], row))
        if not any(len(points) > 1 for points in lines.values()):
            continue
        values = sorted({value for points in lines.values() for value, _ in points}, key=lambda v: sweep_key((("", v),)))
        numeric = _numeric(values)
        position = {repr(value): (value if numeric else index) for index, value in enumerate(values)}
        fig, axes = _grid(len(_plotted(stats)), f"{stats.group.title}: sweep over {key}")
        for ax, metric in zip(axes, _plotted(stats)):
            for (model, method, _), points in sorted(lines.items(), key=lambda item: item[0]):
                points = sorted((p for p in points if metric in p[1].estimates), key=lambda p: sweep_key((("", p[0]),)))
                if not points:
                    continue
                xs = [position[repr(value)] for value, _ in points]
                est = [row.estimates[metric] for _, row in points]
                ax.errorbar(xs, [e.value for e in est], yerr=[[e.value - e.low for e in est], [e.high - e.value for e in est]],
                            color=colors[method], marker=markers[model], capsize=3,
                            linestyle=LINESTYLES[sorted(markers).index(model) % len(LINESTYLES)])
            if numeric and min(values) > 0 and max(values) / min(values) >= 4:
                ax.set_xscale("log", base=2)
            ax.set_xticks([position[repr(value)] for value in values], [str(value) for value in values])
            ax.minorticks_off()
            ax.set_xlabel(key)
            ax.set_ylabel(metric_title(metric, stats.specs))
            ax.grid(True, alpha=0.3)
        _legend(fig, [row for points in lines.values() for _, row in points], colors, markers)
        slug = "".join(char if char.isalnum() else "-" for char in key)
        name = _save(fig, out_dir, f"{stats.group.slug}-sweep-{slug}.png")
        made.append(FigureFile(name, f"{stats.group.title}: sweep over {key}",
                               f"Each line is one model × method over the values of {key}; error bars are 95% "
                               "bootstrap CIs."))
    return made


def group_figures(stats: GroupStats, out_dir: Path) -> list[FigureFile]:
    """Draw every figure of one group into ``out_dir/figures``; returns what was written, in order."""
    if not _plotted(stats):
        return []
    with matplotlib.style.context("default"), matplotlib.rc_context({"svg.hashsalt": "peftlab"}):
        made = [effect_vs_params(stats, out_dir), effect_vs_memory(stats, out_dir), pareto(stats, out_dir),
                em_at_k(stats, out_dir), loss_curves(stats, out_dir)]
        made += sweep_figures(stats, out_dir)
    return [figure for figure in made if figure is not None]
