"""Trusted first stage that runs *inside* the sandbox, before any untrusted code.

This file is standalone (standard library only): :mod:`peftlab.execution.sandbox` reads its text and runs it
as ``python -I -S -c <this source> <spec json>`` under bubblewrap, ``unshare`` or a plain process group (for
the test runner: ``python -I -c <this source> <spec json> <runner.py source>``, and a pool's zygote calls
:func:`launch` for each run, see zygote.py). It finishes the confinement that those tools cannot do on their
own, then ``exec``\\ s the real program - or, for the test runner, calls its ``supervise`` in this process
once everything below is done, with the same environment, fds and working directory an exec would give:

* ``mounts`` (``unshare`` backend): every mount becomes read-only, ``/tmp`` (and any directory the sandbox
  user may not enter) is hidden under an empty tmpfs, the interpreter's directories are bound back
  read-only and the work directory is bound back writable.
* ``drop_uid`` (run as root): the program runs in a fresh user namespace whose only user maps to an
  unprivileged host uid, so that ``RLIMIT_NPROC`` applies (the kernel ignores it for host root).
* ``fork``: the launcher stays as a reaper and waits for the program, exiting with its status. As PID 1 of
  the namespace its exit makes the kernel kill every process left in the namespace. With ``subreaper``
  (``pgroup`` on Linux) it is a child subreaper instead and kills whatever is left before exiting.
* always: every capability is dropped, ``no_new_privs`` is set, resource limits are applied, the two
  control pipes are moved to file descriptors 3 (in) and 4 (out), every other descriptor above 2 is closed,
  the environment is replaced and the working directory is the work directory.

Any failure before ``exec`` prints one ``peftlab-launcher:`` line on stderr and exits with status 125.
"""

import ctypes
import json
import os
import re
import resource
import signal
import sys

CONTROL_IN_FD = 3
CONTROL_OUT_FD = 4
SETUP_FAILED = 125

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECURE_NOROOT_ALL_LOCKED = 0xCF  # noroot, no_setuid_fixup, no_cap_ambient_raise, each locked
CLONE_NEWUSER = 0x10000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_STRICTATIME = 1 << 24

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _prctl(option, arg=0):
    ulong = ctypes.c_ulong
    _check(_libc().prctl(option, ulong(arg), ulong(0), ulong(0), ulong(0)), f"prctl({option})")


def _mount(source, target, fstype, flags, data=None):
    enc = (lambda s: None if s is None else os.fsencode(s))
    res = _libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(res, f"mount {target}")


def _remount(target, readonly):
    """Change only the per-mount read-only flag of ``target``, keeping the flags the kernel locks."""
    st = os.statvfs(target).f_flag
    flags = MS_REMOUNT | MS_BIND | (MS_RDONLY if readonly else 0)
    for st_flag, ms_flag in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                             (os.ST_NODIRATIME, MS_NODIRATIME)):
        if st & st_flag:
            flags |= ms_flag
    if st & os.ST_NOATIME:
        flags |= MS_NOATIME
    elif not st & os.ST_RELATIME:
        flags |= MS_STRICTATIME
    _mount(None, target, None, flags)


def _mount_points():
    points = []
    with open("/proc/self/mountinfo", "rb") as fh:
        for line in fh:
            raw = line.split()[4]  # octal escapes: \040 for a space, \134 for a backslash
            point = os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), raw))
            if point not in points:
                points.append(point)
    return points


def _make_mount_point(path, like):
    if os.path.isdir(like):
        os.makedirs(path, exist_ok=True)
    elif not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()


def setup_mounts(plan):
    """Make the whole tree read-only except the binds marked writable (in a private mount namespace)."""
    sources = {path: os.open(path, os.O_PATH) for path, _ in plan["binds"]}
    for point in _mount_points():
        if point == "/proc" or point.startswith("/proc/"):
            continue  # uid_map is written through it; procfs permissions already confine an unprivileged user
        try:
            _remount(point, readonly=True)
        except OSError as exc:
            if point == "/":
                raise
            print(f"peftlab-launcher: warning: {point} stays as it was: {exc}", file=sys.stderr)
    for hidden in plan["tmpfs"]:
        _mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for path, writable in plan["binds"]:
        _make_mount_point(path, f"/proc/self/fd/{sources[path]}")
        _mount(f"/proc/self/fd/{sources[path]}", path, None, MS_BIND | MS_REC)
        _remount(path, readonly=not writable)
        os.close(sources[path])
    for hidden in plan["tmpfs"]:
        _remount(hidden, readonly=True)


