"""Run an untrusted program in a confined, disposable child process tree.

Public API::

    run(argv, *, limits=None, files=None, control_input=b"", backend=None) -> RunResult
    run_runner(*, limits=None, control_input=b"", backend=None) -> RunResult   # the trusted test runner
    available_backends() -> tuple[Backend, ...]     # probed once per process, best first
    get_backend(name=None) -> Backend                # raises UserError for an unknown/unavailable name

Three backends, chosen at runtime (first that works): ``bwrap`` (bubblewrap), ``unshare`` (util-linux) and
``pgroup`` (a bare process group, the only one off Linux). Every run gets a fresh work directory (removed
afterwards), stdin from ``/dev/null``, a clean environment, CPU/memory/file-size/open-file limits, a capped
stdout/stderr, a wall-clock limit, and ends with every process of the run killed and reaped. As root,
``bwrap`` and ``unshare`` runs are forked from a warm, trusted interpreter inside a long-lived sandbox of
that backend, each into fresh namespaces of its own (pool.py, zygote.py); otherwise every run starts its own
sandbox. See docs/sandbox.md for exactly what each backend guarantees.

Two private pipes connect the caller to the program: ``control_input`` is readable on fd 3 inside, and
whatever the program writes to fd 4 comes back as ``RunResult.control_output``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from peftlab.errors import UserError
from peftlab.execution.backends import (
    BACKEND_ORDER,
    SANDBOX_UID,
    Backend,
    Impl,
    expose,
    make_impl,
)
from peftlab.execution.pipes import pump
from peftlab.execution.pool import POOLS, Pool, PoolError
from peftlab.execution.pool import sources as pool_sources

log = logging.getLogger(__name__)

MARKER_VAR = "PEFTLAB_SANDBOX"
RUNNER_NAME = "peftlab_runner.py"  # what the in-sandbox test runner calls itself (sys.argv[0])
_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. CPU, memory and file size are per process (rlimits)."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    max_processes: int = 64
    max_output_bytes: int = 64 * 1024
    max_file_bytes: int = 16 << 20
    max_open_files: int = 256


@dataclass
class RunResult:
    """What came out of one run. ``returncode`` is None when the wall-clock limit ended it."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    control_output: bytes
    timed_out: bool
    output_truncated: bool
    wall_seconds: float
    backend: str


def _source(name: str) -> str:
    return pool_sources()[("launcher.py", "runner.py").index(name)]


def _limits_spec(limits: Limits, impl: Impl) -> dict:
    nproc = "NPROC" if impl.backend.process_limit else "NPROC_RELATIVE"
    return {"CPU": int(limits.cpu_seconds), "AS": int(limits.memory_bytes), nproc: int(limits.max_processes),
            "FSIZE": int(limits.max_file_bytes), "NOFILE": int(limits.max_open_files), "CORE": 0}


