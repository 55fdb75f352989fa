"""Special output files in tests: a reader for a FIFO.  Shared by test_fsutil and test_cli."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["fifo_reader"]


@contextlib.contextmanager
def fifo_reader(path: Path) -> Iterator[list[bytes]]:
    """Read everything written to the FIFO ``path`` in a thread; the list holds the bytes afterwards.

    On leaving, waits for the writer to close the FIFO (up to 60 s, the machine may be busy); if nothing
    opened it for writing, opens it briefly itself so that the reader returns.
    """
    got: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        thread.join(timeout=60)
        if thread.is_alive():  # nothing opened the FIFO for writing: release the reader
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(timeout=10)
