"""The report's statistical helpers against scipy and statsmodels on 100 random cases each (to 1e-9)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

scipy_stats = pytest.importorskip("scipy.stats", reason="cross-checks need scipy (pip install -e '.[dev]')")
contingency = pytest.importorskip("statsmodels.stats.contingency_tables", reason="cross-checks need statsmodels")
multitest = pytest.importorskip("statsmodels.stats.multitest", reason="cross-checks need statsmodels")

from peftlab.report.inference import EXACT_LIMIT, holm, mcnemar_exact, sign_flip_test  # noqa: E402

CASES = 100
TOLERANCE = 1e-9


def test_mcnemar_exact_matches_statsmodels():
    rng = np.random.default_rng(101)
    for _ in range(CASES):
        n = int(rng.integers(1, 400))
        a = (rng.random(n) < rng.random()).astype(float)
        b = (rng.random(n) < rng.random()).astype(float)
        table = [[np.sum((a == 1) & (b == 1)), np.sum((a == 1) & (b == 0))],
                 [np.sum((a == 0) & (b == 1)), np.sum((a == 0) & (b == 0))]]
        expected = contingency.mcnemar(table, exact=True).pvalue
        assert mcnemar_exact(a, b) == pytest.approx(expected, abs=TOLERANCE), table


def _scipy_sign_flip(differences: np.ndarray) -> float:
    result = scipy_stats.permutation_test(
        (differences,), lambda x, axis: np.mean(x, axis=axis), vectorized=True, permutation_type="samples",
        n_resamples=np.inf, alternative="two-sided",
    )
    return float(result.pvalue)


def test_sign_flip_exact_enumeration_matches_scipy():
    rng = np.random.default_rng(202)
    for case in range(CASES):
        # scipy needs two or more observations; its exact enumeration is slow near 2**16, so the limit
        # itself is checked on a few cases only.
        n = EXACT_LIMIT if case % 20 == 0 else int(rng.integers(2, 13))
        if case % 3 == 0:  # small integers: many exact ties and zero differences
            differences = rng.integers(-2, 3, size=n).astype(float)
        else:
            differences = rng.normal(rng.normal(0, 0.5), 1.0, size=n)
        assert sign_flip_test(differences) == pytest.approx(_scipy_sign_flip(differences), abs=TOLERANCE), differences


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(303)
    # multipletests(method="holm") calls gc.collect() every time; freezing the objects that exist keeps
    # 100 calls from walking the whole test process's heap 100 times.
    gc.freeze()
    try:
        for case in range(CASES):
            m = int(rng.integers(1, 15))
            pvalues = rng.random(m) ** 3
            if case % 4 == 0:  # ties
                pvalues[: m // 2] = pvalues[0]
            expected = multitest.multipletests(pvalues, method="holm")[1]
            assert holm(list(pvalues)) == pytest.approx(list(expected), abs=TOLERANCE), pvalues
    finally:
        gc.unfreeze()
