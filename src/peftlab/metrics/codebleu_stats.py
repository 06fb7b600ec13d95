"""CodeBLEU's sufficient statistics per item, and CodeBLEU recomputed from them.

Corpus CodeBLEU is not a mean over items: ``codebleu`` pools each component's counts over the corpus and
divides once (BLEU's clipped n-gram matches and totals, the brevity penalty's lengths, matched/total AST
subtrees, matched/total data-flow edges). Storing those counts per item (``scored.jsonl``, field
``codebleu_stats``) lets the report recompute corpus CodeBLEU for any bootstrap resample or permutation
by adding rows, without running tree-sitter again.

::

    item_statistics(candidate, reference) -> dict      # one item's counts, named as in FIELDS
    as_matrix(stats_list) -> np.ndarray                # (items, len(FIELDS))
    corpus_scores(sums) -> dict[str, array]            # codebleu + components, as codebleu.calc_codebleu
    corpus_scores(sums, library=False)                 # the report's rule: a data-flow match of 0 is 0
    item_scores(matrix) -> dict[str, array]            # per item, by the report's rule

The n-gram statistics come from the library's own ``modified_precision``, ``modified_recall`` and
``closest_ref_length``, called with the arguments ``calc_codebleu`` gives them, and data flow from its
``get_data_flow``/``normalize_dataflow``. The AST-subtree and data-flow *counting* loops are private to
``corpus_syntax_match``/``corpus_dataflow_match`` (they return only the ratio), so they are mirrored here;
tests/test_codebleu_corpus.py checks that the recomputed corpus score equals ``calc_codebleu``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

WEIGHTS = (0.25, 0.25, 0.25, 0.25)
"""ngram, weighted ngram, syntax, data flow: ``calc_codebleu``'s defaults, which every score here uses."""
ORDERS = (1, 2, 3, 4)
EPSILON = 0.1
"""BLEU smoothing (``SmoothingFunction().method1``): a zero match count of an order becomes 0.1."""

FIELDS = (
    *(f"ngram_matches_{n}" for n in ORDERS), *(f"ngram_totals_{n}" for n in ORDERS), "hyp_len", "ref_len",
    *(f"weighted_matches_{n}" for n in ORDERS), *(f"weighted_totals_{n}" for n in ORDERS), "weighted_ref_len",
    "syntax_matches", "syntax_totals", "dataflow_matches", "dataflow_totals", "candidate_dataflow",
)
"""Column order of :func:`as_matrix`. ``weighted_ref_len`` is separate from ``ref_len`` because codebleu
0.7.0's weighted n-gram brevity penalty measures the length of a ``[tokens, weights]`` pair (always 2), and
corpus scores must reproduce the library, quirks included. ``candidate_dataflow`` (the candidate's data-flow
edges) is only used by the per-item rule."""
COLUMN = {name: index for index, name in enumerate(FIELDS)}
VERSION = 1


@lru_cache(maxsize=4)
def _tools(lang: str):
    from codebleu.codebleu import PACKAGE_DIR
    from codebleu.dataflow_match import dfg_function
    from codebleu.utils import get_tree_sitter_language
    from tree_sitter import Parser

    language = get_tree_sitter_language(lang)
    parser = Parser()
    parser.language = language
    keywords = (PACKAGE_DIR / "keywords" / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
    return parser, dfg_function[lang], {word.strip() for word in keywords}


def _without_comments(code: str, lang: str) -> str:
    from codebleu.parser import remove_comments_and_docstrings

    try:
        return remove_comments_and_docstrings(code, lang)
    except Exception:  # noqa: BLE001 - the library ignores any failure here too and keeps the text
        return code


def _subtrees(root) -> list[str]:
    """S-expressions of the root and of every node with children (``corpus_syntax_match``'s traversal)."""
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        found.append(str(node))
        stack.extend(child for child in node.children if child.children)
    return found


def item_statistics(candidate: str, reference: str, lang: str = "python") -> dict[str, float]:
    """The counts that one (top candidate, reference) pair adds to each CodeBLEU component."""
    from codebleu import bleu, weighted_ngram_match
    from codebleu.dataflow_match import get_data_flow, normalize_dataflow

    parser, dfg, keywords = _tools(lang)
    hypothesis, reference = candidate.strip(), reference.strip()  # calc_codebleu strips both
    hyp_tokens, ref_tokens = hypothesis.split(), reference.split()
    stats: dict[str, float] = {}
    for n in ORDERS:
        stats[f"ngram_matches_{n}"], stats[f"ngram_totals_{n}"] = bleu.modified_precision([ref_tokens], hyp_tokens, n)
    stats["hyp_len"] = len(hyp_tokens)
    stats["ref_len"] = bleu.closest_ref_length([ref_tokens], len(hyp_tokens))
    weighted_refs = [[ref_tokens, {token: 1 if token in keywords else 0.2 for token in ref_tokens}]]
    for n in ORDERS:
        matches, totals = weighted_ngram_match.modified_recall(weighted_refs, hyp_tokens, n)
        stats[f"weighted_matches_{n}"], stats[f"weighted_totals_{n}"] = matches, totals
    stats["weighted_ref_len"] = weighted_ngram_match.closest_ref_length(weighted_refs, len(hyp_tokens))

    clean_hyp, clean_ref = _without_comments(hypothesis, lang), _without_comments(reference, lang)
    hyp_trees = set(_subtrees(parser.parse(bytes(clean_hyp, "utf8")).root_node))
    ref_trees = _subtrees(parser.parse(bytes(clean_ref, "utf8")).root_node)
    stats["syntax_matches"] = sum(tree in hyp_trees for tree in ref_trees)
    stats["syntax_totals"] = len(ref_trees)

    hyp_flow = normalize_dataflow(get_data_flow(clean_hyp, [parser, dfg]))
    ref_flow = normalize_dataflow(get_data_flow(clean_ref, [parser, dfg]))
    stats["candidate_dataflow"] = len(hyp_flow)
    matched = 0
    for edge in ref_flow:  # each candidate edge matches at most one reference edge, as in the library
        if edge in hyp_flow:
            matched += 1
            hyp_flow.remove(edge)
    stats["dataflow_matches"], stats["dataflow_totals"] = matched, len(ref_flow)
    return {name: stats[name] for name in FIELDS}


def as_matrix(stats_list: list[dict]) -> np.ndarray:
    """Items' statistics as an ``(items, len(FIELDS))`` float array.

    Raises:
        ValueError: an item lacks a field.
    """
    try:
        rows = [[float(stats[name]) for name in FIELDS] for stats in stats_list]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"incomplete CodeBLEU statistics: {error}") from None
    return np.array(rows, dtype=float).reshape(-1, len(FIELDS))


