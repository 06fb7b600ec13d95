"""The contamination check: mined items that copy a HumanEval/MBPP solution are dropped and counted."""

import json
import shutil
import textwrap
import types

import pytest

from peftlab.data import contamination
from peftlab.data.contamination import (
    DEFAULT_THRESHOLD,
    ContaminationIndex,
    drop_contaminated,
    normalise,
    similarity,
)
from peftlab.data.documented_functions import MiningOptions, mine
from peftlab.tasks import benchmarks
from peftlab.tasks.benchmarks import benchmark_references
from peftlab.tasks.humaneval import load_problems

ORDINARY = {
    "textutils.py": '''
        """Small text helpers."""


        def count_vowels(text):
            """Count the vowels in a piece of text, ignoring case."""
            total = 0
            for char in text.lower():
                if char in "aeiou":
                    total += 1
            return total


        def title_words(sentence, keep=("a", "of", "the")):
            """Capitalise every word of the sentence except the short joining ones."""
            words = sentence.split()
            out = [w if w in keep else w.capitalize() for w in words]
            return " ".join(out)
        ''',
    "shapes.py": '''
        class Box:
            """An axis-aligned box."""

            def __init__(self, width, height):
                self.width = width
                self.height = height

            def area(self):
                """Return the area covered by this box on the plane."""
                size = self.width * self.height
                return size

            def grow(self, amount):
                """Return a new box that is larger by the given amount on every side."""
                extra = 2 * amount
                return Box(self.width + extra, self.height + extra)
        ''',
}

# HumanEval/0, rewritten the way a copier hides it: new names, two-space indentation, comments.
RENAMED = '''
def any_two_close(values: list, limit: float) -> bool:
  """Tell whether any two of the given values are nearer to each other than the limit."""
  # compare every ordered pair
  for i, a in enumerate(values):
    for j, b in enumerate(values):
      if i != j:
        gap = abs(a - b)  # their distance
        if gap < limit:
          return True

  return False
'''

# HumanEval/0 with one token changed (!= -> <): a near, not exact, duplicate.
EDITED = '''
def close_pair_exists(numbers, threshold):
    """Check whether some pair of numbers lies closer together than the threshold."""
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx < idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True
    return False
'''

# Same task, honestly re-solved: different code, must be kept.
RESOLVED = '''
def has_close_pair(numbers, threshold):
    """Check whether some pair of numbers lies closer together than the threshold."""
    ordered = sorted(numbers)
    for low, high in zip(ordered, ordered[1:]):
        if high - low < threshold:
            return True
    return False
'''


def _humaneval_copy(problem: dict) -> str:
    """prompt + canonical solution, with a blank line before the doctest examples: mine() refuses a
    docstring whose first paragraph holds '>>>', so it mines only 69 of the 164 verbatim functions (not
    HumanEval/0); with the blank line it mines 109."""
    lines = (problem["prompt"] + problem["canonical_solution"]).split("\n")
    first_example = next((i for i, line in enumerate(lines) if line.strip().startswith(">>>")), None)
    if first_example is not None:
        lines.insert(first_example, "")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def index():
    return ContaminationIndex(benchmark_references())


@pytest.fixture
def fixture_tree(tmp_path):
    for name, text in ORDINARY.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    he0 = load_problems()["HumanEval/0"]
    (tmp_path / "planted_exact.py").write_text(_humaneval_copy(he0))
    (tmp_path / "planted_renamed.py").write_text(RENAMED)
    (tmp_path / "planted_edited.py").write_text(EDITED)
    (tmp_path / "resolved.py").write_text(RESOLVED)
    return tmp_path


def _all(splits):
    return [record for split in splits.values() for record in split]


