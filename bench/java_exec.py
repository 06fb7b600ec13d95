"""Bench: Java executions per second in the sandbox, beside the Python sandbox's.

Four Java configurations for each of two jobs, and the Python sandbox for scale:

* ``junit``: a QuixBugs-like job, one program class and one JUnit 4 class with 5 tests;
* ``main``: a HumanEval-X-like job, a ``Solution`` class and a ``Main`` whose ``main`` checks 5 answers;
* each with the toolchain's class-data-sharing archive and without it (``harness.CLASS_SHARING``), run
  one at a time (serial) and on 2 workers;
* ``python``: :func:`peftlab.execution.harness.run_tests` on a small HumanEval-like program (5 asserts),
  serial and on 2 workers, as bench/execution.py runs it.

Every run must pass (a failing one would be measured on a shorter path). Rounds alternate the order of the
configurations, so that load drifting on a shared machine favours none; the report gives ratios, which
drift less than rates.

* the CPU time of the runner's JVM alone, started directly (outside the sandbox), with and without the
  archive: a figure that other work on the machine hardly changes.

    python bench/java_exec.py [--java-runs 8] [--python-runs 40] [--cpu-runs 5] [--rounds 2] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peftlab.execution import harness as python_harness
from peftlab.execution import sandbox
from peftlab.execution.java import JavaJob, harness, run_java_batch
from peftlab.execution.java.job import encode_job
from peftlab.execution.java.toolchain import toolchain

PROGRAM = """package java_programs;
import java.util.*;
public class BITCOUNT {
    public static int bitcount(int n) {
        int count = 0;
        while (n != 0) {
            n = (n & (n - 1));
            count++;
        }
        return count;
    }
}
"""
JUNIT = "package java_testcases.junit;\nimport org.junit.Test;\nimport static org.junit.Assert.assertEquals;\n" \
        "public class BITCOUNT_TEST {\n" + "".join(
            f"    @Test public void test_{i}() {{ assertEquals({bin(n).count('1')}, "
            f"java_programs.BITCOUNT.bitcount({n})); }}\n" for i, n in enumerate([127, 128, 3005, 13, 14])) + "}\n"
SOLUTION = """import java.util.*;
public class Solution {
    public List<Integer> evens(List<Integer> numbers) {
        List<Integer> kept = new ArrayList<>();
        for (int n : numbers) if (n % 2 == 0) kept.add(n);
        return kept;
    }
}
"""
CASES = [((1, 2, 3, 4), (2, 4)), ((5,), ()), ((8, 8), (8, 8)), ((), ()), ((0, 1), (0,))]
MAIN = "import java.util.*;\npublic class Main {\n    public static void main(String[] args) {\n" \
       "        Solution s = new Solution();\n        List<Boolean> correct = Arrays.asList(\n" + ",\n".join(
           f"            s.evens(Arrays.asList({str(list(xs))[1:-1]})).equals(Arrays.asList({str(list(ys))[1:-1]}))"
           for xs, ys in CASES) + \
       "\n        );\n        if (correct.contains(false)) throw new AssertionError();\n    }\n}\n"
PY_PROGRAM = "def evens(numbers):\n    return [n for n in numbers if n % 2 == 0]\n"
PY_TESTS = "def check(candidate):\n" + "".join(f"    assert candidate({list(xs)}) == {list(ys)}\n" for xs, ys in CASES)
JOBS = {
    "junit": JavaJob(program={"java_programs/BITCOUNT.java": PROGRAM},
                     tests={"java_testcases/junit/BITCOUNT_TEST.java": JUNIT},
                     run=("java_testcases.junit.BITCOUNT_TEST",), timeout=5.0),
    "main": JavaJob(program={"Solution.java": SOLUTION}, tests={"Main.java": MAIN}, run=("Main",), mode="main",
                    timeout=5.0),
}


def java_rate(kind: str, sharing: bool, workers: int, runs: int) -> tuple[float, list[str]]:
    harness.CLASS_SHARING = sharing
    try:
        start = time.monotonic()
        verdicts = run_java_batch([JOBS[kind]] * runs, workers=workers)
        return time.monotonic() - start, [v.status for v in verdicts]
    finally:
        harness.CLASS_SHARING = True


def python_rate(workers: int, runs: int) -> tuple[float, list[str]]:
    start = time.monotonic()
    verdicts = python_harness.run_batch([{"program": PY_PROGRAM, "entry_point": "evens", "tests": PY_TESTS,
                                          "timeout": 3.0}] * runs, workers=workers)
    return time.monotonic() - start, [v.status for v in verdicts]


def jvm_cpu(kind: str, sharing: bool, runs: int) -> float:
    """CPU milliseconds (user + system) of one run of the runner's JVM, started directly, outside the sandbox:
    what the JVM costs, whatever else shares the machine."""
    work = Path(tempfile.mkdtemp(prefix="peftlab-bench-"))
    try:
        (work / "job").write_bytes(encode_job(JOBS[kind], "0" * 32))
        argv = ["/bin/sh", "-c", 'exec "$@" 3<"$0/job" 4>"$0/out"', str(work),
                *toolchain().command(harness.HEAP_MB, class_sharing=sharing)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(runs):
            subprocess.run(argv, cwd=work, capture_output=True, timeout=120, check=False)
            records = (work / "out").read_text()
            if '"type":"done"' not in records or '"status":"passed"' not in records:
                raise SystemExit(f"the {kind} job did not pass outside the sandbox")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return 1000 * (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / runs
    finally:
        shutil.rmtree(work, ignore_errors=True)


def archive_maps() -> bool:
    """Whether the JVM maps the class-data archive (``-Xshare:on`` fails to start otherwise)."""
    argv = [a if a != "-Xshare:auto" else "-Xshare:on" for a in toolchain().command(harness.HEAP_MB)[:-1]]
    return subprocess.run([*argv, "-version"], capture_output=True, timeout=60).returncode == 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--java-runs", type=int, default=8, help="runs per Java configuration and round")
    parser.add_argument("--python-runs", type=int, default=40, help="runs per Python configuration and round")
    parser.add_argument("--cpu-runs", type=int, default=5, help="direct JVM runs per job and archive setting")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    tools = toolchain()
    backend = sandbox.get_backend().name
    configs = [(kind, sharing, workers) for kind in JOBS for sharing in (True, False) for workers in (1, 2)]
    configs += [("python", None, workers) for workers in (1, 2)]
    java_rate("main", True, 1, 2)  # warm: the toolchain, the pool, the page cache
    python_rate(1, 4)
    load_before = os.getloadavg()
    seconds, runs, statuses = {c: 0.0 for c in configs}, {c: 0 for c in configs}, {c: [] for c in configs}
    for number in range(args.rounds):
        for config in configs if number % 2 == 0 else configs[::-1]:
            kind, sharing, workers = config
            count = args.python_runs if kind == "python" else args.java_runs
            if kind == "python":
                elapsed, found = python_rate(workers, count)
            else:
                elapsed, found = java_rate(kind, sharing, workers, count)
            seconds[config] += elapsed
            runs[config] += count
            statuses[config] += found
            print(f"round {number + 1}: {label(config):34s} {count / elapsed:6.2f} executions/s", flush=True)
    rate = {c: runs[c] / seconds[c] for c in configs}
    cpu = {(kind, sharing): round(jvm_cpu(kind, sharing, args.cpu_runs), 1)
           for kind in JOBS for sharing in (True, False)}
    rows = []
    for config in configs:
        kind, sharing, workers = config
        row = {"job": kind, "class_sharing": sharing, "workers": workers, "runs": runs[config],
               "executions_per_s": round(rate[config], 2), "ms_per_execution": round(1000 / rate[config], 1),
               "statuses": {s: statuses[config].count(s) for s in sorted(set(statuses[config]))}}
        if kind != "python":
            row["vs_python_same_workers"] = round(rate[config] / rate[("python", None, workers)], 3)
            row["vs_without_archive"] = round(rate[config] / rate[(kind, False, workers)], 3)
            row["jvm_cpu_ms"] = cpu[(kind, sharing)]
        row["vs_serial"] = round(rate[config] / rate[(kind, sharing, 1)], 3)
        rows.append(row)
    report = {"backend": backend, "java": tools.version, "heap_mb": harness.HEAP_MB, "archive_maps": archive_maps(),
              "rounds": args.rounds, "results": rows, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                          "loadavg_before": [round(x, 2) for x in load_before],
                          "loadavg_after": [round(x, 2) for x in os.getloadavg()]}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "java-exec.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "java-exec.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(r["statuses"] == {"passed": r["runs"]} for r in rows) else 1


def label(config) -> str:
    kind, sharing, workers = config
    archive = "" if kind == "python" else " with archive" if sharing else " without archive"
    return f"{kind}{archive}, {workers} worker{'s' if workers > 1 else ''}"


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = ["# Java execution bench: executions per second in the sandbox", "",
             (f"Backend `{report['backend']}`, JDK {report['java']}, heap {report['heap_mb']} MB, {report['rounds']} "
              "rounds (order alternated). `junit`: one program class and a JUnit 4 class with 5 tests (QuixBugs-like); "
              "`main`: `Solution` and a `Main` checking 5 answers (HumanEval-X-like); `python`: `run_tests` on a "
              "HumanEval-like program with 5 asserts. The class-data archive maps: "
              f"{'yes' if report['archive_maps'] else 'NO'}."), "",
             "| job | archive | workers | executions/s | ms each | vs python (same workers) | vs no archive "
             "| vs serial | JVM CPU ms | statuses |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in report["results"]:
        archive = "" if row["class_sharing"] is None else "yes" if row["class_sharing"] else "no"
        statuses = ", ".join(f"{k} {v}" for k, v in row["statuses"].items())
        lines.append(f"| {row['job']} | {archive} | {row['workers']} | {row['executions_per_s']:.2f} | "
                     f"{row['ms_per_execution']:.0f} | {ratio(row.get('vs_python_same_workers'))} | "
                     f"{ratio(row.get('vs_without_archive'))} | {ratio(row['vs_serial'])} | "
                     f"{row.get('jvm_cpu_ms', '')} | {statuses} |")
    lines += ["", (f"Machine: {machine['cpus']} CPUs, Python {machine['python']}, {machine['platform']}; load average "
                   f"{machine['loadavg_before'][0]} before, {machine['loadavg_after'][0]} after ({report['date']}). "
                   "The machine is shared: a load average above the CPU count means other work ran beside the "
                   "bench; compare the ratios, not the absolute rates. JVM CPU ms: user + system time of one run "
                   "of the runner's JVM started directly (outside the sandbox), which load hardly changes."), ""]
    return "\n".join(lines)


def ratio(value) -> str:
    return "" if value is None else f"{value:.2f}x"


if __name__ == "__main__":
    sys.exit(main())
