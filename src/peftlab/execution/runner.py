"""The trusted test runner that executes *inside* the sandbox (standard library only).

:func:`peftlab.execution.harness.run_tests` has it started inside the sandbox by the launcher, in the
launcher's own (confined, unprivileged) process: no second interpreter, no file in the work directory (see
``launcher.finish_and_exec``). It becomes two processes that share no secret:

* the **supervisor** (trusted) first forks the **worker**, *before* it reads anything: the job and the
  per-run nonce arrive afterwards on fd 3, so they were never in the worker's memory. It then sets itself
  non-dumpable (no ptrace, no ``/proc/<pid>/mem`` or ``fd`` access for the worker), runs the dataset's
  ``setup`` and ``tests`` code, and executes the body of ``check`` one top-level statement at a time. A
  statement that contains an ``assert`` and mentions the candidate is one test case; the others are set-up.
  ``candidate`` (and the entry point's own name) is a proxy: it sends the arguments to the worker and turns
  its answer back into plain built-in values, so every comparison of a test runs here, on values the
  candidate cannot have tampered with. One nonce-stamped record per case and a final ``done`` record go to
  fd 4, which only the supervisor holds.
* the **worker** (untrusted) executes the candidate program and answers calls with :func:`encode` of the
  result. Only ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes`` and (nested)
  ``list``/``tuple``/``set``/``frozenset``/``dict`` of exactly those types can cross back; anything else (an
  object whose ``__eq__`` always returns True, an ``int`` subclass, a generator) fails the case. If it dies,
  a fresh interpreter (``python -I -c <this source> worker``) is started for the next case.

``python -I peftlab_runner.py`` runs it directly (fds 3 and 4 open), as the launcher would.
"""

from __future__ import annotations

import ast
import builtins
import json
import math
import os
import select
import signal
import sys
import time

_MAX_MESSAGE = 32 << 20
_MAX_DEPTH = 100
_SEQUENCES = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}


def encode(value, depth: int = 0):
    """JSON-ready form of plain built-in data. Raises TypeError for anything else (subclasses included)."""
    if depth > _MAX_DEPTH:
        raise TypeError("value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if math.isfinite(value) else ["float", repr(value)]
    if kind.__name__ in _SEQUENCES and _SEQUENCES[kind.__name__] is kind:
        return [kind.__name__, [encode(v, depth + 1) for v in value]]
    if kind is dict:
        return ["dict", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    if kind is bytes:
        return ["bytes", value.hex()]
    if kind is complex:
        return ["complex", encode(value.real), encode(value.imag)]
    if kind.__module__ == "numpy" and getattr(value, "shape", None) == ():
        return encode(value.item(), depth)  # a numpy scalar stands for its plain Python value
    raise TypeError(f"{kind.__module__}.{kind.__qualname__} is not plain data")


def decode(data, depth: int = 0):
    """Inverse of :func:`encode`, for untrusted input. Raises ValueError for anything malformed."""
    if depth > _MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if data is None or type(data) in (bool, int, str, float):
        return data
    if type(data) is not list or len(data) < 2 or type(data[0]) is not str:
        raise ValueError("malformed value")
    tag, body = data[0], data[1]
    if tag in _SEQUENCES and type(body) is list:
        return _SEQUENCES[tag](decode(v, depth + 1) for v in body)
    if tag == "dict" and type(body) is list:
        return {decode(k, depth + 1): decode(v, depth + 1) for k, v in body}
    if tag == "bytes" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "float" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "complex" and len(data) == 3:
        real, imag = decode(data[1], depth + 1), decode(data[2], depth + 1)
        if type(real) is float and type(imag) is float:
            return complex(real, imag)
    raise ValueError(f"malformed value tagged {tag!r}")


def split_cases(tests: str, check_name: str = "check", entry_point: str | None = None):
    """Top-level statements of ``check``'s body as ``(statement, is_case)`` pairs.

    A statement is a test case when it contains an ``assert`` and mentions the check's parameter (or
    ``entry_point``). Raises ValueError (SyntaxError included) if ``tests`` defines no ``check_name(param)``.
    """
    tree = ast.parse(tests)
    check = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == check_name), None)
    if check is None or not check.args.args:
        raise ValueError(f"the tests define no function {check_name}(candidate)")
    names = {check.args.args[0].arg, entry_point}
    pairs = []
    for stmt in check.body:
        nodes = list(ast.walk(stmt))
        pairs.append((stmt, any(isinstance(n, ast.Assert) for n in nodes)
                      and any(isinstance(n, ast.Name) and n.id in names for n in nodes)))
    return pairs


