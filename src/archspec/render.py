"""Diagrams: the graph IR → deterministic Graphviz DOT text → SVG/PNG/PDF through the ``dot`` program.

The DOT text is generated here (no Graphviz Python package needed) and is a pure function of the
graph and the options: node ids are the IR's dotted names, statements follow execution order, and
nothing depends on time, paths or dict-hash order, so the same spec always gives byte-identical DOT.
Only the conversion of DOT to an image needs Graphviz's ``dot`` binary.  Nothing here imports torch.

Layout vocabulary:

* a *level* is a named scope from the spec: a block instance (``stage1``), a named ``sequence`` or a
  named ``repeat`` group.  Composite groups (``residual-add``, ``inception-branch``, ``dense-concat``,
  branches, shortcuts) do not count as levels and are drawn as clusters only as a folded run;
* ``depth`` levels are drawn as nested clusters; a level deeper than that collapses into one node per
  block instance showing its input → output shapes and parameters (``depth=None`` shows everything).
  A block whose ops draw as one box anyway (``conv + bn + relu``) is drawn as that box, never collapsed;
* ``fold`` draws a run of consecutive, chained, *identical* sibling groups (same block or composite,
  same arguments, same ops with the same settings and wiring) once, as a cluster titled ``×N``; runs
  deeper than ``depth`` become one ``×N`` node;
* ``wrap`` cuts the main chain into columns (top to bottom) or rows (left to right) so that the figure
  fits a page about :data:`PAGE_WIDTH_PX` wide.  The cut is made where one tensor crosses it, and is
  drawn as a pair of lettered connectors (``A`` at the end of a column, ``A`` at the top of the next).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import ArchspecError, Diagnostic
from .fsutil import check_output, check_output_dir, mkdirs, write_atomic
from .init import init_text
from .ir import Graph, Group, Node
from .ops import Shape, fmt_shape, get_op, pair
from .themes import DEFAULT_DEPTH, DIRECTIONS, FORMATS, THEMES, Theme

__all__ = [
    "DEFAULT_DEPTH",
    "DIRECTIONS",
    "FORMATS",
    "PAGE_HEIGHT_PX",
    "PAGE_WIDTH_PX",
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

#: The page a figure is made for, in pixels at 96 dpi: its width, and the height it should not exceed
#: (a page you scroll once).
PAGE_WIDTH_PX = 1000
PAGE_HEIGHT_PX = 2000
#: How long one ``dot`` run may take before it is treated as failed.
DOT_TIMEOUT_S = 120

_LEVEL_KINDS = frozenset({"block", "sequence", "repeat"})
_INSTALL_HINT = (
    "install Graphviz (e.g. 'apt-get install graphviz', 'brew install graphviz' or 'conda install graphviz') "
    "or use --format dot"
)


@dataclass(frozen=True)
class RenderOptions:
    """What a diagram shows.

    ``depth``: spec levels drawn as clusters (``None`` = all; ``0`` = every top-level block is one
    node; ``"auto"``, the default = the most detailed depth whose figure fits the page).  ``fold``:
    block or composite names whose runs of identical consecutive instances are drawn once, titled
    ``×N`` (``"*"`` = all, the default; empty = none).  ``direction``: ``"TB"`` or ``"LR"``.
    ``theme``: a key of :data:`THEMES`.  ``fuse``: draw activations, and norms following a
    conv/linear, inside their producer's box (``conv 3×3, 64 + bn + relu``).  ``wrap``: cut a long
    network into columns (TB) or rows (LR) to fit a page :data:`PAGE_WIDTH_PX` wide.  ``init``: add
    each layer's initialisation to its box (``conv: weight kaiming_normal(fan_out, relu)``; ``render --init``).
    """

    depth: int | str | None = DEFAULT_DEPTH
    direction: str = "TB"
    theme: str = "light"
    fold: frozenset[str] = frozenset({"*"})
    fuse: bool = True
    wrap: bool = True
    init: bool = False

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.theme not in THEMES:
            raise ValueError(f"theme must be one of {', '.join(THEMES)}, got {self.theme!r}")
        if isinstance(self.depth, str) and self.depth != "auto":
            raise ValueError(f"depth must be a whole number ≥ 0, None or 'auto', got {self.depth!r}")
        if isinstance(self.depth, int) and self.depth < 0:
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
    """One drawn DOT node: an IR node (with the ops fused into its box), a collapsed block instance, or
    a collapsed run of identical instances."""

    id: str
    kind: str  # "node" | "group" | "fold"
    members: list[str]  # IR nodes drawn in it (a node item: its op, then the ops fused into its box)
    groups: list[Group] = field(default_factory=list)
    node: Node | None = None


class _Layout:
    """Which IR nodes become which drawn items and clusters, for one graph and one set of options."""

    def __init__(self, graph: Graph, opts: RenderOptions, depth: int | None) -> None:
        self.g = graph
        self.opts = opts
        self.depth = depth
        self.index = {name: i for i, name in enumerate(graph.nodes)}
        self.members: dict[str, list[str]] = {name: [] for name in graph.groups}
        for node in graph.nodes.values():
            cur = node.group
            while cur:
                self.members[cur].append(node.name)
                cur = graph.groups[cur].parent
        self.first = {name: (self.index[m[0]] if m else len(self.index)) for name, m in self.members.items()}
        self.level = {name: self._level(name) for name in graph.groups}
        self._sigs: dict[str, tuple[Any, ...]] = {}
        self.runs: dict[str, list[Group]] = {}  # a run's first instance (drawn for all of them) → the run
        self.run_of: dict[str, dict[str, int]] = {}  # node → {run: the instance holding the node}
        self.alias: dict[str, str] = {}  # node of a later instance → the same node of the first instance
        self.last_copy: dict[str, str] = {}  # node of a first instance → the same node of the last instance
        self._instances: set[str] = set()
        self._find_folds()
        self.host = self._fusions()
        self.items: dict[str, _Item] = {}
        self.item_of: dict[str, str] = {}
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

    def chain(self, node: Node) -> list[Group]:
        """The node's enclosing groups, outermost first."""
        out: list[Group] = []
        cur = node.group
        while cur:
            grp = self.g.groups[cur]
            out.append(grp)
            cur = grp.parent
        return out[::-1]

    # ---------------------------------------------------------------- folding identical runs
    def _signature(self, name: str) -> tuple[Any, ...]:
        """What makes two groups identical: kind, block, arguments, and every op, setting and wire inside.

        Input channels are not part of it: the layers of a dense block are identical though each reads
        more channels than the one before.
        """
        sig = self._sigs.get(name)
        if sig is None:
            grp = self.g.groups[name]
            pos = {m: i for i, m in enumerate(self.members[name])}
            parts: list[Any] = []
            for child in grp.children:
                if child in self.g.groups:
                    parts.append(self._signature(child))
                else:
                    n = self.g.nodes[child]
                    wires = tuple(pos.get(i, -1 if i == grp.input else -2) for i in n.inputs)
                    parts.append((n.op, repr(n.params), n.role, wires))
            sig = (grp.kind, grp.block, repr(sorted(grp.args.items())), tuple(parts))
            self._sigs[name] = sig
        return sig

    def inner(self, grp: Group) -> Group | None:
        """The one block instance a composite wraps (``dense-concat: [dense_layer]``), else None."""
        if grp.kind in _LEVEL_KINDS:
            return None
        subs = [self.g.groups[c] for c in grp.children if c in self.g.groups]
        return subs[0] if len(subs) == 1 and subs[0].kind == "block" else None

    def display(self, grp: Group) -> tuple[str, str]:
        """(what it is, its name) for titles: ``("dense_layer", "dense_layer3")`` for ``dense_concat3``."""
        inner = self.inner(grp)
        if inner is not None:
            return inner.block or inner.kind, inner.local_name
        return grp.block or grp.kind, grp.local_name

    def _foldable(self, grp: Group) -> bool:
        want = self.opts.fold
        if not want or grp.kind in ("branch", "shortcut"):
            return False
        return "*" in want or bool({grp.block, grp.kind, self.display(grp)[0]} & want)

    def _find_folds(self) -> None:
        if not self.opts.fold:
            return
        siblings: dict[str, list[str]] = {}
        for name, grp in self.g.groups.items():
            if self.members[name]:
                siblings.setdefault(grp.parent, []).append(name)
        found: list[list[Group]] = []
        for names in siblings.values():
            names.sort(key=lambda n: self.first[n])
            run: list[Group] = []
            for name in [*names, None]:
                grp = self.g.groups[name] if name is not None else None
                if (grp is not None and run and self._foldable(grp) and grp.input == run[-1].output
                        and self._signature(grp.name) == self._signature(run[-1].name)):
                    run.append(grp)
                    continue
                if len(run) > 1:
                    found.append(run)
                run = [grp] if grp is not None and self._foldable(grp) else []
        # Outer runs first: a run inside a later instance of another run is not drawn at all.
        found.sort(key=lambda r: (self.first[r[0].name], r[0].name.count(".")))
        for run in found:
            rep = self.members[run[0].name]
            if rep[0] in self.alias:
                continue
            self.runs[run[0].name] = run
            for k, grp in enumerate(run):
                self._instances.add(grp.name)
                for j, m in enumerate(self.members[grp.name]):
                    self.run_of.setdefault(m, {})[run[0].name] = k
                    if k:
                        self.alias[m] = rep[j]
        for m, target in self.alias.items():  # a later instance of an outer run → a run inside its first one
            while target in self.alias:
                target = self.alias[target]
            self.alias[m] = target
            self.last_copy[target] = m  # nodes come in execution order: the last copy wins

    def between_instances(self, src: str, dst: str) -> bool:
        """Whether an IR edge joins two different instances of one folded run (it is not drawn)."""
        a, b = self.run_of.get(src), self.run_of.get(dst)
        return bool(a and b) and any(r in b and b[r] != k for r, k in a.items())

    def collapsed_run(self, rep: Group) -> bool:
        """Whether a folded run is deeper than ``depth`` (one ``×N`` node) rather than a cluster."""
        level = self.level[rep.name] + (0 if rep.kind in _LEVEL_KINDS else 1)
        return self.depth is not None and level > self.depth

    # ---------------------------------------------------------------- fusing ops into one box
    def _container(self, name: str) -> str:
        """The innermost level group or folded instance around a node: ops fuse only within one."""
        cur = self.g.nodes[name].group
        while cur and not (self.g.groups[cur].kind in _LEVEL_KINDS or cur in self._instances):
            cur = self.g.groups[cur].parent
        return cur

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
            if src not in self.g.nodes or consumers.get(src) != 1 or self._container(src) != self._container(node.name):
                continue
            if cat == "norm" and self.g.category(self.g.nodes[host.get(src, src)]) not in ("conv", "linear"):
                continue  # a norm joins only the conv/linear it normalises
            host[node.name] = host.get(src, src)
        return host

    # ---------------------------------------------------------------- items and clusters
    def _assign(self) -> None:
        depth = self.depth
        boxes = {name: sum(1 for m in ms if m not in self.alias and m not in self.host)
                 for name, ms in self.members.items()}
        wrapped = {inner.name for name in self.runs if (inner := self.inner(self.g.groups[name])) is not None}
        clusters: set[str] = set()
        for node in self.g.nodes.values():
            if node.name in self.alias or node.name in self.host:
                continue
            target: _Item | None = None
            for grp in self.chain(node):
                run = self.runs.get(grp.name)
                if run is not None and boxes[grp.name] > 1 and self.collapsed_run(grp):
                    fid = f"{grp.name}..{run[-1].local_name}"
                    target = self.items.get(fid) or _Item(fid, "fold", [], groups=run)
                    break
                if (run is None and grp.kind in _LEVEL_KINDS and boxes[grp.name] > 1 and depth is not None
                        and self.level[grp.name] > depth):
                    target = self.items.get(grp.name) or _Item(grp.name, "group", [], groups=[grp])
                    break
                if run is not None or (grp.kind in _LEVEL_KINDS and boxes[grp.name] > 1 and grp.name not in wrapped):
                    clusters.add(grp.name)
            if target is None:
                target = _Item(node.name, "node", [], node=node)
            target.members.append(node.name)
            self.items.setdefault(target.id, target)
            self.item_of[node.name] = target.id
        for name, host in self.host.items():
            if name not in self.alias:
                item = self.items[self.item_of[host]]
                if item.kind == "node":
                    item.members.append(name)
                self.item_of[name] = item.id
        for name, rep in self.alias.items():
            self.item_of[name] = self.item_of[rep]
        # A cluster around a single drawn op adds nothing to the picture; one around a collapsed block
        # or a folded run keeps its name (a stage holding one "basic ×3" node is still the stage).
        count: dict[str, int] = {}
        keep: set[str] = set(self.runs)
        for item in self.items.values():
            cur = self.parent_group(item)
            while cur:
                count[cur] = count.get(cur, 0) + 1
                if item.kind != "node":
                    keep.add(cur)
                cur = self.g.groups[cur].parent
        clusters = {c for c in clusters if count.get(c, 0) > 1 or c in keep}
        # Nor does one around the whole network (a spec that is one block instance): the title says it.
        clusters = {c for c in clusters if count.get(c, 0) < len(self.items) or c in self.runs}
        self.clusters_set = clusters
        # A block drawn as the only thing in its parent's cluster (besides the merge of a residual-add
        # around it) repeats the parent's frame: draw its ops in the parent's cluster.
        changed = True
        while changed:
            changed = False
            subs: dict[str, list[str]] = {}
            for c in sorted(clusters):
                subs.setdefault(self.enclosing_cluster(self.g.groups[c].parent), []).append(c)
            direct: dict[str, list[_Item]] = {}
            for item in self.items.values():
                direct.setdefault(self.cluster_of(item), []).append(item)
            for parent, inner in subs.items():
                loose = direct.get(parent, [])
                if (parent and len(inner) == 1 and inner[0] not in self.runs and len(loose) <= 1
                        and all(i.node is not None and i.node.op in ("add", "concat") for i in loose)):
                    clusters.discard(inner[0])
                    changed = True
                    break
        # A folded run whose instance is one box is drawn as that box, titled ×N, rather than a cluster.
        self.fold_of: dict[str, list[Group]] = {}
        for rep, run in self.runs.items():
            inside = {self.item_of[m] for m in self.members[rep] if m not in self.alias}
            if rep in clusters and len(inside) == 1:
                clusters.discard(rep)
                self.fold_of[next(iter(inside))] = run
        self.clusters = sorted(clusters, key=lambda n: (self.first[n], n.count(".")))
        self.clusters_set = clusters

    def parent_group(self, item: _Item) -> str:
        """The group an item is drawn in (before skipping groups that are not clusters)."""
        return item.node.group if item.node is not None else item.groups[0].parent

    def cluster_of(self, item: _Item) -> str:
        """The innermost drawn cluster holding an item (``""`` = top level)."""
        return self.enclosing_cluster(self.parent_group(item))

    def enclosing_cluster(self, group: str) -> str:
        """``group`` if it is drawn as a cluster, else the nearest drawn cluster around it (``""`` = top)."""
        cur = group
        while cur and cur not in self.clusters_set:
            cur = self.g.groups[cur].parent
        return cur

    def item_in_shape(self, item: _Item) -> Shape | None:
        """The shape an item reads (its first input), for telling whether it changes the shape."""
        if item.node is not None:
            return self.g.shape_of(item.node.inputs[0]) if item.node.inputs else None
        return self.g.shape_of(item.groups[0].input) if item.groups[0].input else None

    def run_params(self, groups: Sequence[Group]) -> int:
        """The parameters of every instance in ``groups``."""
        return sum(self.g.group_counts(g.name).params for g in groups)


