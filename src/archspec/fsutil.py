"""Output files appear whole or not at all: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ArchspecError

__all__ = ["write_atomic"]


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, protect: tuple[str | os.PathLike[str], ...] = ()) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + ``os.replace``).

    ``protect`` lists input files that must never be overwritten (e.g. the spec being compiled).
    Raises :class:`ArchspecError` (code ``E-IO``) on failure; no partial file is left behind.
    """
    target = Path(path)
    for p in protect:
        try:
            if target.exists() and target.resolve() == Path(p).resolve():
                raise ArchspecError.single("E-IO", f"refusing to overwrite the input file '{p}' with output")
        except OSError:
            pass
    payload = data.encode("utf-8") if isinstance(data, str) else data
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ArchspecError.single("E-IO", f"cannot write '{target}': {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ArchspecError.single("E-IO", f"cannot write '{target}': {exc.strerror or exc}") from None
