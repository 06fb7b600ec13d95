"""The trusted runner for *generated tests*, inside the sandbox (standard library, plus coverage.py and
peftlab's codec, ``peftlab_codec.py`` = :mod:`peftlab.execution.runner`, written beside it).

Roles are the HumanEval runner's, reversed: the code under test is trusted and the test is not.

* the **supervisor** forks the **worker** before it reads anything, turns non-dumpable, reads the job and
  nonce from fd 3, writes the focal module (the original or one mutant) to a file, imports it (under
  coverage.py with branch measurement when asked) and deletes the file again before the worker hears of
  the test, so the worker can never read which variant it is testing. It then sends the test code to the
  worker and serves its calls: every top-level function of the focal module is, in the worker, a proxy
  that sends plain-data arguments here and gets a plain-data result (or the exception's type) back. The
  focal code runs here, in this process, under coverage: the test cannot reach the tracer, the data or
  the module. Nonce-stamped records go to fd 4.
* the **worker** executes the test (untrusted): its ``test*`` functions, the ``test*`` methods of its
  ``unittest.TestCase`` classes, and a HumanEval-style ``check(candidate)``, each called once, and reports
  which passed. What it reports is the test's behaviour by definition; what it cannot do is see the
  variant's code, persist anything to the next run (each run is a fresh sandbox), or touch the coverage.

Job: ``{"nonce", "focal": module source, "file": name, "functions": [names], "test": code,
"coverage": bool, "timeout": seconds}``. Records: ``result`` {outcomes: [[name, status, reason]],
status: ok|timeout|crashed, coverage: coverage.py's JSON report of the focal file, or null}; ``done``.
"""

from __future__ import annotations

import builtins
import json
import os
import select
import signal
import sys
import time

sys.path.insert(0, os.getcwd())
import peftlab_codec as codec  # noqa: E402 - the work dir's copy of peftlab.execution.runner

_MAX_MESSAGE = 32 << 20


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


# --------------------------------------------------------------------------------- worker (untrusted)

def _test_callables(namespace: dict):
    import unittest

    found = []
    for name, value in list(namespace.items()):
        if isinstance(value, type) and issubclass(value, unittest.TestCase) and value is not unittest.TestCase:
            for attribute in sorted(dir(value)):
                if attribute.startswith("test") and callable(getattr(value, attribute, None)):
                    found.append((f"{name}.{attribute}", value, attribute))
        elif callable(value) and getattr(value, "__module__", None) == "__peftlab_test__":
            if name.startswith("test") or name == "check":  # check(candidate): HumanEval's own tests
                found.append((name, None, None))
    return found


def _run_one(namespace: dict, name: str, cls, attribute, proxies: dict, entry_point: str) -> tuple[str, str]:
    import unittest

    try:
        if cls is not None:
            result = unittest.TestResult()
            cls(attribute).run(result)
            problems = result.failures + result.errors
            if problems:
                return "failed", codec.one_line(problems[0][1].strip().splitlines()[-1])
            return ("skipped", "") if result.skipped else ("passed", "")
        if name == "check":
            namespace[name](proxies[entry_point])
        else:
            namespace[name]()
        return "passed", ""
    except BaseException as exc:  # noqa: BLE001 - the test failing is the point
        return "failed", codec.one_line(f"{type(exc).__name__}: {exc}")


def work(req_r: int, resp_w: int) -> None:
    requests = os.fdopen(req_r, "rb")

    def send(message: dict) -> None:
        data = json.dumps(message).encode() + b"\n"
        while data:
            data = data[os.write(resp_w, data):]

    job = json.loads(requests.readline())

    def proxy(function_name: str):
        def call(*args, **kwargs):
            send({"call": function_name, "args": codec.encode(list(args)), "kwargs": codec.encode(kwargs)})
            reply = json.loads(requests.readline())
            if "result" in reply:
                return codec.decode(reply["result"])
            kind = getattr(builtins, str(reply["raised"][0]), None)
            if isinstance(kind, type) and issubclass(kind, Exception):
                raise kind(reply["raised"][1])
            raise RuntimeError(f"{reply['raised'][0]}: {reply['raised'][1]}")
        call.__name__ = function_name
        return call

    proxies = {name: proxy(name) for name in job["functions"]}
    module = type(sys)(job["module"])
    module.__dict__.update(proxies)
    sys.modules[job["module"]] = module
    namespace = {"__name__": "__peftlab_test__", **proxies}
    outcomes = []
    try:
        exec(compile(job["test"], "<test>", "exec"), namespace)  # noqa: S102 - the point of the sandbox
        for name, cls, attribute in _test_callables(namespace):
            outcomes.append([name, *_run_one(namespace, name, cls, attribute, proxies, job["entry_point"])])
    except BaseException as exc:  # noqa: BLE001 - the test module failed to load
        outcomes.append(["<module>", "failed", codec.one_line(f"{type(exc).__name__}: {exc}")])
    send({"outcomes": outcomes})