def _columns(sums: np.ndarray, prefix: str) -> np.ndarray:
    return sums[..., [COLUMN[f"{prefix}_{n}"] for n in ORDERS]]


def _bleu(matches, totals, hyp_len, ref_len) -> np.ndarray:
    """``corpus_bleu`` from pooled counts: smoothed geometric mean of the orders' ratios, brevity penalty,
    and 0 when nothing of order 1 matches."""
    smoothed = np.where(matches == 0, EPSILON, matches)
    log_mean = (np.log(smoothed / totals) * 0.25).sum(axis=-1)
    safe_hyp = np.where(hyp_len == 0, 1.0, hyp_len)
    penalty = np.where(hyp_len > ref_len, 1.0, np.where(hyp_len == 0, 0.0, np.exp(1.0 - ref_len / safe_hyp)))
    return np.where(matches[..., 0] == 0, 0.0, penalty * np.exp(log_mean))


def _components(sums: np.ndarray) -> dict[str, np.ndarray]:
    sums = np.asarray(sums, dtype=float)
    c = {name: sums[..., index] for name, index in COLUMN.items()}
    ngram = _bleu(_columns(sums, "ngram_matches"), _columns(sums, "ngram_totals"), c["hyp_len"], c["ref_len"])
    weighted = _bleu(_columns(sums, "weighted_matches"), _columns(sums, "weighted_totals"), c["hyp_len"],
                     c["weighted_ref_len"])
    syntax = c["syntax_matches"] / np.where(c["syntax_totals"] == 0, 1.0, c["syntax_totals"])
    flows = c["dataflow_totals"]
    dataflow = np.where(flows == 0, 0.0, c["dataflow_matches"] / np.where(flows == 0, 1.0, flows))
    return {"codebleu_ngram": ngram, "codebleu_weighted_ngram": weighted, "codebleu_syntax": syntax,
            "codebleu_dataflow": dataflow}


def corpus_scores(sums, library: bool = True) -> dict[str, np.ndarray]:
    """CodeBLEU and its components from statistics summed over a corpus (last axis = FIELDS; any leading
    axes, e.g. one row per bootstrap resample).

    ``library=True`` equals ``codebleu.calc_codebleu`` on that corpus, including its ``dataflow or 1``: a
    data-flow match of 0 counts as 1 in the total. ``library=False`` is the report's rule (docs/metrics.md):
    a data-flow match of 0 counts as 0, and when neither the candidates nor the references have any data
    flow, the data-flow component is left out and the other three weights are renormalised. The two agree
    whenever at least one data-flow edge matches.
    """
    sums = np.asarray(sums, dtype=float)
    parts = _components(sums)
    a, b, g, t = WEIGHTS
    dataflow = parts["codebleu_dataflow"]
    rest = a * parts["codebleu_ngram"] + b * parts["codebleu_weighted_ngram"] + g * parts["codebleu_syntax"]
    if library:
        return {"codebleu": rest + t * np.where(dataflow == 0, 1.0, dataflow), **parts}
    no_flow = (sums[..., COLUMN["dataflow_totals"]] == 0) & (sums[..., COLUMN["candidate_dataflow"]] == 0)
    total = np.where(no_flow, rest / (a + b + g), rest + t * dataflow)
    return {"codebleu": total, **parts, "codebleu_dataflow": np.where(no_flow, np.nan, dataflow)}


def item_scores(matrix) -> dict[str, np.ndarray]:
    """Per-item CodeBLEU and components: each row of ``matrix`` scored alone by the report's rule
    (``corpus_scores(..., library=False)``; data flow is ``nan`` where it is left out).

    ``calc_codebleu`` on a single item instead turns a data-flow match of 0 into 1, so a candidate with no
    data flow (a bare signature) gets the full data-flow weight.
    """
    return corpus_scores(matrix, library=False)
