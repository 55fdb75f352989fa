"""``archspec.build`` reuses the analysed graph of an unchanged file, and never a stale one."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import archspec
from archspec import api, source
from archspec.ops import OPS, register_op
from conftest import SPECS


def test_same_size_edit_is_rebuilt(tmp_path: Path) -> None:
    spec = tmp_path / "net.yaml"
    text = (SPECS / "lenet.yaml").read_text(encoding="utf-8")
    spec.write_text(text, encoding="utf-8")
    first = archspec.build(spec)
    spec.write_text(text.replace("out: 120", "out: 128"), encoding="utf-8")  # same size, same second
    second = archspec.build(spec)
    assert first.linear1.out_features == 120
    assert second.linear1.out_features == 128


def test_cache_is_keyed_by_overrides_and_input(tmp_path: Path) -> None:
    api.clear_cache()
    spec = SPECS / "lenet.yaml"
    assert archspec.build(spec, classes=7).linear3.out_features == 7
    assert archspec.build(spec).linear3.out_features == 10
    assert archspec.build(spec, input_shape=(1, 32, 32)).linear1.in_features == 16 * 6 * 6
    assert len(api._graph_cache) == 3


def test_cached_builds_are_independent_modules() -> None:
    a = archspec.build(SPECS / "lenet.yaml")
    b = archspec.build(SPECS / "lenet.yaml")
    assert a is not b and a.conv1 is not b.conv1
    assert a.conv1.weight.data_ptr() != b.conv1.weight.data_ptr()
    assert type(a.code) is str and "conv1" in a.code


def test_analyze_returns_a_fresh_graph() -> None:
    assert archspec.analyze(SPECS / "lenet.yaml") is not archspec.analyze(SPECS / "lenet.yaml")


def test_edit_of_an_imported_file_is_rebuilt(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    lib = tmp_path / "lib" / "blocks.yaml"
    lib.write_text("archspec: 1\nblocks:\n  head:\n    params: {}\n    layers:\n      - linear: {out: 10}\n",
                   encoding="utf-8")
    spec = tmp_path / "net.yaml"
    spec.write_text("archspec: 1\nname: net\ninput: [4]\nimports: [lib/blocks.yaml]\nlayers:\n  - head\n",
                    encoding="utf-8")
    assert archspec.build(spec).head1.linear1.out_features == 10
    assert archspec.build(spec).head1.linear1.out_features == 10  # a cache hit
    lib.write_text(lib.read_text(encoding="utf-8").replace("out: 10", "out: 12"), encoding="utf-8")
    assert archspec.build(spec).head1.linear1.out_features == 12
    lib.unlink()
    try:
        archspec.build(spec)
    except archspec.ArchspecError as exc:
        assert "blocks.yaml" in str(exc)
    else:
        raise AssertionError("a deleted import must be reported, not served from the cache")


def test_cache_entry_records_imported_files(tmp_path: Path) -> None:
    api.clear_cache()
    archspec.build(SPECS / "imagenet" / "resnet50.yaml", device="meta")
    (entry,) = api._graph_cache.values()
    assert entry[2], "the imported family file is tracked"
    assert all(Path(p).is_file() and len(d) == 20 for p, d in entry[2])


def _family(tmp_path: Path, out: int) -> Path:
    (tmp_path / "lib.yaml").write_text(
        f"archspec: 1\nblocks:\n  head:\n    params: {{}}\n    layers:\n      - linear: {{out: {out}}}\n", encoding="utf-8")
    spec = tmp_path / "net.yaml"
    spec.write_text("archspec: 1\nname: net\ninput: [4]\nimports: [lib.yaml]\nlayers:\n  - head\n", encoding="utf-8")
    return spec


def test_relative_path_after_chdir_is_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _family(a, 10)
    _family(b, 12)  # the same net.yaml bytes, a different import
    monkeypatch.chdir(a)
    assert archspec.build("net.yaml").head1.linear1.out_features == 10
    monkeypatch.chdir(b)
    assert archspec.build("net.yaml").head1.linear1.out_features == 12


def test_concurrent_builds_keep_their_own_reads(tmp_path: Path) -> None:
    api.clear_cache()
    spec = _family(tmp_path, 10)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                archspec.build(spec, input_shape=(4 + i + 10 * j,), device="meta")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert source._reads.get() == ()
    lib = os.path.realpath(tmp_path / "lib.yaml")
    assert all([p for p, _ in entry[2]] == [lib] for entry in api._graph_cache.values())


def test_registering_an_op_forgets_cached_graphs() -> None:
    archspec.build(SPECS / "lenet.yaml", device="meta")
    assert api._graph_cache
    register_op(type(OPS["relu"]))  # re-registering replaces the op instance
    assert not api._graph_cache
