"""The command line: the two main commands, exit codes, overrides, JSON."""

from __future__ import annotations

import json
import os
import select
import socket
import stat
import subprocess
import sys
import threading
import tty
from pathlib import Path
from typing import Any

import pytest

from archspec.cli import main
from conftest import SPECS
from helpers_fs import fifo_reader


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_prints_table_and_totals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "build", str(SPECS / "lenet.yaml"))
    assert code == 0, err
    assert "conv1" in out and "6×28×28" in out
    assert "61,706 parameters" in out


def test_build_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "build", str(SPECS / "googlenet.yaml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["name"] == "googlenet"
    assert data["input_shape"] == [1, 96, 96] and data["output_shape"] == [10]
    assert data["params"] == 5_977_530
    assert data["params"] == sum(n["params"] for n in data["nodes"])
    assert data["macs"] == sum(n["macs"] for n in data["nodes"])
    assert {"name", "op", "output_shape", "params", "macs"} <= set(data["nodes"][0])


def test_build_set_and_input_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "build", str(SPECS / "resnet18.yaml"), "--set", "classes=100", "--input", "3,64,64", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["output_shape"] == [100] and data["input_shape"] == [3, 64, 64]


def test_validate_one_line_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in SPECS.glob("*.yaml"))
    code, out, _ = run(capsys, "validate", *files)
    assert code == 0
    assert len(out.strip().splitlines()) == len(files)
    assert all(": ok," in line for line in out.splitlines())


def test_validate_reports_each_bad_file_and_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\nname: b\ninput: [1, 8, 8]\nlayers: [conv: {out: 4, k: 3}, reluu]\n")
    code, out, err = run(capsys, "validate", str(SPECS / "lenet.yaml"), str(bad))
    assert code == 1
    assert f"{bad}:4:32: error: unknown op or block 'reluu' [E-UNKNOWN-OP]" in err
    assert "did you mean 'relu'?" in err
    assert out.splitlines()[1] == f"{bad}: invalid (1 error)"