def test_planted_humaneval_copies_are_dropped_and_counted(fixture_tree, index):
    splits, _ = mine(fixture_tree, MiningOptions())
    records = _all(splits)
    names = {r["meta"]["name"] for r in records}
    planted = {"has_close_elements", "any_two_close", "close_pair_exists"}
    ordinary = {"count_vowels", "title_words", "Box.area", "Box.grow", "has_close_pair"}
    assert planted | ordinary == names  # precondition: the miner kept all of them

    kept, report = drop_contaminated(records, index)

    assert {r["meta"]["name"] for r in kept} == ordinary
    by_name = {item["name"]: item for item in report["items"]}
    assert set(by_name) == planted
    assert all(item["benchmark_id"] == "HumanEval/0" for item in by_name.values())
    assert by_name["has_close_elements"]["kind"] == "exact"
    assert by_name["any_two_close"]["kind"] == "exact"  # names, layout and comments do not matter
    assert by_name["close_pair_exists"]["kind"] == "near"
    assert DEFAULT_THRESHOLD <= by_name["close_pair_exists"]["similarity"] < 1.0
    assert (report["checked"], report["dropped"], report["exact"], report["near"]) == (8, 3, 2, 1)
    assert report["references"]["HumanEval"] == 164
    assert report["threshold"] == DEFAULT_THRESHOLD and report["ngram"] == 5
    item = by_name["has_close_elements"]
    assert item["file"] == "planted_exact.py" and item["id"].split("-")[0] in {"train", "validation", "test"}


def test_every_minable_humaneval_solution_is_caught(tmp_path, index):
    problems = load_problems()
    for number, (task_id, problem) in enumerate(problems.items()):
        (tmp_path / f"he_{number:03d}.py").write_text(_humaneval_copy(problem))
    splits, _ = mine(tmp_path, MiningOptions())
    records = _all(splits)
    assert len(records) > 80  # most solutions survive the miner's filters
    kept, report = drop_contaminated(records, index)
    assert kept == []
    tasks = list(problems)
    for item in report["items"]:
        assert item["benchmark_id"] == tasks[int(item["file"][3:6])]
        assert item["kind"] == "exact"


def test_threshold_is_inclusive_and_shared_with_similarity():
    reference = "def ref(y):\n" + "".join(f"    x{i} = step{i}(y, {i})\n" for i in range(30)) + "    return y\n"

    def edited(k):  # the first k statements call something else
        body = "".join(f"    x{i} = other{i}(y, {i})\n" if i < k else f"    x{i} = step{i}(y, {i})\n"
                       for i in range(30))
        return "def cand(y):\n" + body + "    return y\n"

    scores = [similarity(edited(k), reference) for k in range(31)]
    assert scores[0] == 1.0 and scores == sorted(scores, reverse=True)
    above = max(k for k, s in enumerate(scores) if s >= DEFAULT_THRESHOLD)
    below = above + 1
    assert scores[above] - scores[below] < 0.1  # a pair just either side of the threshold
    index = ContaminationIndex([("Bench/1", reference)])
    assert index.match(edited(above)) == ("Bench/1", scores[above], False)
    assert index.match(edited(below)) is None
    # the boundary itself counts as a match
    exact_at = ContaminationIndex([("Bench/1", reference)], threshold=scores[below])
    assert exact_at.match(edited(below)).similarity == scores[below]
    assert ContaminationIndex([("Bench/1", reference)], threshold=scores[below] + 1e-9).match(edited(below)) is None


def test_normalisation_ignores_layout_docstring_and_local_names():
    a = 'def f(xs):\n    """Doc."""\n    total = 0  # running\n    for x in xs:\n        total += len(x)\n    return total\n'
    b = "def g(items):\n\n  acc = 0\n  for it in items:\n\n    acc += len(it)\n  return acc\n"
    assert normalise(a) == normalise(b)
    c = "def g(items):\n  acc = 0\n  for it in items:\n    acc += sum(it)\n  return acc\n"
    assert normalise(a) != normalise(c)  # globals and builtins are kept


def test_attributes_and_strings():
    assert normalise("def f(self):\n    return self.name + 'x'\n") == normalise('def g(me):\n    return me.name + "x"\n')
    assert normalise("def f(self):\n    return self.name\n") != normalise("def f(self):\n    return self.label\n")
    # an attribute named like a local is not renamed
    assert normalise("def f(o, name):\n    return o.name\n") == [("return", "v0", ".", "name")]


