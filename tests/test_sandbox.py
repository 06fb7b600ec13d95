"""The sandbox and the attested verdicts, against hostile candidates, on every backend this machine has.

Every hostile candidate is written so that it would earn "passed" if its attack worked; each test checks
that the verdict is not "passed", that nothing outside the sandbox changed, that no process of the run
survives it, and that the run ended within its limits.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from peftlab.errors import UserError
from peftlab.execution import harness, pool, sandbox

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /proc; Linux only")
BACKENDS = {b.name: b for b in sandbox.available_backends()} if os.name == "posix" else {}
TIMEOUT = 1.0
WALL_MARGIN = harness.STARTUP_ALLOWANCE + 5.0  # generous: CI machines are slow and loaded

TESTS = """
def check(candidate):
    assert candidate(2) == 4
    assert candidate(3) == 9
    assert candidate(-1) == 1
"""
GOOD = "def square(x):\n    return x * x\n"


def marker_prelude(marker: str) -> str:
    """Names every process the candidate starts (comm, inherited by forks) so the test can find them."""
    return f"import ctypes\nctypes.CDLL(None).prctl(15, {marker.encode()!r}, 0, 0, 0)\n"


def survivors(marker: str) -> list[int]:
    """Live pids whose name or command line carries ``marker`` (a zombie is dead: it only awaits its
    parent's wait(), which for an orphan is init's)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if (marker.encode() in comm or marker.encode() in cmdline) and state not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def judge(program: str, backend: str, folder: Path, timeout: float = TIMEOUT):
    """Run a hostile ``program`` (a ``square`` function) and check what must hold after any attack."""
    marker = new_marker()
    canary = folder / "canary-of-judge.txt"
    canary.write_text("alive")
    start = time.monotonic()
    verdict = harness.run_tests(marker_prelude(marker) + program, "square", TESTS, timeout=timeout, backend=backend)
    elapsed = time.monotonic() - start
    assert verdict.status != "passed", verdict
    assert elapsed < timeout + WALL_MARGIN, f"run took {elapsed:.1f}s"
    assert survivors(marker) == [], "a process of the run outlived it"
    assert canary.read_text() == "alive"
    return verdict


@pytest.fixture(params=sorted(BACKENDS))
def backend(request) -> str:
    return request.param


def new_marker() -> str:
    return "pl" + secrets.token_hex(6)  # 14 characters: fits the 15 of a process name


