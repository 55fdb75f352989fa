"""Stage 5, *lower*: graph IR → ``torch.fx.GraphModule``.  The only module that imports torch.

The generated module's forward is straight-line code (``model.code`` shows it): one call per node,
no interpreter loop.  The submodule tree mirrors the spec: every block instance and composite is a
:class:`Block` container named as in the spec, so ``print(model)`` and ``state_dict()`` keys read
like the YAML (``b3.inception1.branch2.conv1.weight``), and are registered in execution order.
"""

from __future__ import annotations

import contextlib
import operator
import re
from typing import Any

import torch
from torch import fx, nn

from .ir import Graph
from .ops import get_op

__all__ = ["Block", "lower"]


class Block(nn.Module):
    """Container for the modules of one block instance or composite; shows the block's name in ``print``.

    It holds submodules only: the top-level module's generated forward calls them directly.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def _get_name(self) -> str:
        return self.kind

    def forward(self, *args: Any) -> Any:
        """Not callable on its own: the generated forward of the whole model calls the leaves."""
        raise RuntimeError(f"'{self.kind}' is a container inside an archspec model; call the whole model instead")


def camel(name: str) -> str:
    """``inception-branch`` / ``conv_block`` → ``InceptionBranch`` / ``ConvBlock``."""
    parts = re.split(r"[-_\s]+", name)
    out = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return out if out and out[0].isalpha() else "Net" + out


def _fx_name(name: str) -> str:
    return name.replace(".", "_")


def lower(graph: Graph, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> fx.GraphModule:
    """Build the PyTorch module for a shape-inferred graph.

    ``device="meta"`` builds without allocating weight memory; ``dtype`` converts after building.
    """
    with torch.device(device) if device is not None else contextlib.nullcontext():
        root = nn.Module()
        g = fx.Graph()
        env: dict[str, fx.Node] = {"input": g.placeholder("x")}
        for node in graph.nodes.values():
            args = [env[i] for i in node.inputs]
            if node.op == "add":
                value = args[0]
                for other in args[1:]:
                    value = g.create_node("call_function", operator.add, (value, other), name=_fx_name(node.name))
            elif node.op == "concat":
                value = g.create_node("call_function", torch.cat, (tuple(args),), {"dim": 1}, name=_fx_name(node.name))
            else:
                op = get_op(node.op)
                if op is None:  # pragma: no cover - the IR only holds registered ops
                    raise RuntimeError(f"no op '{node.op}'")
                in_shapes = [graph.shape_of(i) for i in node.inputs]
                _install(root, node.name, op.lower(node.params, in_shapes, node.shape), graph)
                value = g.call_module(node.name, tuple(args))
            value.meta["archspec_name"] = node.name
            env[node.name] = value
        g.output(env[graph.output])
        gm = _graph_module(root, g, camel(graph.name))
    if dtype is not None:
        gm = gm.to(dtype)
    return gm


def _install(root: nn.Module, path: str, module: nn.Module, graph: Graph) -> None:
    """Add ``module`` at dotted ``path``, creating each missing container as a :class:`Block` named like the spec."""
    parent = root
    *prefix, leaf = path.split(".")
    for i, part in enumerate(prefix):
        child = parent._modules.get(part)
        if child is None:
            group = graph.groups.get(".".join(prefix[: i + 1]))
            child = Block(camel(group.block or group.kind)) if group is not None else nn.Module()
            parent.add_module(part, child)
        parent = child
    parent.add_module(leaf, module)


def _graph_module(root: nn.Module, g: fx.Graph, class_name: str) -> fx.GraphModule:
    """``fx.GraphModule(root, g)`` without fx's copy of the module tree.

    ``fx.GraphModule(root, graph)`` re-creates every container on the path to each ``call_module``
    target as an anonymous ``Module()`` (one ``Module.__init__`` and several ``__setattr__`` per
    container, which made building cost a third more than constructing the modules).  The tree built
    here already has its final shape, so the module adopts it whole and then takes the graph, which
    compiles the forward once.
    """
    stub = fx.Graph()
    stub.output(stub.placeholder("x"))
    gm = fx.GraphModule(nn.Module(), stub, class_name=class_name)
    for name, child in root._modules.items():
        gm.add_module(name, child)
    gm.graph = g
    return gm
