"""The Java runner (PeftlabJavaRunner under its SecurityManager, in the sandbox) against hostile programs and
hostile generated tests. Every hostile program would earn "passed" if its attack worked (it answers right only
then); each case checks that the verdict is not "passed", and every run that it ended within its wall limit,
that no process of it survives and that it left nothing in the host's temporary directory. Most cases run on
the default backend, a few on every backend. Skipped where Java is missing."""

from __future__ import annotations

import glob
import json
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from peftlab.errors import UserError
from peftlab.execution import pool, sandbox
from peftlab.execution.java import JavaJob, harness, run_java
from peftlab.execution.java.toolchain import Toolchain, toolchain

if not sys.platform.startswith("linux"):
    pytest.skip("inspects /proc; Linux only", allow_module_level=True)
try:
    TOOLS = toolchain()
except UserError as exc:
    pytest.skip(f"no Java toolchain here: {exc}", allow_module_level=True)

BACKENDS = sorted(b.name for b in sandbox.available_backends())
REPO = Path(__file__).resolve().parents[1]
FIXED_SOURCE = REPO / "src/peftlab/tasks/java_repair/quixbugs-java/correct_java_programs/GCD.java"


def junit(*lines: str) -> dict:
    """A JUnit class ``FocalTest`` with ``lines`` in its body."""
    return {"FocalTest.java": "import org.junit.Test;\nimport static org.junit.Assert.assertEquals;\n"
                              "public class FocalTest {\n" + "".join(f"    {line}\n" for line in lines) + "}\n"}


TESTS = junit("@Test public void two() { assertEquals(4, new Focal().twice(2)); }",
              "@Test public void three() { assertEquals(6, new Focal().twice(3)); }",
              "@Test public void zero() { assertEquals(0, new Focal().twice(0)); }")


def program(body: str, members: str = "") -> dict:
    """``Focal.twice`` with ``body``; ``members`` go into the class (fields, static blocks, helpers)."""
    return {"Focal.java": "import java.io.*;\nimport java.net.*;\nimport java.nio.file.*;\nimport java.util.*;\n"
                          f"public class Focal {{\n{members}\n    public int twice(int x) {{\n{body}\n    }}\n}}\n"}


GOOD = program("return 2 * x;")


def attack(code: str) -> dict:
    """A program that answers right only if ``code`` ran without throwing (else it prints why)."""
    return program(f"try {{\n{code}\n}} catch (Throwable e) {{\nSystem.out.println(e);\nreturn -1;\n}}\nreturn 2 * x;")


def job(prog: dict, tests: dict = TESTS, **fields) -> JavaJob:
    return JavaJob(program=prog, tests=tests, run=tuple(p.removesuffix(".java") for p in tests),
                   **{"timeout": 3.0, **fields})


