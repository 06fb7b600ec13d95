"""Run an untrusted program in a confined, disposable child process tree.

Public API::

    run(argv, *, limits=None, files=None, control_input=b"", backend=None) -> RunResult
    available_backends() -> tuple[Backend, ...]     # probed once per process, best first
    get_backend(name=None) -> Backend                # raises UserError for an unknown/unavailable name

Three backends, chosen at runtime (first that works): ``bwrap`` (bubblewrap), ``unshare`` (util-linux) and
``pgroup`` (a bare process group, the only one off Linux). Every run gets a fresh work directory (removed
afterwards), stdin from ``/dev/null``, a clean environment, CPU/memory/file-size/open-file limits, a capped
stdout/stderr, a wall-clock limit, and ends with every process of the run killed and reaped. See
docs/sandbox.md for exactly what each backend guarantees.

Two private pipes connect the caller to the program: ``control_input`` is readable on fd 3 inside, and
whatever the program writes to fd 4 comes back as ``RunResult.control_output``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from peftlab.errors import UserError
from peftlab.execution.backends import BACKEND_ORDER, SANDBOX_UID, Backend, Impl, make_impl

log = logging.getLogger(__name__)

MARKER_VAR = "PEFTLAB_SANDBOX"
_CONTROL_OUTPUT_CAP = 8 << 20
_EXIT_GRACE_SECONDS = 1.0


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


@functools.lru_cache(maxsize=None)
def _launcher_source() -> str:
    return Path(__file__).with_name("launcher.py").read_text(encoding="utf-8")


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


class _Capped:
    def __init__(self, cap: int):
        self.cap, self.parts, self.size, self.dropped = cap, [], 0, 0

    def add(self, data: bytes) -> None:
        room = max(0, self.cap - self.size)
        self.parts.append(data[:room])
        self.size += min(room, len(data))
        self.dropped += max(0, len(data) - room)

    def value(self) -> bytes:
        return b"".join(self.parts)


def _pump(proc, in_w: int, control_input: bytes, out_r: int, limits: Limits, deadline: float):
    """Feed fd 3, collect stdout/stderr/fd 4 (capped) until all close, the process ends, or the deadline."""
    sel = selectors.DefaultSelector()
    sinks = {proc.stdout.fileno(): _Capped(limits.max_output_bytes),
             proc.stderr.fileno(): _Capped(limits.max_output_bytes), out_r: _Capped(_CONTROL_OUTPUT_CAP)}
    for fd in sinks:
        sel.register(fd, selectors.EVENT_READ)
    pending = memoryview(control_input)
    os.set_blocking(in_w, False)
    sel.register(in_w, selectors.EVENT_WRITE)
    timed_out, exited_at = False, None
    while sel.get_map():
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > _EXIT_GRACE_SECONDS:
            break  # something outside the main process still holds a pipe; it is killed next
        for key, _ in sel.select(min(0.1, deadline - now)):
            fd = key.fd
            try:
                if fd == in_w:
                    pending = pending[os.write(in_w, pending[: 1 << 16]):]
                    data = b"" if not pending else None
                else:
                    data = os.read(fd, 1 << 16)
                    if data:
                        sinks[fd].add(data)
            except (BrokenPipeError, BlockingIOError):
                data = b"" if fd == in_w else None
            if data == b"":
                sel.unregister(fd)
                if fd == in_w:
                    os.close(in_w)
    for fd in list(sel.get_map()):
        sel.unregister(fd)
        if fd == in_w:
            os.close(in_w)
    sel.close()
    out, err, ctl = (sinks[proc.stdout.fileno()], sinks[proc.stderr.fileno()], sinks[out_r])
    return out.value(), err.value(), ctl.value(), bool(out.dropped or err.dropped), timed_out


def _remove_tree(path: str) -> None:
    def retry(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)


def _execute(impl: Impl, argv, limits: Limits, files, control_input: bytes) -> RunResult:
    workdir = tempfile.mkdtemp(prefix="peftlab-sbx-")
    token = secrets.token_hex(16)
    marker = f"{MARKER_VAR}={token}".encode()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        for rel, content in (files or {}).items():
            target = Path(workdir, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
        if impl.backend.host_uid != os.geteuid():
            for root, dirs, names in os.walk(workdir):
                for item in [root] + [os.path.join(root, n) for n in dirs + names]:
                    os.chown(item, impl.backend.host_uid, impl.backend.host_uid)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", MARKER_VAR: token}
        subreaper = impl.backend.name == "pgroup" and sys.platform.startswith("linux")
        spec = {"fork": impl.backend.name == "unshare" or impl.drop_uid or subreaper, "subreaper": subreaper,
                "drop_uid": None, "mounts": None,
                "fd_in": in_r, "fd_out": out_w, "limits": _limits_spec(limits, impl), "workdir": workdir,
                "argv": [str(a) for a in argv], "env": env}
        if impl.drop_uid:
            spec["drop_uid"] = {"uid": SANDBOX_UID, "gid": SANDBOX_UID}
        launcher = [sys.executable, "-I", "-S", "-c", _launcher_source()]
        command = impl.command(spec, launcher)
        command.append(json.dumps(spec))
        start = time.monotonic()
        popen_user = {} if impl.popen_uid is None else {
            "user": impl.popen_uid, "group": impl.popen_uid, "extra_groups": []}
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(in_r, out_w), start_new_session=True, cwd=workdir,
                                env={"PATH": env["PATH"], MARKER_VAR: token}, **popen_user)
        os.close(in_r)
        os.close(out_w)
        in_r = out_w = -1
        try:
            out, err, ctl, truncated, timed_out = _pump(proc, in_w, control_input, out_r, limits,
                                                        start + limits.wall_seconds)
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


@functools.lru_cache(maxsize=None)
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
        result = _execute(impl, [sys.executable, "-I", "-S", "-c", _PROBE], Limits(wall_seconds=30), {}, b"")
        if result.returncode == 0 and b"peftlab-probe-ok" in result.stdout:
            working.append(impl)
            for line in result.stderr.decode(errors="replace").splitlines():
                log.warning("sandbox backend %s: %s", name, line)
        else:
            detail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            log.warning("sandbox backend %s does not work here (%s)", name, detail[0])
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


def run(argv, *, limits: Limits | None = None, files: dict | None = None, control_input: bytes = b"",
        backend: str | Backend | None = None) -> RunResult:
    """Run ``argv`` in a fresh sandbox; ``files`` (relative path -> text/bytes) are written to its work dir.

    Raises UserError when ``backend`` is unknown or unavailable; OSError only for failures of the host
    itself (no temporary directory, no pipes). The program's own failures are reported in the result.
    """
    wanted = get_backend(backend.name if isinstance(backend, Backend) else backend)
    impl = next(i for i in _probed() if i.backend == wanted)
    return _execute(impl, argv, limits or Limits(), files, control_input)
