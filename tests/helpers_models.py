"""Checks shared by the tests that compare archspec models and specs with reference implementations.

The references are torchvision's own code (imported through ``tests/tv.py``) or modules written in a
test.  Used by test_modern_cnns_a,
test_modern_cnns_b, test_ops, test_imagenet, test_zoo, test_inplace and test_tokens.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from archspec import ArchspecError, analyze
from archspec.ir import Graph
from archspec.mapping import find_mapping

__all__ = [
    "IMAGENET",
    "assert_counts_match",
    "assert_family_library",
    "assert_module_paths",
    "assert_one_graph_in_train_and_eval",
    "assert_same_in_eval_and_train",
    "family_member",
    "randomize_batchnorm",
]

#: The shipped ImageNet spec library.
IMAGENET = Path(__file__).resolve().parent.parent / "specs" / "imagenet"


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so a mis-wired BN cannot go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def assert_counts_match(graph: Graph, reference: nn.Module) -> None:
    """The spec's static parameter and buffer counts are the reference module's (which may be on the meta device)."""
    assert graph.total.params == sum(p.numel() for p in reference.parameters())
    assert graph.total.buffers == sum(b.numel() for b in reference.buffers())


def assert_module_paths(spec: Path, name: str, expected: dict[str, str]) -> None:
    """The module map of ``spec``'s torchvision mapping ``name`` sends each archspec module path in ``expected``
    to the torchvision path given there."""
    table = find_mapping(spec, name).module_map(analyze(spec))
    assert {ours: table[ours] for ours in expected} == expected


def assert_same_in_eval_and_train(model: nn.Module, reference: nn.Module, x: torch.Tensor, *,
                                  rtol: float, atol: float, seed: int = 5) -> torch.Tensor:
    """``model`` computes what ``reference`` computes on ``x``, in eval mode and in training mode.

    In training mode both draw their random numbers (dropout, stochastic depth) after
    ``torch.manual_seed(seed)``, so they must drop the same units, and BatchNorm uses batch statistics
    (and updates its running statistics once in each).  Both modules are left in training mode.
    Returns the reference's eval-mode output, for the caller's check that the comparison means something.
    """
    model.eval()
    reference.eval()
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(model(x), expected, rtol=rtol, atol=atol)
        model.train()
        reference.train()
        torch.manual_seed(seed)
        ours = model(x)
        torch.manual_seed(seed)
        torch.testing.assert_close(ours, reference(x), rtol=rtol, atol=atol)
    return expected


def assert_one_graph_in_train_and_eval(model: nn.Module, x: torch.Tensor) -> None:
    """``torch._dynamo.explain`` captures ``model``'s forward on ``x`` as one graph without breaks, in eval
    mode and in training mode (nothing is compiled).  The model is left in training mode."""
    import torch._dynamo

    for training in (False, True):
        model.train(training)
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(model)(x)
        assert explanation.graph_break_count == 0, explanation.break_reasons
        assert explanation.graph_count == 1
    torch._dynamo.reset()


def assert_family_library(library: str, members: list[str]) -> None:
    """``specs/imagenet/{library}.yaml`` describes no network of its own (analysing it is E-LIBRARY), and each
    member spec imports it."""
    with pytest.raises(ArchspecError) as exc:
        analyze(IMAGENET / f"{library}.yaml")
    assert [d.code for d in exc.value.diagnostics] == ["E-LIBRARY"]
    for name in members:
        assert f"imports: [{library}.yaml]" in (IMAGENET / f"{name}.yaml").read_text(encoding="utf-8")


def family_member(folder: Path, name: str, library: str, layer: str, layer_name: str) -> Path:
    """Write ``folder/name.yaml``: a 3×224×224 network that imports the shipped ``imagenet/library.yaml``
    and is the single layer ``layer`` (e.g. ``"regnet: {widths: ...}"``) named ``layer_name``."""
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        archspec: 1
        name: {name}
        imports: ['archspec:imagenet/{library}.yaml']
        input: [3, 224, 224]
        layers:
          - {layer}
            name: {layer_name}
        """), encoding="utf-8")
    return path
