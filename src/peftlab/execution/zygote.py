"""Trusted fork server that runs *inside* a long-lived sandbox (standard library only).

:mod:`peftlab.execution.pool` starts it once per backend as ``python -I -c BOOT <config> <launcher.py>
<runner.py> <this file>`` under bubblewrap or ``unshare``, confined exactly like a single run of that backend
(everything read-only, ``/tmp`` hidden, no network) except that the writable directory is the *pool
directory*, which holds one work directory per run. It never runs untrusted code and reads nothing but the
parent's requests, on a socket only the parent holds. Each request (a small JSON spec and six pipe ends)
becomes one run, forked from this warm, untouched interpreter:

* **keeper** (forked here, outside the run's namespaces): unshares fresh mount, PID, network, IPC and UTS
  namespaces and forks the run's PID 1. It writes PID 1's exit status to the run's status pipe only after it
  has reaped PID 1 - and the kernel lets PID 1 be reaped only once every other process of its namespace is
  gone - so a status on that pipe means the run is over. A byte or EOF on the kill pipe makes it SIGKILL
  PID 1 first (the parent's wall-clock limit, or the parent's death).
* **PID 1** (the launcher's reaper role): mounts a fresh ``/proc`` for the run's PID namespace, hides the pool
  directory under an empty tmpfs and binds back only this run's work directory, writable; then
  :func:`launcher.launch` as for any run: the program is forked into its own user namespace as the sandbox
  uid, loses every capability, gets its rlimits and fds 3/4, and either ``exec``\\ s its argv or, for the
  test runner, runs :func:`runner.supervise` in that forked process.

Any failure before the program starts prints one ``peftlab-launcher:`` line on the run's stderr and the
status is 125.
"""

import gc
import json
import os
import select
import signal
import socket
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_PRIVATE = 1 << 18
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus")  # as bubblewrap's --proc leaves them
SETUP_FAILED = 125
PRELOAD = ("typing",)  # imported by most dataset prompts: loaded once here, not twice per run


def isolate(launcher, workdir, pool_root):
    """In the run's new mount namespace: a fresh /proc, the pool hidden, only ``workdir`` writable."""
    launcher._mount(None, "/", None, MS_PRIVATE | launcher.MS_REC)
    source = os.open(workdir, os.O_PATH)
    launcher._mount("tmpfs", pool_root, "tmpfs", launcher.MS_NOSUID | launcher.MS_NODEV, "mode=0755,size=1m")
    os.mkdir(workdir)
    launcher._mount(f"/proc/self/fd/{source}", workdir, None, launcher.MS_BIND | launcher.MS_REC)
    os.close(source)
    launcher._remount(workdir, readonly=False)
    launcher._remount(pool_root, readonly=True)
    launcher._mount("proc", "/proc", "proc", launcher.MS_NOSUID | launcher.MS_NODEV | launcher.MS_NOEXEC)
    for name in PROC_READ_ONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            launcher._mount(path, path, None, launcher.MS_BIND | launcher.MS_REC)
            launcher._remount(path, readonly=True)


def _pid1(launcher, runner, request, fds, pool_root):
    out_w, err_w, in_r, ctl_w = fds
    try:
        launcher._prctl(launcher.PR_SET_PDEATHSIG, signal.SIGKILL)  # the keeper never exits before us
        null = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((null, 0), (out_w, 1), (err_w, 2)):
            os.dup2(fd, target)
            os.close(fd)
        isolate(launcher, request["workdir"], pool_root)
        spec = {"mounts": None, "fork": True, "subreaper": False, "drop_uid": request["drop_uid"],
                "fd_in": in_r, "fd_out": ctl_w, "limits": request["limits"], "workdir": request["workdir"],
                "argv": request["argv"], "env": request["env"]}
        launcher.launch(spec, runner.supervise if request["runner"] else None)
    except BaseException as exc:  # noqa: BLE001 - report any setup failure, never run the program
        print(f"peftlab-launcher: {exc}", file=sys.stderr, flush=True)
    os._exit(SETUP_FAILED)


def _keeper(launcher, runner, request, fds, pool_root):
    out_w, err_w, in_r, ctl_w, status_w, kill_r = fds
    code, pid1 = SETUP_FAILED, None
    try:
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
        launcher._check(launcher._libc().unshare(flags), "unshare")
        pid1 = os.fork()
        if pid1 == 0:
            os.close(status_w)
            os.close(kill_r)
            _pid1(launcher, runner, request, (out_w, err_w, in_r, ctl_w), pool_root)
        pidfd = os.pidfd_open(pid1)
        for fd in (out_w, err_w, in_r, ctl_w):
            os.close(fd)
        out_w = err_w = -1
        if kill_r in select.select([pidfd, kill_r], [], [])[0]:
            os.kill(pid1, signal.SIGKILL)
    except BaseException as exc:  # noqa: BLE001
        if err_w >= 0:
            os.write(err_w, f"peftlab-launcher: {exc}\n".encode())
        if pid1:
            os.kill(pid1, signal.SIGKILL)
    if pid1:
        code = os.waitstatus_to_exitcode(os.waitpid(pid1, 0)[1])  # returns once the namespace is empty
    os.write(status_w, b"%d\n" % code)
    os._exit(0)


def _reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def serve(config):
    """Answer requests until the parent closes its end of the socket; then exit (ending every run)."""
    launcher, runner = sys.modules["peftlab_launcher"], sys.modules["peftlab_runner"]
    sock = socket.socket(fileno=config["sock"])
    if config["mounts"]:
        launcher.setup_mounts(config["mounts"])
    for name in PRELOAD:
        __import__(name)
    launcher._libc()
    gc.freeze()  # a run's garbage collections skip (and so do not copy) everything inherited from here
    null = os.open(os.devnull, os.O_RDWR)
    sock.sendall(b"ready")
    for fd in (1, 2):  # from now on a failure is reported on the run's own stderr
        os.dup2(null, fd)
    os.close(null)
    while True:
        if not select.select([sock], [], [], 1.0)[0]:
            _reap()  # orphans too: under unshare this is PID 1 of the pool
            continue
        message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 8)
        if not message:
            os._exit(0)
        if len(fds) != 6:
            for fd in fds:
                os.close(fd)
            continue
        sys.stdout.flush()
        if os.fork() == 0:
            sock.close()
            _keeper(launcher, runner, json.loads(message), fds, config["pool_root"])
        for fd in fds:
            os.close(fd)
        _reap()