def test_signature_and_decorators_are_not_compared():
    a = "@cache\ndef f(a: int, b: int = 2) -> int:\n    c = a * b\n    return c + a\n"
    b = "def other(p, q):\n    r = p * q\n    return r + p\n"
    assert similarity(a, b) == 1.0


def test_units_are_outermost_functions_and_methods():
    code = textwrap.dedent('''
        import os

        def outer(a):
            def inner(b):
                return b + 1
            return inner(a)

        class K:
            def m(self):
                return self.x
        ''')
    units = normalise(code)
    assert len(units) == 2
    assert "def" in units[0]  # the nested function is part of its parent's body
    assert normalise("x = 1\ny = x + 2\n") == [("x", "=", "1", "<NEWLINE>", "y", "=", "x", "+", "2")]


def test_indented_fragment_and_unparsable_code():
    method = "    def m(self):\n        s = '''\nraw\n'''\n        return s.strip()\n"
    assert normalise(method) == normalise("def m(self):\n    s = '''\nraw\n'''\n    return s.strip()\n")
    broken = "print 'python two'\nif x\n"
    index = ContaminationIndex([("Old/1", broken)])
    assert index.match(broken) == ("Old/1", 1.0, True)
    assert normalise("") == []


def test_short_bodies_match_only_exactly():
    index = ContaminationIndex([("B/1", "def f(s):\n    return s[::-1]\n")])
    assert index.match("def g(t):\n    return t[::-1]\n") == ("B/1", 1.0, True)
    assert index.match("def g(t):\n    return t[::-2]\n") is None


def test_match_prefers_exact_then_most_similar(index):
    he = load_problems()
    hit = index.match(he["HumanEval/61"]["prompt"] + he["HumanEval/61"]["canonical_solution"])
    assert hit == ("HumanEval/61", 1.0, True)  # not its near-twin HumanEval/56
    assert index.match(RESOLVED) is None


def test_bad_parameters():
    with pytest.raises(ValueError):
        ContaminationIndex([], threshold=0)
    with pytest.raises(ValueError):
        ContaminationIndex([], ngram=0)


def test_drop_report_on_records_without_ids():
    index = ContaminationIndex([("B/7", "def f(a, b):\n    c = a + b\n    return c * 2\n")])
    records = [{"reference": "def g(x, y):\n    z = x + y\n    return z * 2\n", "meta": {"name": "g", "file": "m.py"}},
               {"reference": "def h(x):\n    return x\n", "meta": {"name": "h", "file": "m.py"}}]
    kept, report = drop_contaminated(records, index)
    assert kept == [records[1]]
    assert report["items"] == [{"id": None, "name": "g", "file": "m.py", "benchmark_id": "B/7",
                                "similarity": 1.0, "kind": "exact"}]
    assert report["references"] == {"B": 1}


def test_benchmark_references_humaneval_and_optional_mbpp(monkeypatch):
    refs = benchmark_references()
    humaneval = [r for r in refs if r[0].startswith("HumanEval/")]
    assert len(humaneval) == 164
    # MultiPL-E's MBPP ships no solutions; the original test split's 500 are vendored and indexed
    assert sum(r[0].startswith("MBPP/") for r in refs) == 500
    fake = types.SimpleNamespace(reference_solutions=dict)
    fake.load_problems = lambda: {
        "MBPP/2": {"task_id": "MBPP/2", "prompt": "Write a function to add.", "canonical_solution": "def add(a, b):\n    return a + b\n"},
        "MBPP/3": {"task_id": "MBPP/3", "prompt": "def sub(a, b):\n", "canonical_solution": "    return a - b\n"},
        "MBPP/4": {"task_id": "MBPP/4", "prompt": "def x():\n", "canonical_solution": None},
    }
    monkeypatch.setattr(benchmarks, "mbpp", fake)
    extra = dict(benchmark_references())
    assert extra["MBPP/2"] == "def add(a, b):\n    return a + b\n"  # a text prompt is not prepended
    assert extra["MBPP/3"] == "def sub(a, b):\n    return a - b\n"
    assert "MBPP/4" not in extra
    assert ContaminationIndex(benchmark_references()).references == {"HumanEval": 164, "MBPP": 2, "quixbugs": 62}


