"""Decode image files once into a uint8 array cache.

A list of image files becomes one ``(N, C, H, W)`` uint8 array saved with
``np.save`` under the cache directory (``$VAEKIT_CACHE_DIR``, default
``~/.cache/vaekit``) and read back with ``np.load(mmap_mode="r")``. The file name
is a hash of the source, its absolute path and the image options; a JSON file
beside it holds a signature of the inputs (relative paths, sizes, mtimes), so a
changed source is decoded again. Decoding runs on a thread pool (Pillow releases
the GIL while decoding) with a rich progress bar on stderr.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vaekit.cachedir import cache_dir
from vaekit.errors import DataError
from vaekit.files import atomic_path, atomic_write_text, free_bytes
from vaekit.imageio import read_image
from vaekit.resize import convert_images

FORMAT = 2  # bump when the cache layout or decoding changes
SKIP_HINT = "fix or remove it, or pass --skip-bad to skip unreadable images"


@dataclass
class Decoded:
    """The decoded images of the files that could be read, in input order."""

    images: np.ndarray  # (K, C, H, W) uint8, memory-mapped when cached on disk
    kept: np.ndarray  # (K,) int64: index into the input file list of each row
    skipped: list[str] = field(default_factory=list)  # "path: reason" of unreadable files
    from_cache: bool = False
    signature: str = ""  # changes with the files (paths, sizes, mtimes) and the options


def files_signature(files: Sequence[Path], root: Path) -> str:
    """A hash of each file's path relative to ``root``, size and modification time."""
    digest = hashlib.sha256()
    for path in files:
        try:
            st = path.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"{_rel(path, root)}\0{stamp}\n".encode())
    return digest.hexdigest()[:24]


def decode_files(
    files: Sequence[Path],
    root: Path,
    source: str,
    channels: int | None = None,
    image_size: int | None = None,
    skip_bad: bool = False,
    use_cache: bool = True,
) -> Decoded:
    """Decode ``files`` (all under ``root``) into one uint8 array, or read it from the cache.

    ``channels``: 1 or 3, or ``None`` (1 when every image is grayscale, else 3).
    Without ``image_size`` every image must have the same size (else a
    :class:`DataError` naming two files of different sizes). An unreadable file
    raises a :class:`DataError` with its path and the ``--skip-bad`` hint, unless
    ``skip_bad`` is set: then it is left out and listed in ``Decoded.skipped``.
    """
    files = [Path(f) for f in files]
    key = _cache_key(root, source, channels, image_size)
    # the inputs' signature, made specific to the options: the dataset's fingerprint
    signature = hashlib.sha256(f"{key}:{files_signature(files, root)}".encode()).hexdigest()[:16]
    directory = cache_dir()
    array_path, meta_path = directory / f"{key}.npy", directory / f"{key}.json"
    if use_cache:
        cached = _read_cache(array_path, meta_path, signature, len(files))
        if cached is not None:
            _check_bad(cached.skipped, skip_bad)
            return cached

    sizes, modes, bad = _scan_headers(files)
    _check_bad([f"{files[i]}: {why}" for i, why in sorted(bad.items())], skip_bad)
    ok = [i for i in range(len(files)) if i not in bad]
    if not ok:
        raise DataError(f"none of the {len(files)} images under '{root}' could be read")
    if channels is None:
        channels = 1 if all(_grayscale(modes[i]) for i in ok) else 3
    if image_size is None:
        first = ok[0]
        for i in ok:
            if sizes[i] != sizes[first]:
                (w1, h1), (w2, h2) = sizes[first], sizes[i]
                raise DataError(
                    f"images differ in size: '{files[first]}' is {w1}x{h1} but '{files[i]}' is "
                    f"{w2}x{h2}; pass --image-size N to resize and centre-crop them all to NxN"
                )
        width, height = sizes[first]
    else:
        width = height = image_size
    shape = (len(ok), channels, height, width)

    writable = use_cache and _ensure_dir(directory)
    if writable and free_bytes(directory) < math.prod(shape) + (64 << 20):
        writable = False  # no room for the cache: decode into memory, as without one
    if not writable:
        images = np.empty(shape, dtype=np.uint8)
        failed = _decode_into(images, [files[i] for i in ok], channels, image_size)
        return _finish(images, ok, failed, files, bad, skip_bad, signature)

    with atomic_path(array_path) as tmp:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        reserve(tmp)  # a mapped page with no disk behind it would kill us with SIGBUS
        failed = _decode_into(images, [files[i] for i in ok], channels, image_size)
        bad.update({ok[j]: why for j, why in failed.items()})
        _check_bad([f"{files[i]}: {why}" for i, why in sorted(bad.items())], skip_bad)
        if failed:  # rare: a file whose header read but whose pixels did not
            keep = np.array([j not in failed for j in range(len(ok))])
            compact = np.ascontiguousarray(images[keep])
            del images
            with open(tmp, "wb") as fh:  # np.save(path) would append ".npy" to the name
                np.save(fh, compact)
        else:
            images.flush()
            del images
    kept = np.array([i for i in range(len(files)) if i not in bad], dtype=np.int64)
    skipped = [f"{files[i]}: {why}" for i, why in sorted(bad.items())]
    images = np.load(array_path, mmap_mode="r")
    meta = {
        "checksum": array_checksum(images),
        "format": FORMAT,
        "signature": signature,
        "n_files": len(files),
        "kept": kept.tolist(),
        "skipped": skipped,
        "root": str(root),
        "source": source,
    }

    atomic_write_text(meta_path, json.dumps(meta))
    return Decoded(images, kept, skipped, False, signature)