# ------------------------------------------------------------------------------------------ basics
def _tool_works(argv: list[str]) -> bool:
    return shutil.which(argv[0]) is not None and subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_backends_are_probed_and_none_is_lost_silently():
    assert "pgroup" in BACKENDS
    root = os.geteuid() == 0
    user = [] if root else ["--user", "--map-root-user"]
    if _tool_works(["unshare", *user, "--mount", "--pid", "--fork", "--mount-proc", "--net", "true"]):
        assert "unshare" in BACKENDS, "unshare works here but its sandbox probe failed"
    if _tool_works(["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "true"]):
        assert "bwrap" in BACKENDS, "bubblewrap works here but its sandbox probe failed"
    assert sandbox.get_backend().name == next(iter(sandbox.available_backends())).name
    with pytest.raises(UserError, match="unknown sandbox backend"):
        sandbox.get_backend("docker")


def test_good_program_passes_and_counts_cases(backend):
    verdict = harness.run_tests(GOOD, "square", TESTS, timeout=5.0, backend=backend)
    assert (verdict.status, verdict.tests_passed, verdict.tests_total) == ("passed", 3, 3), verdict
    assert verdict.backend == backend


def test_failed_case_does_not_stop_the_others(backend):
    program = "def square(x):\n    assert x != 3\n    return x * x\n"
    verdict = harness.run_tests(program, "square", TESTS, timeout=5.0, backend=backend)
    assert (verdict.status, verdict.tests_passed, verdict.tests_total) == ("failed", 2, 3), verdict
    assert "case 2/3" in verdict.reason


def test_run_gets_fresh_workdir_closed_stdin_and_clean_environment(backend):
    code = ("import os, sys; print(os.listdir('.'), repr(sys.stdin.read()), "
            "sorted(k for k in os.environ if k.startswith('PEFTLAB_TEST')))")
    os.environ["PEFTLAB_TEST_SECRET"] = "1"
    try:
        result = sandbox.run([sys.executable, "-I", "-c", code], files={"given.txt": "hi"}, backend=backend)
    finally:
        del os.environ["PEFTLAB_TEST_SECRET"]
    assert result.stdout.decode().strip() == "['given.txt'] '' []"


def test_wall_clock_cpu_and_output_limits(backend):
    start = time.monotonic()
    slept = sandbox.run([sys.executable, "-I", "-c", "import time; time.sleep(60)"],
                        limits=sandbox.Limits(wall_seconds=1.0), backend=backend)
    assert slept.timed_out and time.monotonic() - start < 1.0 + WALL_MARGIN
    spun = sandbox.run([sys.executable, "-I", "-c", "while True: pass"],
                       limits=sandbox.Limits(wall_seconds=30.0, cpu_seconds=1), backend=backend)
    assert not spun.timed_out and spun.returncode != 0 and spun.wall_seconds < 25
    flood = sandbox.run([sys.executable, "-I", "-c", "import sys\nfor _ in range(4000): sys.stdout.write('x' * 1000)"],
                        limits=sandbox.Limits(max_output_bytes=10_000), backend=backend)
    assert flood.output_truncated and len(flood.stdout) == 10_000


def test_only_the_work_dir_is_writable(backend):
    if not BACKENDS[backend].filesystem_readonly:
        pytest.skip(f"{backend}: the filesystem is not protected here (see docs/sandbox.md)")
    code = (
        "import os, tempfile\nwritable = []\n"
        "for folder in ['.', '/', '/tmp', '/var/tmp', '/dev', '/dev/shm', '/etc', '/root', '/home',\n"
        "               os.path.dirname(os.getcwd()), os.path.expanduser('~')]:\n"
        "    try:\n        tempfile.NamedTemporaryFile(dir=folder).close()\n"
        "        writable.append('work dir' if os.path.realpath(folder) == os.getcwd() else folder)\n"
        "    except OSError:\n        pass\n"
        "print(sorted(set(writable)))")
    result = sandbox.run([sys.executable, "-I", "-c", code], backend=backend)
    assert result.stdout.decode().strip() == "['work dir']"  # ~ is the work dir too


# ------------------------------------------------------------------------------------------ hostile candidates
def test_infinite_loop_times_out(backend, tmp_path):
    verdict = judge("def square(x):\n    while True:\n        pass\n", backend, tmp_path)
    assert verdict.status == "timeout"


def test_ignored_sigalrm_still_times_out(backend, tmp_path):
    program = (
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "def square(x):\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass\n")
    assert judge(program, backend, tmp_path).status == "timeout"


def test_fork_bomb_is_bounded_and_reaped(backend, tmp_path):
    if not BACKENDS[backend].process_limit:
        pytest.skip(f"{backend}: no per-run process limit here (see docs/sandbox.md)")
    program = (
        "import os\nCOUNT = [0]\n"
        "def square(x):\n"
        "    while True:\n"
        "        try:\n            os.fork()\n            COUNT[0] += 1\n"
        "        except OSError:\n            break\n"
        "    while True:\n        pass\n")
    assert judge(program, backend, tmp_path).status == "timeout"


def test_fork_bomb_cannot_exceed_the_process_limit(backend):
    if not BACKENDS[backend].process_limit:
        pytest.skip(f"{backend}: no per-run process limit here (see docs/sandbox.md)")
    code = ("import os, time\nn = 0\ntry:\n    for _ in range(500):\n        if os.fork() == 0:\n"
            "            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError:\n    pass\nprint(n)")
    result = sandbox.run([sys.executable, "-I", "-c", code], limits=sandbox.Limits(max_processes=20), backend=backend)
    assert 0 < int(result.stdout) < 20


def test_memory_bomb_hits_the_memory_limit(backend, tmp_path):
    program = "def square(x):\n    hog = []\n    while True:\n        hog.append(bytearray(50 * 1024 * 1024))\n"
    verdict = judge(program, backend, tmp_path, timeout=10.0)
    assert verdict.status == "failed" and "MemoryError" in verdict.reason, verdict


def test_stdout_flood_is_capped(backend, tmp_path):
    program = "import sys\ndef square(x):\n    while True:\n        sys.stdout.write('x' * 65536)\n"
    verdict = judge(program, backend, tmp_path)
    assert verdict.status == "timeout"
    assert len(verdict.output) <= sandbox.Limits().max_output_bytes


def _canaries(tmp_path: Path) -> list[Path]:
    """A canary in the test's own tmp dir and one outside /tmp that anybody could write (only a
    read-only mount protects it)."""
    dirs = [tmp_path / "canary"]
    if os.access("/var/tmp", os.W_OK):
        dirs.append(Path(tempfile.mkdtemp(dir="/var/tmp", prefix="peftlab-canary-")))
    for folder in dirs:
        folder.mkdir(exist_ok=True)
        folder.chmod(0o777)
        (folder / "canary.txt").write_text("alive")
        (folder / "canary.txt").chmod(0o666)
    return dirs


def test_files_outside_the_work_dir_cannot_be_changed(backend, tmp_path):
    if not BACKENDS[backend].filesystem_readonly:
        pytest.skip(f"{backend}: the filesystem is not protected here (see docs/sandbox.md)")
    folders = _canaries(tmp_path)
    program = (
        f"import os, shutil\nFOLDERS = {[str(f) for f in folders]!r}\nWON = []\n"
        "for folder in FOLDERS:\n"
        "    for attack in (lambda: open(os.path.join(folder, 'canary.txt'), 'w').write('dead'),\n"
        "                   lambda: open(os.path.join(folder, 'pwned.txt'), 'w').write('x'),\n"
        "                   lambda: os.remove(os.path.join(folder, 'canary.txt')),\n"
        "                   lambda: shutil.rmtree(folder)):\n"
        "        try:\n            attack()\n            WON.append(1)\n        except OSError:\n            pass\n"
        "def square(x):\n    return x * x if WON else None\n")
    try:
        judge(program, backend, tmp_path)
        for folder in folders:
            assert sorted(p.name for p in folder.iterdir()) == ["canary.txt"]
            assert (folder / "canary.txt").read_text() == "alive"
    finally:
        for folder in folders[1:]:
            shutil.rmtree(folder, ignore_errors=True)


def test_network_is_unreachable(backend, tmp_path):
    if not BACKENDS[backend].network_isolated:
        pytest.skip(f"{backend}: no network namespace here (see docs/sandbox.md)")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        program = (
            "import socket\nREACHED = False\ntry:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')\n    REACHED = True\n"
            "except OSError:\n    pass\n"
            "def square(x):\n    return x * x if REACHED else None\n")
        judge(program, backend, tmp_path, timeout=5.0)
        with pytest.raises(BlockingIOError):
            server.accept()


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "os._exit(0)", "raise SystemExit(0)"])
def test_exiting_before_the_asserts_is_not_a_pass(backend, exit_call, tmp_path):
    program = f"import os, sys\ndef square(x):\n    return x * x\n{exit_call}\n"
    assert judge(program, backend, tmp_path).status == "failed"
    inside = f"import os, sys\ndef square(x):\n    {exit_call}\n"
    assert judge(inside, backend, tmp_path).status == "failed"


