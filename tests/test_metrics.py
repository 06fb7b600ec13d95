import pytest

from peftlab.metrics.codebleu_score import codebleu_metric
from peftlab.metrics.exact_match import exact_match_at_k, exact_match_metric, normalize_code


def test_normalisation_ignores_comments_blank_lines_and_spacing():
    assert normalize_code("def f(x):\n\n    return x+1  # one\n") == normalize_code("def f( x ):\n  return x + 1")


def test_normalisation_keeps_tokens_and_structure():
    assert normalize_code("return x + 1") != normalize_code("return x + 2")
    assert normalize_code("if a:\n    b()\nc()") != normalize_code("if a:\n    b()\n    c()")


def test_untokenizable_text_falls_back_to_words():
    assert normalize_code('x = "unterminated\n') == ("x", "=", '"unterminated')


def test_em_at_k():
    references = ["a = 1", "b = 2", "c = 3"]
    candidates = [["a = 1", "z"], ["z", "b=2"], ["z", "y"]]
    assert exact_match_at_k(candidates, references, 1) == pytest.approx(1 / 3)
    assert exact_match_at_k(candidates, references, 2) == pytest.approx(2 / 3)
    assert exact_match_metric(candidates, references) == {"em@1": pytest.approx(1 / 3), "em@2": pytest.approx(2 / 3)}


def test_codebleu_components():
    reference = "def add(a, b):\n    total = a + b\n    return total"
    perfect = codebleu_metric([[reference]], [reference])
    assert perfect["codebleu"] == pytest.approx(1.0)
    wrong = codebleu_metric([["print('hello world')"]], [reference])
    assert wrong["codebleu"] < 0.5
    assert set(wrong) == {"codebleu", "codebleu_ngram", "codebleu_weighted_ngram", "codebleu_syntax", "codebleu_dataflow"}
