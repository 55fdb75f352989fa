"""archspec: a declarative architecture compiler.

Write a network once as a YAML graph of primitives and reusable blocks; archspec validates it,
infers every shape statically, compiles it to a ``torch.nn.Module`` and renders diagrams.

>>> import archspec
>>> graph = archspec.analyze("specs/lenet.yaml")      # static: no torch import
>>> model = archspec.build("specs/lenet.yaml")         # an nn.Module
>>> archspec.list_models("resnet*")                    # the shipped models, by name
>>> model = archspec.build("resnet50", classes=10)     # a shipped model by name
"""

from __future__ import annotations

from . import notebook as _notebook  # noqa: F401  (gives Graph its notebook display)
from .api import DEFAULT_MAX_PARAMS, analyze, load_plugin
from .errors import ArchspecError, Diagnostic, Span
from .ir import Graph, Group, Node
from .models import OpParams
from .ops import Counts, Op, ShapeError, register_op
from .zoo import build, list_models, model_info

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
    "list_models",
    "load_plugin",
    "model_info",
    "register_op",
]

__version__ = "0.1.0"

