"""Diagrams: the graph IR → deterministic Graphviz DOT text → SVG/PNG/PDF through the ``dot`` program.

The DOT text is generated here (no Graphviz Python package needed) and is a pure function of the
graph and the options: node ids are the IR's dotted names, statements follow execution order, and
nothing depends on time, paths or dict-hash order, so the same spec always gives byte-identical DOT.
Only the conversion of DOT to an image needs Graphviz's ``dot`` binary.  Nothing here imports torch.

Layout vocabulary:

* a *level* is a named scope from the spec: a block instance (``stage1``), a named ``sequence`` or a
  named ``repeat`` group.  Composite groups (``residual-add``, ``inception-branch``, ``dense-concat``,
  branches, shortcuts) do not count as levels and are never drawn as clusters;
* ``depth`` levels are drawn as nested clusters; a level deeper than that collapses into one node per
  block instance showing its input → output shapes and parameters (``depth=None`` shows everything);
* ``fold`` merges runs of consecutive, chained instances of the same block (or composite) into one
  ``×N`` node.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ArchspecError
from .fsutil import write_atomic
from .ir import Graph, Group, Node
from .ops import fmt_shape, get_op, pair

__all__ = [
    "DEFAULT_DEPTH",
    "DIRECTIONS",
    "FORMATS",
    "THEMES",
    "RenderOptions",
    "dot_to_image",
    "find_dot",
    "format_for",
    "gallery",
    "gallery_sources",
    "op_text",
    "render",
    "svg_dot_hash",
    "to_dot",
]

#: Output formats; everything but ``dot`` needs Graphviz's ``dot`` program.
FORMATS = ("svg", "png", "pdf", "dot")
DIRECTIONS = ("TB", "LR")
#: Default number of spec levels drawn as clusters (deeper block instances collapse to one node).
DEFAULT_DEPTH: int | None = 2
#: How long one ``dot`` run may take before it is treated as failed.
DOT_TIMEOUT_S = 120

_LEVEL_KINDS = frozenset({"block", "sequence", "repeat"})
_INSTALL_HINT = (
    "install Graphviz (e.g. 'apt-get install graphviz', 'brew install graphviz' or 'conda install graphviz') "
    "or use --format dot"
)


@dataclass(frozen=True)
class _Theme:
    background: str
    font: str
    edge: str
    skip: str
    cluster_border: str
    cluster_fill: tuple[str, ...]
    collapsed: str
    merge: str
    categories: dict[str, str] = field(default_factory=dict)


THEMES: dict[str, _Theme] = {
    "light": _Theme(
        background="white", font="#1a1a1a", edge="#444444", skip="#c0392b", cluster_border="#8c8c8c",
        cluster_fill=("#f7f7f7", "#eef3f8", "#f8f3ea"), collapsed="#dde8f5", merge="#fde9b8",
        categories={"conv": "#cfe2f3", "linear": "#d9ead3", "pool": "#fce5cd", "act": "#f3f3f3",
                    "norm": "#ead1dc", "reg": "#eeeeee", "shape": "#eeeeee", "merge": "#fde9b8",
                    "other": "#ffffff"},
    ),
    "dark": _Theme(
        background="#1e1e1e", font="#e8e8e8", edge="#bbbbbb", skip="#ff7b6b", cluster_border="#777777",
        cluster_fill=("#2a2a2a", "#26303a", "#3a3326"), collapsed="#2f4a66", merge="#6b5520",
        categories={"conv": "#2c4d6e", "linear": "#33553a", "pool": "#6b4a26", "act": "#3a3a3a",
                    "norm": "#5a3048", "reg": "#3a3a3a", "shape": "#3a3a3a", "merge": "#6b5520",
                    "other": "#333333"},
    ),
    "mono": _Theme(
        background="white", font="black", edge="black", skip="black", cluster_border="black",
        cluster_fill=("white", "white", "white"), collapsed="#e6e6e6", merge="#d0d0d0",
        categories={},
    ),
}


@dataclass(frozen=True)
class RenderOptions:
    """What a diagram shows.

    ``depth``: spec levels drawn as clusters (``None`` = all; ``0`` = every top-level block is one
    node).  ``fold``: block or composite names whose consecutive instances fold into one ``×N`` node
    (``"*"`` = all).  ``direction``: ``"TB"`` or ``"LR"``.  ``theme``: a key of :data:`THEMES`.
    ``fuse``: draw activations, and norms following a conv/linear, inside their producer's box
    (``conv 3×3, 64 + bn + relu``).
    """

    depth: int | None = DEFAULT_DEPTH
    direction: str = "TB"
    theme: str = "light"
    fold: frozenset[str] = frozenset()
    fuse: bool = True

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.theme not in THEMES:
            raise ValueError(f"theme must be one of {', '.join(THEMES)}, got {self.theme!r}")
        if self.depth is not None and self.depth < 0:
            raise ValueError(f"depth must be ≥ 0, got {self.depth}")


# --------------------------------------------------------------------------------------------------
# Text helpers


def _human(n: int) -> str:
    """``36928`` → ``36.9K``; ``5983802`` → ``5.98M``."""
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            v = n / size
            return f"{v:.3g}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return str(n)


def _q(text: str) -> str:
    """A DOT double-quoted string (``\\n`` in ``text`` stays a centred line break)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**kv: str) -> str:
    return "[" + ", ".join(f"{k}={_q(v)}" for k, v in kv.items()) + "]"


