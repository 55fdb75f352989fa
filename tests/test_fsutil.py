"""Output files (archspec.fsutil): atomic regular files, modes, links, FIFOs, devices, and never an input.

Every target here lives in ``tmp_path``, except the pseudo-terminal from ``os.openpty()`` (a character
device made for the test).  The tests run as root in CI, where permission bits do not stop a write, so
refusals of unwritable targets are tested through the check itself (``os.access``), not through EACCES.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import tempfile
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archspec.errors import ArchspecError
from archspec.fsutil import check_output, check_output_dir, mkdirs, write_atomic
from helpers_fs import fifo_reader

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its tmp_path: a relative output path can never reach the repository."""
    monkeypatch.chdir(tmp_path)


def _codes(exc: pytest.ExceptionInfo[ArchspecError]) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


def _refused(fn: object, *args: object, **kwargs: object) -> str:
    """Call ``fn``; it must raise an E-IO ArchspecError; return the message."""
    with pytest.raises(ArchspecError) as exc:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert _codes(exc) == ["E-IO"], exc.value
    return str(exc.value)


def _listing(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Name → (mode, content of regular files) for everything in ``folder`` (links not followed)."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for p in sorted(folder.rglob("*")):
        st_ = p.lstat()
        out[p.relative_to(folder).as_posix()] = (st_.st_mode, p.read_bytes() if stat.S_ISREG(st_.st_mode) else None)
    return out


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.contextmanager
def pty_device() -> Iterator[tuple[str, list[bytes]]]:
    """A pseudo-terminal (a character device) in raw mode: its path and what was written to it."""
    master, slave = os.openpty()
    tty.setraw(slave)
    got: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    got.append(os.read(master, 65536))
                except OSError:
                    return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave), got
    finally:
        stop.set()
        thread.join(timeout=10)
        os.close(slave)
        os.close(master)


def _wait_for(got: list[bytes], size: int) -> bytes:
    for _ in range(200):
        if len(b"".join(got)) >= size:
            break
        threading.Event().wait(0.02)
    return b"".join(got)


# --- regular files: whole or nothing, modes ---------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027, 0o000, 0o777], ids=oct)
def test_new_file_gets_0666_minus_umask(tmp_path: Path, mask: int) -> None:
    target = tmp_path / "new.dot"
    with umask(mask):
        write_atomic(target, "digraph {}\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["new.dot"]


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640, 0o660, 0o755, 0o777, 0o604, 0o4755, 0o2750], ids=oct)
@pytest.mark.parametrize("mask", [0o022, 0o077], ids=oct)
def test_existing_file_keeps_its_permission_bits(tmp_path: Path, mode: int, mask: int) -> None:
    target = tmp_path / "model.py"
    target.write_text("old\n")
    os.chmod(target, mode)
    with umask(mask):
        write_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == mode & 0o777  # set-ID bits are dropped, the umask ignored
    assert [p.name for p in tmp_path.iterdir()] == ["model.py"]


@SETTINGS
@given(mask=st.integers(0, 0o777), mode=st.one_of(st.none(), st.integers(0, 0o7777)), data=st.binary(max_size=3000))
def test_modes_and_content_property(tmp_path: Path, mask: int, mode: int | None, data: bytes) -> None:
    """Any umask, any previous mode (owner-writable): exact content, the right mode, no leftovers."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    target = folder / "out.bin"
    if mode is not None:
        target.write_bytes(b"previous")
        os.chmod(target, mode | 0o200)
    with umask(mask):
        write_atomic(target, data)
    assert target.read_bytes() == data
    want = 0o666 & ~mask if mode is None else (mode | 0o200) & 0o777
    assert stat.S_IMODE(target.stat().st_mode) == want
    assert [p.name for p in folder.iterdir()] == ["out.bin"]


@SETTINGS
@given(name=st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), max_size=300))
def test_any_file_name_is_written_or_refused_with_e_io(tmp_path: Path, name: str) -> None:
    """Odd names ('', '.', '..', NUL, very long ones) never raise anything but E-IO, and never leave temp files."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    before = _listing(tmp_path)
    try:
        write_atomic(folder / name if name else "", "x")
    except ArchspecError as exc:
        assert [d.code for d in exc.diagnostics] == ["E-IO"]
        assert _listing(tmp_path) == before  # '..' is refused as a folder, not written
    else:
        assert [p.name for p in folder.iterdir()] == [name]
        assert (folder / name).read_text() == "x"


