"""One writer per run directory: an exclusive OS lock on ``RUN_DIR/.lock``.

The lock is ``fcntl.flock`` on a file inside the run directory. The kernel releases it when the
process ends, however it ends (SIGKILL included), so a killed run never blocks its own resume,
while a live run cannot be overwritten, resumed or run over by a second process. The lock file
holds the pid of its holder, so the refusal can name it.

Commands take the lock with :func:`hold`, which keeps it until :func:`release_held` (called when
a ``chemistry`` command returns) or the end of the process.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".lock"


class RunLockedError(ValueError):
    """The run directory is locked by another live process."""


class RunLock:
    """An exclusive lock on a run directory, held while this object is open."""

    def __init__(self, directory: str | os.PathLike, advice: str = "choose another --out") -> None:
        self.directory = Path(directory)
        path = self.directory / LOCK_NAME
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise RunLockedError(_locked_message(self.directory, _read_pid(path), advice)) from None
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor: int | None = descriptor

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def in_place(self) -> bool:
        """True while held and the directory's lock file is still the locked file (a directory
        moved away and replaced has a new one)."""
        if self._descriptor is None:
            return False
        try:
            current = os.stat(self.directory / LOCK_NAME)
        except OSError:
            return False
        locked = os.fstat(self._descriptor)
        return (current.st_dev, current.st_ino) == (locked.st_dev, locked.st_ino)

    def release(self) -> None:
        """Give the lock back (the lock file stays; it is reused by the next holder)."""
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the only descriptor releases the flock
            self._descriptor = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def unlocked_entries(directory: str | os.PathLike) -> list[Path]:
    """The entries of ``directory`` other than its lock file (what a run directory holds)."""
    return [entry for entry in Path(directory).iterdir() if entry.name != LOCK_NAME]


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _locked_message(directory: Path, pid: int | None, advice: str) -> str:
    who = f"process {pid}" if pid is not None else "another process"
    return (
        f"run directory {directory} is in use: {who} is writing it (it holds "
        f"{directory / LOCK_NAME}); nothing was changed. Wait for it to finish or stop it, or "
        f"{advice}"
    )


def holder(directory: str | os.PathLike) -> int | None:
    """The pid of the live process holding the lock of ``directory`` (0 if it is unknown),
    or None when no process holds it."""
    path = Path(directory) / LOCK_NAME
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(path) or 0
    finally:
        os.close(descriptor)
    return None


_held: dict[Path, RunLock] = {}


def _key(directory: str | os.PathLike) -> Path:
    return Path(directory).resolve()


def hold(directory: str | os.PathLike, advice: str = "choose another --out") -> RunLock:
    """Lock ``directory`` (created if needed) for this process until :func:`release_held`.

    Taking a lock this process already holds returns it. ``advice`` ends the refusal's message.

    Raises:
        RunLockedError: when another live process holds the lock (the message names its pid).
    """
    key = _key(directory)
    lock = _held.pop(key, None)
    if lock is not None:
        if lock.in_place():
            _held[key] = lock
            return lock
        lock.release()  # its directory was moved away (replaced by --overwrite)
    Path(directory).mkdir(parents=True, exist_ok=True)
    lock = RunLock(directory, advice)
    _held[key] = lock
    return lock


def release(directory: str | os.PathLike) -> None:
    """Release this process's lock of ``directory``, if it holds one."""
    lock = _held.pop(_key(directory), None)
    if lock is not None:
        lock.release()


def release_held() -> None:
    """Release every lock this process took with :func:`hold`."""
    while _held:
        _held.popitem()[1].release()
