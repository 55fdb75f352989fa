"""Checking an op's static rules against PyTorch: :func:`check_op` and :func:`check_op_cases`.

archspec computes every shape, parameter count and MAC count without torch; the module an op lowers
to must agree with all of them, and the source ``--emit-python`` writes for it must build the same
module.  :func:`check_op` runs one op both ways and raises AssertionError on any disagreement.
archspec's tests run it over every built-in op; plugin authors run it over theirs, for a few
parameter sets and input shapes in one call (see ``docs/plugins.md``)::

    from archspec.testing import check_op, check_op_cases
    check_op("conv", {"out": 8, "k": 3, "pad": 1}, [(3, 16, 16)])
    check_op("mul", {}, [(8, 4, 4), (8, 1, 1)])          # merges take several input shapes
    check_op_cases("gated-sum", [({}, [(8, 4, 4), (8, 4, 4)]), ({}, [(5,), (5,)])])

Imports torch (it builds and runs modules); the static pipeline never imports this module.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ArchspecError
from .layers import WindowAttention
from .lower_torch import FUNCTIONAL_OPS, Block, _model_class
from .ops import Counts, Op, Shape, check_kinds, fmt_shape
from .plugins import PluginError, checked_counts, checked_label, checked_shape, find_op

__all__ = ["OpCheck", "check_op", "check_op_cases", "torch_macs"]


@dataclass(frozen=True)
class OpCheck:
    """What :func:`check_op` verified: the static shape, counts and label, the module and one output.

    ``emitted`` is the constructor call ``--emit-python`` writes for the module (None when the
    ejected source was not checked: a merge written as an expression, or ``emit=False``).
    """

    shape: Shape
    counts: Counts
    module: nn.Module
    output: torch.Tensor
    label: str = ""
    emitted: str | None = None


class _Pick(nn.Module):
    """Returns input ``index`` of the tuple fed to the test harness (stands for an earlier node)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def forward(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return inputs[self.index]


def torch_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of conv, transposed-conv and linear weights in one forward of ``module``, per sample.

    Counted with forward hooks on every ``nn.Conv2d``, ``nn.ConvTranspose2d`` and ``nn.Linear``
    (subclasses included): a conv's weight is used once per output position, a transposed conv's
    once per input position, a linear's once per position of its input (all but its last dimension,
    or all but the channels for a linear applied to channels).  An ``nn.MultiheadAttention`` (whose
    projections do not run through their ``nn.Linear`` modules) counts its q/k/v and output projection
    weights once per token and the two attention products, L·L·D each, from the sequence it is given;
    a Swin :class:`~archspec.layers.WindowAttention` adds those two products in every window of its
    (padded) grid to what its ``qkv`` and ``proj`` linears count.
    Other modules count 0, as in archspec's (torchvision's) convention; a module whose MACs come from
    elsewhere cannot be checked this way.
    """
    total = 0

    def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        nonlocal total
        x = args[0]
        n = x.shape[0]
        if isinstance(mod, nn.MultiheadAttention):
            length = x.shape[1] if mod.batch_first else x.shape[0]
            projections = mod.in_proj_weight.numel() + mod.out_proj.weight.numel()
            total += projections * length + 2 * length * length * mod.embed_dim
            return
        if isinstance(mod, WindowAttention):
            (wh, ww), c = mod.window_size, x.shape[-1]
            tokens = -(-mod.h // wh) * wh * -(-mod.w // ww) * ww
            total += 2 * tokens * wh * ww * c
            return
        weight = mod.weight  # type: ignore[union-attr]
        if isinstance(mod, nn.ConvTranspose2d):
            total += weight.numel() * (x.numel() // (n * x.shape[1]))
        elif isinstance(mod, nn.Conv2d):
            total += weight.numel() * (out.numel() // (n * out.shape[1]))
        else:  # nn.Linear: one use of the weight per vector of in_features
            total += weight.numel() * (x.numel() // (n * mod.in_features))  # type: ignore[union-attr]

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.MultiheadAttention, WindowAttention))]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total


def _harness(op: Op, module: nn.Module | None, n_inputs: int) -> nn.Module:
    """A model of the class :mod:`archspec.lower_torch` generates for a graph where ``op`` reads ``n_inputs`` nodes.

    Input ``i`` is a node returning element ``i`` of the tuple passed as ``x``; the op's node is
    ``out``.  Its forward is the generated code, so a merge is checked as the expression it lowers
    to, and a module as the call the real model makes.
    """
    picks = tuple((f"in{i}", "module", ("input",), "") for i in range(n_inputs))
    kind = op.name if module is None else "module"
    plan = (f"Check{type(op).__name__}", (*picks, ("out", kind, tuple(p[0] for p in picks), "")), "out")
    root = _model_class(plan)()
    for i in range(n_inputs):
        root.add_module(f"in{i}", _Pick(i))
    if module is not None:
        root.add_module("out", module)
    return root


def _check_emitted(the_op: Op, p: Any, shapes: list[Shape], shape: Shape, module: nn.Module,
                   inputs: tuple[torch.Tensor, ...], where: str, required: bool | None) -> str | None:
    """Build the module from the source ``--emit-python`` writes for it; compare state and output.

    Returns the constructor call, or None when the op cannot be ejected and that was not
    ``required`` (``None``: required only when the op defines an emit hook).
    """
    from .emit_python import node_code

    has_hook = type(the_op).emit is not Op.emit
    try:
        expr, defs = node_code(the_op, p, shapes, shape, module, the_op.name, None)
    except ArchspecError as exc:
        if required or (required is None and has_hook):
            raise AssertionError(f"{where}: cannot be written by --emit-python: {exc.diagnostics[0].message}") from None
        return None
    namespace: dict[str, Any] = {"torch": torch, "nn": nn, "F": F, "Tensor": torch.Tensor, "__builtins__": builtins,
                                 "__name__": "archspec_emitted"}
    try:
        for name, source in defs:  # the ejected file has these imports, the definitions, then the calls
            exec(compile("from __future__ import annotations\n" + source, f"<emitted {name}>", "exec"), namespace)
        rebuilt = eval(compile(expr, "<emitted call>", "eval"), namespace)
    except Exception as exc:
        raise AssertionError(f"{where}: the ejected source {expr} fails: {type(exc).__name__}: {exc}") from None
    if not isinstance(rebuilt, nn.Module):
        raise AssertionError(f"{where}: the ejected source {expr} gives {type(rebuilt).__name__}, not a module")
    ours = [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
    theirs = [(k, tuple(v.shape)) for k, v in rebuilt.state_dict().items()]
    if ours != theirs:
        raise AssertionError(f"{where}: the ejected source {expr} has state {theirs}, the built module {ours}")
    rebuilt.load_state_dict(module.state_dict())
    module.eval()
    rebuilt.eval()
    with torch.no_grad():
        expected, got = module(*inputs), rebuilt(*inputs)
    try:
        torch.testing.assert_close(got, expected)
    except AssertionError as exc:
        raise AssertionError(f"{where}: the ejected source {expr} computes something else: {exc}") from None
    return expr


def check_op(op: str | Op, params: dict[str, Any] | None, input_shapes: list[tuple[int, ...]], *,
             batch: int = 2, macs: bool = True, seed: int = 0, emit: bool | None = None) -> OpCheck:
    """Check one op's static rules against the module it lowers to; return what was checked.

    ``op`` is an op name (a plugin's op is found as in a spec: installed plugins load on demand) or
    an :class:`~archspec.ops.Op` instance.  Validates ``params`` with the op's parameter model
    (``pydantic.ValidationError`` if invalid), runs the static :meth:`~archspec.ops.Op.infer`
    (:class:`~archspec.ops.ShapeError` if the shapes are invalid), :meth:`~archspec.ops.Op.count`
    and :meth:`~archspec.ops.Op.label`, builds the module with :meth:`~archspec.ops.Op.lower`
    (merges that lower to an expression in the generated forward, ``add``/``concat``/``mul``, are
    run as that expression), runs it — as the generated model calls it, one positional argument per
    input — on random inputs of ``(batch, *shape)`` in training and in eval mode, and asserts that

    * ``infer`` returns a shape, ``count`` a :class:`~archspec.ops.Counts` of whole numbers, ``label`` a string,
    * the output shape is ``(batch, *static shape)`` in both modes,
    * the module's parameter and buffer element counts equal the static counts,
    * with ``macs=True``, the static MACs equal :func:`torch_macs` (conv/linear weight use counted
      by hooks; pass ``macs=False`` for an op whose MACs come from other modules),
    * the module ``--emit-python`` writes (the op's :meth:`~archspec.ops.Op.emit` hook, or the
      constructor read back from a ``torch.nn``/archspec module) has the same ``state_dict`` keys
      and shapes and, with the same weights, the same output in eval mode.  ``emit=None`` (the
      default) checks this whenever the op defines an emit hook or its module can be ejected;
      ``emit=True`` requires it; ``emit=False`` skips it.

    Raises AssertionError with a message naming the op, its parameters and both values.  The
    returned module (``OpCheck.module``; an empty module for a merge) is left in eval mode.
    """
    resolved = find_op(op) if isinstance(op, str) else op
    if resolved is None:
        raise AssertionError(f"no op named {op!r}")
    the_op: Op = resolved
    shapes = [tuple(int(d) for d in s) for s in input_shapes]
    if the_op.arity is None:
        if len(shapes) < 2:
            raise AssertionError(f"'{the_op.name}' merges two or more inputs; got {len(shapes)} input shape(s)")
    elif len(shapes) != the_op.arity:
        raise AssertionError(f"'{the_op.name}' takes {the_op.arity} input(s); got {len(shapes)} input shape(s)")
    p = the_op.validate_params(params or {})
    where = f"{the_op.name} {params or {}} on {', '.join(fmt_shape(s) for s in shapes)}"
    check_kinds(the_op, shapes)  # ShapeError for an input kind the op does not take, as in a spec
    hook = "infer"
    try:
        shape = checked_shape(the_op.infer(p, shapes))
        hook = "count"
        counts = checked_counts(the_op.count(p, shapes, shape))
        hook = "label"
        label = checked_label(the_op.label(p))
    except PluginError as exc:
        raise AssertionError(f"{where}: {hook}() {exc}") from None
    if any(d <= 0 for d in shape):
        raise AssertionError(f"{where}: infer() gives an empty dimension: {fmt_shape(shape)}")

    module: nn.Module | None
    if the_op.name in FUNCTIONAL_OPS and type(the_op).__module__ == "archspec.ops":
        module = None
    else:
        module = the_op.lower(p, shapes, shape)
        if not isinstance(module, nn.Module) or isinstance(module, Block):
            raise AssertionError(f"{where}: lower() returned {type(module).__name__}, not a layer module")
    model = _harness(the_op, module, len(shapes))

    generator = torch.Generator().manual_seed(seed)
    inputs = tuple(torch.randn((batch, *s), generator=generator) for s in shapes)
    output = None
    for training in (True, False):
        model.train(training)
        with torch.random.fork_rng(devices=[]), torch.no_grad():  # leave the caller's random state alone
            torch.manual_seed(seed)
            output = model(inputs)
        mode = "train" if training else "eval"
        if not isinstance(output, torch.Tensor):
            raise AssertionError(f"{where}: the module returned {type(output).__name__} in {mode} mode, not a tensor")
        if tuple(output.shape) != (batch, *shape):
            raise AssertionError(
                f"{where}: static shape {fmt_shape(shape)} but PyTorch gives {fmt_shape(tuple(output.shape[1:]))} "
                f"(batch {output.shape[0]}) in {mode} mode"
            )
    assert output is not None
    layer = module if module is not None else nn.Module()
    n_params = sum(t.numel() for t in layer.parameters())
    n_buffers = sum(t.numel() for t in layer.buffers())
    if n_params != counts.params:
        raise AssertionError(f"{where}: static parameter count {counts.params:,} but the module has {n_params:,}")
    if n_buffers != counts.buffers:
        raise AssertionError(f"{where}: static buffer count {counts.buffers:,} but the module has {n_buffers:,}")
    if macs:
        model.eval()
        measured = torch_macs(model, inputs)
        if measured != counts.macs:
            raise AssertionError(f"{where}: static MACs {counts.macs:,} but PyTorch's conv/linear weights do "
                                 f"{measured:,} per sample")
    emitted = None
    if module is not None and emit is not False:
        emitted = _check_emitted(the_op, p, shapes, shape, module, inputs, where, emit)
    model.eval()
    return OpCheck(shape=shape, counts=counts, module=layer, output=output, label=label, emitted=emitted)


def check_op_cases(op: str | Op, cases: Iterable[tuple[dict[str, Any] | None, list[tuple[int, ...]]]],
                   **options: Any) -> list[OpCheck]:
    """:func:`check_op` for each ``(params, input_shapes)`` case: a plugin op checked in one call.

    ``options`` go to every :func:`check_op` call (``batch``, ``macs``, ``seed``, ``emit``).  Raises
    AssertionError at the first case that disagrees (its message names the parameters and shapes);
    ``ValueError`` for no cases.
    """
    checks = [check_op(op, params, shapes, **options) for params, shapes in cases]
    if not checks:
        raise ValueError("check_op_cases needs at least one (params, input_shapes) case")
    return checks