# --------------------------------------------------------------------------------------------------
# DOT generation


#: Short names of ops drawn inside another op's box.
_FUSED_NAMES = {"bn": "bn", "batchnorm": "bn"}
#: Font sizes (points) of op boxes, edge labels, cluster titles and the figure title.
_NODE_FONT, _EDGE_FONT, _CLUSTER_FONT, _TITLE_FONT = 13, 11, 13, 16
_FONT = "Helvetica,Arial,sans-serif"


@dataclass(frozen=True)
class _Html:
    """An HTML-like Graphviz label (a table), with its estimated size in points."""

    text: str
    width: float
    height: float


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
        text, _, rest = _merge_text(graph, node).partition("\n")
    else:
        text, rest = op_text(node), ""
        if node.role == "shortcut" or _starts_shortcut(graph, node):
            text = f"shortcut\n{text}"
    for extra in members[1:]:
        text += " + " + _FUSED_NAMES.get(graph.nodes[extra].op, op_text(graph.nodes[extra]))
    if rest:
        text += f"\n{rest}"
    params = _sum_params(graph, members)
    if params:
        text += f"\n{_human(params)} params"
    return text


def _starts_shortcut(graph: Graph, node: Node) -> bool:
    """Whether a node is the first op of a residual-add's explicit shortcut (``shortcut: [conv, bn]``)."""
    cur = node.group
    while cur:
        grp = graph.groups[cur]
        if grp.kind == "shortcut":
            return node.inputs == (grp.input,)
        cur = grp.parent
    return False


