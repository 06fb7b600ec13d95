"""MBPP data layer: the vendored MultiPL-E file loads, its tests run in the sandbox, tampering is refused."""

from __future__ import annotations

import gzip
import hashlib
import json
from importlib import resources

import pytest

from peftlab.errors import UserError
from peftlab.execution import harness
from peftlab.tasks.mbpp import data

WORKERS = 4  # sandboxes mostly wait on process start-up; 4 keeps 2 cores busy

# Hand-written from the prompts (not copied from MBPP's reference code), chosen for varied return types:
# bool, list, int from str, list of tuples, dict, big int, floats, a problem with 7 cases.
CORRECT = {
    "MBPP/3": "    if n < 2:\n        return True\n"
              "    return any(n % d == 0 for d in range(2, int(n ** 0.5) + 1))\n",
    "MBPP/4": "    return sorted(nums, reverse=True)[:n]\n",
    "MBPP/9": "    for i in range(1, len(str) + 1):\n"
              "        if str[i:] + str[:i] == str:\n            return i\n    return len(str)\n",
    "MBPP/64": "    return sorted(subjectmarks, key=lambda pair: pair[1])\n",
    "MBPP/88": "    counts = {}\n    for x in list1:\n        counts[x] = counts.get(x, 0) + 1\n"
               "    return counts\n",
    "MBPP/67": "    row = [1]\n    for _ in range(n):\n        nxt = [row[-1]]\n"
               "        for value in row:\n            nxt.append(nxt[-1] + value)\n        row = nxt\n"
               "    return row[0]\n",
    "MBPP/117": "    return [tuple(float(x) for x in pair) for pair in test_list]\n",
    "MBPP/799": "    return ((n << d) | (n >> (32 - d))) & 0xFFFFFFFF\n",
}

# Off-by-one variants of some of the above; MBPP/3 misses the divisor sqrt(n) itself, so it passes some cases.
OFF_BY_ONE = {
    "MBPP/3": CORRECT["MBPP/3"].replace("int(n ** 0.5) + 1", "int(n ** 0.5)"),
    "MBPP/4": "    return sorted(nums, reverse=True)[:n + 1]\n",
    "MBPP/67": CORRECT["MBPP/67"].replace("range(n)", "range(n - 1)"),
    "MBPP/799": "    return ((n << (d - 1)) | (n >> (33 - d))) & 0xFFFFFFFF\n",
}


@pytest.fixture(scope="module")
def problems() -> dict:
    return data.load_problems()


def test_all_397_problems_load(problems):
    assert len(problems) == data.PROBLEMS == 397
    assert list(problems)[:3] == ["MBPP/3", "MBPP/4", "MBPP/6"]
    numbers = [p["mbpp_id"] for p in problems.values()]
    assert numbers == sorted(set(numbers))
    assert len({p["name"] for p in problems.values()}) == 397
    for task_id, problem in problems.items():
        assert set(problem) >= {"task_id", "prompt", "canonical_solution", "test", "entry_point",
                                "name", "mbpp_id", "stop_tokens"}
        assert problem["task_id"] == task_id == f"MBPP/{problem['mbpp_id']}"
        assert problem["name"] == f"mbpp_{problem['mbpp_id']}_{problem['entry_point']}"
        assert f"def {problem['entry_point']}(" in problem["prompt"]
        assert problem["canonical_solution"] is None
        assert "test_check" not in problem["test"]
        assert harness.count_cases(problem["test"], "check", problem["entry_point"]) >= 1


def test_copies_are_independent(problems):
    first = data.load_problems()
    first["MBPP/3"]["prompt"] = "changed"
    first["MBPP/3"]["stop_tokens"].append("x")
    again = data.load_problems()["MBPP/3"]
    assert again["prompt"] == problems["MBPP/3"]["prompt"] != "changed"
    assert again["stop_tokens"] == ["\ndef", "\n#", "\nif", "\nclass"]


def test_adapt_tests_strips_the_self_call_and_keeps_line_numbers():
    tests = ("def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(2) == 3\n\n"
             "def test_check():\n    check(f)\n\ntest_check()\n")
    out = data.adapt_tests(tests, "f")
    assert out == "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(2) == 3\n"
    assert harness.count_cases(out, "check", "f") == 2
    with pytest.raises(ValueError, match="check\\(f\\)"):
        data.adapt_tests(tests.replace("check(f)", "check(g)"), "f")
    with pytest.raises(ValueError, match="asserts nothing"):
        data.adapt_tests("def check(candidate):\n    pass\n", "f")


def _job(problem: dict, body: str) -> dict:
    # No setup: MBPP's tests use only builtins and the candidate, nothing from the prompt.
    return {"program": problem["prompt"] + body, "entry_point": problem["entry_point"],
            "tests": problem["test"], "timeout": 5.0}


def test_correct_solutions_pass_and_wrong_ones_fail(problems):
    wrong = {f"{t} None": (t, "    return None\n") for t in CORRECT}
    wrong.update({f"{t} off-by-one": (t, body) for t, body in OFF_BY_ONE.items()})
    jobs = [_job(problems[t], body) for t, body in CORRECT.items()]
    jobs += [_job(problems[t], body) for t, body in wrong.values()]
    verdicts = harness.run_batch(jobs, WORKERS)
    good, bad = verdicts[:len(CORRECT)], dict(zip(wrong, verdicts[len(CORRECT):]))
    assert {t: v.reason for t, v in zip(CORRECT, good) if v.status != "passed"} == {}
    assert all(v.tests_passed == v.tests_total >= 3 for v in good)
    assert {k: v.reason for k, v in bad.items() if v.status != "failed"} == {}
    assert all(v.tests_passed < v.tests_total for v in bad.values())
    assert bad["MBPP/3 off-by-one"].tests_passed == 3  # only is_not_prime(35) (= 5 * 7) is wrong
    assert "assertion failed: assert candidate(35) == True" in bad["MBPP/3 off-by-one"].reason


def _vendored_json() -> bytes:
    return gzip.decompress((resources.files(data.__package__) / data.DATA_FILE).read_bytes())


def _tampered(change) -> bytes:
    raw = _vendored_json()
    assert hashlib.sha256(raw).hexdigest() == data.SHA256
    records = json.loads(raw)
    change(records)
    return json.dumps(records, indent=2).encode()


def test_a_copy_with_the_same_bytes_loads_from_a_path(tmp_path):
    raw = _vendored_json()
    plain = tmp_path / "mbpp-py-reworded.json"
    plain.write_bytes(raw)
    assert data.load_problems(plain).keys() == data.load_problems().keys()


def test_tampered_file_is_refused_in_one_line(tmp_path):
    def weaken(records):  # the kind of edit that would make a wrong answer pass
        records[0]["tests"] = records[0]["tests"].replace("== False", "== None", 1)

    tampered = tmp_path / "mbpp-py-reworded.json.gz"
    tampered.write_bytes(gzip.compress(_tampered(weaken)))
    with pytest.raises(UserError, match="sha256") as info:
        data.load_problems(tampered)
    assert "\n" not in str(info.value) and "expected 4f34000ad02567d9" in str(info.value)


def test_missing_or_corrupt_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="unreadable") as info:
        data.load_problems(tmp_path / "absent.json.gz")
    assert "\n" not in str(info.value)
    broken = tmp_path / "broken.json.gz"
    broken.write_bytes(gzip.compress(b"[]")[:-6])
    with pytest.raises(UserError, match="unreadable"):
        data.load_problems(broken)
