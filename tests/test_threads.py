"""CPU threading defaults (issue 30): unless the user chose an OpenMP waiting setting, peftlab reads the
load as it starts and chooses a short spin-wait on an idle CPU, passive waiting on a busy one; the run
record says what applied."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import peftlab
from peftlab.runs.directory import cpu_threads

SHOW = ("import os, peftlab; print(os.environ.get('GOMP_SPINCOUNT'), repr(os.environ.get('OMP_WAIT_POLICY')), "
        "peftlab.OTHERS_RUNNING_AT_START)")
OURS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", peftlab.CHOSEN_MARK)


def _spawn(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in OURS}
    return subprocess.run([sys.executable, "-c", SHOW], env={**clean, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()


def _expected(others: int) -> str:
    chosen = peftlab.choose_waiting(others)
    return f"{chosen.get('GOMP_SPINCOUNT')} {chosen.get('OMP_WAIT_POLICY')!r} {others}"


def test_with_nothing_set_the_waiting_follows_the_load_seen_at_start():
    shown = _spawn()
    others = shown.split()[-1]
    assert others.isdigit() and shown == _expected(int(others))


@pytest.mark.parametrize(("env", "expected"), [
    ({"GOMP_SPINCOUNT": "5"}, "5 None None"),              # the user's spin count, no load probe
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "None 'ACTIVE' None"),   # the user's policy: no spin count added
    ({"OMP_WAIT_POLICY": ""}, "None '' None"),               # set, even empty: left as libgomp's default
    ({"GOMP_SPINCOUNT": "7", peftlab.CHOSEN_MARK: "GOMP_SPINCOUNT=10000"}, "7 None None"),  # changed since
])
def test_a_user_s_openmp_setting_is_left_alone(env, expected):
    assert _spawn(**env) == expected


@pytest.mark.parametrize("inherited", [{"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "10000"}])
def test_a_process_started_by_peftlab_reads_the_load_again(inherited):
    """A study's cell inherits the setting its parent chose, and chooses again from the load it sees."""
    mark = ",".join(f"{name}={value}" for name, value in inherited.items())
    shown = _spawn(**inherited, **{peftlab.CHOSEN_MARK: mark})
    others = shown.split()[-1]
    assert others.isdigit() and shown == _expected(int(others))


@pytest.mark.parametrize(("others", "chosen"), [
    (None, {"GOMP_SPINCOUNT": "10000"}), (0, {"GOMP_SPINCOUNT": "10000"}),
    (1, {"OMP_WAIT_POLICY": "PASSIVE"}), (3, {"OMP_WAIT_POLICY": "PASSIVE"}),
])
def test_spinning_only_when_nothing_else_is_runnable(others, chosen):
    assert peftlab.choose_waiting(others) == chosen


@pytest.mark.parametrize(("content", "others"), [
    ("0.52 0.61 0.70 3/211 4242\n", 2),   # three runnable threads, this one among them
    ("0.00 0.01 0.05 1/98 17\n", 0),
    ("garbled\n", None),
])
def test_the_load_probe_reads_the_runnable_count(tmp_path, content, others):
    (tmp_path / "loadavg").write_text(content)
    assert peftlab.others_running(samples=3, gap_s=0, path=str(tmp_path / "loadavg")) == others
    assert peftlab.others_running(path=str(tmp_path / "missing")) is None


def test_the_run_record_names_the_threads_used():
    import torch

    threads = cpu_threads()
    assert threads["torch"] == torch.get_num_threads() >= 1
    assert threads["GOMP_SPINCOUNT"] == os.environ.get("GOMP_SPINCOUNT")
    assert threads["others_running_at_start"] == peftlab.OTHERS_RUNNING_AT_START
    assert set(threads) == {"torch", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "PEFTLAB_THREADS",
                            "others_running_at_start"}