_NUMBER = re.compile(r"(\d+(?:\.\d+)?[KMG]?)")


def _span_label(first: str, last: str) -> str:
    """The label of a folded run's drawn instance: numbers that change along the run as ``first…last``
    (``concat 64+32 → 96`` and ``concat 224+32 → 256`` give ``concat 64…224+32 → 96…256``)."""
    a, b = _NUMBER.split(first), _NUMBER.split(last)
    if len(a) != len(b) or a[0::2] != b[0::2]:
        return first
    return "".join(x if i % 2 == 0 or x == y else f"{x}…{y}" for i, (x, y) in enumerate(zip(a, b, strict=True)))


def _group_title(grp: Group) -> str:
    """``residual1`` or ``layer1 : stage``: the local name (the tooltip has the full path), plus the block
    name when the instance name does not already say it."""
    if grp.kind == "block" and grp.block and grp.block != grp.local_name.rstrip("0123456789"):
        return f"{grp.local_name} : {grp.block}"
    return grp.local_name


def _run_title(lay: _Layout, run: Sequence[Group]) -> str:
    """``basic ×3: basic1 … basic3`` for a folded run of identical instances."""
    what, first = lay.display(run[0])
    return f"{what} ×{len(run)}: {first} … {lay.display(run[-1])[1]}"


def _sum_params(graph: Graph, members: Iterable[str]) -> int:
    return sum(graph.nodes[m].counts.params for m in members)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _branch_table(graph: Graph, lay: _Layout, grp: Group, head: Sequence[str], tail: Sequence[str]) -> _Html | None:
    """A collapsed inception block as a table: one column per branch listing its ops (kernel sizes and
    widths; activations and norms left out), between ``head`` and ``tail`` lines.  None unless the
    group is one ``inception-branch`` (plus activations and norms) whose branches are plain chains."""
    comps = [g for g in graph.groups.values() if g.kind == "inception-branch" and g.name.startswith(grp.name + ".")]
    if len(comps) != 1:
        return None
    comp = comps[0]
    inside = set(lay.members[comp.name])
    if any(m not in inside and graph.category(graph.nodes[m]) not in ("act", "norm") for m in lay.members[grp.name]):
        return None
    cells: list[list[str]] = []
    for child in comp.children:
        branch = graph.groups.get(child)
        if branch is None or branch.kind != "branch":
            continue
        ops: list[str] = []
        prev = comp.input
        for m in lay.members[branch.name]:
            node = graph.nodes[m]
            if node.inputs != (prev,):
                return None  # not a chain
            prev = m
            if graph.category(node) not in ("act", "norm"):
                ops.append(op_text(node))
        cells.append(ops or ["identity"])
    if not cells:
        return None
    n = len(cells)
    char = _NODE_FONT * _CHAR_W
    widths = [max(len(op) for op in ops) * char + 10 for ops in cells]
    width = max(sum(widths), max(len(line) for line in [*head, *tail]) * char) + 16
    height = (len(head) + max(len(ops) for ops in cells) + len(tail)) * _NODE_FONT * 1.25 + 24
    rows = [f'<TR><TD COLSPAN="{n}" BORDER="0">{"<BR/>".join(_html(t) for t in head)}</TD></TR>',
            "<TR>" + "".join(f'<TD>{"<BR/>".join(_html(op) for op in ops)}</TD>' for ops in cells) + "</TR>",
            f'<TR><TD COLSPAN="{n}" BORDER="0">{"<BR/>".join(_html(t) for t in tail)}</TD></TR>']
    text = '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">' + "".join(rows) + "</TABLE>"
    return _Html(text, width, height)


def _item_label(graph: Graph, lay: _Layout, item: _Item) -> str | _Html:
    if item.node is not None:
        text = _node_label(graph, item.members)
        last = [lay.last_copy.get(m, m) for m in item.members]
        text = _span_label(text, _node_label(graph, last)) if last != item.members else text
        run = lay.fold_of.get(item.id)
        return text if run is None else f"{lay.display(run[0])[0]} ×{len(run)}\n{text}"
    first, last = item.groups[0], item.groups[-1]
    if item.kind == "fold":
        what, a = lay.display(first)
        head = [f"{what} ×{len(item.groups)}", f"{a} … {lay.display(last)[1]}"]
    else:
        head = [_group_title(first)]
        copies = [graph.groups.get(c) for c in first.children]
        if first.kind == "repeat" and copies and all(c is not None and c.block == copies[0].block for c in copies):
            head = [f"{first.local_name}: {copies[0].block or copies[0].kind} ×{len(copies)}"]  # (a named repeat)
    head.append(f"{fmt_shape(graph.shape_of(first.input))} → {fmt_shape(graph.shape_of(last.output))}")
    tail: list[str] = []
    merges = [graph.nodes[m] for m in lay.members[first.name] if graph.nodes[m].op in ("concat", "add")]
    if len(merges) == 1:
        tail.append(_merge_text(graph, merges[0]).replace("\n", ", "))
    params = lay.run_params(item.groups)
    if params:
        tail.append(f"{_human(params)} params")
    table = _branch_table(graph, lay, first, head, tail)
    return table if table is not None else "\n".join(head + tail)


