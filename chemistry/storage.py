"""Atomic file writes (a reader never sees half a file), their stale leftovers, and checksums.

A file is written as ``.NAME.XXXXXXXX.partial`` next to ``NAME`` and renamed onto it; a writer
killed mid-write (SIGKILL) leaves that temporary file behind, which :func:`stale_temporaries`
finds and :func:`remove_stale_temporaries` removes (only while no writer is live: see
:mod:`chemistry.lock`). Every I/O error raised here names its file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

TEMPORARY_SUFFIX = ".partial"
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}" + re.escape(TEMPORARY_SUFFIX))


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` with ``path`` as its file name when it has none (``File too large``, ...)."""
    if error.filename is not None:
        return error
    named = type(error)(error.errno, error.strerror or str(error), str(path))
    named.__traceback__ = error.__traceback__
    return named


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)`` and move the result onto ``path`` in one rename.

    Raises:
        OSError: naming ``path`` when the write or the rename fails (the temporary is removed).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent
        )
    except OSError as error:
        raise _naming(error, path) from None
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(error, OSError):
            if error.filename == temporary:
                error.filename = str(path)
            raise _naming(error, path) from None
        raise
    return path


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)

    return write_atomically(path, write)


def stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Temporary files of :func:`write_atomically` under ``directory`` (left by killed writers
    when no writer is live), sorted."""
    return sorted(
        path
        for path in Path(directory).rglob(f"*{TEMPORARY_SUFFIX}")
        if _TEMPORARY.fullmatch(path.name) and path.is_file()
    )


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Remove :func:`stale_temporaries` of ``directory``; returns what was removed.

    Call it only while holding the directory's lock: a live writer's temporaries are not stale.
    """
    removed = stale_temporaries(directory)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise _naming(error, Path(path)) from None
    return digest.hexdigest()
