"""Code generation from an instruction (the mined dataset, or any JSONL in the same shape).

The task's folder holds all that is its own: the prompt format and stop strings (``prompt.py``), how its
default dataset is mined from the standard library (``build.py``), the named datasets it reads
(``conala.py``, ``codealpaca.py``), and post-processing and metrics here.
"""

from __future__ import annotations

from pathlib import Path

from peftlab.data.hub import load_source_split
from peftlab.data.records import read_jsonl
from peftlab.errors import UserError
from peftlab.metrics import match_scores
from peftlab.tasks.postprocess import extract_code
from peftlab.tasks.base import Evaluation, Task, check_candidate_rows, match_test_ids
from peftlab.tasks.codegen import codealpaca, conala
from peftlab.tasks.codegen.build import build_codegen_dataset
from peftlab.tasks.codegen.prompt import INSTRUCTION_TEMPLATE, STOP_STRINGS, format_prompt

REQUIRED = {"instruction": str, "reference": str}
# The chat format's user turn. The instruction alone (docstring, then signature) does not say what is
# wanted; the raw template implies it by its "### Response:" slot, a chat turn has to ask. "Code only" keeps
# the answer comparable to the reference, which is the function's source.
CHAT_REQUEST = (
    "Write the Python function described by this docstring, with this signature. "
    "Reply with the function's code only.\n\n{instruction}"
)


class CodeGeneration(Task):
    name = "codegen"
    default_stop = STOP_STRINGS
    raw_template = INSTRUCTION_TEMPLATE
    loaders = (conala.LOADER, codealpaca.LOADER)
    language = "python"
    """What CodeBLEU parses the candidates and references as."""
    chat_request = CHAT_REQUEST

    def load(self, split: str) -> list[dict]:
        """Records of ``split`` from ``data.source`` (any dataset ``datasets`` reads, :mod:`peftlab.data.hub`)
        or else ``data.dir``, truncated to the configured size.

        Raises:
            UserError: the source, data directory or split file is missing, malformed, or empty.
        """
        self.check_split(split)
        if self._from_source():
            records = load_source_split(self.config.data, split, REQUIRED, self.named_loader())
            if not records:
                raise UserError(f"data.source {self.config.data.source or self.config.data.loader}: split "
                                f"'{split}' is empty")
            return self._numbered(records, split)
        if self.config.data.dir is None:
            raise UserError("the codegen task needs data.dir (build one with `peftlab data mine-codegen --out DIR`)")
        directory = Path(self.config.data.dir)
        path = directory / f"{split}.jsonl"
        if not path.is_file():
            raise UserError(
                f"dataset split not found: {path} (run `peftlab data mine-codegen --out {directory}` first?)"
            )
        records = read_jsonl(path, required=REQUIRED)
        if not records:
            raise UserError(f"dataset split {path} is empty")
        return self._numbered(records, split)

    def _from_source(self) -> bool:
        """``data.loader`` when it makes this task's records, else ``data.source`` read as is (a loader for
        another task, e.g. the scored one's, is not this task's)."""
        if self.config.data.loader is not None:
            return self.named_loader() is not None
        return self.config.data.source is not None

    def _numbered(self, records: list[dict], split: str) -> list[dict]:
        """Ids for records without one; the configured size applied."""
        for index, record in enumerate(records):
            record.setdefault("id", f"{split}-{index:05d}")
        return self.sized(split, records)

    def prompt(self, problem: dict) -> str:
        return format_prompt(problem["instruction"])

    def user_message(self, problem: dict) -> str:
        return self.chat_request.format(instruction=problem["instruction"])

    def postprocess(self, completion: str) -> str:
        return extract_code(completion, self.stop)  # strips a markdown fence, as chat answers often have

    def evaluate(self, predictions: list[dict], partial: bool = False) -> Evaluation:
        """Corpus-level metrics, plus each row's own ``scores`` (the same metrics on that problem alone),
        which the report bootstraps confidence intervals and paired tests from. References come from the
        test split, never from the predictions file."""
        check_candidate_rows(predictions)
        references = {problem["id"]: problem["reference"] for problem in self.load("test")}
        coverage = match_test_ids([row["id"] for row in predictions], list(references), partial=partial)
        metrics, scored = match_scores([{**row, "reference": references[row["id"]]} for row in predictions],
                                       lang=self.language)
        return Evaluation({**metrics, **coverage, "metric_specs": self.metric_specs(metrics)}, scored)

    def prepare_data(self, directory: Path) -> dict | None:
        """Mine the default stdlib dataset into ``directory`` once (a study's cells share it); nothing to
        do when the data comes from ``data.source``."""
        if self._from_source() or (directory / "card.json").is_file():
            return None
        return build_codegen_dataset(directory, None, seed=0)