def _node_style(graph: Graph, lay: _Layout, item: _Item, theme: Theme, label: str | _Html) -> dict[str, str]:
    if item.node is None:
        style = {"shape": "box", "style": "rounded,filled,bold", "fillcolor": theme.collapsed,
                 "peripheries": "2" if item.kind == "fold" else "1"}
        if isinstance(label, _Html):
            style["margin"] = "0.04,0.04"
        return style
    node = item.node
    if node.op == "concat":
        assert isinstance(label, str)
        width = max(len(line) for line in label.split("\n")) * _NODE_FONT * _CHAR_W / 72 + 0.6
        return {"shape": "invtrapezium", "style": "filled", "fillcolor": theme.merge, "fixedsize": "shape",
                "width": f"{width:.2f}"}
    if node.op == "add":
        return {"shape": "ellipse", "style": "filled", "fillcolor": theme.merge, "margin": "0.02,0.02"}
    op = get_op(node.op)
    cat = op.category if op else "other"
    fill = theme.categories.get(cat, theme.categories.get("other", "white"))
    style = {"shape": "box", "style": "rounded,filled", "fillcolor": fill}
    if item.id in lay.fold_of:
        style["peripheries"] = "2"
    return style


def _on_shortcut(lay: _Layout, node: Node) -> bool:
    return node.role == "shortcut" or any(g.kind == "shortcut" for g in lay.chain(node))


def _is_skip(graph: Graph, lay: _Layout, src: str, dst: Node) -> bool:
    """Whether the IR edge ``src → dst`` carries a residual/dense skip connection."""
    if dst.role in ("identity", "dense") and dst.group and src == graph.groups[dst.group].input:
        return True
    if _on_shortcut(lay, dst):
        return True
    return src in graph.nodes and _on_shortcut(lay, graph.nodes[src]) and dst.op == "add"


@dataclass
class _Edge:
    src: str
    dst: str
    shape: str
    skip: bool
    labelled: bool


# --------------------------------------------------------------------------------------------------
# Page fit: estimated sizes (points), the cut of the main chain into columns or rows, and the depth

_PT_PER_PX = 72 / 96
_CHAR_W = 0.5  # average glyph width / font size (Helvetica: digits, lower case, "×"; calibrated on dot -Tjson)
_RANKSEP, _NODESEP, _MARGIN = 0.3 * 72, 0.25 * 72, 8.0
#: The smallest scale a figure is shrunk to for the page width (13 pt text stays ≥ 9.75 pt).
_MIN_SCALE = 0.75


def _box_size(label: str | _Html, style: dict[str, str]) -> tuple[float, float]:
    """(width, height) in points of a DOT node holding ``label`` (Graphviz's own sizing, approximately)."""
    if isinstance(label, _Html):
        return label.width, label.height
    lines = label.split("\n")
    w = max(len(line) for line in lines) * _NODE_FONT * _CHAR_W + 2 * 0.12 * 72
    h = max(len(lines) * _NODE_FONT * 1.13 + 2 * 0.05 * 72, 0.4 * 72)
    shape = style.get("shape", "box")
    if "width" in style:
        w = float(style["width"]) * 72
    elif shape == "ellipse":
        w, h = w * 1.12, h * 1.12
    elif shape == "circle":
        w = h = 0.3 * 72
    return w, h


@dataclass
class _Geometry:
    """Estimated extents of drawn items and clusters along the layout's main axis (``main``: down in TB,
    right in LR) and across it, used to decide where a long chain wraps."""

    lay: _Layout
    lr: bool
    sizes: dict[str, tuple[float, float]]  # drawn item id → (width, height)
    edges: list[_Edge]
    entries: dict[str, list[tuple[int, str, str]]]  # cluster ("" = top) → its entries, in order
    titles: dict[str, str]  # cluster → its title
    cache: dict[str, tuple[float, float]] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)

    def anc(self, item_id: str) -> list[str]:
        """The drawn clusters around an item, outermost first."""
        if item_id not in self.lay.items:
            return []
        if item_id not in self.chains:
            out: list[str] = []
            cur = self.lay.cluster_of(self.lay.items[item_id])
            while cur:
                out.append(cur)
                cur = self.lay.enclosing_cluster(self.lay.g.groups[cur].parent)
            self.chains[item_id] = out[::-1]
        return self.chains[item_id]

    def entry_in(self, scope: str, item_id: str) -> str | None:
        """The entry of ``scope`` holding an item: the item itself or a cluster (None: outside ``scope``)."""
        chain = self.anc(item_id)
        if scope:
            if scope not in chain:
                return None
            chain = chain[chain.index(scope) + 1:]
        return chain[0] if chain else item_id

    def extent(self, what: str, kind: str) -> tuple[float, float]:
        """(main, cross) extent of an entry: an item or a cluster."""
        if kind == "item":
            w, h = self.sizes[what]
            return (w, h) if self.lr else (h, w)
        if what in self.cache:
            return self.cache[what]
        main, cross = self.content(what)
        title = len(self.titles[what]) * _CLUSTER_FONT * _CHAR_W + 2 * _MARGIN
        if self.lr:
            main, cross = max(main, title) + 2 * _MARGIN, cross + _CLUSTER_FONT * 1.4 + 2 * _MARGIN
        else:
            main, cross = main + _CLUSTER_FONT * 1.4 + 2 * _MARGIN, max(cross, title) + 2 * _MARGIN
        self.cache[what] = (main, cross)
        return main, cross

    def content(self, scope: str) -> tuple[float, float]:
        """(main, cross) extent of a scope's entries laid out by rank (longest path in execution order)."""
        entries = self.entries.get(scope, [])
        rank: dict[str, int] = {}
        preds: dict[str, set[str]] = {}
        labelled: set[str] = set()
        for e in self.edges:
            a, b = self.entry_in(scope, e.src), self.entry_in(scope, e.dst)
            if a is not None and b is not None and a != b:
                preds.setdefault(b, set()).add(a)
                if e.labelled:
                    labelled.add(b)
        rows: dict[int, list[tuple[float, float]]] = {}
        lab_rows: set[int] = set()
        for _, kind, name in entries:
            r = max((rank[p] + 1 for p in preds.get(name, ()) if p in rank), default=0)
            rank[name] = r
            rows.setdefault(r, []).append(self.extent(name, kind))
            if name in labelled:
                lab_rows.add(r)
        if not rows:
            return 0.0, 0.0
        main = sum(max(m for m, _ in row) for row in rows.values()) + _RANKSEP * (len(rows) - 1)
        cross = max(sum(c for _, c in row) + _NODESEP * (len(row) - 1) for row in rows.values())
        if lab_rows and not self.lr:
            cross += _EDGE_FONT * _CHAR_W * 5  # shape labels beside the edges
        elif lab_rows:
            main += (len(rows) - 1) * _RANKSEP + len(lab_rows) * _EDGE_FONT * _CHAR_W * 9  # labels take ranks
        return main, cross


@dataclass
class _Wrap:
    """Where the main chain is cut.  ``spine`` is the top level's entries in order, with the entries of
    the clusters along the main chain (and of those longer than a page) in their place, each with the
    clusters around it (``(frames, kind, name)``); a cluster cut by a column is drawn as one frame per
    column, the later ones titled "(continued)"."""

    spine: list[tuple[tuple[str, ...], str, str]]
    cuts: list[tuple[int, str, str]]  # (index of the last spine entry before the cut, source item, letter)
    column: dict[str, int]  # item id → column (row) it is drawn in


@dataclass
class _Fit:
    """The layout chosen for the page: its cuts (None: one column or row) and the estimated figure
    size in pixels before Graphviz scales it to the page width."""

    wrap: _Wrap | None
    width: float
    height: float

    @property
    def scale(self) -> float:
        """How much the figure is shrunk to fit the page width."""
        return min(1.0, PAGE_WIDTH_PX / self.width)

    @property
    def fits(self) -> bool:
        """Readable (scaled no smaller than ``_MIN_SCALE``) and no taller than the page."""
        return self.scale >= _MIN_SCALE and self.height * self.scale <= PAGE_HEIGHT_PX