def test_default_rule():
    assert contamination.DEFAULT_NGRAM == 5


def test_mine_codegen_drops_a_planted_benchmark_copy_and_counts_it(tmp_path, monkeypatch, capsys):
    from conftest import MINI_PROJECT, run_cli_in_process

    source = tmp_path / "project"
    shutil.copytree(MINI_PROJECT, source)
    he0 = load_problems()["HumanEval/0"]
    # HumanEval/0's solution under a plain docstring (the published one has doctests, which the miner skips)
    (source / "closeness.py").write_text(
        "def has_close_elements(numbers, threshold):\n"
        '    """Check whether any two numbers in the list are closer to each other than the threshold."""\n'
        + he0["canonical_solution"])
    (source / "tests").mkdir()
    (source / "tests" / "test_geometry.py").write_text(
        'def test_area():\n    """Check the area of a circle of radius two."""\n    value = 2\n    assert value\n')

    def mine(out, *flags):
        code, _, err = run_cli_in_process(monkeypatch, capsys, "data", "mine-codegen", "--source", str(source),
                                          "--out", str(tmp_path / out), "--tokenizer", "", *flags)
        assert code == 0, err
        card = json.loads((tmp_path / out / "card.json").read_text())
        names = [json.loads(line)["meta"]["name"] for split in ("train", "validation", "test")
                 for line in (tmp_path / out / f"{split}.jsonl").read_text().splitlines()]
        return card, names

    card, names = mine("checked")
    dropped = {item["name"]: item for item in card["filtered"]["items"]}
    assert card["filtered"]["dropped"] == len(dropped) == 3
    assert dropped["has_close_elements"]["benchmark_id"] == "HumanEval/0" and dropped["has_close_elements"]["kind"] == "exact"
    # the fixture's own Euclid gcd is a near-duplicate of HumanEval/13's solution, and is dropped too
    assert dropped["gcd"]["benchmark_id"] == "HumanEval/13" and dropped["gcd"]["kind"] == "near"
    # and its three-line `product = x * y; return product` is, after renaming, MBPP/52's body exactly
    assert dropped["decorated_helper"]["benchmark_id"] == "MBPP/52" and dropped["decorated_helper"]["kind"] == "exact"
    assert "has_close_elements" not in names and "gcd" not in names and "test_area" not in names
    card, names = mine("unchecked", "--no-contamination-check", "--include-tests")
    assert "filtered" not in card and "has_close_elements" in names and "test_area" in names


def test_an_unpinned_source_is_one_line(tmp_path, monkeypatch, capsys):
    from conftest import run_cli_in_process

    code, _, err = run_cli_in_process(monkeypatch, capsys, "data", "mine-codegen", "--source", "toolz",
                                      "--out", str(tmp_path / "o"), "--tokenizer", "")
    assert code == 2 and err.count("\n") == 1 and "NAME==VERSION" in err, err


# --- Train/test overlap of a run, and QuixBugs among the benchmarks --------------------------------------

def test_overlap_reports_planted_copies_and_nothing_else():
    from peftlab.data.contamination import overlap

    test = [("T/1", "def add(a, b):\n    total = a + b\n    return total\n"),
            ("T/2", "def walk(tree):\n    out = []\n    for node in tree.children:\n        out.append(node.value * 2)\n"
                    "        out.extend(walk(node))\n    return out\n")]
    train = [("exact", "def plus(x, y):\n    s = x + y\n    return s\n"),  # renamed copy of T/1: exact after renaming
             ("near", "def walk(tree):\n    out = []\n    for node in tree.children:\n        out.append(node.value * 3)\n"
                      "        out.extend(walk(node))\n    return out\n"),
             ("unrelated", "def mean(values):\n    return sum(values) / len(values)\n")]
    card = overlap(train, test)
    assert (card["train_items"], card["test_items"], card["exact"], card["near"]) == (3, 2, 1, 1)
    assert [(item["train_id"], item["test_id"], item["kind"]) for item in card["items"]] == [
        ("exact", "T/1", "exact"), ("near", "T/2", "near")]


