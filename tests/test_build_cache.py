"""``archspec.build`` reuses the analysed graph of an unchanged file, and never a stale one."""

from __future__ import annotations

from pathlib import Path

import archspec
from archspec import api
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