#: The most columns (rows) a figure is cut into.
_MAX_COLUMNS = 12


def _spine(geo: _Geometry) -> str:
    """The cluster whose entries are cut into columns: the top level, or a cluster holding most of it."""
    scope = ""
    while True:
        entries = geo.entries.get(scope, [])
        main = geo.content(scope)[0]
        big = [(geo.extent(n, k)[0], n) for _, k, n in entries if k == "cluster"]
        if not big:
            return scope
        size, name = max(big)
        if size < 0.6 * main or len(geo.entries.get(name, [])) < 3:
            return scope
        scope = name


def _plan_wrap(lay: _Layout, geo: _Geometry, title_lines: Sequence[str], wrap: bool) -> _Fit:
    """Cut the main chain into the columns (TB) or rows (LR) that best fit the page."""
    title = len(title_lines) * _TITLE_FONT * 1.25
    title_w = max(len(line) for line in title_lines) * _TITLE_FONT * _CHAR_W
    total_main, total_cross = geo.content("")
    total_cross = max(total_cross, title_w)
    one = (total_cross + 16, total_main + title + 16) if not geo.lr else (total_main + 16, total_cross + title + 16)
    single = _Fit(None, one[0] / _PT_PER_PX, one[1] / _PT_PER_PX)
    if not wrap:
        return single
    scope = _spine(geo)
    on_path = {scope}
    cur = scope
    while cur:
        cur = lay.enclosing_cluster(lay.g.groups[cur].parent)
        on_path.add(cur)
    page_main = (PAGE_WIDTH_PX if geo.lr else PAGE_HEIGHT_PX) * _PT_PER_PX
    frame = _CLUSTER_FONT * 1.4 + 2 * _MARGIN
    # The spine: the top level's entries in order, the clusters on the way to the cut scope and those
    # longer than the page replaced by their own entries (those clusters get one frame per column).
    spine: list[tuple[tuple[str, ...], str, str]] = []
    ext: list[tuple[float, float]] = []

    def flatten(parent: str, frames: tuple[str, ...]) -> None:
        for j, (_, kind, name) in enumerate(geo.entries.get(parent, [])):
            inner = geo.entries.get(name, []) if kind == "cluster" else []
            if kind == "cluster" and len(inner) >= 2 and (name in on_path or geo.extent(name, kind)[0] > page_main):
                flatten(name, (*frames, name))
                continue
            m, c = geo.extent(name, kind)
            ext.append((m + (frame if j == 0 and frames else 0), c + 2 * _MARGIN * len(frames)))
            spine.append((frames, kind, name))

    flatten("", ())
    n = len(spine)
    if n < 2:
        return single
    index: dict[str, int] = {name: i for i, (_, _, name) in enumerate(spine)}
    places: dict[str, int] = {}
    for item_id in [*lay.items, "input", "output"]:
        hit = [index[c] for c in geo.anc(item_id) if c in index]
        places[item_id] = hit[0] if hit else index.get(item_id, 0)

    def position(item_id: str) -> int:
        return places[item_id]

    crossing: list[set[str]] = [set() for _ in range(n - 1)]
    for e in geo.edges:
        a, b = position(e.src), position(e.dst)
        for cut in range(max(a, 0), min(b, n - 1)):
            crossing[cut].add(e.src)
    valid = [len(s) == 1 for s in crossing]
    head = 0 if geo.lr else title
    marker = 0.3 * 72 + _RANKSEP

    def col_main(a: int, b: int) -> float:
        m = sum(ext[i][0] for i in range(a, b + 1)) + _RANKSEP * (b - a)
        return m + (head if a == 0 else marker) + (0 if b == n - 1 else marker)

    # best[k - 1][i]: the shortest possible longest column when entries 0..i make k columns.
    inf = float("inf")
    best: list[list[tuple[float, int]]] = [[(col_main(0, i), -1) for i in range(n)]]
    for _ in range(1, min(_MAX_COLUMNS, 1 + sum(valid))):
        prev = best[-1]
        row: list[tuple[float, int]] = []
        for i in range(n):
            choice = (inf, -1)
            for j in range(i):
                if valid[j] and prev[j][0] < inf:
                    v = max(prev[j][0], col_main(j + 1, i))
                    if v < choice[0]:
                        choice = (v, j)
            row.append(choice)
        best.append(row)
    nesting = 16.0
    items = [*lay.items, "input", "output"]
    preds: dict[str, list[str]] = {}
    for e in geo.edges:
        preds.setdefault(e.dst, []).append(e.src)

    def aligned(cuts: list[int]) -> float:
        """Graphviz ranks are shared by all columns: the k-th rank of every column is as long as the
        longest k-th box of any column.  The columns' length, counted that way."""
        column = {i: sum(1 for c in cuts if places[i] > c) for i in items}
        rank: dict[str, int] = {}
        longest: dict[int, float] = {}
        frames: dict[int, set[str]] = {}
        for item_id in items:  # in execution order (input and output last: handled by their edges)
            r = max((rank[p] + 1 for p in preds.get(item_id, ()) if p in rank and column[p] == column[item_id]),
                    default=0 if column[item_id] == 0 else 1)
            rank[item_id] = r
            w, h = geo.sizes[item_id]
            longest[r] = max(longest.get(r, 0.0), w if geo.lr else h)
            frames.setdefault(column[item_id], set()).update(geo.anc(item_id))
        framing = max(len(f) for f in frames.values()) * (2 * _MARGIN + (0 if geo.lr else _CLUSTER_FONT * 1.4))
        return sum(longest.values()) + _RANKSEP * len(longest) + framing + (0 if geo.lr else title)

    options: list[tuple[_Fit, list[int]]] = []
    for k, row in enumerate(best, start=1):
        if row[n - 1][0] == inf:
            continue
        cuts: list[int] = []
        i = n - 1
        for kk in range(k - 1, 0, -1):
            i = best[kk][i][1]
            cuts.append(i)
        cuts.reverse()
        bounds = [-1, *cuts, n - 1]
        cols = [(bounds[c] + 1, bounds[c + 1]) for c in range(k)]
        lengths = [col_main(a, b) for a, b in cols]
        if min(lengths) < max(lengths) / 4:
            continue  # a column of a node or two beside long ones: a cut that only looks balanced
        longest = max(max(lengths), aligned(cuts))
        across = sum(max(ext[i][1] for i in range(a, b + 1)) for a, b in cols) + (k - 1) * 2 * _NODESEP + nesting
        w, h = (max(across, title_w), longest) if not geo.lr else (max(longest, title_w), across + title)
        options.append((_Fit(None, w / _PT_PER_PX, h / _PT_PER_PX), cuts))
    if not options:
        return single
    if not geo.lr:
        # Columns side by side: the figure is scaled down to the page width, so more columns make it
        # shorter but smaller; take the fewest columns that fit the page at a readable scale.
        readable = [o for o in options if o[0].scale >= _MIN_SCALE] or options[:1]
        fits = [o for o in readable if o[0].fits]
        if fits:
            fit, cuts = fits[0]
        else:  # the shortest figure, but no more columns than needed to come within 5% of it
            low = min(o[0].height * o[0].scale for o in readable)
            fit, cuts = next(o for o in readable if o[0].height * o[0].scale <= low * 1.05)
    else:
        # Rows one below the other: the fewest rows no longer than the page is wide, else the fewest
        # that come within 5% of the narrowest.
        fits = [o for o in options if o[0].width <= PAGE_WIDTH_PX]
        low = min(o[0].width for o in options)
        fit, cuts = fits[0] if fits else next(o for o in options if o[0].width <= low * 1.05)
    if not cuts:
        return fit
    column: dict[str, int] = {}
    for item_id in [*lay.items, "input", "output"]:
        p = position(item_id)
        column[item_id] = sum(1 for c in cuts if p > c)
    letters = [chr(ord("A") + i) for i in range(len(cuts))]
    fit.wrap = _Wrap(spine, [(c, next(iter(crossing[c])), letters[i]) for i, c in enumerate(cuts)], column)
    return fit