def test_quixbugs_programs_are_benchmark_references():
    from peftlab.tasks.benchmarks import benchmark_references
    from peftlab.tasks.codegen.build import contamination_filter
    from peftlab.tasks.repair.quixbugs import quixbugs_bugs

    references = dict(benchmark_references())
    quixbugs = {key: code for key, code in references.items() if key.startswith("quixbugs/")}
    assert len(quixbugs) == 31  # (fixed and buggy share the id)
    gcd = next(bug for bug in quixbugs_bugs()[0] if bug["id"] == "quixbugs/gcd")
    kept, report = contamination_filter([{"id": "mined-1", "reference": gcd["buggy"], "meta": {"name": "gcd"}},
                                         {"id": "mined-2", "reference": "def f(x):\n    return [x] * 3\n"}])
    assert [record["id"] for record in kept] == ["mined-2"]
    assert report["items"][0]["benchmark_id"] == "quixbugs/gcd" and report["references"]["quixbugs"] == 62


def test_a_run_reports_training_items_that_copy_its_test_items(tiny_data_dir, tmp_path):
    import shutil

    from peftlab.config import load_config
    from peftlab.stages.overlap import training_overlap

    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data)
    tests = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    planted = {**tests[1], "id": "planted-copy"}
    with (data / "train.jsonl").open("a") as handle:
        handle.write(json.dumps(planted) + "\n")
    config = load_config(None, ["method.name=icl", "task=codegen", f"data.dir={data}"])
    card = training_overlap(config)
    assert card["exact"] >= 1
    assert {"train_id": "planted-copy", "test_id": tests[1]["id"], "similarity": 1.0, "kind": "exact"} in card["items"]
    assert training_overlap(load_config(None, ["method.name=zero-shot", "task=codegen", f"data.dir={data}"])) is None


def test_a_planted_mbpp_solution_in_training_data_is_reported(tiny_data_dir, tmp_path):
    """MBPP's original solutions are indexed: a training set holding one (renamed, reformatted) is caught by
    the mining check and by the run's overlap card against the MBPP test set."""
    from peftlab.config import load_config
    from peftlab.stages.overlap import training_overlap
    from peftlab.tasks.codegen.build import contamination_filter
    from peftlab.tasks.mbpp.data import reference_solutions

    solution = reference_solutions()["MBPP/17"]  # square_perimeter, in the 397 MultiPL-E problems
    planted = solution.replace("square_perimeter", "perimeter_of_square").replace("a", "side")
    kept, report = contamination_filter([{"id": "mined-mbpp", "reference": planted, "meta": {}},
                                         {"id": "mined-ok", "reference": "def g(x):\n    return [x, x]\n"}])
    assert [record["id"] for record in kept] == ["mined-ok"]
    assert report["items"][0]["benchmark_id"] == "MBPP/17" and report["references"]["MBPP"] == 500

    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data)
    with (data / "train.jsonl").open("a") as handle:
        handle.write(json.dumps({"id": "planted-mbpp", "instruction": "Perimeter of a square.", "reference": planted}) + "\n")
    card = training_overlap(load_config(None, ["method.name=icl", "task=mbpp", "data.train_task=codegen",
                                               f"data.dir={data}"]))
    assert card["test_items"] == 235
    found = [(item["train_id"], item["test_id"]) for item in card["items"]]
    assert ("planted-mbpp", "MBPP/17") in found
    # the fixture (mined unchecked) also holds `product = x * y; return product`: an MBPP body, caught as well
    assert all(train_id in ("planted-mbpp", "train-00010") for train_id, _ in found)
