"""The trusted driver that runs a mined project's tests inside the sandbox (standard library, plus pytest
and coverage.py, which it imports only where noted). Host side: :mod:`peftlab.projects.execute`.

It runs as ``python -I peftlab_project_driver.py`` in the sandbox's work directory, where the project's
files were written under ``project/``. Three processes share no secret:

* the **supervisor** (this file's ``main``) reads the job and the per-run nonce from fd 3, makes itself
  non-dumpable (no ptrace or ``/proc/<pid>/mem`` for the others), and is the only one holding fd 4. For each
  job it writes the job's substituted files (a candidate body, an emptied body) into ``project/``, has the
  runner execute it, stamps what comes back with the nonce, then puts every project file back as it was and
  deletes anything new, so no job sees what an earlier one left behind.
* the **runner** (``--runner``), a fresh interpreter started before anything is read, so it never held the
  nonce. It imports pytest once and forks one **child** per job.
* the **child** runs pytest on the job's tests (per-test time limit by SIGALRM; coverage.py with one dynamic
  context per test when asked) and reports each test's outcome, and the lines each test executed, to the
  runner. A candidate runs inside the child, in pytest's own process: it can falsify its *own* tests'
  outcomes, never another job's records or the supervisor's final ``done`` (docs/sandbox.md).

Job (JSON on fd 3)::

    {"nonce", "root": "project", "import_roots": ["project", ...], "timeout": seconds per test,
     "jobs": [{"files": {relpath: source}, "args": [test paths or node ids], "coverage": [relpaths] | null,
               "deadline": seconds for the whole job}]}

Records (JSON lines on fd 4, each with the nonce): ``test`` {job, id, outcome, reason} with outcome one of
passed/failed/timeout/skipped; ``collect_error`` {job, id, reason}; ``contexts`` {job, names} and
``lines`` {job, file, lines: {lineno: [context index]}} for a job with coverage; ``job`` {job, status}
after each job (``ok``, ``timeout``, ``crashed``); ``done`` {jobs} last.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

# pytest's own plugins that no verdict needs: a third of its start-up, paid once per job
UNUSED_PLUGINS = [arg for name in ("cacheprovider", "doctest", "junitxml", "pastebin", "stepwise", "setuponly",
                                   "setupplan", "faulthandler") for arg in ("-p", f"no:{name}")]


def _set_dumpable(value: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, value, 0, 0, 0)  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass


def _one_line(text, limit: int = 300) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _send(fd: int, record: dict) -> None:
    data = (json.dumps(record) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


# --------------------------------------------------------------------------------------------- child

class TestTimeout(BaseException):
    """Raised by SIGALRM inside a test; a BaseException so a bare ``except Exception`` does not eat it."""


def _reporter(out: int, timeout: float, cov):
    import pytest

    class Reporter:
        current: dict | None = None

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_protocol(self, item, nextitem):
            self.current = {"type": "test", "id": item.nodeid, "outcome": "passed", "reason": ""}
            if cov is not None:
                cov.switch_context(item.nodeid)
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                if cov is not None:
                    cov.switch_context("")
                _send(out, self.current)
                self.current = None

        def pytest_runtest_logreport(self, report):
            current = self.current
            if current is None or report.nodeid != current["id"] or current["outcome"] in ("failed", "timeout"):
                return
            if report.failed:
                text = report.longreprtext or ""
                current["outcome"] = "timeout" if "TestTimeout" in text else "failed"
                crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
                current["reason"] = _one_line(f"{report.when}: {crash.message if crash else text[-300:]}")
            elif report.skipped and current["outcome"] == "passed":
                current["outcome"] = "skipped"
                current["reason"] = _one_line(str(report.longrepr)[-200:])

        def pytest_collectreport(self, report):
            if report.failed:
                _send(out, {"type": "collect_error", "id": report.nodeid,
                            "reason": _one_line((report.longreprtext or "")[-300:])})

    return Reporter()


def _alarm(signum, frame):
    raise TestTimeout("per-test time limit reached")


def _child(job: dict, spec: dict, out: int) -> None:
    """Run one job's tests in this (forked) process; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)  # the runner's job pipe: not the candidate's to read
        os.dup2(devnull, 1)
        root = os.path.abspath(spec["root"])
        os.chdir(root)
        for path in reversed(spec["import_roots"]):
            sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(root), path)))
        signal.signal(signal.SIGALRM, _alarm)
        cov = None
        if job.get("coverage") is not None:
            import coverage

            files = [os.path.join(root, rel) for rel in job["coverage"]]
            cov = coverage.Coverage(data_file=None, include=files or ["/nonexistent"], config_file=False)
            cov.start()
        import pytest

        args = ["-c", os.path.abspath("../peftlab_pytest.ini"), "--rootdir", root, "-qq",
                "-o", "console_output_style=classic", *UNUSED_PLUGINS, *job["args"]]
        pytest.main(args, plugins=[_reporter(out, float(spec["timeout"]), cov)])
        if cov is not None:
            cov.stop()
            data = cov.get_data()
            names: dict[str, int] = {}
            for path in sorted(data.measured_files()):
                by_line = data.contexts_by_lineno(path)
                lines = {str(n): [names.setdefault(c, len(names)) for c in cs if c] for n, cs in by_line.items()}
                lines = {n: ids for n, ids in lines.items() if ids}
                if lines:
                    _send(out, {"type": "lines", "file": os.path.relpath(path, root), "lines": lines})
            _send(out, {"type": "contexts", "names": list(names)})
        code = 0
    except BaseException as exc:  # noqa: BLE001 - the job failed; what the runner sees is the missing records
        try:
            _send(out, {"type": "collect_error", "id": "", "reason": _one_line(f"{type(exc).__name__}: {exc}")})
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code)


