"""Output files: checked before the work, written whole or not at all, never over an input.

Rules (see docs/errors.md, "Output files"):

* A **regular file** (or a new one) is written to a temporary file in the same directory and renamed
  over the target with ``os.replace``: a failure leaves the old file (or nothing) and no temporary
  file.  An existing file keeps its permission bits (``rwx``; set-user/group-ID bits are dropped);
  a new file gets ``0o666 & ~umask``, like any file a shell redirection creates.
* A **symbolic link** is followed: its target is written and the link stays a link.
* A **FIFO** or a **character device** (a terminal, ``/dev/null``) is opened and written through, never
  replaced; opening a FIFO waits for a reader, as a shell redirection does.
* A **directory**, a block device, a socket or any other kind of file is refused.
* A file that the command **read** — the spec and every file it imports, compared as the same file
  (:func:`os.path.samefile`: through symbolic and hard links) or the same real path — is never written.

Every problem is an :class:`~archspec.errors.ArchspecError` with code ``E-IO``.  :func:`check_output`
runs these checks without writing, so a command checks its targets before doing any work.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ArchspecError, Diagnostic

__all__ = ["OutputTarget", "check_output", "check_output_dir", "mkdirs", "write_atomic"]

Protect = Iterable[str | os.PathLike[str]]


@dataclass(frozen=True)
class OutputTarget:
    """A checked output: the path as given, the real path written, and what is there now.

    ``kind`` is ``"new"`` (nothing there yet), ``"file"`` (a regular file, replaced atomically),
    ``"fifo"`` or ``"chardev"`` (written through); ``mode`` is an existing file's permission bits.
    """

    path: str
    real: str
    kind: str
    mode: int | None = None


def _error(message: str, hint: str | None = None) -> ArchspecError:
    return ArchspecError([Diagnostic("E-IO", message, hint=hint)])


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _is_input(target: str, real: str, protect: Protect) -> str | None:
    """The protected path that ``target`` is the same file as (or would replace), else None."""
    for p in protect:
        try:
            if os.path.samefile(target, p):
                return os.fspath(p)
        except (OSError, ValueError):
            pass
        try:
            if os.path.realpath(p) == real:
                return os.fspath(p)
        except (OSError, ValueError):
            pass
    return None


def _checked_path(path: str | os.PathLike[str], what: str) -> str:
    """``path`` as a string, refusing what no file system call accepts (empty, NUL, unencodable)."""
    try:
        shown = os.fspath(path)
        if isinstance(shown, bytes):
            shown = os.fsdecode(shown)
    except TypeError:
        raise _error(f"{what} must be a path, got {type(path).__name__}") from None
    if not shown:
        raise _error(f"{what} is empty")
    if "\0" in shown:
        raise _error(f"{what} {shown!r} contains a NUL character")
    try:
        os.fsencode(shown)
    except UnicodeError:
        raise _error(f"{what} {shown!r} cannot be encoded for the file system") from None
    return shown


def _nearest_existing(directory: str) -> str:
    """``directory`` or its nearest ancestor that exists (for a target whose folders are still to be made)."""
    d = directory
    while not os.path.lexists(d):
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return d


def _check_dir(directory: str, shown: str, *, parents: bool) -> None:
    """The folder a new file is created in exists (or, with ``parents``, can be made) and is writable."""
    where = _nearest_existing(directory) if parents else directory
    try:
        st = os.stat(where)
    except FileNotFoundError:
        folder = os.path.dirname(shown) or directory
        raise _error(f"cannot write '{shown}': the folder '{folder}' does not exist",
                     hint="create the folder first, or give another output path") from None
    except OSError as exc:
        raise _error(f"cannot write '{shown}': '{where}': {_why(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise _error(f"cannot write '{shown}': '{where}' is not a folder")
    if not os.access(where, os.W_OK | os.X_OK):
        raise _error(f"cannot write '{shown}': the folder '{where}' is not writable")


def check_output(path: str | os.PathLike[str], *, protect: Protect = (), parents: bool = False) -> OutputTarget:
    """Check that ``path`` may be written, without writing it; return what is there.

    Refuses (``E-IO``) an empty path, a directory, a block device, socket or other special file, a
    missing or unwritable folder (with ``parents``, missing folders that can be made are fine), an
    existing file that is not writable, and any file in ``protect`` (the command's inputs).
    Symbolic links are followed.
    """
    shown = _checked_path(path, "the output path")
    protect = tuple(protect)
    real = os.path.realpath(shown)
    try:
        st = os.stat(shown)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # a symbolic link loop, a path through a file, a name too long …
        raise _error(f"cannot write '{shown}': {_why(exc)}") from None
    hit = _is_input(shown, real, protect)
    if hit is not None:
        raise _error(f"refusing to write output to '{shown}': it is the input file '{hit}'",
                     hint="give an output path that is not the spec or a file it imports")
    if st is None:
        _check_dir(os.path.dirname(real) or ".", shown, parents=parents)
        return OutputTarget(shown, real, "new")
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise _error(f"cannot write '{shown}': it is a folder", hint="give a file name (inside the folder)")
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        if not os.access(real, os.W_OK):
            raise _error(f"cannot write '{shown}': permission denied")
        return OutputTarget(shown, real, "fifo" if stat.S_ISFIFO(mode) else "chardev")
    if not stat.S_ISREG(mode):
        kind = "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise _error(f"refusing to write output to '{shown}': it is {kind}")
    if not os.access(real, os.W_OK):
        raise _error(f"cannot write '{shown}': the file is read-only")
    _check_dir(os.path.dirname(real) or ".", shown, parents=False)
    return OutputTarget(shown, real, "file", stat.S_IMODE(mode) & 0o777)


def check_output_dir(path: str | os.PathLike[str]) -> None:
    """Check that ``path`` is a writable folder, or can be made as one (``E-IO`` otherwise)."""
    shown = _checked_path(path, "the output folder")
    try:
        st = os.stat(shown)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _error(f"cannot write into '{shown}': {_why(exc)}") from None
    if st is None:
        if os.path.islink(shown):
            raise _error(f"cannot write into '{shown}': it is a broken symbolic link")
        real = os.path.realpath(shown)
        _check_dir(os.path.dirname(real) or ".", shown, parents=True)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise _error(f"cannot write into '{shown}': it exists and is not a folder",
                     hint="give a folder (it is created if missing)")
    if not os.access(shown, os.W_OK | os.X_OK):
        raise _error(f"cannot write into '{shown}': the folder is not writable")


def _write_through(target: OutputTarget, payload: bytes) -> bool:
    """Write into an existing FIFO or character device; False if it has become a regular file meanwhile."""
    try:
        fd = os.open(target.real, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _error(f"cannot write '{target.path}': {_why(exc)}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            return False
        if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            raise _error(f"refusing to write output to '{target.path}': it is not a regular file")
        view = memoryview(payload)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as exc:
        raise _error(f"cannot write '{target.path}': {_why(exc)}") from None
    finally:
        os.close(fd)
    return True


def _temp_beside(real: str) -> tuple[int, str]:
    """Create a new temporary file beside ``real`` with mode ``0o666 & ~umask`` (the kernel applies the umask)."""
    directory, name = os.path.split(real)
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary file name")


def _replace(target: OutputTarget, payload: bytes) -> None:
    """Write a regular file atomically: a temporary file in the same folder, then ``os.replace``."""
    try:
        fd, tmp = _temp_beside(target.real)
    except OSError as exc:
        raise _error(f"cannot write '{target.path}': {_why(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            if target.mode is not None:
                try:
                    st = os.stat(target.real)
                    os.fchown(fh.fileno(), st.st_uid, st.st_gid)  # keep the owner where allowed (e.g. as root)
                except OSError:
                    pass
                os.fchmod(fh.fileno(), target.mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target.real)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _error(f"cannot write '{target.path}': {_why(exc)}") from None


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, protect: Protect = ()) -> OutputTarget:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` following the module's rules; return the target.

    A regular file is replaced atomically, keeping its permission bits (a new one gets ``0o666 & ~umask``);
    a symbolic link's target is written; a FIFO or character device is written through; ``protect``
    lists the command's input files, which are never written.  Raises :class:`ArchspecError` (``E-IO``);
    on failure no partial or temporary file is left behind.
    """
    protect = tuple(protect)
    target = check_output(path, protect=protect)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if target.kind in ("fifo", "chardev") and _write_through(target, payload):
        return target
    if target.kind in ("fifo", "chardev"):  # replaced by a regular file between the check and the write
        target = check_output(path, protect=protect)
        if target.kind != "file":
            raise _error(f"cannot write '{target.path}': it changed while being written")
    _replace(target, payload)
    return target


def mkdirs(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p`` with ``E-IO`` instead of an ``OSError``; return the path."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(f"cannot create the folder '{p}': {_why(exc)}") from None
    return p
