"""Writing inside a run folder: atomically, never through a symbolic link, one sentence on failure.

Every file wae-toolkit writes into a run folder goes through this module:

* :func:`write_atomic` (and :func:`write_json`, :func:`write_text`) serialise in memory, write a
  hidden temporary file in the same folder (opened with ``O_EXCL | O_NOFOLLOW``, so an existing
  file or link of that name is never opened), fsync it and rename it over the final name.
  A rename replaces a symbolic link *itself*, never the file it points to, so nothing outside
  the folder is written or truncated, and a reader sees the old file or the new one, never half.
* :class:`AppendFile` appends lines (``metrics.jsonl``) through a descriptor opened with
  ``O_NOFOLLOW``: if the name is a symbolic link the open fails instead of following it.
* :func:`make_folder` creates a subfolder (``checkpoints/``) and refuses one that is a link.
* :class:`RunLock` is the one-run-per-folder lock: an OS lock (``flock``) on the folder itself,
  released by the kernel when its process ends, even by SIGKILL.

A write that fails (disk full, quota, read-only, ...) raises :class:`RunWriteError`: one sentence
with the path, the reason and, when the disk is full, how much space the write needed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wae_toolkit.errors import UsageError, WaeError, setting
from wae_toolkit.memory import format_bytes

__all__ = [
    "RunWriteError",
    "RunLockedError",
    "write_atomic",
    "write_text",
    "write_json",
    "AppendFile",
    "make_folder",
    "link_problem",
    "RunLock",
    "is_temporary",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class RunWriteError(WaeError):
    """A file of a run folder could not be written (no space left, not writable, ...)."""

    exit_code = 1


class RunLockedError(UsageError):
    """Another process is training in the run folder."""


def write_error(
    exc: OSError,
    folder: Path,
    what: str,
    size: int | None = None,
    after: str = "",
    cls: type[RunWriteError] = RunWriteError,
) -> RunWriteError:
    """The one sentence for a failed write of ``what`` into ``folder`` (``size``: bytes it
    needed; ``after``: a sentence to append, e.g. what was kept)."""
    need = f" (it needs about {format_bytes(size)})" if size is not None else ""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        why = (
            f"the disk holding '{folder}' is full{need}; free some space or choose another "
            f"{setting('out')}"
        )
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = f"'{folder}' is not writable ({exc.strerror}); choose a writable {setting('out')}"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        why = f"'{folder}' cannot be a folder, as part of its path is a file"
    elif exc.errno == errno.ELOOP:
        why = "it is a symbolic link, which wae-toolkit never writes through"
    elif exc.errno == errno.ENAMETOOLONG:
        why = "the name is longer than this file system allows"
    else:
        why = f"writing to '{folder}' failed: {exc.strerror or exc}"
    return cls(f"Cannot write {what}: {why}.{after}")


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in ``folder`` durable (POSIX only; best effort)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (the one place bytes reach the disk; tests fill it up)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


_TEMPORARY = re.compile(r"^\..+\.\d+\.[0-9a-f]+\.tmp$")


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of this module's temporary files (``.NAME.PID.HEX.tmp``)."""
    return bool(_TEMPORARY.match(name))


