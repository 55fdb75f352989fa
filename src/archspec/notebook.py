"""Rich display in Jupyter/IPython: a graph shows its diagram and its summary table inline.

:class:`~archspec.ir.Graph` defines ``_repr_svg_`` (the diagram, as ``archspec render`` draws it),
``_repr_html_`` (the diagram inlined above the ``archspec summary`` table) and
``_repr_mimebundle_`` (both at once, so Graphviz runs once per display); they call the functions
here, which this module registers in :data:`archspec.ir.DISPLAY` when imported (``import archspec``
does).  The diagram needs Graphviz's ``dot`` program: without it ``_repr_svg_`` returns None (the
notebook falls back to the HTML) and the HTML says how to install Graphviz above the table.
Nothing here imports torch.
"""

from __future__ import annotations

import html
from typing import Any

from . import ir
from .errors import ArchspecError
from .ir import Graph

__all__ = ["graph_html", "graph_svg", "mimebundle", "summary_html"]

#: Block levels the inline summary table shows (as ``archspec summary``'s default).
SUMMARY_DEPTH = 3


def graph_svg(graph: Graph) -> str | None:
    """The diagram as SVG text, or None when Graphviz's ``dot`` is missing or fails."""
    from .render import dot_to_image, to_dot

    try:
        return dot_to_image(to_dot(graph), "svg").decode("utf-8")
    except ArchspecError:
        return None


def _human(n: float) -> str:
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:g}"


def _title(graph: Graph) -> str:
    from .ops import fmt_shape

    t = graph.total
    return (f"{graph.name}: {fmt_shape(graph.input_shape)} → {fmt_shape(graph.output_shape)}, "
            f"{t.params:,} parameters, {_human(t.macs)} MACs per sample")


def summary_html(graph: Graph, *, depth: int | None = SUMMARY_DEPTH) -> str:
    """The ``archspec summary`` table as an HTML ``<table>`` (rows nested by block, totals and memory below)."""
    from .ops import fmt_shape
    from .summary import summary_json

    data = summary_json(graph, depth=depth)
    e = html.escape
    right = ' style="text-align:right"'
    lines = ['<table class="archspec-summary">',
             "<thead><tr><th>layer</th><th>type</th><th>output</th>"
             f"<th{right}>params</th><th{right}>buffers</th><th{right}>MACs</th></tr></thead>", "<tbody>"]
    for r in data["rows"]:
        shape = fmt_shape(tuple(r["output_shape"])) if r["output_shape"] is not None else "?"
        pad = f' style="padding-left:{(r["depth"] - 1) * 1.2:.1f}em"'
        weight = "<b>{}</b>" if r["kind"] != "op" else "{}"
        name = weight.format(e(r["name"].rsplit(".", 1)[-1]))
        lines.append(f'<tr><td{pad} title="{e(r["name"])}">{name}</td><td>{e(str(r["type"]))}</td><td>{e(shape)}</td>'
                     f"<td{right}>{r['params']:,}</td><td{right}>{r['buffers']:,}</td><td{right}>{r['macs']:,}</td></tr>")
    t, mem = data["totals"], data["totals"]["memory_bytes"]
    lines += ["</tbody>", "</table>",
              f"<p>Total params: {t['params']:,} ({_human(t['params'])}) · buffers: {t['buffers']:,} · "
              f"MACs: {t['macs']:,} ({_human(t['macs'])}) per sample · weights (float32): "
              f"{(mem['params'] + mem['buffers']) / 2**20:,.2f} MB · forward activations (batch 1): "
              f"{mem['activations'] / 2**20:,.2f} MB</p>"]
    return "\n".join(lines)


def _inline(svg: str) -> str:
    """SVG text without the XML prolog and doctype, for embedding in HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def graph_html(graph: Graph, svg: str | None = None) -> str:
    """The diagram (inline SVG, or a note saying how to get it) above the summary table, as one HTML fragment."""
    from .render import find_dot

    parts = [f'<div class="archspec-graph"><p><b>{html.escape(_title(graph))}</b></p>']
    svg = svg if svg is not None else graph_svg(graph)
    if svg is not None:
        parts.append(f'<div style="overflow:auto;max-height:48em">{_inline(svg)}</div>')
    else:
        try:
            find_dot()
            reason = "Graphviz's 'dot' could not draw it"
        except ArchspecError:
            reason = ("Graphviz's 'dot' program is not installed: install Graphviz "
                      "(e.g. 'apt-get install graphviz', 'brew install graphviz' or 'conda install graphviz')")
        parts.append(f"<p><i>No diagram: {html.escape(reason, quote=False)}.</i></p>")
    parts += [summary_html(graph), "</div>"]
    return "\n".join(parts)


def mimebundle(graph: Graph, include: Any = None, exclude: Any = None) -> dict[str, str]:
    """IPython's ``_repr_mimebundle_``: SVG (when ``dot`` works), HTML and a one-line text form."""
    wanted = {"image/svg+xml", "text/html", "text/plain"}
    if include:
        wanted &= set(include)
    if exclude:
        wanted -= set(exclude)
    bundle: dict[str, str] = {}
    svg = graph_svg(graph) if {"image/svg+xml", "text/html"} & wanted else None
    if svg is not None and "image/svg+xml" in wanted:
        bundle["image/svg+xml"] = svg
    if "text/html" in wanted:
        bundle["text/html"] = graph_html(graph, svg)
    if "text/plain" in wanted:
        bundle["text/plain"] = f"<archspec Graph {_title(graph)}>"
    return bundle


ir.DISPLAY.update(svg=graph_svg, html=graph_html, bundle=mimebundle)
