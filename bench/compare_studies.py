"""Compare two runs of the same study cell by cell: are predictions and scores identical?

    .venv/bin/python bench/compare_studies.py BEFORE_DIR AFTER_DIR [--out bench/results/NAME.md]

Cells are matched by their labels (model, task, method, sweep, seed) from ``cell.json``, not by directory
hash: a change of the config schema renames every cell directory without changing what it computes. For
each pair it reports whether ``predictions.jsonl`` is byte-identical and whether every score in
``metrics.json`` is equal. Keys that measure the run rather than the method (times, memory, throughput,
where it resumed from) and keys only one side has (e.g. ``metric_specs``, added later) are listed, not
compared. Exit status 1 when any compared value differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RUN_MEASURES = ("_time_s", "_mb", "tokens_per_s", "resumed_from")


def _cells(study: Path) -> dict[str, Path]:
    found = {}
    for cell_file in sorted(study.glob("cells/*/cell.json")):
        labels = json.loads(cell_file.read_text())["labels"]
        key = json.dumps({k: labels[k] for k in ("model", "task", "method", "sweep", "seed")}, sort_keys=True)
        found[key] = cell_file.parent
    return found


def _is_run_measure(key: str) -> bool:
    return any(key.endswith(suffix) or key == suffix for suffix in RUN_MEASURES)


def compare(before: Path, after: Path) -> tuple[list[dict], bool]:
    rows, identical = [], True
    cells_before, cells_after = _cells(before), _cells(after)
    for key in sorted(set(cells_before) | set(cells_after)):
        label = json.loads(key)["method"]
        if key not in cells_before or key not in cells_after:
            rows.append({"method": label, "status": "only in one study"})
            identical = False
            continue
        a, b = cells_before[key], cells_after[key]
        same_predictions = (a / "predictions.jsonl").read_bytes() == (b / "predictions.jsonl").read_bytes()
        metrics_a = json.loads((a / "metrics.json").read_text())
        metrics_b = json.loads((b / "metrics.json").read_text())
        shared = sorted(set(metrics_a) & set(metrics_b))
        compared = [k for k in shared if not _is_run_measure(k)]
        differing = [k for k in compared if metrics_a[k] != metrics_b[k]]
        one_side = sorted(set(metrics_a) ^ set(metrics_b))
        identical &= same_predictions and not differing
        rows.append({
            "method": label, "predictions_identical": same_predictions, "scores_compared": len(compared),
            "scores_differing": differing, "only_one_side": one_side,
            "em@1": metrics_b.get("em@1"), "codebleu": metrics_b.get("codebleu"),
        })
    return rows, identical


def _score(value) -> str:
    """A score for the table; ``-`` where the cell's task has no such metric (MBPP has no EM or CodeBLEU)."""
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows, identical = compare(args.before, args.after)
    lines = [f"`python bench/compare_studies.py {args.before} {args.after}`", "",
             "| method | predictions.jsonl byte-identical | scores compared | differing | keys on one side only | EM@1 | CodeBLEU |",
             "|---|---|---:|---|---|---:|---:|"]
    for row in rows:
        if "status" in row:
            lines.append(f"| {row['method']} | {row['status']} | | | | | |")
            continue
        lines.append(f"| {row['method']} | {row['predictions_identical']} | {row['scores_compared']} | "
                     f"{', '.join(row['scores_differing']) or 'none'} | {', '.join(row['only_one_side']) or '-'} | "
                     f"{_score(row['em@1'])} | {_score(row['codebleu'])} |")
    lines += ["", f"**{'Identical' if identical else 'NOT identical'}**: every cell's predictions and scores."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