def link_problem(path: Path, want: str = "file") -> str | None:
    """A sentence when ``path`` exists as a symbolic link or as the wrong kind of entry (``want``
    is ``"file"`` or ``"folder"``); ``None`` when it is missing or of the right kind."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"'{path}' cannot be inspected ({exc.strerror or exc})."
    if stat.S_ISLNK(st.st_mode):
        return (
            f"'{path}' is a symbolic link; wae-toolkit writes only plain files inside a run "
            "folder and never follows a link out of it: replace the link with the file it points "
            "to, or remove it."
        )
    if want == "file" and not stat.S_ISREG(st.st_mode):
        return f"'{path}' is not a plain file; wae-toolkit writes a file of that name there."
    if want == "folder" and not stat.S_ISDIR(st.st_mode):
        return f"'{path}' is not a folder; wae-toolkit keeps a folder of that name there."
    return None


def _check_target(path: Path, what: str) -> None:
    """Refuse a file name that is a link or not a plain file. The folder it is in may be a link
    (a run folder the user placed elsewhere on purpose); subfolders a run makes are checked by
    :func:`make_folder`."""
    problem = link_problem(path, "file")
    if problem is not None:
        raise RunWriteError(f"Cannot write {what}: {problem}")


def write_atomic(
    path: str | Path,
    data: bytes,
    what: str | None = None,
    after: str = "",
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Replace ``path`` with ``data`` atomically, never writing through a symbolic link.

    The bytes go to a hidden temporary file beside ``path`` (created exclusively, not following
    links), are fsynced, and the temporary file is renamed over ``path``; the folder is fsynced.
    ``before_replace`` runs between the write and the rename.

    Raises:
        RunWriteError: ``path`` or its folder is a link, or the write failed (disk full...); the
            old file, if any, is left as it was and the temporary file is removed.
    """
    path = Path(path)
    what = what or f"'{path}'"
    _check_target(path, what)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY
    try:
        fd = os.open(tmp, flags, 0o666)
        try:
            _write_fd(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise write_error(exc, path.parent, what, len(data), after) from exc
    fsync_dir(path.parent)


def write_text(path: str | Path, text: str, what: str | None = None) -> None:
    """:func:`write_atomic` of UTF-8 text."""
    write_atomic(path, text.encode("utf-8"), what)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    return str(obj)


def to_json(obj: Any, indent: int | None = 2) -> str:
    """``obj`` as JSON text (tuples and sets as lists, anything else unknown as its ``str``)."""
    return json.dumps(obj, indent=indent, sort_keys=False, default=_json_default)


def write_json(path: str | Path, obj: Any, what: str | None = None) -> None:
    """Write ``obj`` as indented JSON atomically (see :func:`write_atomic`)."""
    write_text(path, to_json(obj) + "\n", what)


def make_folder(path: str | Path, what: str | None = None) -> Path:
    """Create the folder ``path`` (and its parents) unless it exists as a real folder.

    Raises:
        RunWriteError: ``path`` is a symbolic link or a file, or it cannot be created.
    """
    path = Path(path)
    what = what or f"the folder '{path}'"
    problem = link_problem(path, "folder")
    if problem is not None:
        raise RunWriteError(f"Cannot write {what}: {problem}")
    if not path.is_dir():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, path, what) from exc
        fsync_dir(path.parent)
    return path


class AppendFile:
    """Appends text to a file of the run folder, never through a symbolic link.

    Args:
        path: the file (created when missing).
        keep_lines: when given, first cut the file back to its first ``keep_lines`` lines, by
            writing the kept lines to a new file renamed over the old (a resumed run drops what
            was logged after its checkpoint).
    """

    def __init__(self, path: str | Path, keep_lines: int | None = None) -> None:
        self.path = Path(path)
        self.lines = 0
        self._fd: int | None = None
        what = f"'{self.path}'"
        _check_target(self.path, what)
        if keep_lines is not None and self.path.exists():
            kept = self._read_lines()[:keep_lines]
            write_atomic(self.path, b"".join(kept), what)
        if self.path.exists():
            self.lines = len(self._read_lines())
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _BINARY
        try:
            self._fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            raise write_error(exc, self.path.parent, what) from exc

    def _read_lines(self) -> list[bytes]:
        fd = os.open(self.path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _BINARY)
        with os.fdopen(fd, "rb") as fh:
            lines = fh.readlines()
        if lines and not lines[-1].endswith(b"\n"):  # a line cut short by a crash or a full disk
            lines.pop()
        return lines

    def write_line(self, text: str) -> None:
        """Append ``text`` and a newline (one ``write`` call, so lines never interleave).

        Raises:
            RunWriteError: the disk is full or the file cannot be written.
        """
        if self._fd is None:
            raise ValueError("write to a closed file")
        data = (text + "\n").encode("utf-8")
        try:
            _write_fd(self._fd, data)
        except OSError as exc:
            raise write_error(exc, self.path.parent, f"'{self.path}'", len(data)) from exc
        self.lines += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class RunLock:
    """One training process per run folder: an exclusive ``flock`` on the folder itself.

    The kernel releases the lock when the process ends, however it ends, so a killed run never
    leaves its folder locked; and no lock file is written, so a refused command leaves the folder
    exactly as it was. Where ``fcntl`` does not exist (Windows) the lock does nothing.

    Raises (from :meth:`acquire`):
        RunLockedError: another process holds the lock; the message gives its process id when
            the system tells it (``/proc/locks`` on Linux).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        except OSError as exc:
            raise write_error(exc, self.folder, f"the run folder '{self.folder}'") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _lock_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"process {holder}" if holder else "another process"
                raise RunLockedError(
                    f"The run folder '{self.folder}' is in use: {who} is training in it; wait "
                    "for it to finish or stop it (one run per folder at a time)."
                ) from None
            return self  # a file system without locks: run unlocked, as before
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_holder(fd: int) -> int | None:
    """The process holding a ``flock`` on the file of ``fd``, from ``/proc/locks`` (Linux)."""
    try:
        st = os.fstat(fd)
        with open("/proc/locks", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == want and parts[4].isdigit():
            return int(parts[4])
    return None