def test_always_equal_objects_are_not_a_pass(backend, tmp_path):
    program = (
        "class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
        "class SneakyInt(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def square(x):\n    return AlwaysEqual() if x == 2 else SneakyInt(0)\n")
    verdict = judge(program, backend, tmp_path)
    assert verdict.status == "failed" and verdict.tests_passed == 0 and "non-data" in verdict.reason


def test_killing_the_runner_is_not_a_pass(backend, tmp_path):
    program = "import os, signal\ndef square(x):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return x * x\n"
    assert judge(program, backend, tmp_path).status in ("failed", "error")


def test_forged_records_are_not_a_pass(backend, tmp_path):
    program = (
        "import json, os\nrecord = json.dumps({'nonce': 'guess', 'type': 'done', 'total': 3}) + '\\n'\n"
        "for path in ['/proc/%d/fd/4' % os.getppid(), '/proc/1/fd/4', '/proc/2/fd/4']:\n"
        "    try:\n        open(path, 'w').write(record)\n    except OSError:\n        pass\n"
        "for fd in (3, 4):\n    try:\n        os.write(fd, record.encode())\n    except OSError:\n        pass\n"
        "print(record)\n"
        "def square(x):\n    return None\n")
    assert judge(program, backend, tmp_path).status == "failed"