def one_line(text, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- supervisor side (trusted)
class CandidateFailure(BaseException):
    """The candidate crashed, returned non-data or did not load. A BaseException: tests cannot catch it."""


class CandidateTimeout(BaseException):
    """The time budget ran out while the candidate was computing."""


class HarnessLimit(BaseException):
    """A test asked for something the runner cannot do (pass a non-data argument)."""


def _fork_worker():
    """Fork the first worker now, while this process holds no secret. Returns (pid, req_w, resp_r)."""
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (3, 4, req_w, resp_r):  # 3 and 4 carry the job and the verdict: never here
                try:
                    os.close(fd)
                except OSError:
                    pass
            os.setsid()
            _set_dumpable(1)  # as after an exec: a uid change may have cleared it (see launcher.py)
            work(req_r, resp_w)
        finally:
            os._exit(0)
    os.close(req_r)
    os.close(resp_w)
    return pid, req_w, resp_r


class _Worker:
    """The untrusted side of the proxy; restarted (as a fresh interpreter) after it dies."""

    def __init__(self, job: dict, deadline: float, spare):
        self.job, self.deadline, self.spare = job, deadline, spare
        self.pid = self.load_error = None
        self.buffer = bytearray()

    def _start(self):
        if self.spare:
            self.pid, self.req_w, self.resp_r = self.spare
            self.spare = None
        else:
            req_r, self.req_w = os.pipe()
            self.resp_r, resp_w = os.pipe()
            import subprocess  # only after a crash: a fresh interpreter, so no copy of the nonce

            source = globals().get("SOURCE")  # set when the runner was loaded from its text (launcher.py)
            code = ["-c", source] if source else [os.path.abspath(__file__)]
            argv = [sys.executable, "-I", *code, "worker", str(req_r), str(resp_w)]
            self.pid = subprocess.Popen(argv, stdin=subprocess.DEVNULL, pass_fds=(req_r, resp_w),
                                        start_new_session=True).pid
            os.close(req_r)
            os.close(resp_w)
        reply = self._exchange({"program": self.job["program"], "entry_point": self.job["entry_point"]})
        if "loaded" not in reply:
            self.load_error = f"candidate failed to load: {one_line(reply.get('error', 'no answer'))}"

    def _read_line(self):
        """One answer line; None on timeout; b"" when the worker is gone or floods."""
        while b"\n" not in self.buffer:
            wait = self.deadline - time.monotonic()
            if wait <= 0 or not select.select([self.resp_r], [], [], wait)[0]:
                return None
            chunk = os.read(self.resp_r, 1 << 16)
            if not chunk or len(self.buffer) > _MAX_MESSAGE:
                return b""
            self.buffer += chunk
        cut = self.buffer.index(b"\n")
        line = bytes(self.buffer[:cut])
        del self.buffer[: cut + 1]
        return line

    def _exchange(self, message: dict) -> dict:
        try:
            os.write(self.req_w, json.dumps(message).encode() + b"\n")
        except BrokenPipeError:
            pass
        line = self._read_line()
        if line is None:
            self.stop()
            raise CandidateTimeout("time limit reached while the candidate was running")
        if line == b"":
            raise CandidateFailure(f"candidate process ended (status {self.stop()}) before answering")
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if type(reply) is not dict:
            self.stop()
            raise CandidateFailure("candidate process sent a malformed answer")
        return reply

    def stop(self):
        """Kill the worker's process group and reap it; returns its exit status (None if none ran)."""
        if self.spare:
            self.pid, self.req_w, self.resp_r = self.spare
            self.spare = None
        if self.pid is None:
            return None
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        for fd in (self.req_w, self.resp_r):
            os.close(fd)
        self.pid = None
        self.buffer.clear()
        return status

    def __call__(self, /, *args, **kwargs):
        if self.load_error:
            raise CandidateFailure(self.load_error)
        try:
            message = {"args": encode(list(args)), "kwargs": encode(kwargs)}
        except TypeError as exc:
            raise HarnessLimit(f"test passes an argument the runner cannot send: {exc}") from None
        if self.pid is None:
            try:
                self._start()
            except CandidateFailure as exc:
                self.load_error = f"candidate failed to load: {exc}"
            if self.load_error:
                raise CandidateFailure(self.load_error)
        reply = self._exchange(message)
        try:
            if "result" in reply:
                return decode(reply["result"])
            if "raised" in reply:
                name, text = str(reply["raised"][0]), one_line(reply["raised"][1], 300)
            elif "unsupported" in reply:
                name, text = None, one_line(reply["unsupported"])
            else:
                raise ValueError("unknown answer")
        except (ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
            raise CandidateFailure(f"candidate sent a malformed answer ({type(exc).__name__})") from None
        if name is None:
            raise CandidateFailure(f"candidate returned non-data: {text}")
        kind = getattr(builtins, name, None)
        if isinstance(kind, type) and issubclass(kind, Exception):
            raise kind(text)  # a builtin exception keeps its type, so tests expecting it still work
        raise CandidateFailure(f"candidate raised {name}: {text}")


def _run_statement(stmt: ast.stmt, namespace: dict, source: str) -> tuple[str, str]:
    try:
        exec(compile(ast.Module([stmt], []), "<check>", "exec"), namespace)  # noqa: S102 - dataset code
        return "passed", ""
    except AssertionError as exc:
        line, tb = stmt.lineno, exc.__traceback__
        while tb is not None:  # the innermost frame of the check code is the failing assert
            if tb.tb_frame.f_code.co_filename == "<check>":
                line = tb.tb_lineno
            tb = tb.tb_next
        return "failed", "assertion failed: " + one_line(source.splitlines()[line - 1])
    except CandidateTimeout as exc:
        return "timeout", str(exc)
    except CandidateFailure as exc:
        return "failed", one_line(exc)
    except HarnessLimit as exc:
        return "error", one_line(exc)
    except Exception as exc:  # noqa: BLE001 - a test expression failing on the candidate's answer
        return "failed", one_line(f"{type(exc).__name__}: {exc}")


def _set_dumpable(value: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, value, 0, 0, 0)  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass


def supervise() -> None:
    spare = _fork_worker()
    _set_dumpable(0)
    with os.fdopen(3, "rb") as control_in:
        job = json.loads(control_in.read())
    nonce = job.pop("nonce")
    out = os.fdopen(4, "w", buffering=1)

    def emit(**record):
        out.write(json.dumps({"nonce": nonce, **record}) + "\n")

    namespace = {"__name__": "__peftlab_tests__"}
    worker = _Worker(job, time.monotonic() + float(job["timeout"]), spare)
    try:
        exec(compile(job["setup"], "<setup>", "exec"), namespace)  # noqa: S102 - dataset code
        exec(compile(job["tests"], "<tests>", "exec"), namespace)  # noqa: S102
        pairs = split_cases(job["tests"], job["check_name"], job["entry_point"])
    except Exception as exc:  # noqa: BLE001
        worker.stop()
        emit(type="fatal", reason=one_line(f"the tests could not be loaded: {type(exc).__name__}: {exc}"))
        return
    namespace["candidate"] = namespace[job["entry_point"]] = worker
    case, total = 0, sum(is_case for _, is_case in pairs)
    for stmt, is_case in pairs:
        status, reason = _run_statement(stmt, namespace, job["tests"])
        if is_case:
            emit(type="case", index=case, status=status, reason=reason)
            case += 1
        if status == "timeout":
            break
    for index in range(case, total):
        emit(type="case", index=index, status="timeout", reason="not run: the time limit was reached earlier")
    worker.stop()
    emit(type="done", total=total)
    out.close()


# ---------------------------------------------------------------- worker side (untrusted)
def _describe(exc: BaseException) -> list:
    try:
        return [type(exc).__name__, one_line(exc, 300)]
    except Exception:  # noqa: BLE001 - a hostile __str__
        return [type(exc).__name__, "?"]


def work(req_fd: int, resp_fd: int) -> None:
    requests = os.fdopen(req_fd, "rb")

    def send(message: dict) -> None:
        os.write(resp_fd, json.dumps(message).encode() + b"\n")

    job = json.loads(requests.readline())
    scope = {"__name__": "__candidate__"}
    try:
        exec(compile(job["program"], "<candidate>", "exec"), scope)  # noqa: S102 - the point of the sandbox
        function = scope[job["entry_point"]]
    except BaseException as exc:  # noqa: BLE001 - SystemExit included: report, then stop
        send({"error": ": ".join(_describe(exc))})
        return
    send({"loaded": True})
    for line in requests:
        call = json.loads(line)
        try:
            result = function(*decode(call["args"]), **decode(call["kwargs"]))
        except BaseException as exc:  # noqa: BLE001
            send({"raised": _describe(exc)})
            continue
        try:
            send({"result": encode(result)})
        except (TypeError, ValueError, RecursionError) as exc:
            send({"unsupported": one_line(exc)})


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        work(int(sys.argv[2]), int(sys.argv[3]))
    else:
        supervise()