def _kxk(v: Any) -> str:
    a, b = pair(v)
    return f"{a}×{b}"


def op_text(node: Node) -> str:
    """The op and its key settings as an engineer writes them: ``conv 3×3/2, 64``, ``maxpool 3×3/2``."""
    p = node.params
    if node.op == "conv":
        text = f"conv {_kxk(p.k)}"
        if pair(p.stride) != (1, 1):
            text += f"/{pair(p.stride)[0]}" if pair(p.stride)[0] == pair(p.stride)[1] else f"/{_kxk(p.stride)}"
        text += f", {p.out}"
        if p.groups > 1:
            text += f", groups {p.groups}"
        if pair(p.dilation) != (1, 1):
            text += f", dilation {pair(p.dilation)[0]}"
        return text
    if node.op in ("maxpool", "avgpool"):
        s = pair(p.stride) if p.stride is not None else pair(p.k)
        text = f"{node.op} {_kxk(p.k)}"
        if s != (1, 1):
            text += f"/{s[0]}" if s[0] == s[1] else f"/{s[0]}×{s[1]}"
        return text + (" ceil" if p.ceil_mode else "")
    return node.label


# --------------------------------------------------------------------------------------------------
# Structure: which IR nodes are drawn, collapsed or folded


@dataclass
class _Item:
    """One drawn DOT node: an IR node, a collapsed block instance, or a folded run of instances."""

    id: str
    kind: str  # "node" | "group" | "fold"
    members: list[str]  # IR node names inside it
    groups: list[Group] = field(default_factory=list)
    node: Node | None = None


