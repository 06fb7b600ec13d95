from peftlab.tasks.postprocess import extract_code

STOPS = ["\n### Instruction", "\n\n\n"]


def test_fenced_block_extracted_and_prose_dropped():
    text = "```python\ndef f(x):\n    return x\n```\n\nThis function returns x.\n### Instruction:\nmore"
    assert extract_code(text, STOPS) == "def f(x):\n    return x"


def test_trailing_definition_and_prose_dropped():
    text = "def f(x):\n    y = x\n\n    return y\nThis returns y.\ndef g(): pass"
    assert extract_code(text, STOPS) == "def f(x):\n    y = x\n\n    return y"


def test_multiline_signature_and_decorator_kept():
    text = "@cache\ndef f(\n    a,\n) -> int:\n    return a\n"
    assert extract_code(text, STOPS) == "@cache\ndef f(\n    a,\n) -> int:\n    return a"


def test_stop_string_cuts():
    assert extract_code("def f():\n    return 1\n### Instruction:\nx", STOPS) == "def f():\n    return 1"