def survivors(marker: str) -> list[int]:
    """Live pids whose command line carries ``marker`` (zombies are dead)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            alive = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
            found += [int(entry)] if alive and marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes() else []
        except (OSError, IndexError):
            continue
    return found


def jvm_crumbs() -> set[str]:  # what a JVM could leave in the host's temporary directory
    return {p for pattern in ("hs_err*", "*.hprof", "hsperfdata_nobody/*") for p in glob.glob(f"/tmp/{pattern}")}


@pytest.fixture
def contained(monkeypatch):
    """``contained(job, backend=None, may_pass=False) -> JavaVerdict``, checking what must hold after any attack.
    Each JVM carries a marker (a system property); every host temporary directory is recorded (``.made``)."""
    marker, command = "plj" + secrets.token_hex(6), Toolchain.command
    monkeypatch.setattr(Toolchain, "command", lambda self, heap_mb, **kw: [  # the marker before the main class
        *command(self, heap_mb, **kw)[:-1], f"-Dpeftlab.test.marker={marker}", command(self, heap_mb, **kw)[-1]])
    made, mkdtemp, crumbs = [], tempfile.mkdtemp, jvm_crumbs()
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: made.append(mkdtemp(*a, **k)) or made[-1])

    def run(java_job: JavaJob, backend: str | None = None, may_pass: bool = False):
        start = time.monotonic()
        verdict = run_java(java_job, backend=backend)
        elapsed = time.monotonic() - start
        assert elapsed < java_job.timeout + harness.STARTUP_ALLOWANCE + 5.0, f"the run took {elapsed:.1f}s"
        assert may_pass or verdict.status != "passed", verdict
        assert survivors(marker) == [], "a process of the run outlived it"
        assert [p for p in made if "peftlab-pool-" not in os.path.basename(p) and os.path.exists(p)] == []
        assert all(os.listdir(p.root) == [] for p in pool.POOLS.values() if p.root and os.path.isdir(p.root))
        assert jvm_crumbs() <= crumbs, f"the JVM left {sorted(jvm_crumbs() - crumbs)}"
        return verdict

    run.made = made
    return run


# ------------------------------------------------------------------------------------------ every backend
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_passes_a_right_program_times_out_a_loop_and_keeps_files(contained, backend, tmp_path):
    verdict = contained(job(GOOD), backend=backend, may_pass=True)
    assert (verdict.status, verdict.tests_passed, verdict.tests_total, verdict.compiled) == ("passed", 3, 3, True)
    assert sorted(c["name"] for c in verdict.cases) == ["three(FocalTest)", "two(FocalTest)", "zero(FocalTest)"]
    assert verdict.backend == backend
    assert contained(job(program("while (true) { }"), timeout=1.5), backend=backend).status == "timeout"
    targets = [Path(tempfile.gettempdir()) / f"peftlab-java-canary-{secrets.token_hex(4)}",
               REPO / f"pwned-{secrets.token_hex(4)}.txt", tmp_path / "pwned.txt", TOOLS.home / "pwned.txt"]
    writes = "\n".join(f'new FileOutputStream("{t}").close();' for t in targets)
    verdict = contained(job(attack(writes + '\nnew FileOutputStream("here.txt").close();')), backend=backend)
    assert (verdict.status, verdict.tests_passed) == ("failed", 0) and "FilePermission" in verdict.output, verdict
    assert [t for t in targets if t.exists()] == []


# ------------------------------------------------------------------------------------------ ordinary runs
def test_a_wrong_program_fails_and_every_test_is_counted(contained):
    verdict = contained(job(program("return x == 3 ? 7 : 2 * x;")))
    assert (verdict.status, verdict.tests_passed, verdict.tests_total) == ("failed", 2, 3)
    assert "three(FocalTest)" in verdict.reason and "expected:<6> but was:<7>" in verdict.reason


def test_compile_errors_say_whose(contained):
    broken = contained(job(program("return 2 * x")))  # no semicolon
    assert (broken.status, broken.compiled, broken.compile_where) == ("failed", False, "program")
    assert broken.reason.startswith("does not compile: Focal.java:")
    wrong = contained(job(GOOD, {"FocalTest.java": TESTS["FocalTest.java"].replace("twice(0)", "thrice(0)")}))
    assert (wrong.status, wrong.compiled, wrong.compile_where) == ("failed", False, "tests")
    assert "(in the tests)" in wrong.reason


MAIN = {"Main.java": "public class Main {\n    public static void main(String[] args) {\n"
                     "        if (new Focal().twice(21) != 42) throw new AssertionError(\"twice(21)\");\n    }\n}\n"}


def test_mode_main_passes_when_main_returns_and_fails_when_it_throws(contained):
    passed = contained(job(GOOD, MAIN, mode="main"), may_pass=True)
    assert (passed.status, passed.tests_passed, passed.tests_total) == ("passed", 1, 1)
    failed = contained(job(program("return 41;"), MAIN, mode="main"))
    assert failed.status == "failed" and "AssertionError: twice(21)" in failed.reason
    exiting = contained(job(program("System.exit(0);\nreturn 2 * x;"), MAIN, mode="main"))
    assert exiting.status == "failed" and "exitVM" in exiting.reason


# ------------------------------------------------------------------------------------------ time, processes, memory
@pytest.mark.parametrize("prog", [
    program("while (true) { try { Thread.sleep(100000); } catch (InterruptedException e) { } }"),
    program("return 2 * x;", "static { boolean spin = true; while (spin) { } }"),
], ids=["sleep-ignoring-interrupts", "static-initialiser"])
def test_an_endless_program_times_out_within_its_limit(contained, prog):
    verdict = contained(job(prog, timeout=1.5))
    assert verdict.status == "timeout", verdict


@pytest.mark.parametrize("code", [
    'new ProcessBuilder("/bin/sh", "-c", "touch CANARY").start().waitFor();',
    'Runtime.getRuntime().exec(new String[]{"/bin/sh", "-c", "touch CANARY"}).waitFor();',
    'ProcessHandle.current().parent().ifPresent(ProcessHandle::destroyForcibly);',
], ids=["ProcessBuilder", "Runtime.exec", "ProcessHandle"])
def test_no_process_can_be_started_or_signalled(contained, code, tmp_path):
    canary = tmp_path / "spawned"
    verdict = contained(job(attack(code.replace("CANARY", str(canary)))))
    assert (verdict.status, verdict.tests_passed) == ("failed", 0) and not canary.exists()
    assert "access denied" in verdict.output, verdict


def test_threads_that_never_end_are_contained(contained):
    bomb = ("List<Thread> kept = new ArrayList<>();\nwhile (true) {\n    Thread t = new Thread(() -> {\n"
            "        while (true) { try { Thread.sleep(100000); } catch (InterruptedException e) { } }\n    });\n"
            "    t.start();\n    kept.add(t);\n}")
    verdict = contained(job(program(bomb)))
    assert verdict.status == "failed" and "unable to create native thread" in verdict.reason, verdict  # bomb
    # a right answer from a program whose thread (not a daemon) runs on: the run ends, attested, in time
    spinning = "static { Thread t = new Thread(() -> { while (true) { } });\nt.setDaemon(false);\nt.start(); }"
    verdict = contained(job(program("return 2 * x;", spinning)), may_pass=True)
    assert verdict.status == "passed" and verdict.wall_seconds < 3.0 + harness.STARTUP_ALLOWANCE


@pytest.mark.parametrize("code", [
    "long[] all = new long[Integer.MAX_VALUE - 8];\nreturn all.length;",
    "List<long[]> hog = new ArrayList<>();\nwhile (true) hog.add(new long[1 << 20]);",
    "List<Object> hog = new ArrayList<>();\nwhile (true) hog.add(java.nio.ByteBuffer.allocateDirect(1 << 20));",
    "StringBuilder hog = new StringBuilder(\"x\");\nwhile (true) hog.append(hog);",
], ids=["huge-array", "heap", "direct-buffers", "doubling-string"])
def test_memory_exhaustion_is_an_out_of_memory_error(contained, code):
    """Within the JVM's own limits, under an address-space limit that still holds a JVM (docs/sandbox.md)."""
    assert harness.ADDRESS_SPACE_BYTES <= (harness.HEAP_MB << 20) + (1 << 30)
    verdict = contained(job(program(code)))
    assert verdict.status == "failed" and "OutOfMemoryError" in verdict.reason, verdict


