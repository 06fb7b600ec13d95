"""Mine a real project and check every record independently: how many, how many with a direct test, how long.

    .venv/bin/python bench/mine_project.py [SPEC ...]        # default: algorithms==1.0.1

For each spec: mine it afresh into a private cache (the sdist itself comes from the shared source cache),
timing the suite runs and the validation; then, as a separate check, run every record again with its
original body (all its tests must pass) and with its body emptied to ``raise NotImplementedError`` and to
``pass`` (at least one must fail). Prints a table; writes bench/results/mine-<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def bench(spec: str) -> dict:
    from peftlab.data.sources import resolve_source
    from peftlab.projects.functions import emptied_body
    from peftlab.projects.bodies import run_bodies
    from peftlab.tasks.mined_projects import mined_project

    resolve_source(spec)  # download outside the timing, into the shared source cache
    shared_sources = os.environ.get("PEFTLAB_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        from peftlab.cache import cache_dir

        os.symlink(cache_dir() / "sources", Path(cache) / "sources")
        os.environ["PEFTLAB_CACHE"] = cache
        try:
            started = time.monotonic()
            project = mined_project(spec, progress=lambda message: print(f"  {message}", flush=True), force=True)
            mining_s = time.monotonic() - started
            records = project.records
            items = ([(r, None) for r in records] + [(r, emptied_body(r)) for r in records]
                     + [(r, " " * r["body_indent"] + "pass\n") for r in records])
            started = time.monotonic()
            verdicts = run_bodies(project.tree, items, timeout=float(project.card["per_test_timeout_s"]))
            check_s = time.monotonic() - started
        finally:
            if shared_sources is None:
                os.environ.pop("PEFTLAB_CACHE", None)
            else:
                os.environ["PEFTLAB_CACHE"] = shared_sources
    n = len(records)
    original, raised, passed = verdicts[:n], verdicts[n:2 * n], verdicts[2 * n:]
    card = project.card
    return {
        "spec": spec, "files": card["files"], "modules": card["modules"], "tests": card["tests"]["total"],
        "tests_kept": card["tests"]["kept"],
        "tests_dropped": {reason: entry["count"] for reason, entry in card["tests"]["dropped"].items()},
        "functions_executed": card["functions"]["executed_by_kept_tests"],
        "rejected": card["functions"]["rejected"],
        "contamination_dropped": card.get("filtered", {}).get("dropped"),
        "records": n, "with_direct_test": card["functions"]["with_direct_test"],
        "tests_per_record_mean": round(sum(len(r["tests"]) for r in records) / n, 2),
        "counts": card["counts"],
        "mining_s": round(mining_s, 1), "mining_seconds": card["seconds"],
        "recheck_runs": len(items), "recheck_s": round(check_s, 1),
        "original_all_pass": sum(v["status"] == "passed" for v in original),
        "raise_fails": sum(v["status"] != "passed" for v in raised),
        "pass_fails": sum(v["status"] != "passed" for v in passed),
        "not_attested": sum(v["status"] == "error" for v in verdicts),
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=["algorithms==1.0.1"])
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for spec in args.specs:
        print(f"mining {spec}", flush=True)
        row = bench(spec)
        name = spec.replace("==", "-")
        (RESULTS / f"mine-{name}.json").write_text(json.dumps(row, indent=2) + "\n")
        lines = [f"# Mining {spec}", "", f"`.venv/bin/python bench/mine_project.py {spec}` on {row['cpu_count']} CPU "
                 "cores; a fresh mining, then every record checked again.", "", "| what | value |", "|---|---|"]
        for key, value in row.items():
            lines.append(f"| {key} | {json.dumps(value) if isinstance(value, dict) else value} |")
        (RESULTS / f"mine-{name}.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines[4:]))


if __name__ == "__main__":
    main()
