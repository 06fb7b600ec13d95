"""Code generation from an instruction (the mined dataset, or any JSONL in the same shape)."""

from __future__ import annotations

from pathlib import Path

from peftlab.data.records import read_jsonl
from peftlab.data.template import format_prompt
from peftlab.errors import UserError
from peftlab.metrics import match_scores
from peftlab.postprocess import extract_code
from peftlab.tasks.base import Evaluation, Task, check_candidate_rows, match_test_ids

SPLITS = ("train", "validation", "test")
SIZE_KEYS = {"train": "train_size", "validation": "validation_size", "test": "test_size"}


class CodeGeneration(Task):
    name = "codegen"

    def load(self, split: str) -> list[dict]:
        """Records of ``split`` from ``data.dir``, truncated to the configured size.

        Raises:
            UserError: the data directory or split file is missing, malformed, or empty.
        """
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; known: {', '.join(SPLITS)}")
        directory = Path(self.config.data.dir)
        path = directory / f"{split}.jsonl"
        if not path.is_file():
            raise UserError(
                f"dataset split not found: {path} (run `peftlab data mine-codegen --out {directory}` first?)"
            )
        records = read_jsonl(path, required={"instruction": str, "reference": str})
        if not records:
            raise UserError(f"dataset split {path} is empty")
        for index, record in enumerate(records):
            record.setdefault("id", f"{split}-{index:05d}")
        size = getattr(self.config.data, SIZE_KEYS[split])
        return records[:size] if size else records

    def prompt(self, problem: dict) -> str:
        return format_prompt(problem["instruction"])

    def postprocess(self, completion: str) -> str:
        return extract_code(completion, self.stop)

    def evaluate(self, predictions: list[dict], partial: bool = False) -> Evaluation:
        """Corpus-level metrics, plus each row's own ``scores`` (the same metrics on that problem alone),
        which the report bootstraps confidence intervals and paired tests from. References come from the
        test split, never from the predictions file."""
        check_candidate_rows(predictions)
        references = {problem["id"]: problem["reference"] for problem in self.load("test")}
        coverage = match_test_ids([row["id"] for row in predictions], list(references), partial=partial)
        metrics, scored = match_scores([{**row, "reference": references[row["id"]]} for row in predictions])
        return Evaluation({**metrics, **coverage}, scored)

