"""Checking an op's static table against PyTorch: :func:`check_op`.

archspec computes every shape, parameter count and MAC count without torch; the module an op lowers
to must agree with all of them.  :func:`check_op` runs one op both ways and raises AssertionError
on any disagreement.  archspec's tests run it over every built-in op; plugin authors can run it
over theirs::

    from archspec.testing import check_op
    check_op("conv", {"out": 8, "k": 3, "pad": 1}, [(3, 16, 16)])
    check_op("mul", {}, [(8, 4, 4), (8, 1, 1)])          # merges take several input shapes

Imports torch (it builds and runs modules); the static pipeline never imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .lower_torch import FUNCTIONAL_OPS, Block, _model_class
from .ops import Counts, Op, Shape, fmt_shape, get_op

__all__ = ["OpCheck", "check_op", "torch_macs"]


@dataclass(frozen=True)
class OpCheck:
    """What :func:`check_op` verified: the static shape and counts, the module and one output."""

    shape: Shape
    counts: Counts
    module: nn.Module
    output: torch.Tensor


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
    or all but the channels for a linear applied to channels).  Other modules count 0, as in
    archspec's (torchvision's) convention; a module whose MACs come from elsewhere cannot be checked
    this way.
    """
    total = 0

    def hook(mod: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
        nonlocal total
        x = args[0]
        weight = mod.weight  # type: ignore[union-attr]
        n = x.shape[0]
        if isinstance(mod, nn.ConvTranspose2d):
            total += weight.numel() * (x.numel() // (n * x.shape[1]))
        elif isinstance(mod, nn.Conv2d):
            total += weight.numel() * (out.numel() // (n * out.shape[1]))
        else:  # nn.Linear: one use of the weight per vector of in_features
            total += weight.numel() * (x.numel() // (n * mod.in_features))  # type: ignore[union-attr]

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
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


def check_op(op: str | Op, params: dict[str, Any] | None, input_shapes: list[tuple[int, ...]], *,
             batch: int = 2, macs: bool = True, seed: int = 0) -> OpCheck:
    """Check one op's static rules against the module it lowers to; return what was checked.

    Validates ``params`` with the op's parameter model (``pydantic.ValidationError`` if invalid),
    runs the static :meth:`~archspec.ops.Op.infer` (:class:`~archspec.ops.ShapeError` if the
    shapes are invalid) and :meth:`~archspec.ops.Op.count`, builds the module with
    :meth:`~archspec.ops.Op.lower` (merges that lower to an expression in the generated forward,
    ``add``/``concat``/``mul``, are run as that expression), runs it on random inputs of
    ``(batch, *shape)`` in training and in eval mode, and asserts that

    * the output shape is ``(batch, *static shape)`` in both modes,
    * the module's parameter and buffer element counts equal the static counts,
    * with ``macs=True``, the static MACs equal :func:`torch_macs` (conv/linear weight use counted
      by hooks; pass ``macs=False`` for an op whose MACs come from other modules).

    Raises AssertionError with a message naming the op, its parameters and both values.  The
    returned module (``OpCheck.module``; an empty module for a merge) is left in eval mode.
    """
    resolved = get_op(op) if isinstance(op, str) else op
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
    shape = the_op.infer(p, shapes)
    counts = the_op.count(p, shapes, shape)

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
    return OpCheck(shape=shape, counts=counts, module=layer, output=output)