@dataclass
class _Drawing:
    """Everything :func:`to_dot` writes: items, labels, styles, clusters, edges and the page fit."""

    lay: _Layout
    labels: dict[str, str | _Html]
    styles: dict[str, dict[str, str]]
    entries: dict[str, list[tuple[int, str, str]]]
    edges: list[_Edge]
    fit: _Fit
    title: str
    titles: dict[str, str]


def _draw(graph: Graph, opts: RenderOptions, depth: int | None) -> _Drawing:
    lay = _Layout(graph, opts, depth)
    theme = THEMES[opts.theme]
    total = graph.total
    title = (f"{graph.name}: {fmt_shape(graph.input_shape)} → {fmt_shape(graph.output_shape)}\n"
             f"{total.params:,} params · {_human(total.macs)} MACs per sample")
    labels: dict[str, str | _Html] = {item.id: _item_label(graph, lay, item) for item in lay.items.values()}
    if opts.init:  # render --init: the schemes that differ from PyTorch's default, one line per layer with weights
        for item in lay.items.values():
            lines = [f"{graph.nodes[m].op}: {text}" for m in item.members if (text := init_text(graph, graph.nodes[m]))]
            if item.node is not None and lines and isinstance(labels[item.id], str):
                labels[item.id] = "\n".join([str(labels[item.id]), *lines])
    styles = {item.id: _node_style(graph, lay, item, theme, labels[item.id]) for item in lay.items.values()}
    labels["input"] = f"input\n{fmt_shape(graph.input_shape)}"
    labels["output"] = f"output\n{fmt_shape(graph.output_shape)}"
    # Entries (items and clusters) per cluster, in execution order.
    entries: dict[str, list[tuple[int, str, str]]] = {"": [(-1, "item", "input")]}
    for item in lay.items.values():
        entries.setdefault(lay.cluster_of(item), []).append((lay.index[item.members[0]], "item", item.id))
    for cname in lay.clusters:
        entries.setdefault(lay.enclosing_cluster(graph.groups[cname].parent), []).append(
            (lay.first[cname], "cluster", cname))
    entries[""].append((len(graph.nodes), "item", "output"))
    for scope in entries:
        entries[scope].sort(key=lambda t: (t[0], t[1] == "item"))

    # Edges, once per drawn pair; a shape label where the tensor's shape changes.
    edges: list[_Edge] = []
    seen: set[tuple[str, str]] = set()

    def edge(src: str, dst: str, shape: Shape, skip: bool) -> None:
        src_id = lay.item_of.get(src, "input")
        if src_id == dst or (src_id, dst) in seen:
            return
        seen.add((src_id, dst))
        item = lay.items.get(src_id)
        labelled = item is not None and dst != "output" and lay.item_in_shape(item) != shape
        edges.append(_Edge(src_id, dst, fmt_shape(shape), skip, labelled))

    for node in graph.nodes.values():
        dst = lay.item_of[node.name]
        for src in node.inputs:
            if not lay.between_instances(src, node.name):
                edge(src, dst, graph.shape_of(src), _is_skip(graph, lay, src, node) and lay.items[dst].node is not None)
    edge(graph.output, "output", graph.output_shape, False)
    shown = {e.src for e in edges if e.labelled and not e.skip}
    for e in edges:  # a skip edge repeats the shape its source's main edge already shows
        e.labelled = e.labelled and not (e.skip and e.src in shown)

    titles: dict[str, str] = {}
    for name in lay.clusters:
        run = lay.runs.get(name)
        params = lay.run_params(run) if run is not None else graph.group_counts(name).params
        titles[name] = (_run_title(lay, run) if run is not None else _group_title(graph.groups[name])) + (
            f" · {_human(params)} params" if params else "")
    sizes = {iid: _box_size(labels[iid], styles.get(iid, {})) for iid in labels}
    geo = _Geometry(lay, opts.direction == "LR", sizes, edges, entries, titles)
    notes = ["circled letters: the network continues at the same letter", "dashed red edges: skip connections"]
    fit = _plan_wrap(lay, geo, [*title.split("\n"), *notes], opts.wrap)
    return _Drawing(lay, labels, styles, entries, edges, fit, title, titles)


def _auto_depths(graph: Graph) -> list[int | None]:
    """The depths ``auto`` tries, most detailed first: all, then one level less each time."""
    deepest = 0
    for name, grp in graph.groups.items():
        if grp.kind in _LEVEL_KINDS:
            deepest = max(deepest, 1 + sum(1 for p in _parents(graph, name) if graph.groups[p].kind in _LEVEL_KINDS))
    return [None, *range(deepest - 1, -1, -1)]


def _parents(graph: Graph, name: str) -> Iterable[str]:
    cur = graph.groups[name].parent
    while cur:
        yield cur
        cur = graph.groups[cur].parent


def _attr_text(key: str, value: str | _Html) -> str:
    return f"{key}=<{value.text}>" if isinstance(value, _Html) else f"{key}={_q(value)}"


def to_dot(graph: Graph, options: RenderOptions | None = None) -> str:
    """The diagram of an analysed graph as Graphviz DOT text (deterministic: same input, same bytes)."""
    opts = options or RenderOptions()
    if opts.depth == "auto":
        drawing = None
        for depth in _auto_depths(graph):
            drawing = _draw(graph, opts, depth)
            if drawing.fit.fits:
                break
        assert drawing is not None
    else:
        drawing = _draw(graph, opts, opts.depth)
    return _emit(graph, opts, drawing)


