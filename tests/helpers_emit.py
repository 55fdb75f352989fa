"""``--emit-python`` output in tests: import an emitted file as a user would, and compare it with ``archspec.build``.

Shared by test_emit_python, test_emit_fuzz, test_init, test_inplace and test_unet.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

import archspec
from archspec.ir import Graph

__all__ = ["assert_emitted_equals_build", "load_emitted"]


def load_emitted(text: str, path: Path) -> tuple[ModuleType, type[nn.Module]]:
    """Write ``text`` to ``path`` and import it as the module ``path.stem`` (a real file, as a user would).

    Returns the module and its network class: the last class the file defines.  The module is in
    ``sys.modules`` only while it is executed, so the same name can be loaded again.
    """
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[path.stem]
    last = [n for n in ast.parse(text).body if isinstance(n, ast.ClassDef)][-1]
    return module, getattr(module, last.name)


def assert_emitted_equals_build(graph: Graph, cls: type[nn.Module], *, equal_nan: bool = False) -> nn.Module:
    """``cls()`` is the module ``archspec.build(graph)`` builds: the same state_dict keys and shapes in the same
    order, and with the built module's state dict loaded, the same output in eval mode on a random input.

    Returns the built module (in eval mode).
    """
    built = archspec.build(graph).eval()
    ejected = cls().eval()
    built_sd, ejected_sd = built.state_dict(), ejected.state_dict()
    assert [(k, tuple(v.shape)) for k, v in ejected_sd.items()] == [(k, tuple(v.shape)) for k, v in built_sd.items()]
    ejected.load_state_dict(built_sd)
    x = torch.randn(1, *graph.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(ejected(x), built(x), equal_nan=equal_nan)
    return built
