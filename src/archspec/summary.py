"""Tables and JSON describing an analysed graph (shared by ``build``, ``validate`` and ``summary``)."""

from __future__ import annotations

from typing import Any

from .ir import Graph
from .ops import fmt_shape

__all__ = ["graph_json", "graph_table", "one_line"]


def graph_json(graph: Graph) -> dict[str, Any]:
    """The ``build --json`` object: name, shapes, totals and one entry per node."""
    total = graph.total
    return {
        "name": graph.name,
        "input_shape": list(graph.input_shape),
        "output_shape": list(graph.output_shape),
        "params": total.params,
        "buffers": total.buffers,
        "macs": total.macs,
        "nodes": [
            {
                "name": n.name,
                "op": n.op,
                "inputs": list(n.inputs),
                "output_shape": list(n.shape),
                "params": n.counts.params,
                "macs": n.counts.macs,
            }
            for n in graph.nodes.values()
        ],
    }


def _human(n: int) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def graph_table(graph: Graph) -> str:
    """An aligned per-node table (name, op, output shape, params, MACs) with totals."""
    header = ("name", "op", "output", "params", "MACs")
    rows = [
        (n.name, n.label, fmt_shape(n.shape), f"{n.counts.params:,}", f"{n.counts.macs:,}")
        for n in graph.nodes.values()
    ]
    total = graph.total
    footer = ("total", "", fmt_shape(graph.output_shape), f"{total.params:,}", f"{total.macs:,}")
    widths = [max(len(r[i]) for r in (header, footer, *rows)) for i in range(5)]

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(
            (c.rjust(w) if i >= 3 else c.ljust(w)) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [f"{graph.name}: input {fmt_shape(graph.input_shape)} → output {fmt_shape(graph.output_shape)}",
             fmt(header), rule, *(fmt(r) for r in rows), rule, fmt(footer)]
    lines.append(
        f"{total.params:,} parameters ({_human(total.params)}), {total.buffers:,} buffer elements, "
        f"{total.macs:,} MACs ({_human(total.macs)}) per sample"
    )
    return "\n".join(lines)


def one_line(graph: Graph) -> str:
    """``lenet: ok, 12 nodes, 61,706 params, 416.52K MACs, 1×28×28 → 10``."""
    t = graph.total
    return (
        f"{graph.name}: ok, {len(graph.nodes)} nodes, {t.params:,} params, {_human(t.macs)} MACs, "
        f"{fmt_shape(graph.input_shape)} → {fmt_shape(graph.output_shape)}"
    )
