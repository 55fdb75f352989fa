"""Behaviour of the scaling generators at a small size: every family analyses to the right graph.

The timing itself is measured by ``benchmarks/bench_scaling.py``; here a 2,000-node spec of each
family must expand to exactly the expected number of nodes and output shape, within a proportional
share of the expansion limits (so the 100,000-node benchmark specs stay within the real ones).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import archspec
from archspec import expand as expand_mod

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import specgen


@pytest.mark.parametrize("family", sorted(specgen.FAMILIES))
def test_generated_spec_analyses_correctly(family: str, tmp_path: Path) -> None:
    gen = specgen.generate(family, 2000)
    assert 1900 <= gen.nodes <= 2000
    path = tmp_path / f"{family}.yaml"
    path.write_text(gen.text, encoding="utf-8")
    graph = archspec.analyze(path)
    assert len(graph.nodes) == gen.nodes
    assert graph.output_shape == gen.output_shape
    graph.lint()


@pytest.mark.parametrize("family", sorted(specgen.FAMILIES))
def test_limits_leave_room_for_the_100k_benchmark(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Expansion steps grow linearly with the nodes, so a 2,000-node spec that fits in 2,000/100,000 of
    MAX_STEPS shows that the 100,000-node benchmark specs fit the real limits (both MAX_NODES and MAX_STEPS)."""
    gen = specgen.generate(family, 2000)
    assert specgen.generate(family, 100_000).nodes <= expand_mod.MAX_NODES
    monkeypatch.setattr(expand_mod, "MAX_STEPS", expand_mod.MAX_STEPS * gen.nodes // 100_000)
    graph = archspec.analyze(gen.text)
    assert len(graph.nodes) == gen.nodes
    monkeypatch.setattr(expand_mod, "MAX_STEPS", gen.nodes)  # and the limit does bite: not every step is free
    with pytest.raises(archspec.ArchspecError, match="expansion steps"):
        archspec.analyze(gen.text)


def test_residual_family_structure() -> None:
    graph = archspec.analyze(specgen.generate("residual", 2000).text)
    adds = [n for n in graph.nodes.values() if n.op == "add"]
    assert len(adds) == (len(graph.nodes) - 1) // 7
    assert all(n.role == "identity" for n in adds)


def test_dense_family_grows_channels() -> None:
    graph = archspec.analyze(specgen.generate("dense", 2000).text)
    concats = [n for n in graph.nodes.values() if n.op == "concat"]
    assert [n.shape[0] for n in concats[:3]] == [6, 8, 10]


def test_graph_family_is_written_in_reverse_and_sorted() -> None:
    gen = specgen.generate("graph", 2000)
    assert gen.text.index("n1999:") < gen.text.index("n0:")
    graph = archspec.analyze(gen.text)
    assert list(graph.nodes)[:3] == ["n0", "n1", "n2"]
    assert graph.nodes["n3"].inputs == ("n2", "n0")
