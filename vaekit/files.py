"""File helpers shared by every module that writes: atomic writes and content hashes.

A write goes to a temporary file beside its target (its name carries the
writer's PID) and is renamed onto the target only when complete, so a kill at
any moment leaves either the old file or the new one, never a torn one. Files
get the mode a plain ``open()`` would give (the umask's), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from vaekit.errors import DataError, OutputExistsError

#: A kind of output whose existing files a command replaces without ``--overwrite``
#: (pictures, reports): ``is_kind(path)`` says whether an existing file is one.
Kind = Callable[[Path], bool]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name carries the writer's PID; temporaries that a killed writer
    left behind (its PID no longer alive) are removed on the next write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_special_target(path)
    remove_stale_temporaries(path)
    prefix = f".{path.name}.pid{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the mode a plain open() gives, not mkstemp's 0600
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # a writer may have recreated the file with its own mode
            os.chmod(tmp_path, 0o666 & ~umask)
        refuse_special_target(path)  # made meanwhile: a pipe or link is never renamed over
        os.replace(tmp_path, path)
    except Exception as exc:  # torch, safetensors, h5py and the OS word a full disk their way
        full = disk_full_error(path, exc)
        if full is None:
            raise
        tmp_path.unlink(missing_ok=True)
        raise full from None
    finally:
        tmp_path.unlink(missing_ok=True)


#: errno values of a write that found no room (a full disk, a quota, a file-size limit)
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def disk_full_error(path: str | Path, exc: BaseException) -> DataError | None:
    """The one-line error for a write of ``path`` that failed for lack of space, or None
    when ``exc`` is something else. torch and h5py report a failed write in their own
    words, so a message that says "No space left" (or any failed write while the disk
    has under 1 MiB free) counts too."""
    path = Path(path)
    text = str(exc)
    full = getattr(exc, "errno", None) in NO_ROOM or "No space left" in text
    failed_write = any(w in text.lower() for w in ("write", "enforce fail", "unexpected pos"))
    if not full and failed_write:
        full = free_bytes(path.parent) < (1 << 20)
    if not full:
        return None
    return DataError(
        f"no space left to write '{path}' ({free_bytes(path.parent) / 2**20:.1f} MiB free "
        "there); free some space and run the command again: the previous file, if there "
        "was one, is untouched"
    )


def free_bytes(folder: Path) -> int:
    """Bytes free for an unprivileged writer in ``folder`` (0 when it cannot be read)."""
    try:
        info = os.statvfs(folder)
    except OSError:
        return 0
    return info.f_bavail * info.f_frsize


def refuse_special_target(path: Path) -> None:
    """A DataError when ``path`` is a symbolic link, a folder, or anything but a regular
    file (a device, a FIFO, a socket): vaekit never renames a file over one of those."""
    if path.is_symlink():
        raise DataError(
            f"'{path}' is a symbolic link; vaekit does not write through links: "
            "give the path of a plain file"
        )
    if path.is_dir():
        raise DataError(f"'{path}' is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise DataError(
            f"'{path}' is not a regular file (a device, pipe or socket); "
            "vaekit replaces only plain files: choose another output"
        )


def check_output_target(
    path: str | Path, overwrite: bool = False, replaceable: Kind | None = None, flag: str = "-o"
) -> Path:
    """The one rule for every file a command writes, checked before any work is done.

    No target: written. A target that is not a regular file (a link, a folder, a device,
    a FIFO): refused, always. An existing file: replaced only with ``overwrite``, or
    when ``replaceable(path)`` says it is the same kind of output (a PNG for a picture,
    a vaekit report for a report), which the commands that write it replace by default.
    """
    path = Path(path)
    refuse_special_target(path)
    if path.exists() and not overwrite and not (replaceable is not None and replaceable(path)):
        raise OutputExistsError(
            f"'{path}' already exists; pass --overwrite to replace it or {flag} to write elsewhere"
        )
    return path


def check_input_file(path: str | Path, max_bytes: int | None = None, what: str = "file") -> Path:
    """A file vaekit is about to read: it must be a regular file (a FIFO would hang the
    read, a device like /dev/zero never ends), no larger than ``max_bytes``.
    A missing file raises FileNotFoundError for the caller to word; the rest DataError."""
    path = Path(path)
    info = path.stat()  # follows links: a link to a regular file is read like the file
    if not stat.S_ISREG(info.st_mode):
        raise DataError(
            f"'{path}' is not a regular file (a folder, device, pipe or socket); "
            f"give the path of a {what}"
        )
    if max_bytes is not None and info.st_size > max_bytes:
        raise DataError(
            f"'{path}' is {info.st_size:,} bytes, more than a {what} can be "
            f"({max_bytes:,}); check that it is the right file"
        )
    return path


def starts_with(path: Path, magic: bytes) -> bool:
    """Whether the regular file ``path`` begins with ``magic`` (False when unreadable)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:
        return False


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path) -> bool:
    """Whether ``path`` holds a PNG (by its signature)."""
    return starts_with(path, PNG_MAGIC)


def remove_stale_temporaries(path: Path) -> None:
    """Delete ``.NAME.pidPID.*.tmp`` files beside ``path`` whose writer process is gone."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.pid*.tmp"):
        pid_text = leftover.name[len(path.name) + 5 :].split(".", 1)[0]
        if pid_text.isdigit() and not _process_alive(int(pid_text)):
            leftover.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
