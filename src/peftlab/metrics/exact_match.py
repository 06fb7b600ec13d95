"""EM@k: a problem counts as solved at k when any of its first k candidates matches the reference.

Normalisation (documented in docs/metrics.md): both sides are split into Python tokens with
:mod:`tokenize`; comments, blank lines, indentation tokens' exact widths and whitespace between tokens are
ignored, while the token strings (names, operators, literals) and the line structure (NEWLINE, INDENT,
DEDENT) must agree. Text that does not tokenize falls back to comparing whitespace-separated words.
"""

from __future__ import annotations

import io
import tokenize

_SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}


def normalize_code(code: str) -> tuple[str, ...]:
    """The token sequence that EM compares."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code.strip() + "\n").readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return tuple(code.split())
    if any(token.type == tokenize.ERRORTOKEN for token in tokens):
        return tuple(code.split())
    return tuple(
        "<INDENT>" if token.type == tokenize.INDENT else token.string for token in tokens if token.type not in _SKIPPED
    )


def exact_match_at_k(candidates: list[list[str]], references: list[str], k: int) -> float:
    """Fraction of problems whose first ``k`` candidates contain an exact (normalised) match."""
    if not references:
        return 0.0
    hits = 0
    for problem_candidates, reference in zip(candidates, references, strict=True):
        target = normalize_code(reference)
        hits += any(normalize_code(candidate) == target for candidate in problem_candidates[:k])
    return hits / len(references)


def exact_match_metric(candidates: list[list[str]], references: list[str]) -> dict[str, float]:
    """EM@1 and EM@k for k the number of candidates per problem (the smallest, if they differ)."""
    k = min((len(c) for c in candidates), default=1)
    scores = {"em@1": exact_match_at_k(candidates, references, 1)}
    if k > 1:
        scores[f"em@{k}"] = exact_match_at_k(candidates, references, k)
    return scores