class _Layout:
    def __init__(self, graph: Graph, opts: RenderOptions) -> None:
        self.g = graph
        self.opts = opts
        self.index = {name: i for i, name in enumerate(graph.nodes)}
        self.level = {name: self._level(name) for name in graph.groups}
        self.first = {name: self._first_node(grp) for name, grp in graph.groups.items()}
        self.folded: dict[str, list[Group]] = {}  # group name → its fold run
        self._find_folds()
        self.item_of: dict[str, str] = {}
        self.items: dict[str, _Item] = {}
        self.clusters: list[str] = []
        self.clusters_set: set[str] = set()
        self._assign()

    def _level(self, name: str) -> int:
        n, cur = 0, name
        while cur:
            grp = self.g.groups[cur]
            if grp.kind in _LEVEL_KINDS:
                n += 1
            cur = grp.parent
        return n

    def _first_node(self, grp: Group) -> int:
        prefix = grp.name + "."
        for name, i in self.index.items():
            if name.startswith(prefix):
                return i
        return len(self.index)

    def chain(self, node: Node) -> list[Group]:
        """The node's enclosing groups, outermost first."""
        out: list[Group] = []
        cur = node.group
        while cur:
            grp = self.g.groups[cur]
            out.append(grp)
            cur = grp.parent
        return out[::-1]

    def _signature(self, grp: Group) -> tuple[Any, ...]:
        if grp.kind == "block":
            return ("block", grp.block)
        parts: list[Any] = []
        for child in grp.children:
            if child in self.g.groups:
                parts.append(self._signature(self.g.groups[child]))
            elif child in self.g.nodes:
                parts.append(self.g.nodes[child].op)
        return (grp.kind, tuple(parts))

    def _foldable(self, grp: Group) -> bool:
        want = self.opts.fold
        return bool(want) and ("*" in want or (grp.block or "") in want or grp.kind in want)

    def _find_folds(self) -> None:
        if not self.opts.fold:
            return
        siblings: dict[str, list[str]] = {}
        for name, grp in self.g.groups.items():
            siblings.setdefault(grp.parent, []).append(name)
        for names in siblings.values():
            names.sort(key=lambda n: self.first[n])
            run: list[Group] = []
            for name in [*names, None]:
                grp = self.g.groups[name] if name is not None else None
                if (grp is not None and run and self._foldable(grp) and grp.input == run[-1].output
                        and self._signature(grp) == self._signature(run[-1])):
                    run.append(grp)
                    continue
                if len(run) > 1:
                    for member in run:
                        self.folded[member.name] = run
                run = [grp] if grp is not None and self._foldable(grp) else []

    def _fusions(self) -> dict[str, str]:
        """Norms and activations drawn in their producer's box (``conv 3×3, 64 + bn + relu``): node → host."""
        consumers: dict[str, int] = {}
        for node in self.g.nodes.values():
            for i in node.inputs:
                consumers[i] = consumers.get(i, 0) + 1
        host: dict[str, str] = {}
        if not self.opts.fuse:
            return host
        for node in self.g.nodes.values():
            cat = self.g.category(node)
            if cat not in ("act", "norm") or len(node.inputs) != 1:
                continue
            src = node.inputs[0]
            if src not in self.g.nodes or consumers.get(src) != 1 or self.g.nodes[src].group != node.group:
                continue
            if cat == "norm" and self.g.category(self.g.nodes[host.get(src, src)]) not in ("conv", "linear"):
                continue  # a norm joins only the conv/linear it normalises
            host[node.name] = host.get(src, src)
        return host

    def _assign(self) -> None:
        depth = self.opts.depth
        clusters: set[str] = set()
        sizes: dict[str, int] = {}
        for node in self.g.nodes.values():
            for grp in self.chain(node):
                sizes[grp.name] = sizes.get(grp.name, 0) + 1
        fused = self._fusions()
        for node in self.g.nodes.values():
            target: _Item | None = None
            if node.name in fused:
                target = self.items[self.item_of[fused[node.name]]]
                target.members.append(node.name)
                self.item_of[node.name] = target.id
                continue
            for grp in self.chain(node):
                if sizes[grp.name] == 1 and grp.name not in self.folded:
                    continue  # a one-node scope adds nothing to the picture
                run = self.folded.get(grp.name)
                if run is not None:
                    fid = f"{run[0].name}..{run[-1].local_name}"
                    target = self.items.get(fid) or _Item(fid, "fold", [], groups=run)
                    break
                if grp.kind in _LEVEL_KINDS and depth is not None and self.level[grp.name] > depth:
                    target = self.items.get(grp.name) or _Item(grp.name, "group", [], groups=[grp])
                    break
                if grp.kind in _LEVEL_KINDS:
                    clusters.add(grp.name)
            if target is None:
                target = _Item(node.name, "node", [], node=node)
            target.members.append(node.name)
            self.items.setdefault(target.id, target)
            self.item_of[node.name] = target.id
        # A cluster around a single drawn box adds nothing to the picture.
        counts: dict[str, int] = {}
        for item in self.items.values():
            cur = item.node.group if item.node is not None else item.groups[0].parent
            while cur:
                counts[cur] = counts.get(cur, 0) + 1
                cur = self.g.groups[cur].parent
        clusters = {c for c in clusters if counts.get(c, 0) > 1}
        self.clusters = sorted(clusters, key=lambda n: self.first[n])
        self.clusters_set = clusters

    def cluster_of(self, item: _Item) -> str:
        """The innermost drawn cluster holding an item (``""`` = top level)."""
        if item.node is not None:
            cur = item.node.group
        else:
            cur = item.groups[0].parent
        while cur and cur not in self.clusters_set:
            cur = self.g.groups[cur].parent
        return cur


