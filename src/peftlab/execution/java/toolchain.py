"""The Java toolchain on this machine: a JDK, JUnit 4, Hamcrest and JaCoCo, and the trusted runner built once.

::

    toolchain() -> Toolchain          # found, checked and built once per process; UserError in one line if not
    Toolchain.command(memory_mb) -> the argv that starts the runner in a sandbox

Where Java is missing, the Java tasks fail in one line naming the Debian packages to install; nothing else
in peftlab needs Java. The runner (``PeftlabJavaRunner.java``) is compiled outside the sandbox, from our own
source, into ``<cache>/java/<key>/`` (readable by the sandbox user, exposed read-only to every sandbox),
with a class-data-sharing archive of the classes a run loads (javac's, JUnit's, JaCoCo's): a JVM start, an
in-memory compile and the tests then take ~0.48 s of CPU instead of ~0.71 s, 1.3-1.5x the runs per second
(bench/java_exec.py).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from peftlab.cache import cache_dir
from peftlab.errors import UserError

JAR_DIRS = ("/usr/share/java",)
# jar file -> the Debian package that ships it
JARS = {"junit4.jar": "junit4", "hamcrest-core.jar": "libhamcrest-java", "org.jacoco.core.jar": "libjacoco-java",
        "asm.jar": "libasm-java", "asm-commons.jar": "libasm-java", "asm-tree.jar": "libasm-java"}
JDK_PACKAGE = "openjdk-17-jdk-headless"
MIN_JAVA, MAX_JAVA = 17, 23  # the runner confines untrusted code with a SecurityManager, gone in JDK 24
RUNNER_SOURCES = tuple(sorted(Path(__file__).parent.glob("*.java")))  # the runner and its parts
RUNNER_CLASS = "PeftlabJavaRunner"
# Short runs: C1 only, the serial collector, no perf-data file in /tmp, no attach listener. The memory
# reservations and direct buffers are bounded so that an address-space limit (RLIMIT_AS) of heap + 768 MB holds
# (harness.py; docs/sandbox.md, "Java").
JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-XX:+DisableAttachMechanism",
             "-XX:ReservedCodeCacheSize=48m", "-XX:CompressedClassSpaceSize=64m", "-XX:MaxMetaspaceSize=160m",
             "-XX:MaxDirectMemorySize=64m", "-Xss1m", "-XX:CICompilerCount=1", "-Djava.security.manager=allow",
             "-Dfile.encoding=UTF-8",
             "--add-opens=java.base/java.io=ALL-UNNAMED")  # the runner wraps fds 3 and 4 (see its source)
# glibc gives each thread that mallocs an arena of its own, 64 MB of address space each, up to 8 per core:
# how much address space a JVM takes then depends on the core count and on scheduling, and an RLIMIT_AS that
# holds on one run fails the next (at heap + 768 MB every run failed on 2 cores, at heap + 512 MB none did).
# Two arenas make it ~heap + 460 MB whatever the machine (docs/sandbox.md, "Java").
MALLOC_ENV = ("/usr/bin/env", "MALLOC_ARENA_MAX=2") if os.path.exists("/usr/bin/env") else ()


@dataclass(frozen=True)
class Toolchain:
    java: str
    javac: str
    version: int
    jars: tuple[str, ...]
    home: Path
    """The runner's classes and class-data archive (read-only inside the sandbox)."""

    @property
    def classpath(self) -> str:
        return os.pathsep.join([str(self.home / "runner.jar"), *self.jars])

    def command(self, heap_mb: int, *, class_sharing: bool = True) -> list[str]:
        """``class_sharing=False`` leaves the archive out (bench/java_exec.py measures what it saves)."""
        archive = self.home / "runner.jsa"
        share = [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"] if class_sharing and archive.exists() else []
        return [*MALLOC_ENV, self.java, f"-Xmx{heap_mb}m", f"-Xms{min(heap_mb, 32)}m", *JVM_FLAGS, *share,
                "-cp", self.classpath, RUNNER_CLASS]


def _missing(packages: list[str]) -> UserError:
    return UserError("the Java tasks need a JDK and JUnit/JaCoCo; install the Debian packages "
                     f"{' '.join(dict.fromkeys(packages))} (apt-get install ...), or see README, 'Java tasks'")


def _java_version(java: str) -> int:
    text = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not found:
        raise UserError(f"cannot read the Java version from '{java} -version'")
    major = int(found.group(1))
    return int(found.group(2)) if major == 1 else major


def _find_jars() -> tuple[str, ...]:
    dirs = [d for d in os.environ.get("PEFTLAB_JAVA_LIBS", "").split(os.pathsep) if d] + list(JAR_DIRS)
    found, missing = [], []
    for jar, package in JARS.items():
        path = next((os.path.join(d, jar) for d in dirs if os.path.isfile(os.path.join(d, jar))), None)
        (found.append(os.path.realpath(path)) if path else missing.append(package))
    if missing:
        raise _missing(missing)
    return tuple(found)


def _build(java: str, javac: str, jars: tuple[str, ...], home: Path) -> None:
    """Compile the runner and dump its class-data archive into a fresh directory, then move it to ``home``."""
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="build-", dir=home.parent))
    try:
        classes = staging / "classes"
        done = subprocess.run([javac, "-nowarn", "-Xlint:none", "-d", str(classes), "-cp", os.pathsep.join(jars),
                               *map(str, RUNNER_SOURCES)], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise UserError(f"cannot compile the Java runner: {(done.stderr.strip().splitlines() or ['?'])[0]}")
        _jar(classes, staging / "runner.jar")  # class-data sharing accepts jars only on the class path
        shutil.rmtree(classes)
        for root, dirs, files in os.walk(staging):  # the sandbox user reads it; nobody writes it
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        os.chmod(home.parent, 0o755)
        try:
            staging.rename(home)
        except OSError:  # another process built it first
            return
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _dump_archive(java, jars, home)  # in place: the archive records the class path it was made with


def _jar(classes: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(classes.rglob("*.class")):
            archive.write(path, path.relative_to(classes).as_posix())


def _dump_archive(java: str, jars: tuple[str, ...], home: Path) -> None:
    """A static class-data-sharing archive of the classes a typical run loads (best effort: runs without it
    are only slower)."""
    from peftlab.execution.java.job import JavaJob, encode_job  # a sample job exercises the runner

    sample = JavaJob(program={"Focal.java": "public class Focal { public int twice(int x) { return 2 * x; } }"},
                     tests={"FocalTest.java": "import org.junit.Test; import static org.junit.Assert.*;\n"
                                              "public class FocalTest { @Test public void t() { "
                                              "assertEquals(4, new Focal().twice(2)); } }"},
                     run=("FocalTest",), coverage=("Focal", "twice"), release=11)
    work = Path(tempfile.mkdtemp(prefix="cds-", dir=home.parent))
    try:
        listing, archive = work / "classes.lst", work / "runner.jsa"
        (work / "sample.job").write_bytes(encode_job(sample, "0" * 32))
        base = [java, "-Xmx256m", *JVM_FLAGS, "-cp", os.pathsep.join([str(home / "runner.jar"), *jars])]
        # fd 3: the job, fd 4: the records, as the sandbox's launcher arranges them
        shell = ["/bin/sh", "-c", 'exec "$@" 3<"$0.job" 4>"$0.out"', str(work / "sample")]
        subprocess.run([*shell, *base, f"-XX:DumpLoadedClassList={listing}", RUNNER_CLASS], capture_output=True,
                       timeout=300)
        if listing.exists():
            subprocess.run([*base, "-Xshare:dump", f"-XX:SharedClassListFile={listing}",
                            f"-XX:SharedArchiveFile={archive}"], capture_output=True, timeout=600)
        if archive.exists():
            os.chmod(archive, 0o644)
            archive.rename(home / "runner.jsa")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@functools.cache
def toolchain() -> Toolchain:
    """The checked Java toolchain with the runner built (once per machine, in the cache).

    Raises:
        UserError: one line: no JDK (or a JRE without javac), a JDK outside 17-23, or a missing jar, naming the
            Debian packages that provide them.
    """
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    javac = os.path.join(home, "bin", "javac") if home else shutil.which("javac")
    if not java or not javac or not os.path.isfile(javac):
        raise _missing([JDK_PACKAGE, *JARS.values()])
    java, javac = os.path.realpath(java), os.path.realpath(javac)
    version = _java_version(java)
    if not MIN_JAVA <= version <= MAX_JAVA:
        raise UserError(f"the Java tasks need a JDK {MIN_JAVA} to {MAX_JAVA} (found {version} at {java}): the runner "
                        "confines untrusted code with the SecurityManager, which JDK 24 removed; set JAVA_HOME")
    jars = _find_jars()
    key = hashlib.sha256("\0".join([*(source.read_text() for source in RUNNER_SOURCES), java, str(version), *jars, *JVM_FLAGS]).encode()
                         ).hexdigest()[:16]  # the flags: the archive is dumped with them
    built = cache_dir() / "java" / key
    if not (built / "runner.jar").exists():
        _build(java, javac, jars, built)
    return Toolchain(java, javac, version, jars, built)
