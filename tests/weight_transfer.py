"""Copy weights between two networks whose submodule names differ.

Two implementations of one architecture (a hand-written reference and an
archspec-compiled module) rarely agree on attribute names, but they run the same
stateful layers in the same order. `copy_weights` pairs those layers by the order
in which they first execute on an example input, checks each pair really is the
same kind of layer with the same tensors, and only then copies the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["StatefulCall", "copy_weights", "execution_order"]


@dataclass(frozen=True)
class StatefulCall:
    """A module that owns parameters or buffers, as seen during a forward pass."""

    qualname: str
    """Dotted name of the module inside its model ('' for the model itself)."""
    module: nn.Module

    @property
    def type_name(self) -> str:
        """The module's class name, e.g. 'Conv2d'."""
        return type(self.module).__name__

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name → shape of the parameters and buffers this module owns directly."""
        return {name: tuple(t.shape) for name, t in _own_tensors(self.module).items()}

    def describe(self) -> str:
        """'qualname' (Type) {name: shape, ...}, for error messages."""
        shapes = ", ".join(f"{n}: {list(s)}" for n, s in self.tensor_shapes().items())
        return f"{self.qualname or '<root>'!r} ({self.type_name}) {{{shapes}}}"


def _own_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """Name → tensor for the parameters and buffers `module` owns directly."""
    return {
        **dict(module.named_parameters(recurse=False)),
        **dict(module.named_buffers(recurse=False)),
    }


def execution_order(model: nn.Module, example: torch.Tensor) -> list[StatefulCall]:
    """The modules of `model` that own state, in the order they are first called.

    "Own" means directly (`recurse=False`): in practice the leaf layers (Conv2d,
    BatchNorm2d, Linear, ...), plus any container that holds a bare nn.Parameter.

    Runs one forward pass on `example` in eval mode under `torch.no_grad()` (so
    BatchNorm running statistics are not touched), then restores each module's
    training flag. A module called several times is listed once, at its first call.
    Raises AssertionError if a module that owns state is never called, because its
    weights could then be neither checked nor copied.
    """
    owners = {id(m): name for name, m in model.named_modules() if _own_tensors(m)}
    calls: list[StatefulCall] = []
    seen: set[int] = set()

    def record(module: nn.Module, _args: object) -> None:
        if id(module) not in seen:
            seen.add(id(module))
            calls.append(StatefulCall(owners[id(module)], module))

    handles: list[RemovableHandle] = [
        m.register_forward_pre_hook(record)
        for m in model.modules()
        if id(m) in owners
    ]
    was_training = {id(m): m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
        for m in model.modules():
            m.train(was_training[id(m)])

    never_called = [name or "<root>" for key, name in owners.items() if key not in seen]
    if never_called:
        raise AssertionError(
            f"{type(model).__name__}: modules owning weights were never called in forward "
            f"on an input of shape {list(example.shape)}: {never_called}"
        )
    return calls


def copy_weights(src: nn.Module, dst: nn.Module, example: torch.Tensor) -> None:
    """Copy every parameter and buffer of `src` into `dst`, pairing layers by call order.

    Both models run once on `example` (see `execution_order`); the i-th stateful
    module called in `src` is paired with the i-th one called in `dst`. Every pair
    must have the same class name and the same parameter/buffer names and shapes,
    and both models must call the same number of stateful modules. All pairs are
    checked before anything is copied, so on an AssertionError `dst` is unchanged.
    Each message names both modules by their qualified names and gives the shapes.
    """
    src_calls = execution_order(src, example)
    dst_calls = execution_order(dst, example)
    count_note = (
        ""
        if len(src_calls) == len(dst_calls)
        else f" (src calls {len(src_calls)} stateful modules, dst calls {len(dst_calls)})"
    )

    for index, (s, d) in enumerate(zip(src_calls, dst_calls, strict=False)):
        if s.type_name != d.type_name:
            raise AssertionError(
                f"stateful module #{index} differs in type{count_note}: "
                f"src {s.describe()} vs dst {d.describe()}"
            )
        if s.tensor_shapes() != d.tensor_shapes():
            raise AssertionError(
                f"stateful module #{index} ({s.type_name}) differs in tensors{count_note}: "
                f"src {s.describe()} vs dst {d.describe()}"
            )

    if len(src_calls) != len(dst_calls):
        if len(src_calls) > len(dst_calls):
            longer, name = src_calls, "src"
        else:
            longer, name = dst_calls, "dst"
        shorter = min(len(src_calls), len(dst_calls))
        extra = "; ".join(c.describe() for c in longer[shorter:])
        raise AssertionError(
            f"src calls {len(src_calls)} stateful modules but dst calls {len(dst_calls)}; "
            f"the first {shorter} pair up, {name} also calls: {extra}"
        )

    with torch.no_grad():
        for s, d in zip(src_calls, dst_calls, strict=False):
            targets = _own_tensors(d.module)
            for name, tensor in _own_tensors(s.module).items():
                targets[name].copy_(tensor)
