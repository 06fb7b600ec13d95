"""The Java toolchain: found and built once, or one line naming what to install (never a traceback)."""

from __future__ import annotations

import pytest

from peftlab.errors import UserError
from peftlab.execution.java import toolchain as java_toolchain


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty cache and no memory of an earlier lookup."""
    monkeypatch.setenv("PEFTLAB_CACHE", str(tmp_path / "cache"))
    java_toolchain.toolchain.cache_clear()
    yield
    java_toolchain.toolchain.cache_clear()


def test_no_jdk_is_one_line_naming_the_packages(fresh, monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(UserError) as raised:
        java_toolchain.toolchain()
    message = str(raised.value)
    assert "\n" not in message
    for package in ("openjdk-17-jdk-headless", "junit4", "libhamcrest-java", "libjacoco-java"):
        assert package in message


def test_a_missing_jar_names_its_package(fresh, monkeypatch, tmp_path):
    if java_toolchain.shutil.which("javac") is None:
        pytest.skip("no JDK on this machine")
    monkeypatch.setattr(java_toolchain, "JAR_DIRS", (str(tmp_path),))
    monkeypatch.setenv("PEFTLAB_JAVA_LIBS", "")
    with pytest.raises(UserError, match="junit4 libhamcrest-java libjacoco-java libasm-java"):
        java_toolchain.toolchain()


def test_a_jdk_without_the_security_manager_is_refused(fresh, monkeypatch):
    if java_toolchain.shutil.which("javac") is None:
        pytest.skip("no JDK on this machine")
    monkeypatch.setattr(java_toolchain, "_java_version", lambda java: 24)
    with pytest.raises(UserError, match=r"JDK 17 to 23 \(found 24"):
        java_toolchain.toolchain()


def test_built_once_readable_by_the_sandbox_user(fresh):
    try:
        tools = java_toolchain.toolchain()
    except UserError as exc:
        pytest.skip(str(exc))
    jar = tools.home / "runner.jar"
    assert jar.stat().st_mode & 0o777 == 0o644 and tools.home.stat().st_mode & 0o777 == 0o755
    assert (tools.home / "runner.jsa").exists()  # the class-data archive: 1.3-1.5x the runs per second (bench)
    mtime = jar.stat().st_mtime_ns
    java_toolchain.toolchain.cache_clear()
    assert java_toolchain.toolchain().home == tools.home and jar.stat().st_mtime_ns == mtime  # not rebuilt
    command = tools.command(256)
    assert "-Xmx256m" in command and f"-XX:SharedArchiveFile={tools.home / 'runner.jsa'}" in command