# --------------------------------------------------------------------------------------------------
# DOT generation


#: Short names of ops drawn inside another op's box.
_FUSED_NAMES = {"bn": "bn", "batchnorm": "bn"}


def _merge_text(graph: Graph, node: Node) -> str:
    """``add · identity`` / ``concat 64+128+32+32 → 256`` for merge nodes."""
    if node.op == "concat":
        parts = "+".join(str(graph.shape_of(i)[0]) for i in node.inputs)
        return f"concat {parts} → {node.shape[0]}"
    if node.op == "add":
        kind = {"identity": "identity shortcut", "projection": "projection shortcut"}.get(node.role, "")
        return "add" + (f"\n{kind}" if kind else "")
    return node.label


def _node_label(graph: Graph, members: Sequence[str]) -> str:
    node = graph.nodes[members[0]]
    if node.op in ("concat", "add"):
        text = _merge_text(graph, node)
    else:
        text = op_text(node)
        if node.role == "shortcut":
            text = f"shortcut\n{text}"
    for extra in members[1:]:
        text += " + " + _FUSED_NAMES.get(graph.nodes[extra].op, op_text(graph.nodes[extra]))
    params = _sum_params(graph, members)
    if params:
        text += f"\n{_human(params)} params"
    return text


def _group_title(grp: Group) -> str:
    """``residual1`` or ``layer1 : stage``: the local name (the tooltip has the full path), plus the block
    name when the instance name does not already say it."""
    if grp.kind == "block" and grp.block and grp.block != grp.local_name.rstrip("0123456789"):
        return f"{grp.local_name} : {grp.block}"
    return grp.local_name


def _sum_params(graph: Graph, members: Iterable[str]) -> int:
    return sum(graph.nodes[m].counts.params for m in members)


def _item_label(graph: Graph, item: _Item) -> str:
    if item.node is not None:
        return _node_label(graph, item.members)
    first, last = item.groups[0], item.groups[-1]
    if item.kind == "fold":
        if first.kind == "block":
            head = f"{first.block} ×{len(item.groups)}"
        else:
            inner = sorted({g.block for g in graph.groups.values() if g.parent == first.name and g.block})
            head = f"{first.kind}" + (f" ({', '.join(inner)})" if inner else "") + f" ×{len(item.groups)}"
        head += f"\n{first.local_name} … {last.local_name}"
    else:
        head = _group_title(first)
    lines = [head, f"{fmt_shape(graph.shape_of(first.input))} → {fmt_shape(graph.shape_of(last.output))}"]
    merges = [graph.nodes[m] for m in item.members if graph.nodes[m].op in ("concat", "add")]
    if item.kind == "group" and len(merges) == 1:
        lines.append(_merge_text(graph, merges[0]).replace("\n", ", "))
    params = _sum_params(graph, item.members)
    if params:
        lines.append(f"{_human(params)} params")
    return "\n".join(lines)


