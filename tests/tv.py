"""torchvision's own model code as the oracle for the ImageNet specs.

torchvision is installed without its dependencies (``pip install --no-deps torchvision``, see the
README's install step), so its compiled extension may have been built for another torch release and
fail to load.  Its pure-Python model code does not need it: when the normal import fails, the two
operator schemas that torchvision's fake-tensor registrations expect (``torchvision::nms`` and
``torchvision::qnms``) are declared here, with no kernel, and the package is imported again.  The
models never call them.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

_LIB: Any = None  # keeps the operator library alive


def torchvision_models() -> ModuleType:
    """``torchvision.models``, importable with or without torchvision's compiled extension."""
    global _LIB
    try:
        return importlib.import_module("torchvision.models")
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    import torch

    if _LIB is None:
        _LIB = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            _LIB.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return importlib.import_module("torchvision.models")


def module(name: str) -> ModuleType:
    """torchvision's submodule ``name`` (e.g. ``"ops"``, ``"ops.misc"``, ``"models.convnext"``), imported as
    :func:`torchvision_models` imports the package: the tests' oracle for single layers and blocks."""
    torchvision_models()
    return importlib.import_module(f"torchvision.{name}")


def build(name: str, **kwargs: Any) -> Any:
    """torchvision's constructor ``name`` (e.g. ``"convnext_tiny"``) with random weights."""
    return getattr(torchvision_models(), name)(**kwargs)
