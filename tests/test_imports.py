"""Imports under attack: confined to the project, each file validated once, bounded in depth,
and no error ever prints a file that is not a spec."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import archspec
from archspec import imports as imports_mod
from archspec.errors import ArchspecError
from archspec.imports import MAX_IMPORT_DEPTH

LIB = "archspec: 1\nblocks:\n  unit:\n    params: {c: null}\n    layers:\n      - conv: {out: $c, k: 3, pad: 1}\n      - relu\n"


def _spec(imports: str, body: str = "  - unit: {c: 4}\n") -> str:
    return f"archspec: 1\nname: net\nimports: {imports}\ninput: [3, 8, 8]\nlayers:\n{body}"


def _diag(exc: pytest.ExceptionInfo[ArchspecError]) -> archspec.Diagnostic:
    return exc.value.diagnostics[0]


def test_import_inside_the_tree_works(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.yaml").write_text(LIB, encoding="utf-8")
    spec = tmp_path / "net.yaml"
    spec.write_text(_spec("[lib/blocks.yaml]"), encoding="utf-8")
    assert archspec.analyze(spec).output_shape == (4, 8, 8)


@pytest.mark.parametrize("target", ["/etc/passwd", "/etc/hostname", "../outside.yaml", "../../outside.yaml"])
def test_import_outside_the_tree_is_refused_without_reading_it(tmp_path: Path, target: str) -> None:
    project = tmp_path / "a" / "b"
    project.mkdir(parents=True)
    (tmp_path / "outside.yaml").write_text(LIB, encoding="utf-8")
    (tmp_path / "a" / "outside.yaml").write_text(LIB, encoding="utf-8")
    spec = project / "net.yaml"
    spec.write_text(_spec(f"[{target}]"), encoding="utf-8")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(spec)
    d = _diag(exc)
    assert d.code == "E-IMPORT" and "outside the spec's directory tree" in d.message
    assert (d.span.line, d.span.column) == (3, 11)
    assert "root:" not in str(exc.value)


def test_symlink_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "lib.yaml").write_text(LIB, encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    (project / "lib.yaml").symlink_to(outside / "lib.yaml")
    spec = project / "net.yaml"
    spec.write_text(_spec("[lib.yaml]"), encoding="utf-8")
    with pytest.raises(ArchspecError, match="outside the spec's directory tree"):
        archspec.analyze(spec)
    # The user may allow the other folder explicitly.
    assert archspec.analyze(spec, import_roots=[outside]).output_shape == (4, 8, 8)
    assert archspec.build(spec, import_roots=[str(outside)]) is not None


def test_a_sibling_folder_with_a_common_prefix_is_outside(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj2").mkdir()
    (tmp_path / "proj2" / "lib.yaml").write_text(LIB, encoding="utf-8")
    spec = tmp_path / "proj" / "net.yaml"
    spec.write_text(_spec("[../proj2/lib.yaml]"), encoding="utf-8")
    with pytest.raises(ArchspecError, match="outside"):
        archspec.analyze(spec)


@pytest.mark.parametrize("name", ["notes.txt", "lib", "lib.yaml.bak", "lib.py"])
def test_only_yaml_files_are_imported(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("secret: [1, 2, 3]\n", encoding="utf-8")
    spec = tmp_path / "net.yaml"
    spec.write_text(_spec(f"['{name}']"), encoding="utf-8")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(spec)
    assert _diag(exc).code == "E-IMPORT" and "secret" not in str(exc.value)


@pytest.mark.parametrize("entry", ['"a\\0b.yaml"', '""', '"   "'])
def test_odd_import_paths_are_errors_not_tracebacks(tmp_path: Path, entry: str) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(_spec(f"[{entry}]"), encoding="utf-8")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(spec)
    assert _diag(exc).code == "E-IMPORT"


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    spec = tmp_path / "net.yaml"
    spec.write_text(_spec("[pipe.yaml]"), encoding="utf-8")
    with pytest.raises(ArchspecError, match="not a regular file"):
        archspec.analyze(spec)


def test_diamond_of_imports_validates_each_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ladder of diamonds: level k imports both files of level k+1.  Without sharing, the
    bottom file would be validated 2**levels times."""
    levels = 12
    (tmp_path / f"l{levels}a.yaml").write_text(LIB, encoding="utf-8")
    (tmp_path / f"l{levels}b.yaml").write_text(LIB.replace("unit", "unit2"), encoding="utf-8")
    for k in range(levels - 1, 0, -1):
        for side in "ab":
            (tmp_path / f"l{k}{side}.yaml").write_text(
                f"archspec: 1\nimports: [l{k + 1}a.yaml, l{k + 1}b.yaml]\nblocks:\n  b{k}{side}:\n    layers: [relu]\n",
                encoding="utf-8")
    spec = tmp_path / "net.yaml"
    spec.write_text(_spec("[l1a.yaml, l1b.yaml]"), encoding="utf-8")
    calls: list[str] = []
    real = imports_mod.read_file

    def counting(path: object) -> object:
        calls.append(str(path))
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(imports_mod, "read_file", counting)
    assert archspec.analyze(spec).output_shape == (4, 8, 8)
    assert len(calls) == len(set(calls)) == 2 * levels


def test_long_import_chain_is_a_limit_not_a_crash(tmp_path: Path) -> None:
    n = MAX_IMPORT_DEPTH + 5
    for k in range(n):
        nxt = f"imports: [c{k + 1}.yaml]\n" if k + 1 < n else ""
        (tmp_path / f"c{k}.yaml").write_text(f"archspec: 1\n{nxt}blocks:\n  b{k}:\n    layers: [relu]\n", encoding="utf-8")
    spec = tmp_path / "net.yaml"
    spec.write_text(_spec("[c0.yaml]", "  - b0\n"), encoding="utf-8")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(spec)
    assert "E-LIMIT" in {d.code for d in exc.value.diagnostics}
    assert f"deeper than {MAX_IMPORT_DEPTH}" in str(exc.value)


def test_yaml_text_imports_resolve_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lib.yaml").write_text(LIB, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert archspec.analyze(_spec("[lib.yaml]")).output_shape == (4, 8, 8)
    with pytest.raises(ArchspecError, match="outside"):
        archspec.analyze(_spec("[/etc/passwd]"))


def test_cli_import_root_allows_a_named_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from archspec.cli import main

    (tmp_path / "lib").mkdir()
    (tmp_path / "nets").mkdir()
    (tmp_path / "lib" / "blocks.yaml").write_text(LIB, encoding="utf-8")
    spec = tmp_path / "nets" / "net.yaml"
    spec.write_text(_spec("[../lib/blocks.yaml]"), encoding="utf-8")
    assert main(["validate", str(spec)]) == 1
    assert "--import-root" in capsys.readouterr().err
    for cmd in (["validate", str(spec)], ["build", str(spec), "--json"], ["summary", str(spec)], ["render", str(spec)]):
        assert main([*cmd, "--import-root", str(tmp_path / "lib")]) == 0, cmd
        capsys.readouterr()
    assert main(["validate", "--input", "3,16,16", str(spec), "--import-root", str(tmp_path)]) == 0
    assert "3×16×16 → 4×16×16" in capsys.readouterr().out