def _node_style(graph: Graph, item: _Item, theme: _Theme) -> dict[str, str]:
    if item.node is None:
        return {"shape": "box", "style": "rounded,filled,bold", "fillcolor": theme.collapsed,
                "peripheries": "2" if item.kind == "fold" else "1"}
    node = item.node
    if node.op == "concat":
        return {"shape": "invtrapezium", "style": "filled", "fillcolor": theme.merge}
    if node.op == "add":
        return {"shape": "ellipse", "style": "filled", "fillcolor": theme.merge}
    op = get_op(node.op)
    cat = op.category if op else "other"
    fill = theme.categories.get(cat, theme.categories.get("other", "white"))
    return {"shape": "box", "style": "rounded,filled", "fillcolor": fill}


def _on_shortcut(lay: _Layout, node: Node) -> bool:
    return node.role == "shortcut" or any(g.kind == "shortcut" for g in lay.chain(node))


def _is_skip(graph: Graph, lay: _Layout, src: str, dst: Node) -> bool:
    """Whether the IR edge ``src → dst`` carries a residual/dense skip connection."""
    if dst.role in ("identity", "dense") and dst.group and src == graph.groups[dst.group].input:
        return True
    if _on_shortcut(lay, dst):
        return True
    return src in graph.nodes and _on_shortcut(lay, graph.nodes[src]) and dst.op == "add"


def to_dot(graph: Graph, options: RenderOptions | None = None) -> str:
    """The diagram of an analysed graph as Graphviz DOT text (deterministic: same input, same bytes)."""
    opts = options or RenderOptions()
    theme = THEMES[opts.theme]
    lay = _Layout(graph, opts)
    total = graph.total
    font = "Helvetica,Arial,sans-serif"
    title = (f"{graph.name}: {fmt_shape(graph.input_shape)} → {fmt_shape(graph.output_shape)}\n"
             f"{total.params:,} params · {_human(total.macs)} MACs per sample")
    lines = [
        f"digraph {_q(graph.name)} {{",
        "",  # the graph attributes, filled in once the edges are known
        "  " + "graph " + _attrs(labelloc="t", fontsize="18", fontname=font, rankdir=opts.direction,
                                  bgcolor=theme.background, fontcolor=theme.font, nodesep="0.25", ranksep="0.3",
                                  newrank="true") + ";",
        "  " + "node " + _attrs(fontname=font, fontsize="14", fontcolor=theme.font, color=theme.edge,
                                 margin="0.12,0.05", height="0.4") + ";",
        "  " + "edge " + _attrs(fontname=font, fontsize="12", fontcolor=theme.font, color=theme.edge,
                                 arrowsize="0.7") + ";",
        "  " + _q("input") + " " + _attrs(label=f"input\n{fmt_shape(graph.input_shape)}", shape="box",
                                          style="filled,bold", fillcolor=theme.background) + ";",
    ]

    # Items and clusters, nested, in execution order.
    by_cluster: dict[str, list[tuple[int, str, str]]] = {}
    for item in lay.items.values():
        first = lay.index[item.members[0]]
        by_cluster.setdefault(lay.cluster_of(item), []).append((first, "item", item.id))
    for cname in lay.clusters:
        parent = graph.groups[cname].parent
        while parent and parent not in lay.clusters_set:
            parent = graph.groups[parent].parent
        by_cluster.setdefault(parent, []).append((lay.first[cname], "cluster", cname))

    def emit(scope: str, indent: str, depth: int) -> None:
        for _, what, name in sorted(by_cluster.get(scope, []), key=lambda t: (t[0], t[1] == "item")):
            if what == "item":
                item = lay.items[name]
                style = _node_style(graph, item, theme)
                tip = item.node.name if item.node is not None else ", ".join(g.name for g in item.groups)
                lines.append(f"{indent}{_q(name)} " + _attrs(label=_item_label(graph, item), tooltip=tip,
                                                            **style) + ";")
                continue
            grp = graph.groups[name]
            params = graph.group_counts(name).params
            label = _group_title(grp) + (f" · {_human(params)} params" if params else "")
            lines.append(f"{indent}subgraph {_q('cluster_' + name)} {{")
            lines.append(f"{indent}  graph " + _attrs(label=label, labeljust="l", fontsize="14", style="rounded,filled",
                                                        color=theme.cluster_border,
                                                        fillcolor=theme.cluster_fill[depth % len(theme.cluster_fill)],
                                                        tooltip=name) + ";")
            emit(name, indent + "  ", depth + 1)
            lines.append(f"{indent}}}")

    emit("", "  ", 0)
    lines.append("  " + _q("output") + " " + _attrs(label=f"output\n{fmt_shape(graph.output_shape)}", shape="box",
                                                    style="filled,bold", fillcolor=theme.background) + ";")

    # Edges, once per drawn pair, labelled with the tensor shape they carry.
    seen: set[tuple[str, str]] = set()
    skips: list[tuple[str, str]] = []

    def edge(src_id: str, dst_id: str, shape: str, skip: bool) -> None:
        if src_id == dst_id or (src_id, dst_id) in seen:
            return
        seen.add((src_id, dst_id))
        attrs = {"label": f" {shape}"}
        if skip:
            skips.append((src_id, dst_id))
            attrs.update(style="dashed", color=theme.skip, penwidth="1.6")
        lines.append(f"  {_q(src_id)} -> {_q(dst_id)} " + _attrs(**attrs) + ";")

    for node in graph.nodes.values():
        dst = lay.item_of[node.name]
        for src in node.inputs:
            src_id = lay.item_of.get(src, "input")
            skip = src_id != dst and _is_skip(graph, lay, src, node) and lay.items[dst].node is not None
            edge(src_id, dst, fmt_shape(graph.shape_of(src)), skip)
    edge(lay.item_of.get(graph.output, "input"), "output", fmt_shape(graph.output_shape), False)
    if skips:
        title += "\ndashed red edges: skip connections"
    lines[1] = "  graph " + _attrs(label=title) + ";"
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Images and files