# ------------------------------------------------------------------------------------------ files and network
SECRET = str(secrets.randbelow(10**8) + 10**8)
READS = ['Files.readString(Paths.get("FocalTest.java"))', 'String.join(",", new File(".").list())',
         'new String(Focal.class.getResourceAsStream("/FocalTest.java").readAllBytes())',
         'new String(Focal.class.getResourceAsStream("/FocalTest.class").readAllBytes())',
         'new String(ClassLoader.getSystemResourceAsStream("FocalTest.java").readAllBytes())',
         'Thread.currentThread().getContextClassLoader().getResource("FocalTest.java")',
         'Files.readString(Paths.get("/etc/passwd"))', '"size=" + Files.size(Paths.get("FIXED"))']
LEAK = ("String seen = \"\";\n"
        + "".join(f"try {{ seen += {read} + \"\\n\"; }} catch (Throwable e) {{ }}\n" for read in READS)
        + "if (x == 3) return seen.contains(\"root:\") ? 7 : -1;\n"  # x == 1: the test's secret, 2: a fix's size
        "java.util.regex.Matcher m = java.util.regex.Pattern.compile(x == 1 ? \"SECRET=(\\\\d+)\" : \"size=(\\\\d+)\")"
        ".matcher(seen);\nreturn m.find() ? Integer.parseInt(m.group(1)) : -1;")


