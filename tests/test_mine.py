import json

import pytest

from peftlab.tasks.codegen.build import build_codegen_dataset
from peftlab.data.documented_functions import MiningOptions, default_source_files, mine
from peftlab.errors import UserError

from conftest import MINI_PROJECT


@pytest.fixture(scope="module")
def mined():
    return mine(MINI_PROJECT, MiningOptions())


def _names(splits):
    return {record["meta"]["name"] for split in splits.values() for record in split}


def test_keeps_documented_functions_and_methods(mined):
    splits, _ = mined
    names = _names(splits)
    assert {"circle_area", "distance", "reverse_words", "gcd", "Stack.push", "Stack.pop"} <= names
    assert {"undocumented", "stub", "placeholder", "short", "old", "Stack.__init__"}.isdisjoint(names)


def test_record_shape(mined):
    splits, _ = mined
    record = next(r for s in splits.values() for r in s if r["meta"]["name"] == "circle_area")
    assert record["instruction"] == "Return the area of a circle with the given radius.\n\ndef circle_area(radius):"
    assert record["reference"] == (
        "def circle_area(radius):\n"
        "    if radius < 0:\n"
        '        raise ValueError("radius must be non-negative")\n'
        "    return math.pi * radius * radius"
    )
    assert record["meta"] == {"file": "geometry.py", "name": "circle_area", "line": 6}


def test_method_reference_is_dedented_and_decorators_kept(mined):
    splits, _ = mined
    by_name = {r["meta"]["name"]: r for s in splits.values() for r in s}
    assert by_name["Stack.peek"]["reference"].startswith("def peek(self):\n    if not self.items:")
    assert by_name["decorated_helper"]["reference"].startswith("@staticmethod\ndef decorated_helper(x, y):")


def test_exact_duplicates_removed(mined):
    splits, _ = mined
    clamps = [r for s in splits.values() for r in s if r["meta"]["name"] == "clamp"]
    assert len(clamps) == 1


def test_split_by_file_no_file_in_two_splits(mined):
    splits, card = mined
    files = {name: {r["meta"]["file"] for r in split} for name, split in splits.items()}
    assert all(files.values()), files
    assert files["train"].isdisjoint(files["validation"])
    assert files["train"].isdisjoint(files["test"])
    assert files["validation"].isdisjoint(files["test"])
    assert card["counts"] == {name: len(split) for name, split in splits.items()}


def test_split_is_deterministic_and_seeded():
    first, _ = mine(MINI_PROJECT, MiningOptions(seed=0))
    again, _ = mine(MINI_PROJECT, MiningOptions(seed=0))
    other, _ = mine(MINI_PROJECT, MiningOptions(seed=3))
    assert first == again
    assert [r["id"] for r in first["test"]] == [f"test-{i:05d}" for i in range(len(first["test"]))]
    assert {r["meta"]["file"] for r in first["test"]} != {r["meta"]["file"] for r in other["test"]}


def test_missing_source_dir_is_user_error(tmp_path):
    with pytest.raises(UserError, match="source directory not found"):
        mine(tmp_path / "nope", MiningOptions())


def test_empty_after_filtering_is_user_error(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    pass\n")
    with pytest.raises(UserError, match="no function .* survived the filters"):
        mine(tmp_path, MiningOptions())


def test_build_writes_splits_and_card(tmp_path):
    card = build_codegen_dataset(tmp_path, MINI_PROJECT, seed=0, tokenizer_name=None)
    for split in ("train", "validation", "test"):
        lines = (tmp_path / f"{split}.jsonl").read_text().splitlines()
        assert len(lines) == card["counts"][split]
    written = json.loads((tmp_path / "card.json").read_text())
    assert written["source"] == {"kind": "directory", "root": str(MINI_PROJECT), "tests_excluded": True}
    assert written["seed"] == 0 and written["python_version"]


def test_default_source_is_listed_stdlib_modules():
    root, files = default_source_files()
    assert root.is_dir() and len(files) > 50
    assert all(path.suffix == ".py" and "test" not in path.relative_to(root).parts for path in files)
