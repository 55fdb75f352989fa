"""The graph IR: the flat, shape-annotated network that every back end reads.

A :class:`Graph` is a list of :class:`Node` in execution (topological) order plus the tree of
:class:`Group` records (block instances and composites) that the nodes were expanded from.  Every
node and group has a stable dotted name (``b3.inception1.branch2.conv1``) and the YAML span it came
from.  Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Diagnostic, Span
from .ops import Counts, Shape, get_op

__all__ = ["Graph", "Group", "Node"]


@dataclass(slots=True)
class Node:
    """One primitive op instance.

    ``inputs`` are names of earlier nodes (``"input"`` is the network input); ``params`` is the op's
    validated parameters (a frozen :class:`~archspec.compiled.Record` with the fields of the op's
    model in :mod:`archspec.models`; for a plugin op, an instance of its own Pydantic model);
    ``group`` is the name of the innermost enclosing group (``""`` = top).
    """

    name: str
    op: str
    params: Any
    inputs: tuple[str, ...]
    shape: Shape
    counts: Counts
    span: Span | None
    group: str
    label: str
    role: str = ""  # "shortcut" for a projection inferred by residual-add, "skip" merges, ...

    @property
    def local_name(self) -> str:
        """The last component of the dotted name."""
        return self.name.rsplit(".", 1)[-1]


@dataclass(slots=True)
class Group:
    """A block instance or composite: a named scope that nodes and groups nest in.

    ``kind`` is ``"block"`` (an instance of a spec block; ``block`` names it), or a composite kind:
    ``"sequence"``, ``"repeat"``, ``"inception-branch"``, ``"branch"``, ``"residual-add"``,
    ``"shortcut"``, ``"dense-concat"``.
    """

    name: str
    kind: str
    block: str | None
    span: Span | None
    parent: str
    children: list[str] = field(default_factory=list)
    input: str = ""
    output: str = ""
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def local_name(self) -> str:
        """The last component of the dotted name."""
        return self.name.rsplit(".", 1)[-1]


@dataclass(slots=True)
class Graph:
    """A fully expanded, shape-inferred network."""

    name: str
    description: str | None
    input_shape: Shape
    nodes: dict[str, Node]
    groups: dict[str, Group]
    output: str
    path: str = "<spec>"
    params: dict[str, Any] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def output_shape(self) -> Shape:
        """Shape of the network output."""
        return self.shape_of(self.output)

    def shape_of(self, name: str) -> Shape:
        """Shape of a node's output (``"input"`` is the network input)."""
        return self.input_shape if name == "input" else self.nodes[name].shape

    @property
    def total(self) -> Counts:
        """Totals over all nodes."""
        p = b = m = 0
        for n in self.nodes.values():
            p += n.counts.params
            b += n.counts.buffers
            m += n.counts.macs
        return Counts(p, b, m)

    def group_counts(self, group: str) -> Counts:
        """Totals over every node inside ``group`` (at any depth)."""
        prefix = group + "."
        p = b = m = 0
        for n in self.nodes.values():
            if n.name.startswith(prefix):
                p += n.counts.params
                b += n.counts.buffers
                m += n.counts.macs
        return Counts(p, b, m)

    def category(self, node: Node) -> str:
        """The op category of a node (see :attr:`archspec.ops.Op.category`)."""
        op = get_op(node.op)
        return op.category if op else "other"

    def lint(self) -> None:
        """Check the IR's invariants; raise AssertionError naming the broken one (an archspec bug)."""
        seen = {"input"}
        for name, node in self.nodes.items():
            assert name == node.name, f"node key {name!r} differs from its name {node.name!r}"
            for i in node.inputs:
                assert i in seen, f"node {name!r} reads {i!r} before it is computed"
            assert node.group == "" or node.group in self.groups, f"node {name!r} has unknown group {node.group!r}"
            seen.add(name)
        assert self.output in seen, f"output {self.output!r} is not a node"
