"""Long-lived sandboxes whose trusted fork server (``zygote.py``) starts each run from a warm interpreter.

    Pool(impl, env_path)                # one per namespaced backend (POOLS), started on first use
    Pool.start()                        # unless running; Pool.close() ends it (and every run in it)
    Pool.workdir() -> str               # a fresh work directory inside the pool directory
    Pool.submit(request) -> PoolRun     # request: the JSON spec of one run (see zygote.py)
    PoolRun.pipes                       # parent ends: stdout, stderr, control in (write), control out
    PoolRun.poll() / PoolRun.finish()   # exit status once the run is over (finish kills it first)

Starting interpreters for every run costs more than the run itself (HumanEval: ~65 ms of CPU for two
interpreter start-ups and their imports, against a few ms of tests). A pool pays that once: the zygote is
an interpreter, confined like a run of its backend, that has already imported everything the launcher and the
test runner need; each run is a fresh fork of it in fresh namespaces with its own fresh work directory (see
docs/sandbox.md, "Pools"). Only used as root on Linux, for ``bwrap`` and ``unshare``; everything else starts
one sandbox per run.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

_BOOT = """import sys
def load(name, source):
    module = type(sys)(name)
    module.SOURCE = source
    sys.modules[name] = module
    exec(compile(source, "<" + name + ">", "exec"), module.__dict__)
    return module
load("peftlab_launcher", sys.argv[2])
load("peftlab_runner", sys.argv[3])
load("peftlab_zygote", sys.argv[4]).serve(sys.modules["json"].loads(sys.argv[1]))
"""
_START_SECONDS = 30.0
_FINISH_SECONDS = 10.0


@functools.cache
def sources() -> tuple[str, str, str]:
    """The text of launcher.py, runner.py and zygote.py (standalone modules run inside the sandbox)."""
    here = Path(__file__).parent
    return tuple(here.joinpath(name).read_text(encoding="utf-8") for name in ("launcher.py", "runner.py", "zygote.py"))


class PoolError(OSError):
    """The pool's sandbox could not be started (or died); the caller falls back to one sandbox per run."""


class PoolRun:
    """One run started by a pool: the parent's ends of its pipes and its exit status."""

    def __init__(self, pool: Pool, pipes: tuple[int, int, int, int], status_r: int, kill_w: int):
        self.pool, self.pipes, self.status_r, self.kill_w = pool, pipes, status_r, kill_w
        self.returncode: int | None = None
        self._done = False

    def poll(self) -> int | None:
        """The exit status if the run is over (every process of it gone), else None. Never blocks."""
        if not self._done and select.select([self.status_r], [], [], 0)[0]:
            self._read_status()
        return self.returncode

    def _read_status(self) -> None:
        data = os.read(self.status_r, 64)
        self._done = True
        try:
            self.returncode = int(data)
        except ValueError:  # the keeper died: the pool is gone, and the run with it
            self.returncode = None
            self.pool.discard()

    def finish(self) -> None:
        """Kill the run unless it is over, wait until every process of it is gone, close the pipes."""
        try:
            if not self._done:
                try:
                    os.write(self.kill_w, b"k")
                except OSError:
                    pass
                if select.select([self.status_r], [], [], _FINISH_SECONDS)[0]:
                    self._read_status()
                else:  # cannot happen short of a kernel problem; ending the pool's sandbox ends the run
                    self.pool.discard()
                    self._done = True
        finally:
            os.close(self.status_r)
            os.close(self.kill_w)


class Pool:
    """A zygote confined by ``impl``'s backend; restarted on the next run if it dies."""

    def __init__(self, impl, env_path: str):
        self.impl, self.env_path = impl, env_path
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.root: str | None = None
        self._stopped = threading.Event()

    def _start(self) -> None:
        self.root = tempfile.mkdtemp(prefix="peftlab-pool-")
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spec = {"workdir": self.root, "mounts": None}
        command = self.impl.command(spec, [sys.executable, "-I", "-c", _BOOT])
        config = {"sock": child.fileno(), "pool_root": self.root, "mounts": spec["mounts"]}
        started, self._stopped, box = threading.Event(), threading.Event(), []

        def spawn(stopped: threading.Event) -> None:
            # bubblewrap's --die-with-parent follows the *thread* that started it: this one lives as long
            # as the pool (or the process), so the pool ends with the process, not with a worker thread.
            try:
                box.append(subprocess.Popen(
                    [*command, json.dumps(config), *sources()], stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(child.fileno(),),
                    start_new_session=True, cwd=self.root, env={"PATH": self.env_path}))
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                box.append(exc)
            started.set()
            stopped.wait()

        threading.Thread(target=spawn, args=(self._stopped,), name="peftlab-sandbox-pool", daemon=True).start()
        started.wait()
        child.close()
        if isinstance(box[0], BaseException):
            parent.close()
            self._stop()
            raise PoolError(f"cannot start the pool: {box[0]}")
        self.proc, self.sock = box[0], parent
        if not select.select([parent], [], [], _START_SECONDS)[0] or parent.recv(16) != b"ready":
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            lines = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
            self.proc.stderr.close()
            self._stop()
            self.proc = None
            raise PoolError(lines[-1] if lines else "the pool did not start")
        self.proc.stderr.close()

    def _stop(self) -> None:
        """End the pool's sandbox (closing the socket is enough: the zygote exits, and every run with it)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        self._stopped.set()

    def discard(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._stop()
            self.proc = None

    def _ensure_started(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._stop()
            self._start()

    def start(self) -> None:
        """Start the pool unless it is running. Raises PoolError if it cannot start."""
        with self.lock:
            self._ensure_started()

    def workdir(self) -> str:
        """A fresh, empty work directory for one run (the pool is started if needed)."""
        with self.lock:
            self._ensure_started()
            return tempfile.mkdtemp(prefix="peftlab-sbx-", dir=self.root)

    def submit(self, request: dict) -> PoolRun:
        """Start one run; its work directory came from :meth:`workdir`. Raises PoolError if the pool died."""
        fds = [os.pipe() for _ in range(6)]  # stdout, stderr, control in, control out, status, kill
        (out_r, out_w), (err_r, err_w), (in_r, in_w), (ctl_r, ctl_w), (st_r, st_w), (kill_r, kill_w) = fds
        theirs = [out_w, err_w, in_r, ctl_w, st_w, kill_r]
        try:
            with self.lock:
                if self.sock is None or not request["workdir"].startswith(self.root + "/"):
                    raise PoolError("the pool was restarted")
                socket.send_fds(self.sock, [json.dumps(request).encode()], theirs)
        except OSError as exc:
            for fd in (out_r, err_r, in_w, ctl_r, st_r, kill_w):
                os.close(fd)
            raise PoolError(f"the pool is gone ({exc})") from None
        finally:
            for fd in theirs:
                os.close(fd)
        return PoolRun(self, (out_r, err_r, in_w, ctl_r), st_r, kill_w)

    def close(self) -> None:
        with self.lock:
            self._stop()
            self.proc = None

    def forget(self) -> None:
        """In a forked child of the parent: drop this copy of the socket; the pool stays the parent's."""
        if self.sock is not None:
            self.sock.close()
        self.lock = threading.Lock()
        self.proc = self.sock = self.root = None


POOLS: dict[str, Pool] = {}  # backend name -> its pool, for the backends whose probe passed through one


def _forget_all() -> None:
    for pool in POOLS.values():
        pool.forget()


def _close_all() -> None:
    for pool in list(POOLS.values()):
        pool.close()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_all)

