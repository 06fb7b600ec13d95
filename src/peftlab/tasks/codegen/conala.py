"""CoNaLa as DocPrompting publishes it (``data.loader=conala``, ``neulab/docprompting-conala``): the
rewritten intent (``nl``) is the instruction, the one-line snippet (``cmd``) the reference."""

from __future__ import annotations

from peftlab.data.hub import NamedLoader


def _conala(row: dict, index: int) -> dict:
    return {"id": str(row["question_id"]) or f"conala-{index}", "instruction": row["nl"], "reference": row["cmd"]}


LOADER = NamedLoader("conala", "neulab/docprompting-conala", "MIT (the dataset card)",
                     ("question_id", "nl", "cmd"), _conala)