# ------------------------------------------------------------------------------ supervisor (trusted)

def _fork_worker():
    req_r, req_w = os.pipe()  # supervisor -> worker
    resp_r, resp_w = os.pipe()  # worker -> supervisor
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (3, 4, req_w, resp_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            os.setsid()
            work(req_r, resp_w)
        finally:
            os._exit(0)
    os.close(req_r)
    os.close(resp_w)
    return pid, req_w, resp_r


def _load_focal(job: dict):
    """Import the focal module from a file that exists only while it is imported; (module, coverage)."""
    import importlib.util

    cov = None
    if job["coverage"]:
        import coverage

        cov = coverage.Coverage(data_file=None, branch=True, include=[os.path.abspath(job["file"])],
                                config_file=False)
        cov.start()
    with open(job["file"], "w", encoding="utf-8") as fh:
        fh.write(job["focal"])
    try:
        spec = importlib.util.spec_from_file_location(job["module"], os.path.abspath(job["file"]))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.unlink(job["file"])
    return module, cov


def _serve(job: dict, module, worker, deadline: float) -> tuple[list, str]:
    pid, req_w, resp_r = worker
    os.write(req_w, json.dumps({k: job[k] for k in ("test", "functions", "module", "entry_point")}).encode() + b"\n")
    buffer = bytearray()
    signal.signal(signal.SIGALRM, _alarm)
    while True:
        while b"\n" not in buffer:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([resp_r], [], [], wait)[0]:
                return [], "timeout"
            chunk = os.read(resp_r, 1 << 16)
            if not chunk or len(buffer) > _MAX_MESSAGE:
                return [], "crashed"
            buffer += chunk
        cut = buffer.index(b"\n")
        line, buffer = bytes(buffer[:cut]), buffer[cut + 1:]
        try:
            message = json.loads(line)
        except ValueError:
            return [], "crashed"
        if not isinstance(message, dict):
            return [], "crashed"
        if "outcomes" in message:
            return message["outcomes"] if isinstance(message["outcomes"], list) else [], "ok"
        reply = _call(module, message, deadline)
        if reply is None:
            return [], "timeout"
        try:
            os.write(req_w, json.dumps(reply).encode() + b"\n")
        except BrokenPipeError:
            return [], "crashed"


def _call(module, message: dict, deadline: float) -> dict | None:
    """Run one focal call here, under the time left; its encoded result, or the exception's type."""
    name = message.get("call")
    function = getattr(module, str(name), None) if name in getattr(module, "__peftlab_functions__", ()) else None
    if function is None:
        return {"raised": ["NameError", f"no function {name!r}"]}
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    signal.setitimer(signal.ITIMER_REAL, left)
    try:
        args, kwargs = codec.decode(message.get("args")), codec.decode(message.get("kwargs"))
        result = function(*args, **kwargs)
        return {"result": codec.encode(result)}
    except _Timeout:
        return None
    except (ValueError, TypeError) as exc:
        if "not plain data" in str(exc):
            return {"raised": ["TypeError", "the focal function returned something that is not plain data"]}
        return {"raised": [type(exc).__name__, codec.one_line(exc)]}
    except Exception as exc:  # noqa: BLE001 - the focal (or mutant) raising is an answer
        return {"raised": [type(exc).__name__, codec.one_line(exc)]}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def supervise() -> None:
    worker = _fork_worker()
    codec._set_dumpable(0)
    with os.fdopen(3, "rb") as control:
        job = json.loads(control.read())
    nonce = job.pop("nonce")
    out = os.fdopen(4, "w", buffering=1)
    deadline = time.monotonic() + float(job["timeout"])
    module, cov = _load_focal(job)
    module.__peftlab_functions__ = tuple(job["functions"])
    try:
        outcomes, status = _serve(job, module, worker, deadline)
    finally:
        try:
            os.killpg(worker[0], signal.SIGKILL)
        except OSError:
            pass
        os.waitpid(worker[0], 0)
    report = None
    if cov is not None:
        cov.stop()
        with open(job["file"], "w", encoding="utf-8") as fh:  # the worker is gone: coverage may read it now
            fh.write(job["focal"])
        cov.json_report(outfile="coverage.json")
        with open("coverage.json", encoding="utf-8") as fh:
            files = json.load(fh)["files"]
        report = next(iter(files.values()), None)
    out.write(json.dumps({"nonce": nonce, "type": "result", "outcomes": outcomes, "status": status,
                          "coverage": report}) + "\n")
    out.write(json.dumps({"nonce": nonce, "type": "done"}) + "\n")
    out.close()


if __name__ == "__main__":
    supervise()
