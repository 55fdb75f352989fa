"""archspec: a declarative architecture compiler.

Write a network once as a YAML graph of primitives and reusable blocks; archspec validates it,
infers every shape statically, compiles it to a ``torch.nn.Module`` and renders diagrams.

>>> import archspec
>>> graph = archspec.analyze("specs/lenet.yaml")      # static: no torch import
>>> model = archspec.build("specs/lenet.yaml")         # an nn.Module
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import DEFAULT_MAX_PARAMS, analyze, build
from .errors import ArchspecError, Diagnostic, Span
from .ir import Graph, Group, Node
from .ops import Counts, Op, ShapeError, register_op

if TYPE_CHECKING:  # pragma: no cover
    from .models import OpParams

__all__ = [
    "DEFAULT_MAX_PARAMS",
    "ArchspecError",
    "Counts",
    "Diagnostic",
    "Graph",
    "Group",
    "Node",
    "Op",
    "OpParams",
    "ShapeError",
    "Span",
    "analyze",
    "build",
    "register_op",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``archspec.OpParams`` is imported on first use: it pulls in Pydantic's model machinery."""
    if name == "OpParams":
        from .models import OpParams

        return OpParams
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
