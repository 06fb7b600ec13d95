"""CPU threading defaults (issue 30): peftlab shortens libgomp's spin-wait unless the user chose an OpenMP
waiting setting, and the run record says what applied."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import peftlab
from peftlab.runs.directory import cpu_threads

SHOW = "import os, peftlab; print(os.environ.get('GOMP_SPINCOUNT'), repr(os.environ.get('OMP_WAIT_POLICY')))"


def _spawn(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    return subprocess.run([sys.executable, "-c", SHOW], env={**clean, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize(("env", "expected"), [
    ({}, f"{peftlab.DEFAULT_SPINCOUNT} None"),          # neither set: peftlab's spin count
    ({"GOMP_SPINCOUNT": "5"}, "5 None"),                  # the user's spin count
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "None 'ACTIVE'"),       # the user's policy: no spin count added
    ({"OMP_WAIT_POLICY": ""}, "None ''"),                   # set, even empty: left as libgomp's default
])
def test_the_spin_count_is_shortened_only_where_the_user_chose_nothing(env, expected):
    assert _spawn(**env) == expected


def test_the_run_record_names_the_threads_used():
    import torch

    threads = cpu_threads()
    assert threads["torch"] == torch.get_num_threads() >= 1
    assert threads["GOMP_SPINCOUNT"] == os.environ.get("GOMP_SPINCOUNT")
    assert set(threads) == {"torch", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "PEFTLAB_THREADS"}