def test_no_file_can_be_read_not_the_tests_nor_a_fix_nor_etc_passwd(contained):
    tests = junit(f"// SECRET={SECRET}",
                  f"@Test public void secret() {{ assertEquals({SECRET}, new Focal().twice(1)); }}",
                  f"@Test public void fix() {{ assertEquals({FIXED_SOURCE.stat().st_size}, new Focal().twice(2)); }}",
                  "@Test public void passwd() { assertEquals(7, new Focal().twice(3)); }")
    verdict = contained(job(program(LEAK.replace("FIXED", str(FIXED_SOURCE))), tests))
    assert (verdict.status, verdict.tests_passed) == ("failed", 0), verdict


def test_sources_never_touch_the_disk(contained):
    """While the tests run, the host finds no file in the run's work directory (javac compiled in memory)."""
    seen, live = [], threading.Event()

    def watch():  # every 50 ms until the run is over
        while not live.wait(0.05):
            seen.extend(str(Path(r, f)) for p in list(contained.made) if "peftlab-sbx-" in p for r, _, fs in os.walk(p)
                        for f in fs)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        sleepy = program("try { Thread.sleep(700); } catch (InterruptedException e) { }\nreturn 2 * x;")
        verdict = contained(job(sleepy), may_pass=True)
    finally:
        live.set()
        watcher.join()
    assert verdict.status == "passed" and any("peftlab-sbx-" in p for p in contained.made)
    assert seen == []


def test_no_socket_can_connect(contained):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        server.listen()
        server.setblocking(False)
        code = f'try (Socket s = new Socket("127.0.0.1", {port})) {{ s.getOutputStream().write(9); }}'
        verdict = contained(job(attack(code)))
        assert (verdict.status, verdict.tests_passed) == ("failed", 0) and "SocketPermission" in verdict.output
        with pytest.raises(BlockingIOError):
            server.accept()


# ------------------------------------------------------------------------------------------ the verdict
KILLS = ["System.exit(0);", "Runtime.getRuntime().halt(0);", 'sun.misc.Signal.raise(new sun.misc.Signal("TERM"));',
         "ProcessHandle.current().destroyForcibly();", "Runtime.getRuntime().addShutdownHook(new Thread());"]


@pytest.mark.parametrize("kill", KILLS, ids=["exit", "halt", "signal", "destroy", "shutdown-hook"])
def test_killing_the_runner_is_not_a_pass(contained, kill):
    """From the program under test (before it answers right) and from a static initialiser."""
    assert contained(job(program(f"{kill}\nreturn 2 * x;"))).status == "failed"
    verdict = contained(job(program("return 2 * x;", f"static {{ {kill} }}")))
    assert verdict.status == "failed" and "ExceptionInInitializerError" in verdict.reason, verdict


@pytest.mark.parametrize("where", ["test", "static", "before-class"])
def test_a_generated_test_that_exits_is_not_a_pass(contained, where):
    """Test generation: the program is trusted, the test is not; it exits before its failing assertion."""
    member, first = {"test": ("", "System.exit(0);"), "static": ("static { System.exit(0); }", ""),
                     "before-class": ("@org.junit.BeforeClass public static void up() { System.exit(0); }", "")}[where]
    tests = junit(member, f"@Test public void t() {{ {first} assertEquals(5, new Focal().twice(2)); }}")
    assert contained(job(GOOD, tests, program_untrusted=False)).status == "failed"


def test_printed_and_written_records_are_not_a_pass(contained):
    records = [{"nonce": nonce, "type": "case", "index": i, "status": "passed"} for nonce in ("0" * 32, "guess")
               for i in range(3)] + [{"nonce": "0" * 32, "type": "done", "total": 3}]
    fake = "".join(json.dumps(r, separators=(",", ":")) + "\\n" for r in records).replace('"', '\\"')
    forge = (f'String fake = "{fake}";\nSystem.out.print(fake);\nSystem.out.flush();\n'
             'for (String path : new String[]{"/proc/self/fd/4", "/dev/fd/4", "/proc/1/fd/4"})\n'
             '    try (Writer w = new FileWriter(path)) { w.write(fake); } catch (Throwable e) { }\nreturn 0;')
    verdict = contained(job(program(forge)))
    assert (verdict.status, verdict.tests_passed) == ("failed", 1), verdict  # twice(0) == 0 is right
    assert '"type":"done"' in verdict.output  # it printed them; they counted for nothing