def test_unencodable_and_non_path_targets_are_e_io(tmp_path: Path) -> None:
    _refused(write_atomic, str(tmp_path / "a\udcffb\ud800"), "x")
    _refused(write_atomic, 42, "x")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_failed_replace_keeps_mode_and_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "g.svg"
    target.write_text("old")
    os.chmod(target, 0o640)

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    assert "No space left" in _refused(write_atomic, target, "new" * 1000)
    assert target.read_text() == "old" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["g.svg"]


# --- symbolic and hard links --------------------------------------------------------------------------


def test_symlink_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "model.py"
    target.write_text("old")
    os.chmod(target, 0o640)
    link = tmp_path / "link.py"
    link.symlink_to(Path("real") / "model.py")  # relative, resolved from the link's folder
    chain = tmp_path / "chain.py"
    chain.symlink_to(link)
    write_atomic(chain, "new")
    assert chain.is_symlink() and link.is_symlink()
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in real_dir.iterdir()) == ["model.py"]  # the temporary file was beside the target


def test_dangling_symlink_creates_its_target_and_a_loop_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "out.dot"
    link.symlink_to("made.dot")
    write_atomic(link, "digraph {}")
    assert link.is_symlink() and (tmp_path / "made.dot").read_text() == "digraph {}"
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    _refused(write_atomic, tmp_path / "a", "x")
    link_to_dir = tmp_path / "d"
    link_to_dir.symlink_to(tmp_path)
    assert "folder" in _refused(write_atomic, link_to_dir, "x")
    (tmp_path / "gone").symlink_to(tmp_path / "no" / "such" / "x.dot")
    _refused(write_atomic, tmp_path / "gone", "x")
    assert not (tmp_path / "no").exists()


def test_hard_link_of_another_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    """A plain output with a second name: the given name gets the new file; the other name keeps the old bytes."""
    target = tmp_path / "out.dot"
    target.write_text("old")
    other = tmp_path / "other.dot"
    os.link(target, other)
    write_atomic(target, "new")
    assert target.read_text() == "new" and other.read_text() == "old"


# --- inputs are never written ---------------------------------------------------------------------------


