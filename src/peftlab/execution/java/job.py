"""A Java job: what one sandbox run compiles and runs, and the line format the runner reads on fd 3.

::

    JavaJob(program, tests, run, mode="junit", timeout=5.0, ...)
    encode_job(job, nonce) -> bytes
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class JavaJob:
    program: dict[str, str]
    """The code under test, ``path -> source`` (``java_programs/GCD.java``); a candidate's, unless trusted."""
    tests: dict[str, str]
    """Test sources (JUnit 4 classes, or classes with a ``main``), compiled against the program."""
    run: tuple[str, ...]
    """Binary names of the classes to run (``java_testcases.junit.GCD_TEST``, ``Main``)."""
    mode: str = "junit"
    """``junit``: every ``@Test`` of each class is a case; ``main``: each class's ``main`` is one case that
    passes when it returns (HumanEval-X: it throws AssertionError on a wrong answer)."""
    timeout: float = 5.0
    """Seconds for all tests of the job together (a test's own ``@Test(timeout)`` still applies)."""
    support: dict[str, str] = field(default_factory=dict)
    """Program-side classes of the dataset (QuixBugs' ``Node``), loaded with the program, not the candidate's."""
    program_untrusted: bool = True
    """Refuse a program class that declares ``equals(Object)``: a test's comparison would call it."""
    coverage: tuple[str, str] | None = None
    """``(class, method)``: JaCoCo line and branch coverage of that method (``*``: the whole class)."""
    release: int = 17
    """``javac --release``. 17 also where coverage is measured: JaCoCo 0.8.6 with Debian's ASM 9.4 instruments
    Java 17 class files (tests/test_java_testgen.py compares its coverage with JaCoCo's own report), and at
    11 ten HumanEval-X solutions do not compile."""


def encode_job(job: JavaJob, nonce: str) -> bytes:
    """The job in the runner's line format (sources as length-prefixed UTF-8)."""
    head = [b"PEFTLAB-JAVA-JOB 1", f"nonce {nonce}".encode(), f"mode {job.mode}".encode(),
            f"timeout_ms {max(1, round(job.timeout * 1000))}".encode(), f"release {job.release}".encode(),
            f"program_untrusted {int(job.program_untrusted)}".encode()]
    if job.coverage:
        head.append(f"coverage {job.coverage[0]} {job.coverage[1]}".encode())
    head += [f"run {name}".encode() for name in job.run]
    parts = [b"\n".join(head) + b"\n"]
    for kind, sources in (("program", job.program), ("support", job.support), ("test", job.tests)):
        for path, text in sources.items():
            if " " in path or "\n" in path:
                raise ValueError(f"a Java source path has a space or newline: {path!r}")
            body = text.encode()
            parts.append(f"file {kind} {path} {len(body)}\n".encode() + body)
    return b"".join(parts) + b"end\n"
