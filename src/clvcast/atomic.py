"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The content is written to a hidden temporary file in the target's folder, flushed, and moved
over the target with ``os.replace`` (atomic on POSIX and Windows within one file system).
On any failure the temporary file is removed and the old target is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from clvcast.errors import InputError


def _temporary_beside(target: Path) -> Path:
    """Create an empty hidden file in the folder of ``target`` (InputError if impossible)."""
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {target}: folder {folder} does not exist; create it first.")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InputError(
            f"cannot write {target}: folder {folder} is not writable ({exc.strerror})."
        ) from exc
    os.close(handle)
    temporary = Path(name)
    os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp makes it private (0600)
    return temporary


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    temporary = _temporary_beside(target)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def check_writable(target: str | os.PathLike[str]) -> None:
    """Raise InputError now if ``target`` cannot be written later.

    Lets a long job fail at its start, not after the work, when the output folder is
    missing or read-only. Leaves nothing behind.
    """
    _temporary_beside(Path(target)).unlink()


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically and return the path."""
    with atomic_path(target) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(target)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
