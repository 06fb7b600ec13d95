"""The parent's side of a run's pipes: feed fd 3, collect stdout, stderr and fd 4, each capped.

    pump(poll, pipes, control_input, output_cap, deadline) -> (stdout, stderr, control_output, truncated, timed_out)

Event-driven: it sleeps in ``select`` until a pipe is ready; it returns when every pipe is closed (the usual
end: the run's processes are gone), at the deadline, or a grace period after ``poll()`` first reports an exit
status while something else still holds a pipe.
"""

from __future__ import annotations

import os
import selectors
import time

CONTROL_OUTPUT_CAP = 8 << 20
EXIT_GRACE_SECONDS = 1.0


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


def pump(poll, pipes, control_input: bytes, output_cap: int, deadline: float):
    """Feed fd 3, collect stdout/stderr/fd 4 (capped) until all close, the process ends, or the deadline.
    ``pipes``: the parent's ends of stdout, stderr, fd 3 (write) and fd 4; ``poll()``: exit status or None."""
    stdout, stderr, in_w, out_r = pipes
    sel = selectors.DefaultSelector()
    sinks = {stdout: _Capped(output_cap), stderr: _Capped(output_cap),
             out_r: _Capped(CONTROL_OUTPUT_CAP)}
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
        if exited_at is None and poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > EXIT_GRACE_SECONDS:
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
    out, err, ctl = sinks[stdout], sinks[stderr], sinks[out_r]
    return out.value(), err.value(), ctl.value(), bool(out.dropped or err.dropped), timed_out
