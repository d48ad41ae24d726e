"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The content is written to a hidden temporary file in the target's folder, flushed, and moved
over the target with ``os.replace`` (atomic on POSIX and Windows within one file system).
On any failure the temporary file is removed and the old target is left untouched.

A run killed with ``kill -9`` cannot remove its temporary file. The name carries the
writer's process id (``.<target>.<pid>.<random>.tmp``), so the next write to the same
target removes the leftovers of processes that no longer run (or are older than
:data:`STALE_SECONDS`) and says so with an :class:`~clvcast.errors.OutputWarning`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from clvcast.errors import InputError, OutputWarning

STALE_SECONDS = 6 * 3600  # a leftover this old is stale even if its process id is reused


def _temporary_beside(target: Path) -> Path:
    """Create an empty hidden file in the folder of ``target`` (InputError if impossible)."""
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot write {target}: folder {folder} does not exist; create it first.")
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a folder; give a file name.")
    remove_leftovers(target)
    try:
        handle, name = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=folder
        )
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


def remove_leftovers(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files of killed writes to ``target``; return what went."""
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(\d+)\.[^.]+\.tmp$")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = pattern.match(entry.name)
            if not match or not _stale(int(match.group(1)), entry):
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    if removed:
        names = ", ".join(path.name for path in removed[:3])
        warnings.warn(
            f"removed {len(removed)} temporary file(s) left in {folder} by an interrupted "
            f"write of {target.name}: {names}",
            OutputWarning,
            3,
        )
    return removed


def _stale(pid: int, entry: os.DirEntry) -> bool:
    """True when the process that wrote ``entry`` is gone, or the file is old."""
    with contextlib.suppress(OSError):
        if time.time() - entry.stat().st_mtime > STALE_SECONDS:
            return True
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    return False


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
