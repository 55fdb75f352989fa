"""Generators of large synthetic specs for the scaling benchmark and its smoke test.

Each family returns YAML text plus the node count and output shape the analysis must produce, so a
caller can check the result without trusting the compiler:

- ``residual``: a deep stack of ResNet basic blocks (``residual-add`` inside a block, repeated);
- ``inception``: wide ``inception-branch`` blocks (48 parallel paths each), repeated;
- ``dense``: one long DenseNet block (``dense-concat`` repeated, channels growing throughout);
- ``graph``: a big explicit ``graph:`` mapping with skip connections (written in reverse order, so the
  topological sort has real work to do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FAMILIES", "Generated", "generate"]


@dataclass(frozen=True)
class Generated:
    """A generated spec and the analysis result it must have."""

    family: str
    text: str
    nodes: int
    output_shape: tuple[int, ...]


def _residual(n: int) -> Generated:
    reps = max(1, (n - 1) // 7)  # stem conv + 7 nodes per residual block
    text = f"""archspec: 1
name: deep_residual
input: [8, 16, 16]
blocks:
  residual:
    params: {{c: null}}
    layers:
      - residual-add:
          body: [conv: {{out: $c, k: 3, pad: 1}}, bn, relu, conv: {{out: $c, k: 3, pad: 1}}, bn]
          shortcut: auto
      - relu
layers:
  - conv: {{out: 8, k: 3, pad: 1}}
  - residual: {{c: 8}}
    repeat: {reps}
"""
    return Generated("residual", text, 1 + 7 * reps, (8, 16, 16))


WIDTH = 48


def _inception(n: int) -> Generated:
    per = 2 * WIDTH + 2  # W × (conv, relu), the concat, and a 1×1 conv reducing the channels again
    reps = max(1, n // per)
    branches = "\n".join("          - [conv: {out: 2, k: 1}, relu]" for _ in range(WIDTH))
    text = f"""archspec: 1
name: wide_inception
input: [8, 8, 8]
blocks:
  inception:
    layers:
      - inception-branch:
{branches}
      - conv: {{out: 8, k: 1}}
layers:
  - inception: {{}}
    repeat: {reps}
"""
    return Generated("inception", text, per * reps, (8, 8, 8))


def _dense(n: int) -> Generated:
    reps = max(1, n // 4)  # bn, relu, conv, concat per layer
    text = f"""archspec: 1
name: long_dense
input: [4, 8, 8]
layers:
  - dense-concat: [bn, relu, conv: {{out: 2, k: 3, pad: 1}}]
    repeat: {reps}
"""
    return Generated("dense", text, 4 * reps, (4 + 2 * reps, 8, 8))


def _graph(n: int) -> Generated:
    n = max(n, 4)
    lines = []
    for i in range(n):
        if i == 0:
            lines.append("  n0: {conv: {out: 4, k: 1}, from: input}")
        elif i % 3 == 0:
            lines.append(f"  n{i}: {{add: [n{i - 1}, n{i - 3}]}}")
        elif i % 3 == 1:
            lines.append(f"  n{i}: {{conv: {{out: 4, k: 1}}, from: n{i - 1}}}")
        else:
            lines.append(f"  n{i}: {{relu: {{}}, from: n{i - 1}}}")
    lines.reverse()
    text = "archspec: 1\nname: big_graph\ninput: [4, 8, 8]\ngraph:\n" + "\n".join(lines) + f"\noutput: n{n - 1}\n"
    return Generated("graph", text, n, (4, 8, 8))


FAMILIES: dict[str, Callable[[int], Generated]] = {
    "residual": _residual,
    "inception": _inception,
    "dense": _dense,
    "graph": _graph,
}


def generate(family: str, nodes: int) -> Generated:
    """A spec of the given family with about ``nodes`` primitive nodes (exactly ``Generated.nodes``)."""
    return FAMILIES[family](nodes)