def _input_aliases(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A spec file and paths that name the same file: relative, symlinked, hard-linked, through a linked folder."""
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = specs / "net.yaml"
    spec.write_text("archspec: 1\n")
    (tmp_path / "sym.py").symlink_to(spec)
    os.link(spec, tmp_path / "hard.py")
    (tmp_path / "linked").symlink_to(specs)
    dotted = tmp_path / "specs" / "." / "net.yaml"
    return spec, [spec, dotted, tmp_path / "sym.py", tmp_path / "hard.py", tmp_path / "linked" / "net.yaml",
                  Path(os.path.relpath(spec))]


def test_no_alias_of_an_input_is_written(tmp_path: Path) -> None:
    spec, aliases = _input_aliases(tmp_path)
    before = _listing(tmp_path)
    for alias in aliases:
        for protect in [(spec,), (str(spec),), (tmp_path / "sym.py",), (Path(os.path.relpath(spec)),)]:
            msg = _refused(write_atomic, alias, "generated", protect=protect)
            assert "input file" in msg
            _refused(check_output, alias, protect=protect)
    assert _listing(tmp_path) == before


def test_protect_with_missing_or_odd_entries_still_checks_the_rest(tmp_path: Path) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text("archspec: 1\n")
    _refused(write_atomic, spec, "x", protect=(tmp_path / "missing.yaml", "", spec))
    write_atomic(tmp_path / "out.dot", "x", protect=(tmp_path / "missing.yaml", spec))
    assert spec.read_text() == "archspec: 1\n"


# --- FIFOs and character devices: written through, never replaced ------------------------------------------


@pytest.mark.parametrize("size", [0, 10, 1 << 20])
def test_fifo_is_written_through(tmp_path: Path, size: int) -> None:
    fifo = tmp_path / "out.dot"
    os.mkfifo(fifo)
    payload = bytes(i % 251 for i in range(size))
    assert check_output(fifo).kind == "fifo"
    with fifo_reader(fifo) as got:
        target = write_atomic(fifo, payload)
    assert target.kind == "fifo"
    assert got == [payload]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.dot"]


def test_symlink_to_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "out.svg"
    link.symlink_to(fifo)
    with fifo_reader(fifo) as got:
        write_atomic(link, "<svg/>")
    assert got == [b"<svg/>"] and link.is_symlink() and stat.S_ISFIFO(fifo.stat().st_mode)


def test_fifo_whose_reader_leaves_is_e_io(tmp_path: Path) -> None:
    fifo = tmp_path / "out.dot"
    os.mkfifo(fifo)

    def read_one_byte() -> None:
        with open(fifo, "rb") as fh:
            fh.read(1)

    thread = threading.Thread(target=read_one_byte, daemon=True)
    thread.start()
    msg = _refused(write_atomic, fifo, b"x" * (4 << 20))  # the reader closes long before 4 MiB fit the pipe
    thread.join(timeout=30)
    assert "Broken pipe" in msg and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_character_device_is_written_through() -> None:
    with pty_device() as (path, got):
        assert stat.S_ISCHR(os.stat(path).st_mode)
        assert check_output(path).kind == "chardev"
        write_atomic(path, "digraph {}\n")
        assert _wait_for(got, 11) == b"digraph {}\n"
        assert stat.S_ISCHR(os.stat(path).st_mode)


def test_input_fifo_is_protected_too(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    _refused(write_atomic, fifo, "x", protect=(fifo,))  # refused without opening (no reader: it would block)


# --- refused targets -----------------------------------------------------------------------------------


def test_directory_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "keep").write_text("k")
    before = _listing(tmp_path)
    for target in [tmp_path, tmp_path / "sub", tmp_path / "sub" / "..", str(tmp_path / "sub") + "/"]:
        assert "folder" in _refused(write_atomic, target, "x")
    assert _listing(tmp_path) == before


def test_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        assert "socket" in _refused(write_atomic, path, "x")
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_block_device_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may make a device node; the check is given a stat result of one instead."""
    path = tmp_path / "disk"
    path.write_text("")
    real_stat = os.stat

    def fake_stat(p: object, *args: object, **kwargs: object) -> os.stat_result:
        result = real_stat(p, *args, **kwargs)  # type: ignore[arg-type]
        if os.fspath(p) == str(path):  # type: ignore[arg-type]
            fields = list(result)
            fields[0] = stat.S_IFBLK | 0o660
            return os.stat_result(fields)
        return result

    monkeypatch.setattr(os, "stat", fake_stat)
    assert "block device" in _refused(write_atomic, path, "x")
    monkeypatch.undo()
    assert path.read_text() == ""


def test_missing_folder_and_path_through_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("f")
    before = _listing(tmp_path)
    assert "does not exist" in _refused(write_atomic, tmp_path / "no" / "x.dot", "x")
    _refused(write_atomic, tmp_path / "file" / "x.dot", "x")
    _refused(check_output, tmp_path / "file" / "sub" / "x.dot", parents=True)
    assert _listing(tmp_path) == before


def test_unwritable_folder_and_read_only_file_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What os.access says decides (as root everything is writable, so the denial is simulated)."""
    existing = tmp_path / "ro.dot"
    existing.write_text("old")
    real_access = os.access
    denied = {str(tmp_path), str(existing)}
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) in denied else real_access(p, mode, **kw))
    assert "not writable" in _refused(write_atomic, tmp_path / "new.dot", "x")
    assert "read-only" in _refused(write_atomic, existing, "x")
    assert "not writable" in _refused(check_output_dir, tmp_path)
    assert "not writable" in _refused(check_output, tmp_path / "a" / "b" / "c.dot", parents=True)
    assert [p.name for p in tmp_path.iterdir()] == ["ro.dot"] and existing.read_text() == "old"


# --- check_output / check_output_dir / mkdirs ------------------------------------------------------------


def test_check_output_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "old.dot").write_text("old")
    before = _listing(tmp_path)
    assert check_output(tmp_path / "new.dot").kind == "new"
    target = check_output(tmp_path / "old.dot")
    assert target.kind == "file" and target.mode == stat.S_IMODE((tmp_path / "old.dot").stat().st_mode)
    assert check_output(tmp_path / "x" / "y" / "z.dot", parents=True).kind == "new"
    check_output_dir(tmp_path / "new" / "gallery")
    check_output_dir(tmp_path)
    assert _listing(tmp_path) == before


def test_check_output_dir_refuses_files_and_broken_links(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("f")
    (tmp_path / "dangling").symlink_to("nowhere")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = _listing(tmp_path)
    assert "not a folder" in _refused(check_output_dir, tmp_path / "file")
    assert "broken symbolic link" in _refused(check_output_dir, tmp_path / "dangling")
    assert "not a folder" in _refused(check_output_dir, fifo)
    _refused(check_output_dir, tmp_path / "file" / "sub")
    _refused(check_output_dir, "")
    _refused(mkdirs, tmp_path / "file" / "sub")
    assert _listing(tmp_path) == before