def _marked_pids(marker: bytes) -> list[int]:
    pids = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if marker in fh.read().split(b"\0"):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def _kill_everything(proc: subprocess.Popen, marker: bytes) -> None:
    """SIGKILL the run's process group, then every process still carrying the run's marker; reap."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    deadline, killed = time.monotonic() + 5.0, set()
    while time.monotonic() < deadline:
        left = _marked_pids(marker)
        killed.update(left)
        killed = {pid for pid in killed if _alive(pid)}  # dead = gone, or a zombie its new parent reaps
        if not left and not killed:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    log.warning("sandbox: processes %s survived the end of their run", sorted(killed | set(_marked_pids(marker))))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _remove_tree(path: str) -> None:
    def retry(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)


def _prepare(workdir: str, files, impl: Impl) -> dict:
    """Write ``files`` into the work dir, hand it to the sandbox uid; the run's environment."""
    for rel, content in (files or {}).items():
        target = Path(workdir, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    if impl.backend.host_uid != os.geteuid():
        for root, dirs, names in os.walk(workdir):
            for item in [root] + [os.path.join(root, n) for n in dirs + names]:
                os.chown(item, impl.backend.host_uid, impl.backend.host_uid)
    return {"PATH": _PATH, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", MARKER_VAR: secrets.token_hex(16)}


def _argv(argv, runner: bool) -> list[str]:
    return [sys.executable, RUNNER_NAME] if runner else [str(a) for a in argv]


def _execute(impl: Impl, argv, limits: Limits, files, control_input: bytes, runner: bool = False) -> RunResult:
    pool = POOLS.get(impl.backend.name)
    if pool is not None:
        for attempt in range(2):  # a pool that died is restarted once; one that cannot restart is dropped
            try:
                return _execute_pooled(pool, impl, argv, limits, files, control_input, runner)
            except PoolError as exc:
                log.warning("sandbox: the %s pool failed (%s)%s", impl.backend.name, exc,
                            "; restarting it" if not attempt else "; one sandbox per run from now on")
        POOLS.pop(impl.backend.name, None)
        pool.close()
    return _execute_once(impl, argv, limits, files, control_input, runner)


def _execute_pooled(pool: Pool, impl: Impl, argv, limits, files, control_input: bytes, runner: bool) -> RunResult:
    """One run forked by the backend's pool (pool.py). Over when the keeper reports: nothing is left."""
    workdir = pool.workdir()
    try:
        env = _prepare(workdir, files, impl)
        request = {"workdir": workdir, "drop_uid": {"uid": SANDBOX_UID, "gid": SANDBOX_UID},
                   "limits": _limits_spec(limits, impl), "argv": _argv(argv, runner), "env": env, "runner": runner}
        start = time.monotonic()
        handle = pool.submit(request)
        try:
            out, err, ctl, truncated, timed_out = pump(handle.poll, handle.pipes, control_input,
                                                       limits.max_output_bytes, start + limits.wall_seconds)
        finally:
            handle.finish()
            for fd in (handle.pipes[0], handle.pipes[1], handle.pipes[3]):
                os.close(fd)
        return RunResult(None if timed_out else handle.returncode, out, err, ctl, timed_out, truncated,
                         time.monotonic() - start, impl.backend.name)
    finally:
        _remove_tree(workdir)


def _execute_once(impl: Impl, argv, limits: Limits, files, control_input: bytes, runner: bool) -> RunResult:
    """One run in a sandbox of its own: the backend's tool, then the launcher, started for this run only."""
    workdir = tempfile.mkdtemp(prefix="peftlab-sbx-")
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        env = _prepare(workdir, files, impl)
        marker = f"{MARKER_VAR}={env[MARKER_VAR]}".encode()
        subreaper = impl.backend.name == "pgroup" and sys.platform.startswith("linux")
        spec = {"fork": impl.backend.name == "unshare" or impl.drop_uid or subreaper, "subreaper": subreaper,
                "drop_uid": None, "mounts": None,
                "fd_in": in_r, "fd_out": out_w, "limits": _limits_spec(limits, impl), "workdir": workdir,
                "argv": _argv(argv, runner), "env": env}
        if impl.drop_uid:
            spec["drop_uid"] = {"uid": SANDBOX_UID, "gid": SANDBOX_UID}
        # The test runner runs in the launcher's own interpreter (site enabled, as for any program).
        flags = ["-I"] if runner else ["-I", "-S"]
        command = impl.command(spec, [sys.executable, *flags, "-c", _source("launcher.py")])
        command += [json.dumps(spec), *([_source("runner.py")] if runner else [])]
        start = time.monotonic()
        popen_user = {} if impl.popen_uid is None else {
            "user": impl.popen_uid, "group": impl.popen_uid, "extra_groups": []}
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(in_r, out_w), start_new_session=True, cwd=workdir,
                                env={"PATH": _PATH, MARKER_VAR: env[MARKER_VAR]}, **popen_user)
        os.close(in_r)
        os.close(out_w)
        in_r = out_w = -1
        try:
            pipes = (proc.stdout.fileno(), proc.stderr.fileno(), in_w, out_r)
            out, err, ctl, truncated, timed_out = pump(proc.poll, pipes, control_input,
                                                       limits.max_output_bytes, start + limits.wall_seconds)
            in_w = -1
        finally:
            _kill_everything(proc, marker)
            proc.stdout.close()
            proc.stderr.close()
        return RunResult(None if timed_out else proc.returncode, out, err, ctl, timed_out, truncated,
                         time.monotonic() - start, impl.backend.name)
    finally:
        for fd in (in_r, in_w, out_r, out_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        _remove_tree(workdir)


_PROBE = "import os; print('peftlab-probe-ok', os.getuid())"


def _probe(impl: Impl) -> str | None:
    """None if a tiny program ran (printing its warnings, if any), else what went wrong."""
    result = _execute(impl, [sys.executable, "-I", "-S", "-c", _PROBE], Limits(wall_seconds=30), {}, b"")
    if result.returncode == 0 and b"peftlab-probe-ok" in result.stdout:
        for line in result.stderr.decode(errors="replace").splitlines():
            log.warning("sandbox backend %s: %s", impl.backend.name, line)
        return None
    return (result.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]


def _probe_pooled(impl: Impl) -> bool:
    """Run the probe through a pool (pool.py) for ``impl``; keep the pool if that works."""
    pool = POOLS[impl.backend.name] = Pool(impl, _PATH)
    try:
        pool.start()
        detail = _probe(impl)
    except PoolError as exc:
        detail = str(exc)
    if detail is None:
        return True
    POOLS.pop(impl.backend.name, None)
    pool.close()
    log.warning("sandbox backend %s: no pool (%s); one sandbox per run", impl.backend.name, detail)
    return False


@functools.cache
def _probed() -> tuple[Impl, ...]:
    """Backends whose probe run succeeded, best first. Raises UserError off POSIX or if none works."""
    if os.name != "posix":
        raise UserError("sandboxed execution needs a POSIX system (Linux for full isolation)")
    working = []
    for name in BACKEND_ORDER:
        impl = make_impl(name)
        if impl is None:
            log.info("sandbox backend %s: not available on this machine", name)
            continue
        detail = None if impl.poolable and _probe_pooled(impl) else _probe(impl)
        if detail is None:
            working.append(impl)
        else:
            log.warning("sandbox backend %s does not work here (%s)", name, detail)
    if not working:
        raise UserError("no sandbox backend works on this machine; see the warnings above and docs/sandbox.md")
    best = working[0].backend
    if _describe(best):
        log.warning("sandbox: using the %s backend, which has %s (see docs/sandbox.md)", best.name, _describe(best))
    elif best.name != "bwrap":
        log.info("sandbox: bubblewrap unavailable; the %s backend gives the same guarantees", best.name)
    return tuple(working)


def _describe(backend: Backend) -> str:
    missing = [label for label, ok in (("network isolation", backend.network_isolated),
                                        ("read-only filesystem", backend.filesystem_readonly),
                                        ("PID namespace", backend.pid_namespace),
                                        ("per-run process limit", backend.process_limit)) if not ok]
    return "no " + ", no ".join(missing) if missing else ""


def available_backends() -> tuple[Backend, ...]:
    """Backends that ran a probe program successfully on this machine, best first (probed once)."""
    return tuple(impl.backend for impl in _probed())


def get_backend(name: str | None = None) -> Backend:
    """The named backend, or the best available one. Raises UserError if ``name`` is unknown or unavailable."""
    if name is not None and name not in BACKEND_ORDER:
        raise UserError(f"unknown sandbox backend {name!r}; choose one of {', '.join(BACKEND_ORDER)}")
    for impl in _probed():
        if name is None or impl.backend.name == name:
            return impl.backend
    raise UserError(f"sandbox backend {name!r} is not available on this machine")


def expose_readonly(path: str | os.PathLike) -> None:
    """Make the directory ``path`` readable (never writable) inside every later run, wherever it lies: for
    trusted files a program needs, such as the Java runner's classes. Running pools restart to see it."""
    if expose(str(path)):
        for pool in list(POOLS.values()):
            pool.close()  # the next run restarts it with the new mount plan


def run(argv, *, limits: Limits | None = None, files: dict | None = None, control_input: bytes = b"",
        backend: str | Backend | None = None) -> RunResult:
    """Run ``argv`` in a fresh sandbox; ``files`` (relative path -> text/bytes) are written to its work dir.

    Raises UserError when ``backend`` is unknown or unavailable; OSError only for failures of the host
    itself (no temporary directory, no pipes). The program's own failures are reported in the result.
    """
    return _execute(_impl(backend), argv, limits or Limits(), files, control_input)


def run_runner(*, limits: Limits | None = None, control_input: bytes = b"",
               backend: str | Backend | None = None) -> RunResult:
    """Run the trusted test runner (runner.py) in a fresh sandbox, job on fd 3 (see harness.py).

    Same confinement as :func:`run`; the runner starts in the launcher's interpreter (or the pool's fork of
    it) instead of a second one.
    """
    return _execute(_impl(backend), None, limits or Limits(), None, control_input, runner=True)


def _impl(backend) -> Impl:
    wanted = get_backend(backend.name if isinstance(backend, Backend) else backend)
    return next(i for i in _probed() if i.backend == wanted)
