"""Tables and JSON describing an analysed graph (shared by ``build``, ``validate`` and ``summary``)."""

from __future__ import annotations

import math
from typing import Any

from .ir import Graph
from .ops import fmt_shape

__all__ = [
    "DTYPE_BYTES",
    "graph_json",
    "graph_table",
    "one_line",
    "summary_json",
    "summary_markdown",
    "summary_rows",
    "summary_table",
]


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


# --------------------------------------------------------------------------------------------------
# `archspec summary`: a torchinfo / Keras-style hierarchical table


#: Bytes per element of the dtypes ``archspec summary --dtype`` knows.
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
#: Integer buffers (BatchNorm's ``num_batches_tracked``) stay int64 whatever the model's dtype.
INT_BUFFER_DTYPE = "int64"
INT_BUFFER_BYTES = 8


def _depth(name: str) -> int:
    return name.count(".") + 1


def summary_rows(graph: Graph, depth: int | None = 3) -> list[dict[str, Any]]:
    """One row per block/composite group and per node down to ``depth`` (``None`` = all), in execution order.

    A group row carries the totals of everything inside it and the shape of its output; nodes deeper
    than ``depth`` are folded into their enclosing group's row.
    """
    rows: list[dict[str, Any]] = []
    shown: set[str] = set()
    for node in graph.nodes.values():
        chain: list[str] = []
        g = node.group
        while g:
            chain.append(g)
            g = graph.groups[g].parent
        for gname in reversed(chain):
            if gname in shown or (depth is not None and _depth(gname) > depth):
                continue
            shown.add(gname)
            group = graph.groups[gname]
            counts = graph.group_counts(gname)
            out = graph.shape_of(group.output) if group.output else None
            rows.append({
                "name": gname, "depth": _depth(gname), "kind": "block" if group.kind == "block" else "composite",
                "type": group.block if group.kind == "block" and group.block else group.kind,
                "output_shape": list(out) if out is not None else None,
                "params": counts.params, "buffers": counts.buffers, "macs": counts.macs,
            })
        if depth is None or _depth(node.name) <= depth:
            rows.append({
                "name": node.name, "depth": _depth(node.name), "kind": "op", "type": node.label,
                "output_shape": list(node.shape), "params": node.counts.params,
                "buffers": node.counts.buffers, "macs": node.counts.macs,
            })
    return rows


def summary_json(graph: Graph, *, depth: int | None = 3, batch_size: int = 1, dtype: str = "float32",
                 init: bool = False) -> dict[str, Any]:
    """The ``archspec summary --json`` object: rows plus totals and memory estimates in bytes.

    ``init`` (``summary --init``) adds to each layer row with weights an ``init`` entry: tensor → scheme
    (``{"weight": "kaiming_normal(mode=fan_out, nonlinearity=relu)", "bias": "default"}``, see :mod:`archspec.init`).

    Memory: weights (parameters), buffers (BatchNorm's running statistics in ``dtype``, its
    ``num_batches_tracked`` counters as int64), the input batch, and the forward activations of a batch
    (every node's output, as kept for the backward pass).  ``state_dict`` is parameters + buffers: the
    bytes of ``model.to(dtype).state_dict()``, also split by dtype in ``state_dict_by_dtype``.
    """
    size = DTYPE_BYTES[dtype]
    total = graph.total
    float_buffers = total.buffers - total.int_buffers
    activations = sum(math.prod(n.shape) for n in graph.nodes.values()) * batch_size * size
    mem = {
        "input": math.prod(graph.input_shape) * batch_size * size,
        "params": total.params * size,
        "buffers": float_buffers * size + total.int_buffers * INT_BUFFER_BYTES,
        "activations": activations,
    }
    mem["total"] = sum(mem.values())
    mem["state_dict"] = mem["params"] + mem["buffers"]
    by_dtype = {dtype: (total.params + float_buffers) * size}
    if total.int_buffers:
        by_dtype[INT_BUFFER_DTYPE] = total.int_buffers * INT_BUFFER_BYTES
    rows = summary_rows(graph, depth)
    if init:
        from .init import tensor_inits

        for row in rows:
            if row["kind"] == "op" and (schemes := tensor_inits(graph, graph.nodes[row["name"]])):
                row["init"] = schemes
    return {
        "name": graph.name,
        "input_shape": list(graph.input_shape),
        "output_shape": list(graph.output_shape),
        "batch_size": batch_size,
        "dtype": dtype,
        "depth": depth,
        "rows": rows,
        "totals": {
            "params": total.params,
            "trainable_params": total.params,
            "non_trainable_params": 0,
            "buffers": total.buffers,
            "int64_buffers": total.int_buffers,
            "macs": total.macs,
            "macs_batch": total.macs * batch_size,
            "memory_bytes": mem,
            "state_dict_by_dtype": by_dtype,
        },
    }


