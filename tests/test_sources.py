"""Mining source specs: stdlib, local directories, pinned sdists (fetched by an injected fake download)."""

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from peftlab.data import sources
from peftlab.data.documented_functions import MiningOptions, mine
from peftlab.data.sources import pip_download, read_license, resolve_source
from peftlab.errors import UserError

MODULE = '''
def shout(text, times=1):
    """Return the text in capitals, repeated the given number of times."""
    loud = text.upper()
    return " ".join([loud] * times)
'''
PKG_INFO = "Metadata-Version: 2.4\nName: fake-pkg\nVersion: 1.0\nLicense-Expression: MIT\n" \
           "Classifier: Programming Language :: Python\nClassifier: License :: OSI Approved :: MIT License\n"


def _add(tf: tarfile.TarFile, name: str, data: bytes = b"", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data))


def make_sdist(directory: Path, name="fake_pkg", version="1.0", pkg_info=PKG_INFO, extra=()) -> Path:
    """A tiny sdist: NAME-VERSION/{PKG-INFO, fake_pkg/__init__.py, fake_pkg/core.py} plus ``extra``
    (name, data, fields) members."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.tar.gz"
    top = f"{name}-{version}"
    with tarfile.open(path, "w:gz") as tf:
        _add(tf, f"{top}/PKG-INFO", pkg_info.encode())
        _add(tf, f"{top}/fake_pkg/__init__.py", b"")
        _add(tf, f"{top}/fake_pkg/core.py", MODULE.encode())
        for member, data, fields in extra:
            _add(tf, member, data, **fields)
    return path


class FakeDownload:
    """Copies prepared archives into pip's destination and counts the calls."""

    def __init__(self, *archives: Path):
        self.archives = archives
        self.calls: list[str] = []

    def __call__(self, requirement: str, dest: Path) -> None:
        self.calls.append(requirement)
        for archive in self.archives:
            (dest / archive.name).write_bytes(archive.read_bytes())


def _cache_entries(cache: Path) -> list[str]:
    root = cache / "sources"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_sdist_is_unpacked_cached_and_mined(tmp_path):
    archive = make_sdist(tmp_path / "dl")
    fake = FakeDownload(archive)
    cache = tmp_path / "cache"

    resolved = resolve_source("fake_pkg==1.0", cache_root=cache, download=fake)

    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert fake.calls == ["fake-pkg==1.0"]
    assert resolved.kind == "sdist" and resolved.spec == "fake-pkg==1.0"
    assert resolved.sha256 == sha and resolved.archive == archive.name
    assert resolved.archive_bytes == archive.stat().st_size
    assert resolved.root == cache / "sources" / f"fake-pkg-1.0-{sha[:12]}" / "fake_pkg-1.0"
    assert resolved.mine_source == resolved.root
    assert resolved.license == "MIT"
    assert resolved.license_classifiers == ("License :: OSI Approved :: MIT License",)
    assert _cache_entries(cache) == [f"fake-pkg-1.0-{sha[:12]}", "fake-pkg-1.0.json"]
    record = json.loads((cache / "sources" / "fake-pkg-1.0.json").read_text())
    assert record["sha256"] == sha and record["root"] == "fake_pkg-1.0"
    json.dumps(resolved.card())  # the data card can carry it

    splits, _ = mine(resolved.mine_source, MiningOptions(validation_fraction=0, test_fraction=0))
    assert [r["meta"]["name"] for r in splits["train"]] == ["shout"]
    assert splits["train"][0]["meta"]["file"] == "fake_pkg/core.py"


def test_second_resolve_does_not_download(tmp_path):
    fake = FakeDownload(make_sdist(tmp_path / "dl"))
    cache = tmp_path / "cache"
    first = resolve_source("fake-pkg==1.0", cache_root=cache, download=fake)
    again = resolve_source("Fake_Pkg == 1.0", cache_root=cache, download=fake)  # same project, PEP 503
    assert again == first
    assert fake.calls == ["fake-pkg==1.0"]


