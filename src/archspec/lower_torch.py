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
                _install(root, node.name, op.lower(node.params, in_shapes, node.shape))
                value = g.call_module(node.name, tuple(args))
            value.meta["archspec_name"] = node.name
            env[node.name] = value
        g.output(env[graph.output])
        gm = fx.GraphModule(root, g, class_name=camel(graph.name))
    _name_containers(gm, graph)
    if dtype is not None:
        gm = gm.to(dtype)
    return gm


def _install(root: nn.Module, path: str, module: nn.Module) -> None:
    parent = root
    *prefix, leaf = path.split(".")
    for part in prefix:
        child = parent._modules.get(part)
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    parent.add_module(leaf, module)


def _name_containers(gm: fx.GraphModule, graph: Graph) -> None:
    """Replace fx's anonymous intermediate ``Module()``s with :class:`Block`s named like the spec."""
    for group in graph.groups.values():
        parent_path, _, leaf = group.name.rpartition(".")
        try:
            parent = gm.get_submodule(parent_path) if parent_path else gm
        except AttributeError:
            continue
        old = parent._modules.get(leaf)
        if old is None or isinstance(old, Block):
            continue
        kind = camel(group.block) if group.block else camel(group.kind)
        new = Block(kind)
        new._modules = old._modules
        parent._modules[leaf] = new
