"""Writing files without losing what is there: atomic replaces, files that change together, checks first.

- A regular file (or a link to one) is replaced atomically: the new bytes go to a temporary file
  in the same folder, then a rename puts it in place. Readers see the old file or the new one;
  on any error the temporary file is removed and the old file stays.
- Several files that belong together (a Markdown report and its figures) are all staged first
  and renamed only once every one of them was written, so a full disk leaves every old file as it was.
- A special file is never replaced: a character device (``/dev/null``, a terminal) or a FIFO with
  a reader is written in place; a FIFO without a reader, a block device, a socket or a folder is
  refused. (Replacing by rename would put a regular file where ``/dev/null`` was.)
- :func:`check_writable` says, before any work, whether a path can be written, so a long sweep
  never ends in an error about where its results should go.

Every refusal is a :class:`WriteError` naming the path and the reason in one line.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import stat
import tempfile
from collections.abc import Mapping

__all__ = ["WriteError", "check_writable", "iso_time", "write_atomic", "write_together"]

PathLike = str | os.PathLike[str]


def iso_time(epoch: float) -> str:
    """A moment as ISO 8601 in UTC to the millisecond (``2026-12-02T09:25:31.120Z``), as files say it."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WriteError(OSError):
    """A file could not be written; the message names the path and why."""


def _describe(kind: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device")):
        if test(kind):
            return name
    return "not a regular file"


def check_writable(path: PathLike) -> None:
    """Raise :class:`WriteError` unless ``path`` can be written as this module writes it."""
    target = os.path.realpath(os.fspath(path))
    shown = os.fspath(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            raise WriteError(f"cannot write {shown}: it is {_describe(mode)}")
        if not os.access(target, os.W_OK):
            raise WriteError(f"cannot write {shown}: permission denied")
        return
    folder = os.path.dirname(target) or "."
    if not os.path.isdir(folder):
        raise WriteError(f"cannot write {shown}: no folder {os.path.dirname(shown) or folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise WriteError(f"cannot write {shown}: the folder {folder} is not writable")


def write_atomic(path: PathLike, data: str | bytes) -> str:
    """Write ``data`` to ``path`` (see the module docstring); returns ``path`` as given."""
    return write_together({path: data})[0]


def write_together(files: Mapping[PathLike, str | bytes]) -> list[str]:
    """Write every file or, on an error, none: staged first, then renamed in order; returns the paths.

    A new file gets mode 0644, a replaced one keeps its mode.
    """
    for path in files:
        check_writable(path)
    staged: list[tuple[str, str]] = []
    special: list[tuple[str, bytes]] = []
    try:
        for path, data in files.items():
            payload = data.encode("utf-8") if isinstance(data, str) else data
            target = os.path.realpath(os.fspath(path))
            if os.path.exists(target) and not os.path.isfile(target):
                special.append((os.fspath(path), payload))
            else:
                staged.append((_stage(os.fspath(path), target, payload), target))
        for shown, payload in special:
            _write_in_place(shown, payload)
        for temporary, target in staged:
            os.replace(temporary, target)
    except BaseException:
        for temporary, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise
    return [os.fspath(path) for path in files]


def _stage(shown: str, target: str, payload: bytes) -> str:
    """The bytes in a temporary file beside ``target``, flushed to disk, with the mode it will have."""
    try:
        mode = os.stat(target).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    # a short prefix of the name: a name near the file system's 255-byte limit must still leave room
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)[:32]}.", suffix=".tmp",
                                         dir=os.path.dirname(target))
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
    except BaseException as exc:  # Ctrl-C too: no temporary file is left behind
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(f"cannot write {shown}: {exc.strerror or exc}") from exc
        raise
    return temporary


def _write_in_place(shown: str, payload: bytes) -> None:
    """Write to a device or a FIFO as it is; a FIFO nobody reads is refused rather than waited on."""
    try:
        handle = os.open(shown, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise WriteError(f"cannot write {shown}: it is a FIFO with no reader") from None
        raise WriteError(f"cannot write {shown}: {exc.strerror or exc}") from exc
    try:
        os.set_blocking(handle, True)
        view = memoryview(payload)
        while view:
            view = view[os.write(handle, view):]
    finally:
        os.close(handle)