def test_damaged_cache_record_or_missing_tree_refetches(tmp_path):
    fake = FakeDownload(make_sdist(tmp_path / "dl"))
    cache = tmp_path / "cache"
    first = resolve_source("fake-pkg==1.0", cache_root=cache, download=fake)
    (cache / "sources" / "fake-pkg-1.0.json").write_text("{not json")
    assert resolve_source("fake-pkg==1.0", cache_root=cache, download=fake) == first
    assert len(fake.calls) == 2
    # the tree already unpacked under its sha is reused, not unpacked twice
    assert _cache_entries(cache) == [first.root.parent.name, "fake-pkg-1.0.json"]


def test_default_cache_is_under_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFTLAB_CACHE", str(tmp_path / "pc"))
    resolved = resolve_source("fake-pkg==1.0", download=FakeDownload(make_sdist(tmp_path / "dl")))
    assert resolved.root.is_relative_to(tmp_path / "pc" / "sources")


def test_zip_sdist(tmp_path):
    path = tmp_path / "dl" / "fake_pkg-2.0.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fake_pkg-2.0/PKG-INFO", "Metadata-Version: 1.2\nName: fake-pkg\nLicense: BSD\n")
        zf.writestr("fake_pkg-2.0/core.py", MODULE)
    resolved = resolve_source("fake-pkg==2.0", cache_root=tmp_path / "c", download=FakeDownload(path))
    assert (resolved.root / "core.py").read_text() == MODULE
    assert resolved.license == "BSD"


@pytest.mark.parametrize("spec", ["toolz", "toolz>=1.0", "toolz~=1.0", "toolz[extra]", "more_itertools"])
def test_unpinned_package_is_one_line_user_error(spec, tmp_path):
    fake = FakeDownload()
    with pytest.raises(UserError, match=r"NAME==VERSION") as raised:
        resolve_source(spec, cache_root=tmp_path, download=fake)
    assert "\n" not in str(raised.value)
    assert fake.calls == []


def test_missing_directory(tmp_path):
    with pytest.raises(UserError, match="source directory not found"):
        resolve_source(str(tmp_path / "nope"), cache_root=tmp_path)


def test_local_directory_and_stdlib(tmp_path):
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: x\nLicense: Apache 2.0\n")
    local = resolve_source(str(tmp_path))
    assert (local.kind, local.root, local.license, local.sha256) == ("directory", tmp_path, "Apache 2.0", None)
    std = resolve_source("stdlib")
    assert std.kind == "stdlib" and std.mine_source is None and std.root.is_dir() and std.license == "PSF-2.0"


def _assert_nothing_half_written(cache: Path) -> None:
    assert _cache_entries(cache) == []


def test_download_failure_leaves_nothing(tmp_path):
    def offline(requirement, dest):
        (dest / "partial.tar.gz").write_bytes(b"\x1f\x8b")
        raise UserError(f"could not download {requirement}: ERROR: No matching distribution found")

    with pytest.raises(UserError, match="could not download fake-pkg==9.9"):
        resolve_source("fake-pkg==9.9", cache_root=tmp_path, download=offline)
    _assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize("files", [(), ("a-1.0.tar.gz", "b-1.0.tar.gz"), ("fake_pkg-1.0-py3-none-any.whl",)])
def test_download_must_give_exactly_one_archive(tmp_path, files):
    def download(requirement, dest):
        for name in files:
            (dest / name).write_bytes(b"x")

    with pytest.raises(UserError, match="exactly one source archive"):
        resolve_source("fake-pkg==1.0", cache_root=tmp_path, download=download)
    _assert_nothing_half_written(tmp_path)


@pytest.mark.parametrize("member, fields, reason", [
    ("fake_pkg-1.0/../../evil.py", {}, "'..' path"),
    ("/tmp/evil.py", {}, "absolute"),
    ("fake_pkg-1.0/link", {"type": tarfile.SYMTYPE, "linkname": "../../outside"}, "link out of the archive"),
    ("fake_pkg-1.0/abs", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "link out of the archive"),
    ("fake_pkg-1.0/hard", {"type": tarfile.LNKTYPE, "linkname": "../x"}, "hard link out"),
    ("fake_pkg-1.0/dev", {"type": tarfile.CHRTYPE}, "device"),
])
def test_unsafe_archive_members_are_refused(tmp_path, member, fields, reason):
    archive = make_sdist(tmp_path / "dl", extra=[(member, b"boom", fields)])
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(UserError, match=f"refusing the archive of fake-pkg==1.0.*{reason}"):
        resolve_source("fake-pkg==1.0", cache_root=cache, download=FakeDownload(archive))
    _assert_nothing_half_written(cache)
    assert not (tmp_path / "deep" / "evil.py").exists() and not (tmp_path / "evil.py").exists()


