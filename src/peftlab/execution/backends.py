"""Sandbox backends: which confinement tools work here, and the command line for each.

    make_impl(name) -> Impl | None      # None when the tool is missing on this machine
    Impl.command(spec, launcher_argv)   # the argv that starts the launcher confined by this backend

``bwrap`` (bubblewrap) and ``unshare`` (util-linux) put the run in new PID, network, mount, IPC and UTS
namespaces with everything outside the work directory read-only and ``/tmp`` hidden; ``pgroup`` is a bare
process group. As root, untrusted code is moved to host uid ``SANDBOX_UID`` (see launcher.py); directories
that uid may not enter but the interpreter needs (e.g. ``/root/.pyenv``) are hidden under an empty tmpfs
and bound back read-only.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 65534  # "nobody": the host uid untrusted code runs as when the caller is root
BACKEND_ORDER = ("bwrap", "unshare", "pgroup")


@dataclass(frozen=True)
class Backend:
    """A confinement strategy and what it guarantees on this machine."""

    name: str
    network_isolated: bool
    filesystem_readonly: bool  # everything outside the work directory is read-only or hidden
    pid_namespace: bool  # every descendant dies with the run, even after setsid()
    process_limit: bool  # the process-count limit is enforced per run
    host_uid: int  # the host uid the program runs as


def _is_under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


@functools.cache
def _interpreter_paths() -> tuple[str, ...]:
    """Directories the interpreter needs (prefixes, executable, import path), outermost only."""
    prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    found = prefixes | {os.path.dirname(sys.executable)}
    found |= {p for p in sys.path if p and os.path.isabs(p) and (
        any(_is_under(p, prefix) for prefix in prefixes) or os.path.basename(p) in ("site-packages", "dist-packages"))}
    found |= {os.path.realpath(p) for p in list(found)}
    found.add(os.path.dirname(os.path.realpath(sys.executable)))
    kept: list[str] = []
    for path in sorted(p for p in found if os.path.exists(p)):
        if not any(_is_under(path, k) for k in kept):
            kept.append(path)
    return tuple(kept)


_EXPOSED: list[str] = []  # read-only directories callers asked for (the Java toolchain's build directory)


def expose(path: str) -> bool:
    """Make ``path`` (a directory of trusted files) readable inside every sandbox started from now on, also
    where it lies under a hidden directory (``/tmp``, ``/root``). True if it was not exposed yet."""
    path = os.path.realpath(path)
    if path in _EXPOSED:
        return False
    _EXPOSED.append(path)
    return True


def _readable_paths() -> list[str]:
    return [*_interpreter_paths(), *_EXPOSED]


def _first_blocked_dir(path: str, uid: int) -> str | None:
    """The outermost directory on ``path`` that ``uid`` (with gid == uid, no groups) may not search."""
    current = "/"
    for part in Path(path).parts[1:]:
        st = os.stat(current)
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid == uid else stat.S_IXOTH
        if not st.st_mode & bit:
            return current
        current = os.path.join(current, part)
    return None


def filesystem_plan(workdir: str, uid: int | None) -> dict:
    """Hidden directories (empty read-only tmpfs) and the paths bound back into them."""
    hidden = ["/tmp"]
    needed = _readable_paths() + [workdir]
    if uid is not None:
        for path in needed:
            blocked = _first_blocked_dir(path, uid)
            if blocked and not any(_is_under(blocked, h) for h in hidden):
                hidden.append(blocked)
    binds = [[p, False] for p in _readable_paths() if any(_is_under(p, h) and p != h for h in hidden)]
    binds.append([workdir, True])
    return {"tmpfs": hidden, "binds": binds}


def _parents_inside(path: str, hidden: list[str]) -> list[str]:
    """Directories strictly between the hidden directory holding ``path`` and ``path`` itself."""
    top = next((h for h in hidden if _is_under(path, h) and path != h), None)
    parents, current = [], os.path.dirname(path)
    while top is not None and current != top and _is_under(current, top):
        parents.insert(0, current)
        current = os.path.dirname(current)
    return parents


@dataclass(frozen=True)
class Impl:
    """How to start a run with one backend. ``command`` fills ``spec["mounts"]`` for ``unshare``."""

    backend: Backend
    tool: str | None  # bwrap / unshare executable
    drop_uid: bool  # the launcher moves the program to SANDBOX_UID via a user namespace
    popen_uid: int | None  # pgroup only: Popen(user=...)

    @property
    def poolable(self) -> bool:
        """Whether runs may be forked by a pool's zygote (pool.py): namespaced backends, as root."""
        return self.backend.pid_namespace and self.drop_uid

    def command(self, spec: dict, launcher_argv: list[str]) -> list[str]:
        name, root = self.backend.name, os.geteuid() == 0
        if name == "pgroup":
            return launcher_argv
        plan = filesystem_plan(spec["workdir"], SANDBOX_UID if self.drop_uid else None)
        if name == "unshare":
            spec["mounts"] = plan
            user = [] if root else ["--user", "--map-root-user"]
            return [self.tool, *user, "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--net",
                    "--ipc", "--uts", "--", *launcher_argv]
        # As root bubblewrap runs privileged and keeps root's capabilities for the launcher, which needs
        # CAP_SETUID/CAP_SETGID to map the program's user namespace and drops everything afterwards.
        flags = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"] \
            if root else ["--unshare-all"]
        cmd = [self.tool, "--die-with-parent", "--new-session", *flags,
               "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for hidden in plan["tmpfs"]:
            cmd += ["--tmpfs", hidden]
        for path, writable in plan["binds"]:
            for parent in _parents_inside(path, plan["tmpfs"]):  # bwrap would create them 0700
                cmd += ["--perms", "0755", "--dir", parent]
            cmd += ["--bind" if writable else "--ro-bind", path, path]
        for hidden in [*plan["tmpfs"], "/dev"]:  # /dev: device nodes stay usable, no new files
            cmd += ["--remount-ro", hidden]
        return cmd + ["--chdir", spec["workdir"], "--", *launcher_argv]


def make_impl(name: str) -> Impl | None:
    """The backend ``name`` as this machine would run it, or None when its tool is missing."""
    root = os.name == "posix" and os.geteuid() == 0
    linux = sys.platform.startswith("linux")
    if name == "pgroup":
        if os.name != "posix":
            return None
        # As root, run as SANDBOX_UID when that uid can reach the interpreter; otherwise stay root.
        drop = root and not any(_first_blocked_dir(p, SANDBOX_UID) for p in _interpreter_paths())
        uid = SANDBOX_UID if drop else os.geteuid()
        return Impl(Backend("pgroup", False, False, False, False, uid), None, False, uid if drop else None)
    tool = shutil.which(name) if linux else None
    if tool is None:
        return None
    uid = SANDBOX_UID if root else os.geteuid()
    return Impl(Backend(name, True, True, True, True, uid), tool, root, None)
