"""Resolve a mining source spec to a local directory of Python code.

Specs::

    stdlib              the running interpreter's standard library (mine() with source=None mines the
                        curated module list of peftlab.data.documented_functions.DEFAULT_STDLIB_MODULES)
    NAME==VERSION       a pinned PyPI *source distribution*, fetched with
                        ``python -m pip download --no-deps --no-binary :all: NAME==VERSION`` and unpacked
                        into the cache; an unpinned NAME is refused (the data must be reproducible)
    PATH                any existing local directory (``./stdlib`` for a directory of that name)

Cache layout, under ``peftlab.cache.cache_dir() / "sources"``::

    <name>-<version>.json            the spec's record: archive file name, size and sha256, licence,
                                     and the unpacked directory (relative); written last, atomically
    <name>-<version>-<sha256[:12]>/  the unpacked archive, renamed into place only when complete
    .download-*/ .extract-*/         work directories; never read, removed on failure (and when stale)

A spec whose record exists and whose directory is present is served from the cache with no download.
``name`` is the PEP 503 normalised project name, so ``More_Itertools==10.7.0`` and
``more-itertools==10.7.0`` share one entry.

API::

    resolve_source(spec, cache_root=None, download=pip_download) -> ResolvedSource
    pip_download(requirement, dest) -> None        the real fetch; tests pass their own ``download``
    read_license(root) -> (license, classifiers)   from PKG-INFO
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from peftlab.errors import UserError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
MAX_UNPACKED_BYTES = 512 * 1024 * 1024  # an sdist is kilobytes to megabytes; more is a zip bomb
DOWNLOAD_TIMEOUT_S = 600
_STALE_WORK_DIR_S = 24 * 3600
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PINNED = re.compile(rf"^\s*(?P<name>{_NAME})\s*==\s*(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)\s*$")
_REQUIREMENT_LIKE = re.compile(rf"^\s*{_NAME}\s*(\[.*\])?\s*([<>=!~@].*)?$")


@dataclass(frozen=True)
class ResolvedSource:
    spec: str  # as resolved: "stdlib", the directory, or "name==version" (normalised name)
    kind: str  # "stdlib" | "directory" | "sdist"
    root: Path
    sha256: str | None = None  # of the downloaded archive
    archive: str | None = None  # its file name
    archive_bytes: int | None = None
    license: str | None = None  # License-Expression, else License, else the first licence classifier
    license_classifiers: tuple[str, ...] = ()

    @property
    def mine_source(self) -> Path | None:
        """What to pass to ``peftlab.data.documented_functions.mine``: None selects its curated stdlib module list."""
        return None if self.kind == "stdlib" else self.root

    def card(self) -> dict:
        """JSON-ready description for the data card."""
        out = asdict(self)
        out["root"] = str(self.root)
        out["license_classifiers"] = list(self.license_classifiers)
        return out


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve_source(spec: str, cache_root: Path | None = None,
                   download: Callable[[str, Path], None] | None = None) -> ResolvedSource:
    """Resolve ``spec`` (see the module docstring) to a local directory, fetching an sdist if needed.

    ``cache_root`` defaults to ``peftlab.cache.cache_dir()``; ``download(requirement, dest_dir)`` must
    leave exactly one archive in ``dest_dir`` (default: :func:`pip_download`).

    Raises:
        UserError: an unpinned or malformed package spec, a missing directory, a failed download, or an
            archive that is not exactly one sdist, is corrupt or holds unsafe members.
    """
    text = str(spec).strip()
    if text == "stdlib":
        from peftlab.data.documented_functions import stdlib_root

        return ResolvedSource(spec="stdlib", kind="stdlib", root=stdlib_root(), license="PSF-2.0",
                              license_classifiers=("License :: OSI Approved :: Python Software Foundation License",))
    pinned = _PINNED.match(text)
    if pinned:
        return _resolve_sdist(canonical_name(pinned["name"]), pinned["version"], cache_root, download)
    path = Path(text).expanduser()
    if path.is_dir():
        license, classifiers = read_license(path)
        return ResolvedSource(spec=str(path), kind="directory", root=path, license=license,
                              license_classifiers=classifiers)
    if _REQUIREMENT_LIKE.match(text) and "/" not in text and os.sep not in text:
        raise UserError(f"mining source {text!r} is not a directory, and a PyPI package needs an exact pin: "
                        "NAME==VERSION (e.g. toolz==1.0.0)")
    raise UserError(f"source directory not found: {text}")


# ---------------------------------------------------------------------------------------------- fetch

def pip_download(requirement: str, dest: Path) -> None:
    """``pip download`` one source distribution, no dependencies, into ``dest``.

    Raises:
        UserError: pip failed (offline, no such version, no sdist); the message ends with pip's last line.
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "--dest", str(dest), requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise UserError(f"downloading {requirement} timed out after {DOWNLOAD_TIMEOUT_S} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR:")]
        last = (errors or lines or [f"exit status {done.returncode}"])[-1]
        raise UserError(f"could not download {requirement}: {last}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove_stale_work_dirs(sources: Path) -> None:
    """Work directories a killed run left behind; a day old cannot belong to a live run."""
    now = time.time()
    for entry in sources.glob(".*-*"):
        try:
            if entry.is_dir() and now - entry.stat().st_mtime > _STALE_WORK_DIR_S:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def _read_record(path: Path, sources: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if (sources / record["dir"] / record["root"]).is_dir():
            return record
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or damaged: fetch again and overwrite it
    return None


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _resolve_sdist(name: str, version: str, cache_root: Path | None,
                   download: Callable[[str, Path], None] | None) -> ResolvedSource:
    spec = f"{name}=={version}"
    if cache_root is None:
        from peftlab.cache import cache_dir

        cache_root = cache_dir()
    sources = Path(cache_root) / "sources"
    try:
        sources.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the source cache {sources}: {exc.strerror or exc}") from None
    record_path = sources / f"{name}-{version}.json"
    record = _read_record(record_path, sources)
    if record is None:
        _remove_stale_work_dirs(sources)
        record = _fetch(spec, name, version, sources, download or pip_download)
        _write_atomically(record_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return ResolvedSource(spec=spec, kind="sdist", root=sources / record["dir"] / record["root"],
                          sha256=record["sha256"], archive=record["archive"],
                          archive_bytes=record["archive_bytes"], license=record["license"],
                          license_classifiers=tuple(record["license_classifiers"]))


def _fetch(spec: str, name: str, version: str, sources: Path, download) -> dict:
    """Download and unpack ``spec`` into its final directory; return its cache record."""
    with tempfile.TemporaryDirectory(dir=sources, prefix=".download-") as work:
        download(spec, Path(work))
        found = sorted(Path(work).iterdir())
        archives = [p for p in found if p.is_file() and p.name.lower().endswith(ARCHIVE_SUFFIXES)]
        if len(found) != 1 or len(archives) != 1:
            listing = ", ".join(p.name for p in found) or "nothing"
            raise UserError(f"downloading {spec} should give exactly one source archive, got: {listing}")
        archive = archives[0]
        sha256 = _sha256(archive)
        final = sources / f"{name}-{version}-{sha256[:12]}"
        if not final.is_dir():
            _unpack_into_place(archive, final, spec)
        roots = [p for p in final.iterdir()]
        root = roots[0].name if len(roots) == 1 and roots[0].is_dir() else "."  # sdists hold one NAME-VERSION/
        license, classifiers = read_license(final / root)
        return {"spec": spec, "archive": archive.name, "archive_bytes": archive.stat().st_size,
                "sha256": sha256, "dir": final.name, "root": root, "license": license,
                "license_classifiers": list(classifiers)}


def _unpack_into_place(archive: Path, final: Path, spec: str) -> None:
    """Unpack next to ``final`` and rename, so ``final`` is either absent or complete."""
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=".extract-"))
    try:
        _safe_unpack(archive, work, spec)
        os.chmod(work, 0o755)  # mkdtemp makes it private; the cache is an ordinary user directory
        try:
            os.rename(work, final)
        except OSError:
            if not final.is_dir():  # not a concurrent run that finished first
                raise
    except OSError as exc:
        raise UserError(f"cannot unpack {spec} into {final.parent}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- unpack

def _unsafe_name(name: str) -> bool:
    """Absolute (POSIX or Windows), drive-qualified, or climbing out with ``..``."""
    return (name.startswith(("/", "\\")) or PureWindowsPath(name).drive != "" or PurePosixPath(name).is_absolute()
            or ".." in PurePosixPath(name.replace("\\", "/")).parts)


def _check_tar(members: list[tarfile.TarInfo], spec: str) -> None:
    total = 0
    for member in members:
        problem = None
        if _unsafe_name(member.name):
            problem = "an absolute or '..' path"
        elif member.issym():
            target = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
            if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                problem = f"a link out of the archive ({member.linkname})"
        elif member.islnk():
            if _unsafe_name(member.linkname):
                problem = f"a hard link out of the archive ({member.linkname})"
        elif not (member.isfile() or member.isdir()):
            problem = "a device or FIFO"
        if problem:
            raise UserError(f"refusing the archive of {spec}: member {member.name!r} is {problem}")
        total += member.size
    if total > MAX_UNPACKED_BYTES:
        raise UserError(f"refusing the archive of {spec}: it unpacks to over {MAX_UNPACKED_BYTES >> 20} MiB")


def _safe_unpack(archive: Path, dest: Path, spec: str) -> None:
    """Unpack a tar or zip archive into ``dest`` after checking every member (see :func:`_check_tar`).

    The explicit checks give one clear message and work on every Python; tarfile's ``data`` filter
    (Python >= 3.11.4) is applied as well where it exists, as a second line of defence.
    """
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    if _unsafe_name(info.filename):
                        raise UserError(f"refusing the archive of {spec}: member {info.filename!r} is an "
                                        "absolute or '..' path")
                if sum(info.file_size for info in infos) > MAX_UNPACKED_BYTES:
                    raise UserError(f"refusing the archive of {spec}: it unpacks to over "
                                    f"{MAX_UNPACKED_BYTES >> 20} MiB")
                zf.extractall(dest)
            return
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            _check_tar(members, spec)
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4; the checks above already ran
                tf.extractall(dest, members=members)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, ValueError) as exc:
        raise UserError(f"the archive of {spec} ({archive.name}) is corrupt or unsafe: {exc}") from None


# --------------------------------------------------------------------------------------------- licence

def read_license(root: Path) -> tuple[str | None, tuple[str, ...]]:
    """(licence, licence classifiers) from ``root/PKG-INFO`` (or ``*.egg-info/PKG-INFO``), if any.

    The licence is the SPDX ``License-Expression`` (metadata 2.4), else the first line of ``License``
    (older metadata; some packages paste the whole text there), else the last part of the first
    ``License ::`` classifier.
    """
    candidates = [root / "PKG-INFO", *sorted(root.glob("*.egg-info/PKG-INFO")),
                  *sorted(root.glob("src/*.egg-info/PKG-INFO"))]
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        headers = email.parser.HeaderParser().parsestr(text)
        classifiers = tuple(c.strip() for c in headers.get_all("Classifier") or () if c.strip().startswith("License ::"))
        expression = (headers.get("License-Expression") or "").strip()
        free_text = (headers.get("License") or "").strip().splitlines()
        first = free_text[0].strip()[:100] if free_text else ""
        if expression:
            return expression, classifiers
        if first and first.upper() != "UNKNOWN":
            return first, classifiers
        if classifiers:
            return classifiers[0].split("::")[-1].strip(), classifiers
        return None, classifiers
    return None, ()