def _enter_unprivileged_userns(report_w, go_r):
    """Child side of the uid drop: new user namespace, wait for the parent to map it, become its root."""
    _check(_libc().unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    os.write(report_w, b"u")
    os.close(report_w)
    if os.read(go_r, 1) != b"m":
        raise OSError("parent did not map the user namespace")
    os.close(go_r)
    os.setresgid(0, 0, 0)
    os.setgroups([])
    os.setresuid(0, 0, 0)


def _map_child(pid, uid, gid, report_r, go_w):
    if os.read(report_r, 1) != b"u":
        raise OSError("child could not create its user namespace")
    with open(f"/proc/{pid}/uid_map", "w") as fh:
        fh.write(f"0 {uid} 1\n")
    with open(f"/proc/{pid}/gid_map", "w") as fh:
        fh.write(f"0 {gid} 1\n")
    os.write(go_w, b"m")


def drop_capabilities():
    """Empty every capability set (bounding, ambient, effective, permitted, inheritable); set no_new_privs."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last = int(fh.read())
    except OSError:
        last = 40
    for cap in range(last + 1):
        try:
            _prctl(PR_CAPBSET_DROP, cap)
        except OSError:
            break  # no CAP_SETPCAP: nothing to drop beyond what no_new_privs already neutralises
    for option, arg in ((PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL), (PR_SET_SECUREBITS, SECURE_NOROOT_ALL_LOCKED)):
        try:
            _prctl(option, arg)
        except OSError:
            pass
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc().capset(header, data), "capset")
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def _count_own_processes():
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return count


def _in_initial_user_namespace():
    try:
        return open("/proc/self/uid_map").read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def apply_limits(limits, linux):
    """setrlimit for each entry; off Linux a limit the system refuses (or NPROC, which is per user
    there) is skipped with a warning instead of failing the run."""
    for name, value in limits.items():
        if name == "NPROC" and linux and _in_initial_user_namespace():
            name = "NPROC_RELATIVE"  # e.g. setuid bubblewrap: the count covers all of this user's processes
        if name == "NPROC_RELATIVE":
            if not linux:
                continue
            name, value = "NPROC", _count_own_processes() + value
        soft, hard = (value, value) if name != "CPU" else (value, value + 1)
        try:
            resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (soft, hard))
        except (ValueError, OSError, AttributeError) as exc:
            if linux:
                raise
            print(f"peftlab-launcher: warning: RLIMIT_{name} not applied: {exc}", file=sys.stderr)


def _move_control_fds(fd_in, fd_out):
    tmp_in, tmp_out = os.dup(fd_in), os.dup(fd_out)
    os.dup2(tmp_in, CONTROL_IN_FD)
    os.dup2(tmp_out, CONTROL_OUT_FD)
    for fd in (CONTROL_IN_FD, CONTROL_OUT_FD):
        os.set_inheritable(fd, True)  # dup2(fd, fd) is a no-op that would leave close-on-exec set
    os.closerange(CONTROL_OUT_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def finish_and_exec(spec, main=None):
    """The last steps before the program; ``main`` (a trusted function, the test runner) runs in this very
    process in place of ``exec``: same confinement, same environment, fds and working directory."""
    linux = sys.platform.startswith("linux")
    if linux:
        if spec["fork"]:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        drop_capabilities()
    _move_control_fds(spec["fd_in"], spec["fd_out"])
    apply_limits(spec["limits"], linux)
    os.chdir(spec["workdir"])
    os.umask(0o022)
    if main is None:
        os.execve(spec["argv"][0], spec["argv"], spec["env"])
    os.environ.clear()
    os.environ.update(spec["env"])
    sys.argv = list(spec["argv"][1:]) or [""]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a bug of the trusted runner: report it like an interpreter would
        import traceback

        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def load_module(name, source):
    """A standalone trusted module (the runner) from its source, registered in ``sys.modules``."""
    module = type(sys)(name)
    module.SOURCE = source
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)  # noqa: S102 - our own trusted code
    return module


def _wait_for(child):
    """Reap every child (orphans included, as PID 1 must) until ``child`` ends; return its exit code."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return SETUP_FAILED
        if pid == child:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _kill_children():
    """As a subreaper: SIGKILL and reap every child until none is left (orphans keep arriving here)."""
    me = str(os.getpid())
    while True:
        children = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[1].decode() == me:
                children.append(int(entry))
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while True:
                os.waitpid(-1, 0)
        except ChildProcessError:
            pass


def main(argv):
    spec = json.loads(argv[1])
    runner = load_module("peftlab_runner", argv[2]) if len(argv) > 2 else None
    launch(spec, runner.supervise if runner else None)


def launch(spec, main=None):
    """Finish the confinement described by ``spec`` and start the program (or ``main``, see above)."""
    try:
        if spec["mounts"]:
            setup_mounts(spec["mounts"])
        if not spec["fork"]:
            finish_and_exec(spec, main)
        if spec.get("subreaper"):
            _prctl(PR_SET_CHILD_SUBREAPER, 1)  # descendants that leave the process group still come back here
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(report_r)
                os.close(go_w)
                if spec["drop_uid"]:
                    _enter_unprivileged_userns(report_w, go_r)
                finish_and_exec(spec, main)
            except BaseException as exc:  # noqa: BLE001 - report any setup failure, never run the program
                print(f"peftlab-launcher: {exc}", file=sys.stderr, flush=True)
            os._exit(SETUP_FAILED)
        os.close(report_w)
        os.close(go_r)
        if spec["drop_uid"]:
            _map_child(child, spec["drop_uid"]["uid"], spec["drop_uid"]["gid"], report_r, go_w)
        for fd in (report_r, go_w, spec["fd_in"], spec["fd_out"]):
            os.close(fd)
        try:
            drop_capabilities()
        except OSError:
            pass
    except BaseException as exc:  # noqa: BLE001
        print(f"peftlab-launcher: {exc}", file=sys.stderr, flush=True)
        os._exit(SETUP_FAILED)
    code = _wait_for(child)
    if spec.get("subreaper"):
        _kill_children()
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv)
