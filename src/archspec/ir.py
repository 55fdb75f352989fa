"""The graph IR: the flat, shape-annotated network that every back end reads.

A :class:`Graph` is a list of :class:`Node` in execution (topological) order plus the tree of
:class:`Group` records (block instances and composites) that the nodes were expanded from.  Every
node and group has a stable dotted name (``b3.inception1.branch2.conv1``) and the YAML span it came
from.  Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ArchspecError, Diagnostic, Span
from .ops import Counts, Shape, get_op

__all__ = ["DISPLAY", "Graph", "Group", "Node"]

#: How a :class:`Graph` shows itself in a notebook (``svg``, ``html``, ``bundle``): set by
#: :mod:`archspec.notebook`, which is imported with the package.
DISPLAY: dict[str, Callable[..., Any]] = {}


@dataclass(slots=True)
class Node:
    """One primitive op instance.

    ``inputs`` are names of earlier nodes (``"input"`` is the network input); ``params`` is the op's
    validated parameters, an instance of the op's Pydantic model (``params_model``, e.g.
    :class:`~archspec.models.ConvParams`);
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
    #: How tensors start, where not PyTorch's default: node name → tensor (``weight``, ``bias``) →
    #: :class:`archspec.init.TensorInit` (filled from the spec's ``init`` sections by :func:`archspec.init.resolve`).
    init: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        p = b = m = i = 0
        for n in self.nodes.values():
            p += n.counts.params
            b += n.counts.buffers
            m += n.counts.macs
            i += n.counts.int_buffers
        return Counts(p, b, m, i)

    def group_counts(self, group: str) -> Counts:
        """Totals over every node inside ``group`` (at any depth)."""
        prefix = group + "."
        p = b = m = i = 0
        for n in self.nodes.values():
            if n.name.startswith(prefix):
                p += n.counts.params
                b += n.counts.buffers
                m += n.counts.macs
                i += n.counts.int_buffers
        return Counts(p, b, m, i)

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

    # Notebook display: archspec.notebook (imported with the package) fills in DISPLAY, since drawing
    # needs archspec.render, which depends on this module.
    def _repr_svg_(self) -> str | None:
        """The diagram as SVG for Jupyter; None (so the HTML form shows) when Graphviz's ``dot`` is missing."""
        show = DISPLAY.get("svg")
        return show(self) if show is not None else None

    def _repr_html_(self) -> str | None:
        """The diagram (or a note on installing Graphviz) above the summary table, for Jupyter."""
        show = DISPLAY.get("html")
        return show(self) if show is not None else None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """SVG, HTML and a one-line text form at once, so that a notebook runs Graphviz once per display."""
        show = DISPLAY.get("bundle")
        return show(self, include, exclude) if show is not None else {}


#: ``build`` refuses to allocate a model with more parameter and buffer elements than this unless told otherwise.
DEFAULT_MAX_PARAMS = 2_000_000_000


def check_max_params(graph: Graph, max_params: float | None, device: Any = None) -> None:
    """Refuse (``E-TOO-LARGE``) a model whose parameters and buffers exceed ``max_params`` elements.

    Building allocates both, so both count: a ``bn`` layer holds about as many buffer elements as
    parameters (with ``affine: false``, only buffers).  Nothing is checked when ``max_params`` is
    None or ``device`` is ``"meta"`` (which allocates nothing).  Torch is not imported.
    """
    if max_params is None or str(device) == "meta":
        return
    total = graph.total
    elements = total.params + total.buffers
    if elements <= max_params:
        return
    biggest = max(graph.nodes.values(), key=lambda n: n.counts.params + n.counts.buffers, default=None)
    size = biggest.counts.params + biggest.counts.buffers if biggest is not None else 0
    where = f"; the largest layer is '{biggest.name}' with {size:,}" if biggest is not None and size else ""
    what = (f"{total.params:,} parameters" if not total.buffers
            else f"{total.params:,} parameters and {total.buffers:,} buffer elements ({elements:,} in all)")
    raise ArchspecError([
        Diagnostic(
            "E-TOO-LARGE",
            f"the model has {what}, more than the limit of {max_params:,}{where}",
            (biggest.span if biggest is not None and size else None) or Span(graph.path, 1, 1),
            hint="check for a typo in a width; raise the limit with --max-params (max_params=) if intended, "
            "or inspect it with 'archspec build --json' which allocates nothing",
        )
    ])
