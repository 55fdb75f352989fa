"""Export a compiled spec to ONNX (``archspec export SPEC --format onnx -o model.onnx``).

Needs the optional ``onnx`` extra (``pip install 'archspec[onnx]'``: onnx and onnxscript, which
torch's exporter uses, plus onnxruntime to run the result).  Without it, a clear diagnostic says
what to install.  The graph is exported with torch's ``torch.export``-based exporter, with a dynamic
batch dimension, and written atomically.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from typing import Any

from .errors import ArchspecError, Diagnostic
from .ir import Graph

__all__ = ["FORMATS", "export_onnx", "missing_onnx_packages"]

#: Formats ``archspec export`` writes.
FORMATS = ("onnx",)

def missing_onnx_packages() -> list[str]:
    """The packages ONNX export needs that are not installed (empty when export is available)."""
    missing = []
    try:
        import onnx  # noqa: F401
    except ImportError:
        missing.append("onnx")
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        missing.append("onnxscript")
    return missing


def export_onnx(
    graph: Graph,
    path: str | os.PathLike[str],
    *,
    batch_size: int = 1,
    dynamic_batch: bool = True,
    opset: int | None = None,
    protect: tuple[str | os.PathLike[str], ...] = (),
    model: Any = None,
) -> int:
    """Build the model for ``graph`` (eval mode) and write it to ``path`` as ONNX; return the file size.

    ``model`` exports an already built (e.g. trained) module of this graph instead of a fresh one.

    The input is named ``input`` and the output ``output``; the batch dimension is dynamic unless
    ``dynamic_batch`` is false.  Raises :class:`ArchspecError` when the ``onnx`` extra is missing or
    the export fails.
    """
    missing = missing_onnx_packages()
    if missing:
        raise ArchspecError([
            Diagnostic(
                "E-MISSING-DEP",
                "ONNX export needs the optional 'onnx' extra (missing: " + ", ".join(missing) + ")",
                hint="install it with: pip install 'archspec[onnx]'  (or: pip install onnx onnxscript onnxruntime)",
            )
        ])
    import torch

    from .fsutil import write_atomic
    from .lower_torch import lower

    if model is None:
        model = lower(graph)
    model = model.eval()
    x = torch.randn(batch_size, *graph.input_shape)
    kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"], "dynamo": True}
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    if opset is not None:
        kwargs["opset_version"] = opset
    chatter = io.StringIO()
    onnx_log = logging.getLogger("torch.onnx")
    old_level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (x,), **kwargs)
            data = program.model_proto.SerializeToString()
    except Exception as exc:
        raise ArchspecError([
            Diagnostic("E-EXPORT", f"ONNX export of '{graph.name}' failed: {type(exc).__name__}: {exc}".strip(),
                       hint="torch.export must trace the model; a custom op's module may not be exportable")
        ]) from exc
    finally:
        onnx_log.setLevel(old_level)
    write_atomic(path, data, protect=protect)
    return len(data)