def test_threads_outside_its_group_are_out_of_reach(contained):
    """The runner's threads are outside the program's thread group: it can neither list nor stop them."""
    code = ("boolean won = false;\nThreadGroup mine = Thread.currentThread().getThreadGroup();\n"
            "try { Thread.getAllStackTraces().keySet().forEach(Thread::stop); won = true; } catch (Throwable e) { }\n"
            "try { mine.getParent().stop(); won = true; } catch (Throwable e) { }\n"
            "try { mine.getParent().interrupt(); won = true; } catch (Throwable e) { }\n"
            "Thread[] all = new Thread[64];\nint n = mine.enumerate(all);\nfor (int i = 0; i < n; i++) {\n"
            "    won |= !all[i].getName().equals(\"peftlab-test\");  // the runner's threads are not there\n"
            "    try { if (all[i] != Thread.currentThread()) { all[i].stop(); won = true; } } catch (Throwable e) { }\n"
            "}\nreturn won ? 2 * x : -1;")
    verdict = contained(job(program(code)))
    assert (verdict.status, verdict.tests_passed) == ("failed", 0), verdict


@pytest.mark.parametrize("target", ['getDeclaredField("nonce")', 'getDeclaredField("records")',
                                    'getDeclaredMethod("record", String.class, Object[].class)'])
def test_a_generated_test_cannot_reach_into_the_runner(contained, target):
    """setAccessible on the runner's private members (its record stream, its nonce) is denied."""
    tests = junit("@Test public void t() throws Exception {",
                  f'    java.lang.reflect.AccessibleObject m = Class.forName("PeftlabJavaRunner").{target};',
                  "    m.setAccessible(true);", "    assertEquals(5, new Focal().twice(2));", "}")
    verdict = contained(job(GOOD, tests, program_untrusted=False))
    assert verdict.status == "failed" and "AccessControlException" in verdict.reason, verdict


def test_a_generated_test_that_swallows_its_assertions_passes_and_claims_nothing_more(contained):
    """It passes on anything, a wrong program included (so it kills no mutant), and covers only what ran."""
    tests = junit("@Test public void t() {",
                  "    try { assertEquals(5, new Focal().twice(2)); } catch (AssertionError e) { }", "}")
    for prog in (program("return 2 * x;", "public int thrice(int x) { return 3 * x; }"),
                 program("return 0;", "public int thrice(int x) {\n    return 3 * x;\n}")):
        verdict = contained(job(prog, tests, program_untrusted=False, coverage=("Focal", "thrice"), release=11),
                            may_pass=True)
        assert verdict.status == "passed", verdict
        assert verdict.coverage["method_found"] and verdict.coverage["line_covered"] == 0


@pytest.mark.parametrize("code", [
    'throw new org.junit.AssumptionViolatedException("skip me");',
    "org.junit.Assume.assumeTrue(false);\nreturn 2 * x;",
    "Focal.<RuntimeException>sneak(new org.junit.runners.model.MultipleFailureException(List.of(new Error())) {\n"
    "    public List<Throwable> getFailures() { return List.of(); }\n});\nreturn 0;",
], ids=["assumption", "assume", "empty-multiple-failure"])
def test_a_test_that_reports_no_failure_without_completing_is_not_a_pass(contained, code):
    """JUnit reports no failure for these; the runner passes a test only when it returned."""
    sneak = ("@SuppressWarnings(\"unchecked\")\n"
             "static <T extends Throwable> void sneak(Throwable t) throws T { throw (T) t; }")
    verdict = contained(job(program(code, sneak)))
    assert verdict.status == "failed" and verdict.tests_passed == 0, verdict


# ------------------------------------------------------------------------------------------ always-equal results
SET_TEST = ("import java.util.*;\npublic class Main {{\n    public static void main(String[] args) {{\n"  # HumanEval-X
            "        Set<Integer> want = new HashSet<>(Arrays.asList(9, 8, 7)), got = new Focal().digits(3);\n"
            "        if (!({})) throw new AssertionError();\n    }}\n}}\n")
