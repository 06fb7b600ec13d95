"""Build the repair task's injected-bug training set of a mined project and print its card.

    .venv/bin/python bench/repair_training.py [SPEC]        # default: algorithms==1.0.1 (mined first if needed)

Writes bench/results/repair-training-<name>.json: size, operators injected and kept, the share kept after
execution (a bug is kept only when its function's own tests fail), per-split counts and build time; and
bench/results/repair-bugsinpy.json, the card of the optional static pairs (data.bugsinpy=true).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from peftlab.tasks.mined_projects import mined_project
from peftlab.tasks.repair.bugsinpy import bugsinpy_pairs
from peftlab.tasks.repair.training import build_training_bugs

spec = sys.argv[1] if len(sys.argv) > 1 else "algorithms==1.0.1"
project = mined_project(spec, progress=print)
bugs, card = build_training_bugs(project)
out = Path(__file__).parent / "results" / f"repair-training-{spec.replace('==', '-')}.json"
out.write_text(json.dumps(card, indent=2) + "\n")
print(json.dumps(card, indent=2))

_, static = bugsinpy_pairs()
(out.parent / "repair-bugsinpy.json").write_text(json.dumps(static, indent=2) + "\n")
print(json.dumps(static, indent=2))