# -------------------------------------------------------------------------------------------- runner

def _read_line(fd: int, buffer: bytearray) -> bytes | None:
    while b"\n" not in buffer:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


def _run_child(job: dict, spec: dict) -> str:
    """Fork a child for ``job``; relay its records to stdout; kill it at its deadline. Its status."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(job, spec, write_end)
    os.close(write_end)
    deadline = time.monotonic() + float(job["deadline"])
    status = "ok"
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([pipe], [], [], max(0.0, left))
            if not ready:
                status = "timeout"
                break
            chunk = pipe.read(1 << 16)
            if not chunk:
                break
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _, wait_status = os.waitpid(pid, 0)
    if status == "ok" and not (os.WIFEXITED(wait_status) and os.WEXITSTATUS(wait_status) == 0):
        status = "crashed"
    return status


def runner() -> None:
    """Read a job per line on stdin, run it in a child, write its records and then a status line."""
    _set_dumpable(0)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the plugins pytest ships, whatever is installed
    import pytest  # noqa: F401 - imported once, before the forks

    spec = json.loads(sys.stdin.readline())
    for line in sys.stdin:
        status = _run_child(json.loads(line), spec)
        sys.stdout.buffer.write((json.dumps({"type": "job", "status": status}) + "\n").encode())
        sys.stdout.buffer.flush()


# ------------------------------------------------------------------------------------------ supervisor

def _stamp(path: str) -> tuple:
    # ctime cannot be set by a process (utime sets only atime/mtime): any write or chmod changes it
    info = os.lstat(path)
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_mode


def _snapshot(root: str) -> dict[str, tuple[bytes, tuple]]:
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as fh:
                files[path] = (fh.read(), _stamp(path))
    return files


def _directories(original: dict) -> set[str]:
    found = set()
    for path in original:
        parent = os.path.dirname(path)
        while parent and parent not in found:
            found.add(parent)
            parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    return found


def _restore(root: str, original: dict[str, tuple[bytes, tuple]], directories: set[str]) -> None:
    """Put the project back exactly: rewrite changed or missing files, delete everything else. A file whose
    inode, size, times and mode are unchanged was not written, so its bytes need no second look."""
    for directory, dirs, names in os.walk(root, topdown=False):
        for name in names:
            path = os.path.join(directory, name)
            if path not in original:
                os.chmod(directory, 0o700)
                os.unlink(path)
        for name in dirs:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                os.unlink(path)
            elif path not in directories:
                os.rmdir(path)
    for path, (content, stamp) in original.items():
        try:
            if _stamp(path) == stamp:
                continue
        except OSError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.chmod(os.path.dirname(path), 0o700)
            os.unlink(path)
        with open(path, "wb") as fh:
            fh.write(content)
        original[path] = (content, _stamp(path))


def _compile(root: str) -> None:
    """Byte-compile the project once per sandbox run; without it every job compiles every module it imports
    again (the sandbox sets PYTHONDONTWRITEBYTECODE), which was two thirds of a job's time. The caches are
    checked against a hash of the source, not its mtime and size: a substituted body written within the
    same second, with the same length, must never run the original's bytecode."""
    import compileall
    import py_compile

    compileall.compile_dir(root, quiet=2, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)


def _start_runner(spec: dict, source: str):
    # From the source held in memory, not the file: a candidate may have rewritten the file by now.
    process = subprocess.Popen([sys.executable, "-I", "-c", source, "--runner"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    process.stdin.write((json.dumps(spec) + "\n").encode())
    process.stdin.flush()
    return process, bytearray()


def main() -> None:
    _set_dumpable(0)
    with open(os.path.abspath(__file__), encoding="utf-8") as fh:
        source = fh.read()
    with os.fdopen(3, "rb") as control:
        job = json.loads(control.read())
    nonce = job.pop("nonce")  # the runner is exec'd, not forked: its memory never holds this
    out = 4
    spec = {key: job[key] for key in ("root", "import_roots", "timeout")}
    root = os.path.abspath(job["root"])
    workdir = os.getcwd()
    _compile(root)
    original = _snapshot(workdir)  # the project, this file and the pytest ini
    directories = _directories(original)
    process, buffer = _start_runner(spec, source)
    for index, one in enumerate(job["jobs"]):
        if process.poll() is not None:  # a child killed the runner: a fresh one for the next job
            process, buffer = _start_runner(spec, source)
        for rel, text in one.get("files", {}).items():
            path = os.path.join(root, rel)
            os.chmod(path, 0o600)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        status = "crashed"
        try:
            process.stdin.write((json.dumps({k: v for k, v in one.items() if k != "files"}) + "\n").encode())
            process.stdin.flush()
            while (line := _read_line(process.stdout.fileno(), buffer)) is not None:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                if record.get("type") == "job":
                    status = str(record.get("status"))
                    break
                _send(out, {**record, "job": index, "nonce": nonce})
        except (BrokenPipeError, OSError):
            pass
        _send(out, {"type": "job", "job": index, "status": status, "nonce": nonce})
        _restore(workdir, original, directories)
    process.stdin.close()
    process.wait()
    _send(out, {"type": "done", "jobs": len(job["jobs"]), "nonce": nonce})


if __name__ == "__main__":
    if sys.argv[1:] == ["--runner"]:
        runner()
    else:
        main()