def _mib(n: int) -> str:
    """Bytes in binary units, labelled as such: ``102441032`` → ``97.70 MiB`` (1 MiB = 2**20 bytes)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 2**shift:
            return f"{n / 2**shift:,.2f} {unit}"
    return f"{n} bytes"


def _summary_cells(data: dict[str, Any], indent: str, init: bool = False) -> list[tuple[str, ...]]:
    cells = []
    for r in data["rows"]:
        shape = fmt_shape(tuple(r["output_shape"])) if r["output_shape"] is not None else "?"
        name = indent * (r["depth"] - 1) + r["name"].rsplit(".", 1)[-1]
        cells.append((name, r["type"], shape, f"{r['params']:,}", f"{r['buffers']:,}", f"{r['macs']:,}"))
        if init:  # summary --init: each tensor's scheme
            cells[-1] += ("; ".join(f"{t} {how}" for t, how in r.get("init", {}).items()),)
    return cells


def _summary_footer(data: dict[str, Any]) -> list[str]:
    t = data["totals"]
    m = t["memory_bytes"]
    b, dt = data["batch_size"], data["dtype"]
    ints = t["int64_buffers"]
    buffers = f"Buffers: {t['buffers']:,} elements"
    if ints:
        buffers += f" ({t['buffers'] - ints:,} {dt} BatchNorm statistics, {ints:,} int64 num_batches_tracked)"
    by_dtype = ", ".join(f"{k} {v:,}" for k, v in data["totals"]["state_dict_by_dtype"].items())
    return [
        f"Total params: {t['params']:,} ({_human(t['params'])})",
        f"Trainable params: {t['trainable_params']:,}",
        f"Non-trainable params: {t['non_trainable_params']:,}",
        buffers,
        f"MACs: {t['macs']:,} ({_human(t['macs'])}) per sample, {_human(t['macs_batch'])} per batch of {b}",
        f"Weights (state_dict, {dt}): {_mib(m['state_dict'])} = {m['state_dict']:,} bytes ({by_dtype})",
        f"Input (batch {b}, {dt}): {_mib(m['input'])}",
        f"Forward activations (batch {b}, {dt}): {_mib(m['activations'])}",
        f"Estimated total: {_mib(m['total'])} (binary units: 1 KiB = 1,024 bytes, 1 MiB = 2^20 bytes = 1.048576 MB)",
    ]


_SUMMARY_HEADER = ("layer", "type", "output", "params", "buffers", "MACs")


def summary_table(graph: Graph, *, depth: int | None = 3, batch_size: int = 1, dtype: str = "float32",
                  init: bool = False) -> str:
    """The aligned terminal table of ``archspec summary``: hierarchy, shapes, counts, totals, memory.

    ``init`` adds a column with each layer's initialisation (``summary --init``).
    """
    data = summary_json(graph, depth=depth, batch_size=batch_size, dtype=dtype, init=init)
    rows = _summary_cells(data, "  ", init)
    header = (*_SUMMARY_HEADER, "init") if init else _SUMMARY_HEADER
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(
            (c.rjust(w) if 3 <= i < 6 else c.ljust(w)) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    rule = "=" * (sum(widths) + 2 * (len(widths) - 1))
    thin = "-" * len(rule)
    head = f"{graph.name}: input {fmt_shape(graph.input_shape)} → output {fmt_shape(graph.output_shape)}"
    return "\n".join([head, rule, fmt(header), rule, *(fmt(r) for r in rows), rule,
                      *_summary_footer(data), thin])


def summary_markdown(graph: Graph, *, depth: int | None = 3, batch_size: int = 1, dtype: str = "float32",
                     init: bool = False) -> str:
    """The summary as a Markdown table plus a totals list (for docs); ``init`` adds the initialisation column."""
    data = summary_json(graph, depth=depth, batch_size=batch_size, dtype=dtype, init=init)
    rows = _summary_cells(data, "&nbsp;&nbsp;", init)
    header = (*_SUMMARY_HEADER, "init") if init else _SUMMARY_HEADER
    lines = [f"**{graph.name}**: input {fmt_shape(graph.input_shape)} → output {fmt_shape(graph.output_shape)}", "",
             "| " + " | ".join(header) + " |", "|---|---|---|--:|--:|--:|" + ("---|" if init else "")]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    lines.append("")
    lines += [f"- {line}" for line in _summary_footer(data)]
    return "\n".join(lines)