def test_setsid_grandchild_does_not_survive(backend, tmp_path):
    seconds = f"{secrets.randbelow(10**6) + 10**6}.5"  # a unique `sleep` argument, easy to find in /proc
    program = (
        "import os, time\n"
        "def square(x):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        f"            os.execvp('sleep', ['sleep', '{seconds}'])\n"
        "        os._exit(0)\n"
        "    time.sleep(0.3)\n"
        "    return None\n")
    judge(program, backend, tmp_path)
    assert survivors(seconds) == []


# ------------------------------------------------------------------------------------------ pools
POOLED = sorted(name for name in BACKENDS if name in pool.POOLS)


@pytest.mark.skipif(not POOLED, reason="no backend runs through a pool here (root and bwrap/unshare only)")
@pytest.mark.parametrize("name", POOLED)
def test_pooled_runs_see_neither_each_other_nor_the_pool(name):
    """While run A is alive, run B sees only its own processes and work dir and cannot write next to it."""
    finished = {}
    slow = "import os, time\nopen('mine', 'w').write('a')\ntime.sleep(2)\nprint(sorted(os.listdir('.')))"

    def run_a():
        finished["a"] = sandbox.run([sys.executable, "-I", "-c", slow], backend=name)

    thread = threading.Thread(target=run_a)
    thread.start()
    time.sleep(0.7)
    probe = (
        "import os\nup = os.path.dirname(os.getcwd())\nfound = []\n"
        "for top in ('/tmp', up):\n    for root, dirs, names in os.walk(top):\n"
        "        found += [os.path.join(root, n) for n in names if n == 'mine']\n"
        "try:\n    open(os.path.join(up, 'planted'), 'w')\n    wrote = True\nexcept OSError:\n    wrote = False\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), os.listdir(up) == [os.path.basename(os.getcwd())],"
        " found, wrote)")
    seen = sandbox.run([sys.executable, "-I", "-c", probe], backend=name)
    thread.join()
    assert seen.stdout.decode().split("\n")[0] == "[1, 2] True [] False", seen
    assert finished["a"].stdout.decode().strip() == "['mine']"


@pytest.mark.skipif(not POOLED, reason="no backend runs through a pool here (root and bwrap/unshare only)")
@pytest.mark.parametrize("name", POOLED)
def test_a_killed_pool_is_restarted(name):
    current = pool.POOLS[name]
    current.start()
    os.killpg(current.proc.pid, signal.SIGKILL)
    current.proc.wait()
    verdict = harness.run_tests(GOOD, "square", TESTS, timeout=5.0, backend=name)
    assert verdict.status == "passed", verdict
    assert pool.POOLS[name] is current and current.proc.poll() is None


@pytest.mark.skipif(not POOLED, reason="no backend runs through a pool here (root and bwrap/unshare only)")
def test_a_forked_child_uses_a_pool_of_its_own():
    name = POOLED[0]
    parent_pid = pool.POOLS[name].proc.pid
    child = os.fork()
    if child == 0:
        ok = pool.POOLS[name].sock is None
        verdict = harness.run_tests(GOOD, "square", TESTS, timeout=5.0, backend=name)
        ok = ok and verdict.status == "passed" and pool.POOLS[name].proc.pid != parent_pid
        pool.POOLS[name].close()
        os._exit(0 if ok else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
    assert harness.run_tests(GOOD, "square", TESTS, timeout=5.0, backend=name).status == "passed"


@pytest.mark.skipif(not POOLED, reason="no backend runs through a pool here (root and bwrap/unshare only)")
@pytest.mark.parametrize("name", POOLED)
def test_without_its_pool_a_backend_starts_one_sandbox_per_run(name, monkeypatch, tmp_path):
    """The fallback (and the path without root): same verdicts, same clean end."""
    monkeypatch.delitem(pool.POOLS, name)
    assert harness.run_tests(GOOD, "square", TESTS, timeout=5.0, backend=name).status == "passed"
    test_failed_case_does_not_stop_the_others(name)
    test_only_the_work_dir_is_writable(name)
    test_exiting_before_the_asserts_is_not_a_pass(name, "os._exit(0)", tmp_path)
    test_forged_records_are_not_a_pass(name, tmp_path)
    test_setsid_grandchild_does_not_survive(name, tmp_path)
    test_infinite_loop_times_out(name, tmp_path)