def _emit(graph: Graph, opts: RenderOptions, d: _Drawing) -> str:
    theme = THEMES[opts.theme]
    lay, labels, styles, entries, edges, wrap = d.lay, d.labels, d.styles, d.entries, d.edges, d.fit.wrap
    title = d.title
    after: dict[int, str] = {}  # spine index → the end connector drawn after that entry
    before: dict[int, str] = {}  # spine index → the start connector drawn before it
    if wrap is not None:
        for cut, _, letter in wrap.cuts:
            after[cut] = letter
            before[cut + 1] = letter
        rerouted: list[_Edge] = []
        ends: set[str] = set()
        for e in edges:
            a, b = wrap.column.get(e.src, 0), wrap.column.get(e.dst, 0)
            if b > a:
                _, source, letter = wrap.cuts[b - 1]
                if letter not in ends:
                    ends.add(letter)
                    rerouted.append(_Edge(source, f"{letter}:end", e.shape, False, False))
                rerouted.append(_Edge(f"{letter}:start", e.dst, e.shape, e.skip, not e.skip))
            else:
                rerouted.append(e)
        edges = rerouted
        title += "\ncircled letters: the network continues at the same letter"
    if any(e.skip for e in edges):
        title += "\ndashed red edges: skip connections"

    graph_attrs: dict[str, str] = {
        "label": title, "labelloc": "t", "fontsize": str(_TITLE_FONT), "fontname": _FONT, "rankdir": opts.direction,
        "bgcolor": theme.background, "fontcolor": theme.font, "nodesep": f"{_NODESEP / 72:.2f}",
        "ranksep": f"{_RANKSEP / 72:.2f}", "newrank": "true", "forcelabels": "true"}
    if opts.wrap:
        graph_attrs["size"] = f"{PAGE_WIDTH_PX / 96 - 0.01:.2f},100"  # shrink to the page width, never enlarge
    lines = [
        f"digraph {_q(graph.name)} {{",
        "  graph " + _attrs(**graph_attrs) + ";",
        "  node " + _attrs(fontname=_FONT, fontsize=str(_NODE_FONT), fontcolor=theme.font, color=theme.edge,
                           margin="0.12,0.05", height="0.4") + ";",
        "  edge " + _attrs(fontname=_FONT, fontsize=str(_EDGE_FONT), fontcolor=theme.font, color=theme.edge,
                           arrowsize="0.7") + ";",
    ]
    connector = {"shape": "circle", "style": "filled,bold", "fillcolor": theme.merge, "width": "0.3",
                 "fixedsize": "true"}

    def node_line(indent: str, node_id: str, attrs: dict[str, str | _Html]) -> str:
        return f"{indent}{_q(node_id)} [" + ", ".join(_attr_text(k, v) for k, v in attrs.items()) + "];"

    def open_cluster(name: str, indent: str, depth: int, part: int = 0) -> None:
        run = lay.runs.get(name)
        cid = "cluster_" + name + (f"~{part + 1}" if part else "")
        lines.append(f"{indent}subgraph {_q(cid)} {{")
        lines.append(f"{indent}  graph " + _attrs(
            label=d.titles[name] + (" (continued)" if part else ""), labeljust="l", fontsize=str(_CLUSTER_FONT),
            style="rounded,filled,bold" if run is not None else "rounded,filled", color=theme.cluster_border,
            fillcolor=theme.cluster_fill[depth % len(theme.cluster_fill)],
            tooltip=name if run is None else ", ".join(g.name for g in run)) + ";")

    def entry(what: str, name: str, indent: str, depth: int) -> None:
        if what == "item" and name in ("input", "output"):
            lines.append(node_line(indent, name, {"label": labels[name], "shape": "box", "style": "filled,bold",
                                                  "fillcolor": theme.background}))
        elif what == "item":
            item = lay.items[name]
            tip = item.node.name if item.node is not None else ", ".join(g.name for g in item.groups)
            lines.append(node_line(indent, name, {"label": labels[name], "tooltip": tip, **styles[name]}))
        else:
            open_cluster(name, indent, depth)
            emit(name, indent + "  ", depth + 1)
            lines.append(f"{indent}}}")

    def connectors(table: dict[int, str], i: int, indent: str, kind: str) -> None:
        if i in table:
            letter = table[i]
            tip = f"continued from {letter}" if kind == "start" else f"continues at {letter}"
            lines.append(node_line(indent, f"{letter}:{kind}", {"label": letter, "tooltip": tip, **connector}))

    def emit(scope: str, indent: str, depth: int) -> None:
        for _, what, name in entries.get(scope, []):
            entry(what, name, indent, depth)

    def emit_spine(spine: list[tuple[tuple[str, ...], str, str]]) -> None:
        """The top level in spine order: a cluster cut by a column gets one frame per column."""
        open_frames: list[str] = []
        parts: dict[str, int] = {}
        column = 0
        for i, (frames, what, name) in enumerate(spine):
            col = sum(1 for c, _, _ in wrap.cuts if i > c) if wrap is not None else 0
            keep = 0 if col != column else next(
                (j for j, (a, b) in enumerate(zip(open_frames, frames, strict=False)) if a != b),
                min(len(open_frames), len(frames)))
            column = col
            while len(open_frames) > keep:
                open_frames.pop()
                lines.append("  " * (len(open_frames) + 1) + "}")
            for frame in frames[keep:]:
                open_cluster(frame, "  " * (len(open_frames) + 1), len(open_frames), parts.get(frame, 0))
                parts[frame] = parts.get(frame, 0) + 1
                open_frames.append(frame)
            indent = "  " * (len(open_frames) + 1)
            entry(what, name, indent, len(open_frames))
            connectors(after, i, indent, "end")
        while open_frames:
            open_frames.pop()
            lines.append("  " * (len(open_frames) + 1) + "}")

    if wrap is None:
        emit("", "  ", 0)
    else:
        emit_spine(wrap.spine)
    for i in sorted(before):  # column (row) starts at the top level, where their order can be fixed
        connectors(before, i, "  ", "start")
    for e in edges:
        attrs: dict[str, str] = {}
        if e.labelled:
            # Top to bottom, an external label takes no rank of its own (a compact layout); left to right
            # it would sit on the short edges' boxes, so the label gets its own room there.
            attrs["label" if opts.direction == "LR" else "xlabel"] = e.shape
        if e.skip:
            attrs.update(style="dashed", color=theme.skip, penwidth="1.6")
        lines.append(f"  {_q(e.src)} -> {_q(e.dst)}" + (" " + _attrs(**attrs) if attrs else "") + ";")
    if wrap is not None:
        # Columns left to right (rows top to bottom), in order: the input and the column starts share a
        # rank and are chained invisibly.
        starts = [_q("input"), *(_q(f"{letter}:start") for _, _, letter in wrap.cuts)]
        lines.append("  {rank=same; " + "; ".join(starts) + ";}")
        lines.append("  " + " -> ".join(starts) + ' [style="invis"];')
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

    The format comes from ``fmt`` or ``output``'s extension (``dot`` when neither says).  The output
    is checked before drawing (see :mod:`archspec.fsutil`; ``protect`` lists input files it must not
    be).  Raises :class:`ArchspecError` (``E-NO-DOT`` when an image format is asked for without
    Graphviz, ``E-IO`` for an output that cannot or must not be written).
    """
    if output is not None:
        check_output(output, protect=protect)
    kind = format_for(output, fmt)
    data = dot_to_image(to_dot(graph, options), kind)
    if output is not None:
        write_atomic(output, data, protect=protect)
    return data


# --------------------------------------------------------------------------------------------------
# Gallery

_GALLERY_MARK = "<!-- archspec gallery: dot-sha256 {} -->"
_INDEX_TITLE = "# Diagram gallery"


def _is_spec_file(path: Path) -> bool:
    """A YAML mapping with the ``archspec`` version key (other YAML files in a spec folder are skipped).

    ``path`` is a regular file.  A file that cannot be read or parsed, or is too large to look at,
    counts as a spec so that the analysis reports the problem with its position.
    """
    from .source import read_file

    try:
        data, _ = read_file(path)  # every guard of the spec reader: size, FIFOs, nesting, aliases, long numbers
    except ArchspecError:
        return True
    return isinstance(data, dict) and "archspec" in data


def _odd_entry(path: Path) -> str | None:
    """Why ``path`` (found in a spec folder or given as a spec) cannot be read as a spec file, else None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "it is a broken symbolic link" if path.is_symlink() else "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISFIFO(st.st_mode):
        return "it is a FIFO, not a spec file"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "it is a device, not a spec file"
    if stat.S_ISSOCK(st.st_mode):
        return "it is a socket, not a spec file"
    return "it is not a regular file"


def gallery_sources(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, str, str]]:
    """``(file, stem, display name)`` per spec; directories are searched for ``**/*.yaml`` (sorted).

    The stem keeps sub-folders (``imagenet/resnet50``); the display name starts at the given
    directory's own name (``specs/imagenet/resnet50.yaml``) so it does not depend on the working directory.
    In a directory, folders named ``*.yaml`` and YAML files that are not specs (no ``archspec`` key) are
    skipped; broken symbolic links, FIFOs, devices and sockets — in a folder or given directly — are
    errors (``E-IO``, all reported at once; a FIFO is never opened), as are two specs with one stem.
    """
    out, problems = _sources(paths)
    if problems:
        raise ArchspecError(problems)
    return out