def test_link_inside_the_archive_is_fine(tmp_path):
    archive = make_sdist(tmp_path / "dl", extra=[("fake_pkg-1.0/alias.py", b"", {"type": tarfile.SYMTYPE,
                                                                                 "linkname": "fake_pkg/core.py"})])
    resolved = resolve_source("fake-pkg==1.0", cache_root=tmp_path / "c", download=FakeDownload(archive))
    assert (resolved.root / "alias.py").read_text() == MODULE


def test_corrupt_archive(tmp_path):
    good = make_sdist(tmp_path / "dl").read_bytes()
    bad = tmp_path / "bad" / "fake_pkg-1.0.tar.gz"
    bad.parent.mkdir()
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="corrupt or unsafe"):
        resolve_source("fake-pkg==1.0", cache_root=tmp_path / "c", download=FakeDownload(bad))
    _assert_nothing_half_written(tmp_path / "c")


def test_failure_while_unpacking_leaves_no_partial_tree(tmp_path, monkeypatch):
    def crash(archive, dest, spec):
        (dest / "half.py").write_text("x = 1\n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sources, "_safe_unpack", crash)
    with pytest.raises(UserError, match="cannot unpack fake-pkg==1.0.*No space left"):
        resolve_source("fake-pkg==1.0", cache_root=tmp_path, download=FakeDownload(make_sdist(tmp_path / "dl")))
    _assert_nothing_half_written(tmp_path)


def test_pip_download_command_and_error_line(tmp_path, monkeypatch):
    seen = {}

    def fake_run(command, **kwargs):
        seen["command"] = command
        return subprocess.CompletedProcess(command, 1, stdout="Looking in indexes: x\n",
                                           stderr="ERROR: Could not find a version (from versions: 1.0)\n"
                                                  "ERROR: No matching distribution found for toolz==99\n\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(UserError) as raised:
        pip_download("toolz==99", tmp_path)
    assert str(raised.value) == "could not download toolz==99: ERROR: No matching distribution found for toolz==99"
    command = seen["command"]
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--no-binary", ":all:"} <= set(command) and command[-1] == "toolz==99"
    assert command[command.index("--dest") + 1] == str(tmp_path)


def test_pip_download_timeout(tmp_path, monkeypatch):
    def slow(command, **kwargs):
        raise subprocess.TimeoutExpired(command, kwargs.get("timeout"))

    monkeypatch.setattr(subprocess, "run", slow)
    with pytest.raises(UserError, match="timed out"):
        pip_download("toolz==1.0.0", tmp_path)


@pytest.mark.parametrize("pkg_info, expected", [
    ("License-Expression: Apache-2.0\nLicense: whatever\n", ("Apache-2.0", ())),
    ("License: MIT License\n        Copyright (c) 2020 Someone\n", ("MIT License", ())),
    ("License: UNKNOWN\nClassifier: License :: OSI Approved :: BSD License\n",
     ("BSD License", ("License :: OSI Approved :: BSD License",))),
    ("Name: nothing\n", (None, ())),
])
def test_read_license(tmp_path, pkg_info, expected):
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\n" + pkg_info)
    assert read_license(tmp_path) == expected


def test_read_license_from_egg_info_and_absent(tmp_path):
    assert read_license(tmp_path) == (None, ())
    (tmp_path / "x.egg-info").mkdir()
    (tmp_path / "x.egg-info" / "PKG-INFO").write_text("Metadata-Version: 1.1\nLicense: ISC\n")
    assert read_license(tmp_path) == ("ISC", ())