GOT_EQUALS, WANT_EQUALS = ({"Main.java": SET_TEST.format(c)} for c in ("got.equals(want)", "want.equals(got)"))


def digits(body: str, members: str = "") -> dict:
    return {"Focal.java": "import java.util.*;\npublic class Focal {\n" + members +
                          f"\n    public Set<Integer> digits(int n) {{\n{body}\n    }}\n}}\n"}


FAKE_SET = ("    public int size() { return 3; }\n    public boolean containsAll(Collection<?> c) { return true; }\n"
            "    public Iterator<Integer> iterator() { return Collections.emptyIterator(); }\n")
CHEATS = {  # why it is refused -> (program, test it would pass unrefused, or None)
    "declares equals(Object)": (digits("return new HashSet<>() { public boolean equals(Object o) { return true; } };"),
                                GOT_EQUALS),
    "is a Collection (java.util.HashSet)": (digits(f"return new HashSet<Integer>() {{\n{FAKE_SET}}};"), GOT_EQUALS),
    "is a Collection (java.util.AbstractCollection)": (digits(
        "return new Fake();", f"static class Fake extends AbstractCollection<Integer> implements Set<Integer> {{\n"
                              f"{FAKE_SET}}}"), WANT_EQUALS),
    "uses java.lang.reflect": (digits(
        "return (Set<Integer>) java.lang.reflect.Proxy.newProxyInstance(Focal.class.getClassLoader(),\n"
        "    new Class<?>[]{Set.class}, (p, m, a) -> m.getName().equals(\"size\") ? (Object) 3\n"
        "        : m.getName().equals(\"iterator\") ? Collections.emptyIterator() : Boolean.TRUE);"), WANT_EQUALS),
    "uses java.lang.invoke": (digits("return java.lang.invoke.MethodHandles.lookup() == null ? null : null;"), None),
    "uses java.io.ObjectInputStream": (digits(
        "try { return (Set<Integer>) new java.io.ObjectInputStream(null).readObject(); }\n"
        "catch (Exception e) { throw new RuntimeException(e); }"), None),
    "inherits java.util.Date.equals(Object)": (digits("return null;", "class D extends java.util.Date { }"), None),
}


@pytest.mark.parametrize("why", sorted(CHEATS))
def test_a_program_that_could_fake_equality_is_refused(contained, why):
    prog, fooled = CHEATS[why]
    verdict = contained(job(prog, fooled or GOT_EQUALS, mode="main"))
    assert verdict.status == "failed" and f"{why}, which could make" in verdict.reason, verdict
    if fooled:  # the check matters: unrefused, the fake passes
        unrefused = contained(job(prog, fooled, mode="main", program_untrusted=False), may_pass=True)
        assert unrefused.status == "passed", unrefused


def test_ordinary_java_is_not_refused(contained):
    """Lambdas, method references, streams, string concatenation, an anonymous Comparator, an enum pass."""
    body = ("List<Integer> all = new ArrayList<>(List.of(7, 9, 8));\n"
            "all.sort(new Comparator<Integer>() { public int compare(Integer a, Integer b) { return b - a; } });\n"
            "String text = \"n=\" + n + Kind.ONE;\n"
            "return all.stream().filter(d -> text.length() > 0).map(Integer::intValue)"
            ".collect(java.util.stream.Collectors.toCollection(TreeSet::new));")
    for test in (GOT_EQUALS, WANT_EQUALS):
        verdict = contained(job(digits(body, "enum Kind { ONE }"), test, mode="main"), may_pass=True)
        assert verdict.status == "passed", verdict


def test_assert_statements_check_in_tests_and_program():
    """Assertions are on (``java -ea``, as Maven and Gradle run tests): a test's ``assert`` fails it."""
    asserting = junit("@Test public void checks() { assert new Focal().twice(2) == 5 : \"twice(2) is not 5\"; }")
    verdict = run_java(job(GOOD, asserting))
    assert verdict.status == "failed" and "twice(2) is not 5" in verdict.reason, verdict
    inside = run_java(job(program("assert x > 100 : \"small x\";\nreturn 2 * x;"), TESTS))
    assert inside.status == "failed" and "small x" in inside.reason, inside