def _sources(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[tuple[Path, str, str]], list[Diagnostic]]:
    """:func:`gallery_sources` and the problems found (instead of raising them)."""
    out: list[tuple[Path, str, str]] = []
    problems: list[Diagnostic] = []

    def odd(f: Path) -> bool:
        why = _odd_entry(f)
        if why is not None:
            problems.append(Diagnostic("E-IO", f"cannot draw '{f}': {why}"))
        return why is not None

    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.glob("**/*.yaml")):
                if f.is_dir() or odd(f) or not _is_spec_file(f):
                    continue
                rel = f.relative_to(path)
                out.append((f, rel.with_suffix("").as_posix(), (Path(path.resolve().name) / rel).as_posix()))
        elif os.path.lexists(path) and odd(path):
            continue
        else:
            out.append((path, path.stem, path.name))  # a missing file is reported by the analysis
    seen: dict[str, Path] = {}
    for f, stem, _ in out:
        if stem in seen:
            problems.append(Diagnostic("E-IO", f"'{seen[stem]}' and '{f}' would both be drawn as '{stem}'",
                                       hint="rename one of them, or make separate galleries"))
        seen.setdefault(stem, f)
    return out, problems


def _spec_text(path: Path) -> str:
    """A spec's text for the gallery (without the editor's schema comment line)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:  # pragma: no cover - it was just analysed
        return ""
    lines = [line for line in text.splitlines() if not line.startswith("# yaml-language-server:")]
    return "\n".join(lines).strip("\n")


def _beside(spec: str, image: str) -> str:
    """Markdown (an HTML table, as GitHub renders it) putting a spec's text beside its diagram."""
    fence = "~~~~" if "```" in spec else "```"
    return (f'<table><tr><td valign="top">\n\n{fence}yaml\n{spec}\n{fence}\n\n</td><td valign="top">\n\n'
            f"{image}\n\n</td></tr></table>\n")


def svg_dot_hash(svg: str) -> str | None:
    """The DOT hash a gallery SVG was made from (``None`` if it carries no gallery mark)."""
    m = re.search(_GALLERY_MARK.format("([0-9a-f]{64})"), svg)
    return m.group(1) if m else None


def _is_gallery(out: Path) -> bool:
    """Whether ``out`` already holds a gallery (its ``index.md`` starts with the gallery title)."""
    try:
        with (out / "index.md").open("rb") as fh:
            return fh.read(len(_INDEX_TITLE)) == _INDEX_TITLE.encode("utf-8")
    except OSError:
        return False


def gallery(
    paths: Iterable[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    options: RenderOptions | None = None,
    *,
    images: bool = True,
    import_roots: Iterable[str | os.PathLike[str]] = (),
) -> list[Path]:
    """Write ``<stem>.dot`` and ``<stem>.svg`` per spec plus an ``index.md`` into ``outdir``; return the files.

    Each SVG carries the SHA-256 of its DOT source, so a check can tell a stale picture without
    depending on the installed Graphviz version.  ``images=False`` writes only the DOT files and index.
    ``import_roots`` is passed to :func:`archspec.analyze` for every spec.

    Nothing is written unless everything succeeds: the folder is checked first, then every spec is
    analysed and drawn (all problems are reported together), then every target is checked (none may
    be a file any spec read, nor a non-gallery ``index.md``), and only then are the files written,
    each atomically.  Raises :class:`ArchspecError`.
    """
    from .api import analyze
    from .source import record_reads

    check_output_dir(outdir)  # before Path(): Path("") would mean the current folder
    out = Path(outdir)
    sources, problems = _sources(paths)
    if not sources and not problems:
        raise ArchspecError.single("E-IO", "no spec files to draw (a folder is searched for **/*.yaml with an "
                                   "'archspec' key)")
    inputs: list[str] = []
    files: dict[Path, str] = {}
    entries: list[str] = []
    for spec, stem, shown in sources:
        try:
            with record_reads() as reads:
                try:
                    graph = analyze(spec, import_roots=import_roots)
                finally:
                    inputs.append(str(spec))
                    inputs.extend(p for p, _ in reads)
        except ArchspecError as exc:
            if not (exc.errors and all(d.code == "E-LIBRARY" for d in exc.errors)):
                problems.extend(exc.diagnostics)
            continue  # a block library (imported by other specs) draws no network of its own
        text = to_dot(graph, options)
        files[out / f"{stem}.dot"] = text  # not with_suffix(): 'net.v2' must not become 'net.dot'
        if images:
            files[out / f"{stem}.svg"] = text  # drawn below, once every spec is known to be valid
        t = graph.total
        entries.append(f"## {graph.name}\n\n`{shown}` · {fmt_shape(graph.input_shape)} → "
                       f"{fmt_shape(graph.output_shape)} · {t.params:,} params · {_human(t.macs)} MACs\n\n"
                       + _beside(_spec_text(spec), f"![{graph.name}]({stem}.svg)"))
    if problems:
        raise ArchspecError(problems)
    if not entries:
        raise ArchspecError.single("E-IO", "no spec to draw: every spec file given is a block library")
    for path, text in files.items():
        if path.suffix == ".svg":
            svg = dot_to_image(text, "svg").decode("utf-8")
            mark = _GALLERY_MARK.format(hashlib.sha256(text.encode("utf-8")).hexdigest())
            files[path] = svg.replace("<svg ", mark + "\n<svg ", 1)
    index = out / "index.md"
    files[index] = (_INDEX_TITLE + "\n\nGenerated by `archspec render --gallery docs/gallery specs` "
                    "(do not edit by hand; CI checks it is current).\n\n" + "\n".join(entries))
    was_gallery = _is_gallery(out)
    stale = sorted(set(_previous_stems(out)) - {stem for _, stem, _ in sources}) if was_gallery else []
    if os.path.lexists(index) and not was_gallery:
        raise ArchspecError.single("E-IO", f"refusing to overwrite '{index}': it is not an archspec gallery index",
                                   hint="draw the gallery into its own folder")
    for path in files:
        check_output(path, protect=inputs, parents=True)
    written: list[Path] = []
    for path, data in files.items():
        mkdirs(path.parent)
        write_atomic(path, data, protect=inputs)
        written.append(path)
    _prune(out, stale, inputs)
    return written


def _previous_stems(out: Path) -> list[str]:
    """The diagrams an existing gallery index in ``out`` lists (``![name](stem.svg)`` lines)."""
    try:
        with (out / "index.md").open("rb") as fh:
            text = fh.read(16 * 1024 * 1024).decode("utf-8", "replace")
    except OSError:
        return []
    return re.findall(r"^!\[[^\]\n]*\]\(([^()\n]+)\.svg\)$", text, flags=re.M)


def _prune(out: Path, stale: Iterable[str], inputs: Sequence[str] = ()) -> None:
    """Remove the diagrams of specs a previous gallery index listed and that are gone now.

    Only ``<stem>.dot`` and ``<stem>.svg`` inside ``out`` for those stems are removed (never a folder,
    a special file, or a file some spec read); nothing else in the folder is touched.
    """
    protected = {os.path.realpath(p) for p in inputs}
    for stem in stale:
        parts = PurePosixPath(stem).parts
        if not parts or PurePosixPath(stem).is_absolute() or ".." in parts:
            continue  # an index edited by hand: never reach outside the folder
        for suffix in (".dot", ".svg"):
            path = out / f"{stem}{suffix}"
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)) or os.path.realpath(path) in protected:
                continue
            try:
                path.unlink()
            except OSError as exc:
                raise ArchspecError.single("E-IO", f"cannot remove the stale diagram '{path}': {exc.strerror or exc}") \
                    from None