@pytest.mark.parametrize(
    "argv",
    [
        ["build"],
        ["frobnicate"],
        ["build", "x.yaml", "--input", "a,b"],
        ["build", "x.yaml", "--input", "1,2"],
        ["build", "x.yaml", "--set", "novalue"],
        [],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_missing_file_and_unknown_override(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "build", str(tmp_path / "nope.yaml"))
    assert code == 1 and "no such file" in err
    code, _, err = run(capsys, "build", str(SPECS / "lenet.yaml"), "--set", "clases=3")
    assert code == 1 and "no top-level parameter 'clases'" in err and "did you mean 'classes'?" in err
    code, _, err = run(capsys, "build", str(SPECS / "lenet.yaml"), "--set", "classes=[1]")
    assert code == 1 and "expected an integer" in err


def test_python_dash_m_and_console_script() -> None:
    proc = subprocess.run([sys.executable, "-m", "archspec", "validate", str(SPECS / "lenet.yaml")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "lenet: ok" in proc.stdout


# --- output files: checked before the work, never an input (see docs/errors.md, "Output files") -------------

DEEP = "archspec: 1\nblocks:\n  act:\n    params: {}\n    layers: [relu]\n"
LIB = "archspec: 1\nimports: [deep.yaml]\nblocks:\n  head:\n    params: {}\n    layers:\n      - linear: {out: 10}\n      - act\n"
NET = "archspec: 1\nname: net\ninput: [4]\nimports: [lib/blocks.yaml]\nlayers:\n  - linear: {out: 8}\n  - head\n"

#: Every command that writes a file: argv for (spec, output).
WRITERS = {
    "build": lambda spec, out: ["build", spec, "--emit-python", out],
    "render": lambda spec, out: ["render", spec, "-o", out, "--format", "dot"],
    "render-svg": lambda spec, out: ["render", spec, "-o", out],
    "export": lambda spec, out: ["export", spec, "-o", out],
}


def _project(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A spec importing a library that imports another: the spec and its inputs, spec first."""
    proj = tmp_path / "proj"
    (proj / "lib").mkdir(parents=True)
    (proj / "lib" / "deep.yaml").write_text(DEEP)
    (proj / "lib" / "blocks.yaml").write_text(LIB)
    (proj / "net.yaml").write_text(NET)
    return proj / "net.yaml", [proj / "net.yaml", proj / "lib" / "blocks.yaml", proj / "lib" / "deep.yaml"]


def _listing(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    out: dict[str, tuple[int, bytes | None]] = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[p.relative_to(folder).as_posix()] = (st.st_mode, p.read_bytes() if p.is_file() and not p.is_symlink() else None)
    return out


def _exit(argv: list[str]) -> int:
    """main()'s status, also when argparse exits."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_the_project_builds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec, _ = _project(tmp_path)
    code, out, err = run(capsys, "build", str(spec))
    assert code == 0 and "head1.linear1" in out, err


@pytest.mark.parametrize("alias", ["same", "relative", "symlink", "hardlink", "dotdot"])
@pytest.mark.parametrize("which", [0, 1, 2], ids=["spec", "import", "nested-import"])
@pytest.mark.parametrize("command", sorted(WRITERS))
def test_no_command_writes_over_the_spec_or_an_import(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, command: str, which: int,
                                                      alias: str) -> None:
    spec, inputs = _project(tmp_path)
    victim = inputs[which]
    if alias == "same":
        target = str(victim)
    elif alias == "relative":
        monkeypatch.chdir(tmp_path)
        target = os.path.relpath(victim)
    elif alias == "symlink":
        (tmp_path / "out.dot").symlink_to(victim)
        target = str(tmp_path / "out.dot")
    elif alias == "hardlink":
        os.link(victim, tmp_path / "out.dot")
        target = str(tmp_path / "out.dot")
    else:
        target = str(victim.parent / ".." / victim.parent.name / victim.name)
    before = _listing(tmp_path)
    code, out, err = run(capsys, *WRITERS[command](str(spec), target))
    assert code == 1, err
    assert out == "", "a refused output must print nothing on stdout"
    assert "Traceback" not in err
    if command == "render-svg" and which != 0 and alias not in ("symlink", "hardlink"):
        assert "[E-FORMAT]" in err  # '-o lib.yaml' without --format: the extension is refused first
    else:
        assert "[E-IO]" in err and "input file" in err
    assert _listing(tmp_path) == before


def _bad_targets(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("f")
    (tmp_path / "loop").symlink_to("loop")
    return {
        "folder": str(tmp_path / "folder"),
        "folder-slash": str(tmp_path / "folder") + "/",
        "missing-folder": str(tmp_path / "missing" / "out.dot"),
        "through-a-file": str(tmp_path / "file" / "out.dot"),
        "link-loop": str(tmp_path / "loop"),
        "empty": "",
    }


@pytest.mark.parametrize("kind", ["folder", "folder-slash", "missing-folder", "through-a-file", "link-loop", "empty"])
@pytest.mark.parametrize("command", sorted(WRITERS))
def test_bad_output_prints_nothing_and_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      command: str, kind: str) -> None:
    target = _bad_targets(tmp_path)[kind]
    before = _listing(tmp_path)
    code, out, err = run(capsys, *WRITERS[command](str(SPECS / "lenet.yaml"), target))
    assert code == 1, err
    assert out == "" and "[E-IO]" in err and "Traceback" not in err
    assert _listing(tmp_path) == before


def test_bad_output_is_refused_before_the_analysis(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Only the output error is reported: the (invalid) spec is not even analysed."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\nname: b\ninput: [1, 8, 8]\nlayers: [reluu]\n")
    for command in sorted(WRITERS):
        code, out, err = run(capsys, *WRITERS[command](str(bad), str(tmp_path)))
        assert code == 1 and out == ""
        assert "[E-IO]" in err and "E-UNKNOWN-OP" not in err, err


def test_unwritable_folder_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Permissions do not stop root, so the folder is made to look unwritable to the check."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **kw: False if os.fspath(p) == str(tmp_path) else real_access(p, m, **kw))
    for command in sorted(WRITERS):
        code, out, err = run(capsys, *WRITERS[command](str(SPECS / "lenet.yaml"), str(tmp_path / "out.dot")))
        assert code == 1 and out == "" and "not writable" in err
    code, out, err = run(capsys, "render", "--gallery", str(tmp_path), str(SPECS / "lenet.yaml"))
    assert code == 1 and out == "" and "not writable" in err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_prints_no_success_table(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    code, out, err = run(capsys, "build", str(SPECS / "lenet.yaml"), "--emit-python", str(tmp_path / "m.py"))
    assert code == 1 and out == "" and "No space left" in err and "wrote" not in err
    assert list(tmp_path.iterdir()) == []


def test_fifo_outputs_are_written_through(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    with fifo_reader(fifo) as got:
        code, out, err = run(capsys, "render", str(SPECS / "lenet.yaml"), "-o", str(fifo), "--format", "dot")
    assert code == 0, err
    assert got and got[0].startswith(b'digraph "lenet"') and out == ""
    with fifo_reader(fifo) as got:
        code, out, err = run(capsys, "build", str(SPECS / "lenet.yaml"), "--emit-python", str(fifo))
    assert code == 0, err
    assert "61,706 parameters" in out and f"wrote {fifo}" in err
    compile(got[0].decode("utf-8"), "emitted.py", "exec")  # a whole module (only compiled, never run)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.fifo"]


def test_terminal_output_is_written_through(capsys: pytest.CaptureFixture[str]) -> None:
    """A pseudo-terminal (from os.openpty) stands for a character device such as /dev/null or a tty."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        path = os.ttyname(slave)
        done = threading.Event()
        chunks: list[bytes] = []

        def read() -> None:
            while not done.is_set():
                if select.select([master], [], [], 0.05)[0]:
                    chunks.append(os.read(master, 65536))

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        code, out, err = run(capsys, "render", str(SPECS / "lenet.yaml"), "-o", path, "--format", "dot")
        for _ in range(200):
            if b"".join(chunks).rstrip().endswith(b"}"):
                break
            threading.Event().wait(0.02)
        done.set()
        thread.join(timeout=10)
    finally:
        os.close(slave)
        os.close(master)
    assert code == 0, err
    assert out == "" and f"{os.path.basename(path)}" not in os.listdir(".")
    assert b"".join(chunks).startswith(b'digraph "lenet"') and b"".join(chunks).rstrip().endswith(b"}")


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002], ids=oct)
def test_output_modes_through_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        assert main(["render", str(SPECS / "lenet.yaml"), "-o", str(tmp_path / "new.dot")]) == 0
        kept = tmp_path / "kept.py"
        kept.write_text("old")
        os.chmod(kept, 0o751)
        assert main(["build", str(SPECS / "lenet.yaml"), "--emit-python", str(kept)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.dot").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(kept.stat().st_mode) == 0o751 and "class Lenet" in kept.read_text()
    link = tmp_path / "link.dot"
    link.symlink_to("new.dot")
    assert main(["render", str(SPECS / "lenet.yaml"), "-o", str(link), "--direction", "LR"]) == 0
    assert link.is_symlink() and 'rankdir="LR"' in (tmp_path / "new.dot").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.py", "link.dot", "new.dot"]


# --- render --gallery over odd folders and into odd places ---------------------------------------------------


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its tmp_path: a relative (or empty) output path can never reach the repository."""
    monkeypatch.chdir(tmp_path)


def _gallery(capsys: pytest.CaptureFixture[str], out: Path | str, *specs: Path | str) -> tuple[int, str, str]:
    return run(capsys, "render", "--gallery", str(out), *map(str, specs))


def test_gallery_into_an_existing_file_or_under_one(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("f")
    (tmp_path / "dangling").symlink_to("nowhere")
    before = _listing(tmp_path)
    for out in [tmp_path / "file", tmp_path / "file" / "gal", tmp_path / "dangling", ""]:
        code, stdout, err = _gallery(capsys, out, SPECS / "lenet.yaml")
        assert code == 1 and stdout == "" and "[E-IO]" in err and "Traceback" not in err, err
    assert _listing(tmp_path) == before


def _odd_folder(tmp_path: Path) -> Path:
    specs = tmp_path / "specs"
    (specs / "sub").mkdir(parents=True)
    (specs / "sub" / "lenet.yaml").write_text((SPECS / "lenet.yaml").read_text())
    (specs / "folder.yaml").mkdir()  # a folder named like a spec: searched, not read
    (specs / "folder.yaml" / "nin.yaml").write_text((SPECS / "nin.yaml").read_text())
    (specs / "notes.yaml").write_text("just: data\n")  # YAML that is not a spec
    (specs / "README.txt").write_text("not yaml")
    (specs / "lib.yaml").write_text(DEEP)  # a block library: no diagram of its own
    (specs / "sub" / "up").symlink_to("..")  # a link loop among folders
    return specs


def test_gallery_skips_what_is_not_a_spec(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    specs = _odd_folder(tmp_path)
    code, out, err = _gallery(capsys, tmp_path / "gal", specs)
    assert code == 0, err
    assert sorted(out.split()) == sorted(str(tmp_path / "gal" / n) for n in
                                         ["folder.yaml/nin.dot", "folder.yaml/nin.svg", "sub/lenet.dot", "sub/lenet.svg",
                                          "index.md"])


def _unreadable(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make ``path`` fail to open with EACCES (root reads any file whatever its mode)."""
    import builtins
    import io

    def guard(real: Any) -> Any:
        def opener(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) == str(path):
                raise PermissionError(13, "Permission denied", str(file))
            return real(file, *args, **kwargs)
        return opener

    for module, name in [(builtins, "open"), (io, "open"), (os, "open")]:
        monkeypatch.setattr(module, name, guard(getattr(module, name)))


@pytest.mark.parametrize("odd", ["broken-link", "fifo", "socket", "invalid-spec", "bad-yaml", "binary", "name-clash",
                                 "missing-spec", "fifo-given", "link-loop", "unreadable"])
def test_gallery_refuses_odd_entries_and_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                        odd: str) -> None:
    specs = _odd_folder(tmp_path)
    extra: list[Path] = []
    if odd == "broken-link":
        (specs / "gone.yaml").symlink_to("nowhere.yaml")
    elif odd == "fifo":
        os.mkfifo(specs / "pipe.yaml")  # never opened: reading it would wait forever
    elif odd == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(specs / "s.yaml"))
    elif odd == "invalid-spec":
        (specs / "bad.yaml").write_text("archspec: 1\nname: bad\ninput: [1, 8, 8]\nlayers: [conv: {out: 4, k: 9}]\n")
    elif odd == "bad-yaml":
        (specs / "broken.yaml").write_text("archspec: 1\nname: [\n")
    elif odd == "binary":
        (specs / "bin.yaml").write_bytes(b"archspec: 1\n\x00\xff\xfe")
    elif odd == "name-clash":
        extra.append(SPECS / "lenet.yaml")
        (specs / "lenet.yaml").write_text((SPECS / "lenet.yaml").read_text())
    elif odd == "missing-spec":
        extra.append(tmp_path / "nope.yaml")
    elif odd == "fifo-given":
        os.mkfifo(tmp_path / "given.yaml")
        extra.append(tmp_path / "given.yaml")
    elif odd == "link-loop":
        (specs / "loop.yaml").symlink_to("loop.yaml")
    else:
        (specs / "locked.yaml").write_text((SPECS / "lenet.yaml").read_text().replace("name: lenet", "name: locked"))
    gal = tmp_path / "gal"
    gal.mkdir()
    assert main(["render", "--gallery", str(gal), str(SPECS / "lenet.yaml")]) == 0  # an existing gallery
    capsys.readouterr()
    before = _listing(tmp_path)
    locks = pytest.MonkeyPatch()  # its own patcher: undoing it leaves the autouse chdir in place
    if odd == "unreadable":
        _unreadable(locks, (specs / "locked.yaml").resolve())
    try:
        code, out, err = _gallery(capsys, gal, specs, *extra)
    finally:
        locks.undo()
    assert code == 1, err
    assert out == "" and "Traceback" not in err and "error:" in err
    if odd == "unreadable":
        assert "locked.yaml" in err and "Permission denied" in err, err
    assert _listing(tmp_path) == before, "a failed gallery must leave the folder as it was"
    if odd == "socket":
        sock.close()


def test_gallery_reports_every_problem_at_once(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    specs = _odd_folder(tmp_path)
    (specs / "gone.yaml").symlink_to("nowhere.yaml")
    os.mkfifo(specs / "pipe.yaml")
    (specs / "bad.yaml").write_text("archspec: 1\nname: bad\ninput: [1, 8, 8]\nlayers: [reluu]\n")
    code, out, err = _gallery(capsys, tmp_path / "gal", specs)
    assert code == 1 and out == ""
    assert "gone.yaml': it is a broken symbolic link" in err and "pipe.yaml': it is a FIFO" in err
    assert "bad.yaml:4:" in err and "[E-UNKNOWN-OP]" in err
    assert not (tmp_path / "gal").exists()


def test_gallery_never_overwrites_an_input_or_a_foreign_index(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "g"
    folder.mkdir()
    spec = folder / "net.svg"  # a spec file whose diagram would be itself
    spec.write_text((SPECS / "lenet.yaml").read_text())
    before = _listing(tmp_path)
    code, out, err = _gallery(capsys, folder, spec)
    assert code == 1 and out == "" and "input file" in err
    assert _listing(tmp_path) == before
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "index.md").write_text("# My notes\n")
    code, out, err = _gallery(capsys, notes, SPECS / "lenet.yaml")
    assert code == 1 and out == "" and "not an archspec gallery index" in err
    assert [p.name for p in notes.iterdir()] == ["index.md"] and (notes / "index.md").read_text() == "# My notes\n"


def test_gallery_keeps_dotted_names_apart(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ["net.v1", "net.v2"]:
        (specs / f"{name}.yaml").write_text((SPECS / "lenet.yaml").read_text().replace("name: lenet", "name: net"))
    code, out, err = _gallery(capsys, tmp_path / "gal", specs)
    assert code == 0, err
    names = ["index.md", "net.v1.dot", "net.v1.svg", "net.v2.dot", "net.v2.svg"]
    assert sorted(p.name for p in (tmp_path / "gal").iterdir()) == names
    assert sorted(out.split()) == sorted(str(tmp_path / "gal" / n) for n in names)


def test_gallery_prunes_only_what_its_old_index_listed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "sub").mkdir(parents=True)
    mine = {"mine.svg": "<svg/>", "mine.dot": "digraph {}", "sub/other.dot": "digraph {}"}
    for name, text in mine.items():
        (plain / name).write_text(text)
    outside = tmp_path / "outside.svg"
    outside.write_text("<svg/>")
    assert _gallery(capsys, plain, SPECS / "lenet.yaml", SPECS / "vgg11.yaml")[0] == 0
    assert all((plain / name).read_text() == text for name, text in mine.items())
    with (plain / "index.md").open("a") as fh:  # a hand-edited index must not reach outside the folder
        fh.write("\n![x](../outside.svg)\n\n![y](/etc/hosts.svg)\n")
    assert _gallery(capsys, plain, SPECS / "nin.yaml", SPECS / "vgg11.yaml")[0] == 0
    names = sorted(p.relative_to(plain).as_posix() for p in plain.rglob("*"))
    assert names == ["index.md", "mine.dot", "mine.svg", "nin.dot", "nin.svg", "sub", "sub/other.dot", "vgg11.dot",
                     "vgg11.svg"]
    assert outside.exists()


def test_gallery_into_the_current_folder_never_touches_other_files(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path) -> None:
    """'--gallery .' in a folder that already holds a gallery (twice), and '--gallery ""' (refused)."""
    (tmp_path / "keep" / "deep").mkdir(parents=True)
    for name in ["keep/a.dot", "keep/deep/b.svg", "c.svg"]:
        (tmp_path / name).write_text("mine")
    assert _gallery(capsys, ".", SPECS / "lenet.yaml")[0] == 0
    assert _gallery(capsys, ".", SPECS / "nin.yaml")[0] == 0
    assert _gallery(capsys, "", SPECS / "lenet.yaml")[0] == 1
    assert all((tmp_path / n).read_text() == "mine" for n in ["keep/a.dot", "keep/deep/b.svg", "c.svg"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.svg", "index.md", "keep", "nin.dot", "nin.svg"]


# --- numeric options: usage errors, never a traceback or a huge allocation ------------------------------------


@pytest.mark.parametrize("argv", [
    ["summary", "{spec}", "--batch-size", str(10**30)],
    ["summary", "{spec}", "--batch-size", "65537"],
    ["summary", "{spec}", "--batch-size", "-1"],
    ["summary", "{spec}", "--batch-size", "9" * 5000],
    ["export", "{spec}", "-o", "{out}", "--batch-size", str(10**30)],
    ["export", "{spec}", "-o", "{out}", "--batch-size", "0"],
    ["export", "{spec}", "-o", "{out}", "--opset", str(10**20)],
    ["export", "{spec}", "-o", "{out}", "--opset", "0"],
    ["build", "{spec}", "--max-params", "-5"],
    ["build", "{spec}", "--max-params", "9" * 5000],
    ["render", "{spec}", "--depth", "9" * 5000],
    ["summary", "{spec}", "--depth", "-3"],
], ids=lambda argv: "-".join(a[:12] for a in argv[::2]))
def test_numeric_options_out_of_range_are_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       argv: list[str]) -> None:
    args = [a.format(spec=SPECS / "lenet.yaml", out=tmp_path / "m.onnx") for a in argv]
    assert _exit(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err and "error:" in err
    assert list(tmp_path.iterdir()) == []


def test_huge_example_input_is_a_located_limit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "wide.yaml"
    spec.write_text("archspec: 1\nname: wide\ninput: [3, 64, 64]\nlayers: [relu]\n")
    code, out, err = run(capsys, "export", str(spec), "-o", str(tmp_path / "m.onnx"), "--batch-size", "65536")
    assert code == 1 and out == ""
    assert f"{spec}:1:1: error:" in err and "[E-LIMIT]" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.yaml"]
