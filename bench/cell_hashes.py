"""Every built-in preset's cells with their labels and directory hashes, as JSON; or, given two such files,
the markdown table that maps one to the other (cells matched by their labels).

    python bench/cell_hashes.py dump OUT.json             # run in each checkout (git worktree) to compare
    python bench/cell_hashes.py map OLD.json NEW.json     # prints the table

A change of the config schema renames every cell directory without changing what the cell computes; the
map says which old directory is which new one (issue 26: bench/results/refactor-26-identity.md).
"""

from __future__ import annotations

import json
import sys


def dump(out: str) -> None:
    try:
        from peftlab.study.spec import PRESETS, expand, load_study
    except ImportError:  # before issue 26 the study was one module
        from peftlab.study import PRESETS, expand, load_study
    cells = {}
    for preset in PRESETS:
        for cell in expand(load_study(None, preset), default_data_root="runs/study/data"):
            labels = cell.labels
            key = "|".join([preset, labels["model"], labels["task"], labels["method"],
                            json.dumps(labels["sweep"], sort_keys=True), str(labels["seed"])])
            cells[key] = cell.key
    with open(out, "w") as handle:
        json.dump(cells, handle, indent=1, sort_keys=True)
    print(f"{len(cells)} cells in {len(PRESETS)} presets -> {out}")


def table(old_path: str, new_path: str) -> None:
    old, new = json.load(open(old_path)), json.load(open(new_path))
    print("| preset | task | method | sweep | old hash | new hash |\n|---|---|---|---|---|---|")
    for key in sorted(set(old) | set(new)):
        preset, _model, task, method, sweep, _seed = key.split("|")
        sweep = ", ".join(f"{k}={v}" for k, v in json.loads(sweep).items())
        print(f"| {preset} | {task} | {method} | {sweep} | {old.get(key, '(none)')} | {new.get(key, '(none)')} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["dump"] and len(sys.argv) == 3:
        dump(sys.argv[2])
    elif sys.argv[1:2] == ["map"] and len(sys.argv) == 4:
        table(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
