"""Confirmatory hypotheses: what a study declares before it runs, answered with a verdict.

A study file lists its hypotheses (docs/study.md, "Hypotheses")::

    hypotheses:
      - {name: "(a) LoRA beats ICL", a: lora, b: icl, task: mbpp, metric: pass@1}
      - {name: "(c) QLoRA-4bit = LoRA", a: qlora-4bit, b: lora, task: mbpp, test: equivalence, margin: 0.05}

Each is answered on the items both rows scored (per-item scores averaged over the rows' seeds):

- ``superiority``: the two-sided paired test of the report (:func:`~peftlab.report.inference.paired_test`:
  exact McNemar on 0/1 scores, sign-flip permutation otherwise, e.g. seed-averaged scores);
- ``equivalence``: TOST with the declared margin (:func:`~peftlab.report.inference.tost_paired`).

Holm adjusts over the declared hypotheses only (the all-pairs tables are exploratory and adjust over their
own families). The verdict is "A better", "B better", "equivalent within ±margin", or "undecided" — a
non-significant difference is never rounded into a claim. The effect is mean(A − B) with its 95% percentile
bootstrap interval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import yaml
from pydantic import ValidationError

from peftlab.errors import UserError
from peftlab.report.declared import ALPHA, STUDY_FILE, Hypothesis
from peftlab.report.inference import bootstrap_ci, holm, paired_test, tost_paired
from peftlab.report.paired import DEGENERATE_TEST, paired_scores
from peftlab.report.resampling import Estimate
from peftlab.report.stats import GroupStats, RowStats, metric_title
from peftlab.report.tables import _md_table, _p_text

NOTE = ("Confirmatory: the hypotheses the study file declared, Holm-adjusted over these hypotheses only "
        f"(alpha {ALPHA}). Effect = mean(A − B) over the items both scored (each item's score averaged over the "
        "row's seeds) with its 95% bootstrap CI. Superiority: exact McNemar on 0/1 scores, sign-flip permutation "
        "otherwise; equivalence: TOST (two one-sided paired t-tests) with the declared margin. 'undecided' means "
        "the data do not support a claim either way.")


@dataclass
class Answer:
    hypothesis: Hypothesis
    task: str = ""
    model: str = ""
    n: int = 0
    a_value: float | None = None
    b_value: float | None = None
    effect: Estimate | None = None
    p: float | None = None
    p_holm: float | None = None
    test: str = ""
    verdict: str = "undecided"
    problem: str | None = None
    """Why the hypothesis could not be answered (a row missing, no per-item scores for the metric)."""
    seeds: int = 1


def read_hypotheses(study_dir: Path) -> list[Hypothesis]:
    """The hypotheses recorded in ``study_dir/study.yaml`` (none when the file is absent).

    Raises:
        UserError: the file is unreadable or a hypothesis in it is malformed.
    """
    path = study_dir / STUDY_FILE
    if not path.is_file():
        return []
    try:
        listed = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("hypotheses") or []
        return [Hypothesis.model_validate(item) for item in listed]
    except (OSError, yaml.YAMLError, AttributeError, ValidationError) as error:
        raise UserError(f"{path}: its hypotheses cannot be read ({str(error).splitlines()[0]})") from None


def _find_rows(hypothesis: Hypothesis, groups: list[GroupStats]) -> tuple[GroupStats, RowStats, RowStats] | str:
    found = []
    for stats in groups:
        if (hypothesis.task and stats.group.task != hypothesis.task) or (
                hypothesis.dataset and stats.group.dataset != hypothesis.dataset):
            continue
        for model in sorted({row.row.model for row in stats.rows}):
            if hypothesis.model and model != hypothesis.model:
                continue
            rows = {row.row.label: row for row in stats.rows if row.row.model == model}
            if hypothesis.a in rows and hypothesis.b in rows:
                found.append((stats, rows[hypothesis.a], rows[hypothesis.b]))
    if len(found) == 1:
        return found[0]
    where = f"task {hypothesis.task or 'any'}, model {hypothesis.model or 'any'}" + (
        f", dataset {hypothesis.dataset}" if hypothesis.dataset else "")
    if not found:
        return f"no finished rows '{hypothesis.a}' and '{hypothesis.b}' in one table ({where})"
    return f"'{hypothesis.a}' and '{hypothesis.b}' are in {len(found)} tables ({where}): name its task, dataset and model"


def _answer(hypothesis: Hypothesis, groups: list[GroupStats]) -> Answer:
    located = _find_rows(hypothesis, groups)
    if isinstance(located, str):
        return Answer(hypothesis, problem=located)
    stats, first, second = located
    answer = Answer(hypothesis, stats.group.task, first.row.model, seeds=max(len(first.row.runs), len(second.row.runs)))
    if hypothesis.metric not in first.scores or hypothesis.metric not in second.scores:
        answer.problem = f"'{hypothesis.metric}' has no per-item scores in this table (corpus metrics cannot be declared)"
        return answer
    a, b = paired_scores(first, second, hypothesis.metric)
    if len(a) < 2:
        answer.problem = f"the two rows share {len(a)} scored items"
        return answer
    answer.n, answer.a_value, answer.b_value = len(a), float(a.mean()), float(b.mean())
    answer.effect = bootstrap_ci(a - b)
    if hypothesis.test == "equivalence":
        answer.p, answer.test = tost_paired(a, b, hypothesis.margin), f"TOST, margin ±{hypothesis.margin:g}"
    elif np.array_equal(a, b):
        answer.p, answer.test = 1.0, DEGENERATE_TEST
    else:
        answer.p, answer.test = paired_test(a, b)
    return answer


def answer_hypotheses(hypotheses: list[Hypothesis], groups: list[GroupStats]) -> list[Answer]:
    """Each hypothesis answered, Holm-adjusted over those that could be tested, with its verdict."""
    answers = [_answer(hypothesis, groups) for hypothesis in hypotheses]
    tested = [answer for answer in answers if answer.p is not None]
    for answer, adjusted in zip(tested, holm([answer.p for answer in tested])):
        answer.p_holm = adjusted
        hypothesis = answer.hypothesis
        if adjusted >= ALPHA:
            answer.verdict = "undecided"
        elif hypothesis.test == "equivalence":
            answer.verdict = f"equivalent within ±{hypothesis.margin:g}"
        else:
            answer.verdict = f"{hypothesis.a if answer.effect.value > 0 else hypothesis.b} better"
    for answer in answers:
        if answer.problem:
            answer.verdict = "not answered"
    return answers


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "–" if value is None else _p_text(value)


def hypotheses_cells(answers: list[Answer], specs: dict) -> tuple[list[str], list[list[str]]]:
    header = ["Hypothesis", "A", "B", "Task", "Model", "Metric", "Test", "n", "A score", "B score",
              "Effect A − B [95% CI]",
              "p", "p (Holm)", "Verdict"]
    rows = []
    for answer in answers:
        h = answer.hypothesis
        verdict = answer.verdict + (f" ({answer.problem})" if answer.problem else "")
        rows.append([h.title, h.a, h.b, answer.task or h.task or "–", answer.model or h.model or "–",
                     metric_title(h.metric, specs), answer.test or h.test, str(answer.n),
                     _number(answer.a_value), _number(answer.b_value),
                     answer.effect.text() if answer.effect else "–", _p(answer.p), _p(answer.p_holm), verdict])
    return header, rows


HYPOTHESES_NUMERIC = range(7, 13)


def hypotheses_markdown(answers: list[Answer], specs: dict) -> str:
    if not answers:
        return "The study declared no hypotheses: every table below is exploratory.\n"
    header, rows = hypotheses_cells(answers, specs)
    return NOTE + "\n\n" + _md_table(header, rows, HYPOTHESES_NUMERIC)


def verdict_line(answer: Answer) -> str:
    """One line per hypothesis, for the study's closing summary and the README."""
    h = answer.hypothesis
    if answer.problem:
        return f"{h.title}: not answered ({answer.problem})"
    return (f"{h.title}: {answer.verdict} — {h.a} {answer.a_value:.3f} vs {h.b} {answer.b_value:.3f} on "
            f"{h.metric}, n {answer.n}, effect {answer.effect.text()}, p {_p(answer.p)}, Holm p {_p(answer.p_holm)}")


def hypotheses_json(answers: list[Answer]) -> str:
    listed = []
    for answer in answers:
        effect = answer.effect
        listed.append({"hypothesis": answer.hypothesis.model_dump(), "task": answer.task, "model": answer.model,
                       "n": answer.n, "seeds": answer.seeds, "a": answer.a_value, "b": answer.b_value,
                       "effect": None if effect is None else {"value": effect.value, "low": effect.low, "high": effect.high},
                       "p": answer.p, "p_holm": answer.p_holm, "test": answer.test, "verdict": answer.verdict,
                       "problem": answer.problem, "line": verdict_line(answer)})
    return json.dumps({"alpha": ALPHA, "hypotheses": listed}, indent=1) + "\n"
