"""When the generated ``forward`` lets go of each intermediate.

A value lives as long as it would in the same network written as a tree of ``nn.Module`` s: until
the child of its scope that reads it last has returned (``lower_torch.release_points``). The
oracle is torchvision's own model code: the order in which layers are called and their outputs are
freed must be the same, event for event. That order decides how glibc reuses memory, and so how
many page faults a batch-32 forward takes (``benchmarks/README.md``, "Where the time goes").
"""

from __future__ import annotations

import ast
import itertools
import weakref
from collections.abc import Callable

import pytest
import torch
from torch import nn

import archspec
import tv
from archspec.mapping import find_mapping
from conftest import SPECS

TRACKED = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)  # layers whose output is a fresh tensor on both sides


def _events(model: nn.Module, names: dict[str, str], x: torch.Tensor) -> list[str]:
    """``call NAME`` before each tracked layer runs and ``free NAME`` when its output is released."""
    log: list[str] = []

    def before(name: str) -> Callable[..., None]:
        return lambda module, args: log.append(f"call {name}")

    def after(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object, out: torch.Tensor) -> None:
            weakref.finalize(out, log.append, f"free {name}")
        return hook

    handles = []
    for path, module in model.named_modules():
        if path in names and isinstance(module, TRACKED):
            handles += [module.register_forward_pre_hook(before(names[path])),
                        module.register_forward_hook(after(names[path]))]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return log


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0", "shufflenet_v2_x1_0", "googlenet"])
def test_forward_frees_in_torchvisions_order(name: str) -> None:
    """Residual blocks, squeeze-excitation, channel splits and inception branches release exactly as
    torchvision's hand-written modules do (names translated through the spec's key mapping)."""
    spec = SPECS / "imagenet" / f"{name}.yaml"
    graph = archspec.analyze(spec)
    names = find_mapping(spec, graph.name).module_map(graph)
    ours = archspec.build(spec).eval()
    reference = tv.build(name, **({"aux_logits": False, "init_weights": False} if name == "googlenet" else {}))
    x = torch.randn(1, 3, 64, 64)
    expected = _events(reference.eval(), {path: path for path in names.values()}, x)
    got = _events(ours, names, x)
    assert len(got) == 2 * len(names) and got == expected


BLOCKS = """\
archspec: 1
name: t
input: [3, 8, 8]
blocks:
  unit:
    layers:
      - conv: {out: 4, k: 3, pad: 1}
      - relu
      - conv: {out: 4, k: 1}
layers:
  - conv: {out: 4, k: 1}
    name: stem
  - unit: {}
    name: u1
  - unit: {}
    name: u2
  - concat: [u2, u1]
    name: both
"""


def _deletes(code: str) -> list[tuple[str, list[str]]]:
    """(the variable assigned just before, the names deleted) for each ``del`` of a forward."""
    body = ast.parse(code).body[0].body  # type: ignore[attr-defined]
    out = []
    for previous, statement in itertools.pairwise(body):
        if isinstance(statement, ast.Delete):
            out.append((ast.unparse(previous.targets[0]), [ast.unparse(t) for t in statement.targets]))
    return out


def test_a_block_input_lives_until_the_block_returns() -> None:
    """The stem's output feeds ``u1``'s first conv but is held until ``u1`` has finished, as the
    ``nn.Sequential`` running the units would hold it; released together, the innermost scope's value
    goes first, and operands of the top-level concat go newest first."""
    model = archspec.build(BLOCKS, device="meta")
    deletes = _deletes(model.code)
    assert deletes == [("stem", ["x"]),
                       ("u1_relu1", ["u1_conv1"]),  # inside the block: right after the last reader
                       ("u1_conv2", ["u1_relu1", "stem"]),  # the block's input: when the block returns
                       ("u2_relu1", ["u2_conv1"]),
                       ("u2_conv2", ["u2_relu1"]),
                       ("both", ["u2_conv2", "u1_conv2"])]


def test_flat_network_frees_after_each_last_reader() -> None:
    """With no blocks every value is released right after the layer that reads it last."""
    model = archspec.build(SPECS / "lenet.yaml", device="meta")
    deletes = _deletes(model.code)
    assigned = [ast.unparse(s.targets[0]) for s in ast.parse(model.code).body[0].body  # type: ignore[attr-defined]
                if isinstance(s, ast.Assign) and not ast.unparse(s.value).endswith("._modules")]
    assert deletes == [(reader, [value]) for reader, value in zip(assigned, ["x", *assigned[:-1]], strict=True)]