def array_checksum(images: np.ndarray, block_bytes: int = 1 << 26) -> str:
    """CRC-32 of an array's bytes, read in blocks (a memory map is never loaded whole)."""
    import zlib

    flat = images.reshape(len(images), -1) if images.ndim else images.reshape(1, -1)
    rows = max(1, block_bytes // max(1, flat.shape[1] if flat.ndim == 2 else 1))
    crc = 0
    for start in range(0, len(flat), rows):
        crc = zlib.crc32(np.ascontiguousarray(flat[start : start + rows]).tobytes(), crc)
    return f"{crc:08x}"


def _finish(images, ok, failed, files, bad, skip_bad, signature) -> Decoded:
    bad.update({ok[j]: why for j, why in failed.items()})
    skipped = [f"{files[i]}: {why}" for i, why in sorted(bad.items())]
    _check_bad(skipped, skip_bad)
    if failed:
        images = images[[j not in failed for j in range(len(ok))]]
    kept = np.array([i for i in range(len(files)) if i not in bad], dtype=np.int64)
    return Decoded(images, kept, skipped, False, signature)


def _check_bad(skipped: list[str], skip_bad: bool) -> None:
    if skipped and not skip_bad:
        path, _, why = skipped[0].partition(": ")
        more = f" ({len(skipped) - 1} more unreadable)" if len(skipped) > 1 else ""
        raise DataError(f"cannot read image '{path}': {why}{more}; {SKIP_HINT}")


def _read_cache(array_path: Path, meta_path: Path, signature: str, n_files: int) -> Decoded | None:
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT or meta.get("signature") != signature:
            return None
        if meta.get("n_files") != n_files:
            return None
        images = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    kept = np.asarray(meta["kept"], dtype=np.int64)
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(kept):
        return None
    if meta.get("checksum") != array_checksum(images):
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(
            f"[yellow]warning:[/] the decode cache '{array_path}' is damaged (its contents "
            "changed since it was written); decoding the images again",
            highlight=False,
        )
        return None
    return Decoded(images, kept, list(meta.get("skipped", [])), True, signature)


def _cache_key(root: Path, source: str, channels: int | None, image_size: int | None) -> str:
    spec = json.dumps(
        {
            "format": FORMAT,
            "source": source,
            "root": str(Path(root).resolve()),
            "channels": channels,
            "image_size": image_size,
        },
        sort_keys=True,
    )
    return f"{source}-{hashlib.sha256(spec.encode()).hexdigest()[:20]}"


def _ensure_dir(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return os.access(directory, os.W_OK)
    except OSError:
        return False


def _workers() -> int:
    return max(1, os.cpu_count() or 1)


def _chunks(n: int) -> list[range]:
    size = max(1, min(256, n // (_workers() * 8) or 1))
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


def _scan_headers(files: list[Path]) -> tuple[dict, dict, dict[int, str]]:
    """Sizes and modes from the file headers (no pixel decoding); unreadable files in ``bad``."""
    from PIL import Image

    sizes: dict[int, tuple[int, int]] = {}
    modes: dict[int, str] = {}
    bad: dict[int, str] = {}

    def scan(chunk: range) -> None:
        for i in chunk:
            try:
                with Image.open(files[i]) as picture:
                    sizes[i], modes[i] = picture.size, picture.mode
            except Exception as exc:  # noqa: BLE001 - any failure means an unreadable file
                bad[i] = _reason(exc)

    with ThreadPoolExecutor(_workers()) as pool:
        list(pool.map(scan, _chunks(len(files))))
    return sizes, modes, bad


def _decode_into(
    out: np.ndarray, files: list[Path], channels: int, image_size: int | None
) -> dict[int, str]:
    """Decode ``files[j]`` into ``out[j]`` on a thread pool with a progress bar."""
    from rich.console import Console

    from vaekit.progress import make_progress

    failed: dict[int, str] = {}
    expected = out.shape[1:]

    def work(chunk: range) -> int:
        for j in chunk:
            try:
                image = read_image(files[j], channels=channels, image_size=image_size)
                if image.shape != expected:
                    raise DataError(f"decoded to shape {image.shape}, expected {expected}")
                out[j] = image
            except Exception as exc:  # noqa: BLE001
                failed[j] = _reason(exc)
        return len(chunk)

    console = Console(stderr=True)
    with ThreadPoolExecutor(_workers()) as pool:
        if not console.is_terminal:  # a log file gets one line, not a redrawn bar
            console.print(f"decoding {len(files)} images on {_workers()} threads", highlight=False)
            list(pool.map(work, _chunks(len(files))))
            return failed
        with make_progress(console, transient=True) as progress:
            task = progress.add_task("decoding images", total=len(files), info="")
            for count in pool.map(work, _chunks(len(files))):
                progress.advance(task, count)
    return failed


def _reason(exc: Exception) -> str:
    text = str(exc)
    prefix = "cannot read image '"
    if text.startswith(prefix):  # read_image's own message: keep only the reason
        text = text.split("': ", 1)[-1]
    return text.replace("\n", " ") or type(exc).__name__


def _grayscale(mode: str) -> bool:
    return mode in ("1", "L", "LA", "I", "F") or mode.startswith("I;16")


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def reserve(path: Path) -> None:
    """Allocate the disk blocks of ``path`` (a sparse file of its final size) now, so a
    full disk is an OSError here rather than SIGBUS when a mapped page is first written."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # a file system that cannot
            raise
    finally:
        os.close(fd)


def cached_conversion(
    images: np.ndarray,
    source: str,
    path: Path,
    fingerprint: str,
    channels: int | None,
    image_size: int | None,
) -> np.ndarray:
    """``images`` converted to ``channels`` and ``image_size`` squares, through the cache.

    For sources that read arrays (``idx``, ``arrays``) rather than decode image
    files: the conversion (one batched resize, :func:`vaekit.resize.convert_images`)
    is saved under the cache directory and read back memory-mapped while the files
    at ``path`` (sizes, modification times), the data's fingerprint and the
    options are unchanged.
    """

    path = Path(path).resolve()
    root = path.parent if path.is_file() else path
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    # one entry per read: a split-only read (evaluate's test images) and a whole one
    # (train's) keep their own conversions instead of replacing each other's
    key = _cache_key(path, f"{source}-converted-{len(images)}", channels, image_size)
    signature = hashlib.sha256(
        f"{key}:{fingerprint}:{files_signature(files, root)}".encode()
    ).hexdigest()[:16]
    directory = cache_dir()
    array_path, meta_path = directory / f"{key}.npy", directory / f"{key}.json"
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") == FORMAT and meta.get("signature") == signature:
            cached = np.load(array_path, mmap_mode="r")
            if list(cached.shape) == meta.get("shape") and cached.dtype == np.uint8:
                return cached
    except (OSError, ValueError):
        pass
    converted = convert_images(images, image_size, channels)
    if not _ensure_dir(directory):
        return converted

    try:
        with atomic_path(array_path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, converted)
    except DataError:  # a full disk: the cache is an optimisation, the data is here
        return converted
    meta = {
        "format": FORMAT,
        "signature": signature,
        "shape": list(converted.shape),
        "root": str(path),
        "source": source,
    }
    atomic_write_text(meta_path, json.dumps(meta))
    return np.load(array_path, mmap_mode="r")