def format_for(path: str | os.PathLike[str] | None, fmt: str | None) -> str:
    """The output format: ``fmt`` if given, else from the file extension, else ``dot``."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ArchspecError.single("E-FORMAT", f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
        return fmt
    if path is None:
        return "dot"
    ext = Path(path).suffix.lower().lstrip(".")
    ext = {"gv": "dot"}.get(ext, ext)
    if ext not in FORMATS:
        raise ArchspecError.single(
            "E-FORMAT", f"cannot tell the format from '{Path(path).name}'; give --format {'|'.join(FORMATS)}"
        )
    return ext


def find_dot() -> str:
    """The path of Graphviz's ``dot`` program; :class:`ArchspecError` ``E-NO-DOT`` when it is missing."""
    found = shutil.which("dot")
    if found is None:
        raise ArchspecError.single("E-NO-DOT", f"Graphviz's 'dot' program is not on PATH; {_INSTALL_HINT}")
    return found


def dot_to_image(dot_text: str, fmt: str) -> bytes:
    """Run ``dot -T<fmt>`` on DOT text and return the image bytes (``fmt`` ``dot`` returns the text)."""
    if fmt == "dot":
        return dot_text.encode("utf-8")
    exe = find_dot()
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArchspecError.single("E-DOT", f"running Graphviz's 'dot' failed: {exc}") from None
    if proc.returncode != 0 or not proc.stdout:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ArchspecError.single("E-DOT", f"Graphviz's 'dot -T{fmt}' failed: {msg[0] if msg else 'no output'}")
    return proc.stdout


