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
import math
import os
import warnings
from typing import Any

from .errors import ArchspecError, Diagnostic, Span
from .fsutil import check_output
from .ir import Graph

__all__ = ["FORMATS", "MAX_EXAMPLE_ELEMENTS", "export_onnx", "missing_onnx_packages"]

#: Formats ``archspec export`` writes.
FORMATS = ("onnx",)
#: Largest example input (batch × input elements) the exporter traces with: 1 GiB of float32.
MAX_EXAMPLE_ELEMENTS = 2**28


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
    ``dynamic_batch`` is false.  ``batch_size`` is the batch of the example input torch traces with, and
    the exported batch when it is static; a dynamic batch is traced with at least 2 samples, because torch
    takes a dimension it sees at size 1 for a constant wherever the code depends on it (ConvNeXt's
    channels-last layer norms feeding a conv, for one, would fail the export).  ``path`` is checked before
    any work (see :mod:`archspec.fsutil`; ``protect`` lists input files it must not be), and an example
    input above :data:`MAX_EXAMPLE_ELEMENTS` is refused (``E-LIMIT``).  Raises :class:`ArchspecError` when the
    ``onnx`` extra is missing, the output cannot be written, or the export fails.
    """
    check_output(path, protect=protect)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ArchspecError.single("E-TYPE", f"the batch size must be a whole number ≥ 1, got {batch_size!r}")
    traced = max(batch_size, 2) if dynamic_batch else batch_size
    elements = traced * math.prod(graph.input_shape)
    if elements > MAX_EXAMPLE_ELEMENTS:
        raise ArchspecError.single(
            "E-LIMIT",
            f"the example input of batch {traced:,} × {'×'.join(map(str, graph.input_shape))} has "
            f"{elements:,} elements, more than the limit of {MAX_EXAMPLE_ELEMENTS:,}",
            Span(graph.path, 1, 1),
            hint="export with a small --batch-size: the batch dimension stays dynamic unless --static-batch is given",
        )
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
    x = torch.randn(traced, *graph.input_shape)
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
