"""Rebuild ``src/peftlab/study/memory-reference.json`` (what ``peftlab study --plan`` shows for a training cell
with no finished twin) from the methods bench's committed results.

    python bench/memory_reference.py      # after a new bench/methods.py run into bench/results/methods-*/
"""

from __future__ import annotations

import json
from pathlib import Path

from peftlab.study.memory import REFERENCE, reference_from_bench

ROOT = Path(__file__).parents[1]
# The first file that measured a method on a model wins: the newest run first (8-bit with reentrant
# checkpointing, issue 30), then the Qwen run of issue 30's memory work, then the LoRA variants.
SOURCES = ["bench/results/methods-qwen-8bit/methods.json", "bench/results/methods-qwen/methods.json",
           "bench/results/methods-qwen-variants/methods.json"]


def main() -> None:
    import os

    os.chdir(ROOT)  # the table names its sources relative to the repository
    table = reference_from_bench([Path(source) for source in SOURCES])
    REFERENCE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    for method, models in sorted(table.items()):
        for model, row in models.items():
            print(f"{method:14s} {model:22s} {row['peak_rss_mb']:>6,} MB  (batch {row['batch_size']} x "
                  f"{row['max_length']}, {row['source']})")


if __name__ == "__main__":
    main()