def render(
    graph: Graph,
    output: str | os.PathLike[str] | None = None,
    *,
    fmt: str | None = None,
    options: RenderOptions | None = None,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> bytes:
    """Draw ``graph``; write the result to ``output`` atomically (when given) and return its bytes.

    The format comes from ``fmt`` or ``output``'s extension (``dot`` when neither says).  Raises
    :class:`ArchspecError` (``E-NO-DOT`` when an image format is asked for without Graphviz).
    """
    kind = format_for(output, fmt)
    data = dot_to_image(to_dot(graph, options), kind)
    if output is not None:
        write_atomic(output, data, protect=tuple(protect))
    return data


# --------------------------------------------------------------------------------------------------
# Gallery

_GALLERY_MARK = "<!-- archspec gallery: dot-sha256 {} -->"


def _is_spec_file(path: Path) -> bool:
    """A YAML mapping with the ``archspec`` version key (other YAML files in a spec folder are skipped)."""
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return True  # let the analysis report the problem with its position
    return isinstance(data, dict) and "archspec" in data


def gallery_sources(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, str, str]]:
    """``(file, stem, display name)`` per spec; directories are searched for ``**/*.yaml`` (sorted).

    The stem keeps sub-folders (``imagenet/resnet50``); the display name starts at the given
    directory's own name (``specs/imagenet/resnet50.yaml``) so it does not depend on the working directory.
    """
    out: list[tuple[Path, str, str]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.glob("**/*.yaml")):
                if not _is_spec_file(f):
                    continue
                rel = f.relative_to(path)
                out.append((f, rel.with_suffix("").as_posix(), (Path(path.resolve().name) / rel).as_posix()))
        else:
            out.append((path, path.stem, path.name))
    return out


def svg_dot_hash(svg: str) -> str | None:
    """The DOT hash a gallery SVG was made from (``None`` if it carries no gallery mark)."""
    m = re.search(_GALLERY_MARK.format("([0-9a-f]{64})"), svg)
    return m.group(1) if m else None


def gallery(
    paths: Iterable[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    options: RenderOptions | None = None,
    *,
    images: bool = True,
) -> list[Path]:
    """Write ``<stem>.dot`` and ``<stem>.svg`` per spec plus an ``index.md`` into ``outdir``; return the files.

    Each SVG carries the SHA-256 of its DOT source, so a check can tell a stale picture without
    depending on the installed Graphviz version.  ``images=False`` writes only the DOT files and index.
    """
    from .api import analyze

    out = Path(outdir)
    written: list[Path] = []
    entries: list[str] = []
    for spec, stem, shown in gallery_sources(paths):
        try:
            graph = analyze(spec)
        except ArchspecError as exc:
            if exc.errors and all(d.code == "E-LIBRARY" for d in exc.errors):
                continue  # a block library (imported by other specs) draws no network of its own
            raise
        text = to_dot(graph, options)
        target = out / stem
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target.with_suffix(".dot"), text)
        written.append(target.with_suffix(".dot"))
        if images:
            svg = dot_to_image(text, "svg").decode("utf-8")
            mark = _GALLERY_MARK.format(hashlib.sha256(text.encode("utf-8")).hexdigest())
            svg = svg.replace("<svg ", mark + "\n<svg ", 1)
            write_atomic(target.with_suffix(".svg"), svg)
            written.append(target.with_suffix(".svg"))
        t = graph.total
        entries.append(f"## {graph.name}\n\n`{shown}` · {fmt_shape(graph.input_shape)} → "
                       f"{fmt_shape(graph.output_shape)} · {t.params:,} params\n\n![{graph.name}]({stem}.svg)\n")
    index = ("# Diagram gallery\n\nGenerated by `archspec render --gallery docs/gallery specs` "
             "(do not edit by hand; CI checks it is current).\n\n" + "\n".join(entries))
    out.mkdir(parents=True, exist_ok=True)
    _prune(out, written)
    write_atomic(out / "index.md", index)
    written.append(out / "index.md")
    return written


def _prune(out: Path, keep: list[Path]) -> None:
    """Remove diagrams of specs that no longer exist, but only in a directory that is already a gallery."""
    index = out / "index.md"
    if not index.exists() or not index.read_text(encoding="utf-8").startswith("# Diagram gallery"):
        return
    kept = {p.resolve() for p in keep}
    for path in sorted(out.rglob("*")):
        if path.suffix in (".dot", ".svg") and path.is_file() and path.resolve() not in kept:
            path.unlink()
