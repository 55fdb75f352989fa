"""In-place activations and sums: decided statically from the graph, bit-identical to the out-of-place network.

``archspec.lower_torch.inplace_nodes`` picks the activations (relu, relu6, hardtanh, leaky-relu, silu,
hardswish, hardsigmoid, mish) and the ``add`` nodes whose input is a fresh tensor (conv, bn, add, layer-scale,
concat, ..., possibly through identity, dropout or stochastic depth) that nothing else reads; the
activations are built as ``nn.ReLU(inplace=True)`` etc., the sums written ``a.add_(b)``.  These tests
check the decision on shipped and hand-made specs, that outputs, gradients and BatchNorm statistics are
bit-identical to the same model with everything out of place (train and eval), that ``intermediates``
still returns every value as computed out of place, that ``--emit-python`` writes the same choices,
and that Dynamo still captures the forward in one graph.  ImageNet specs run at 3×32×32 (1×1 at the
end), batch 2.
"""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import archspec
from archspec.emit_python import emit_python
from archspec.lower_torch import INPLACE_OPS, disable_inplace, inplace_nodes
from conftest import ROOT, SPECS
from helpers_emit import load_emitted
from helpers_models import assert_one_graph_in_train_and_eval

pytestmark = pytest.mark.usefixtures("two_threads")

IMAGENET = ROOT / "specs" / "imagenet"
SMALL = (3, 32, 32)
#: (spec path, input shape: small, so that every case runs in seconds)
CASES = {
    "resnet50": (IMAGENET / "resnet50.yaml", SMALL),
    "mobilenet_v2": (IMAGENET / "mobilenet_v2.yaml", SMALL),
    "densenet121": (IMAGENET / "densenet121.yaml", SMALL),
    "googlenet": (IMAGENET / "googlenet.yaml", SMALL),
    "mobilenet_v3_small": (IMAGENET / "mobilenet_v3_small.yaml", SMALL),  # hardswish, hardsigmoid gates
    "efficientnet_b0": (IMAGENET / "efficientnet_b0.yaml", SMALL),  # silu, adds after stochastic depth
    "convnext_tiny": (IMAGENET / "convnext_tiny.yaml", SMALL),  # adds after layer scale and stochastic depth
    "seed_resnet18": (SPECS / "resnet18.yaml", (1, 32, 32)),
    "seed_densenet": (SPECS / "densenet.yaml", (1, 32, 32)),
    "seed_googlenet": (SPECS / "googlenet.yaml", (1, 32, 32)),
}


def _out_of_place(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (same weights and buffers) that runs nothing in place: ``disable_inplace``.

    Checked: the forward has no in-place sum (an add that overwrote its second input now reads
    ``b + a``, bit-identical: IEEE addition commutes), and no module has ``inplace=True``.
    """
    had_inplace = bool({step[1] for step in type(model)._archspec_plan[1]} & {"inplace", "add_"})
    other = disable_inplace(copy.deepcopy(model))
    assert type(other).__name__ == type(model).__name__
    assert (type(other) is not type(model)) == had_inplace  # a new class only where something ran in place
    kinds = {step[1] for step in type(other)._archspec_plan[1]}
    assert not kinds & {"inplace", "add_"} and kinds <= {"module", "add", "mul", "concat"}
    assert ".add_(" not in other.code and "in place" not in other.code
    assert not any(getattr(m, "inplace", False) for m in other.modules())
    return other


def _n_inplace(model: nn.Module) -> int:
    return sum(bool(getattr(m, "inplace", False)) for m in model.modules())


def _run(model: nn.Module, x: torch.Tensor, weight: torch.Tensor, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Forward (seeded, for dropout), a weighted sum as loss, backward: the output and every gradient."""
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)
    out = model(x)
    (out * weight).sum().backward()
    module = getattr(model, "_orig_mod", model)  # a torch.compile wrapper: the parameters of the model inside
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    grads["<input>"] = x.grad.clone()
    model.zero_grad(set_to_none=True)
    return out.detach(), grads


def _assert_same_training(model: nn.Module, reference: nn.Module, x: torch.Tensor, weight: torch.Tensor,
                          modes: tuple[tuple[str, tuple[int, ...]], ...]) -> None:
    """Outputs, gradients (parameters and input) and state (BatchNorm statistics) bit-identical."""
    for mode, seeds in modes:
        model.train(mode == "train")
        reference.train(mode == "train")
        for seed in seeds:
            out, grads = _run(model, x, weight, seed)
            ref_out, ref_grads = _run(reference, x, weight, seed)
            assert torch.equal(out, ref_out), (mode, seed)
            assert grads.keys() == ref_grads.keys()
            assert all(torch.equal(grads[k], ref_grads[k]) for k in ref_grads), (mode, seed)
        state, ref_state = model.state_dict(), reference.state_dict()
        assert all(torch.equal(state[k], ref_state[k]) for k in ref_state)


def _write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "net.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# The decision


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "densenet121", "googlenet", "efficientnet_b0"])
def test_every_activation_and_sum_of_the_imagenet_specs_runs_in_place(name: str) -> None:
    """As in torchvision: ``nn.ReLU(inplace=True)`` after every conv, bn and residual add, ``out += identity``."""
    path, shape = CASES[name]
    graph = archspec.analyze(path, input_shape=shape)
    inplace = inplace_nodes(graph)
    acts = {n.name for n in graph.nodes.values() if n.op in INPLACE_OPS}
    adds = {n.name for n in graph.nodes.values() if n.op == "add"}
    assert acts and set(inplace) == acts | adds
    model = archspec.build(path, input_shape=shape, device="meta")
    assert all(model.get_submodule(n).inplace for n in acts)
    assert _n_inplace(model) == len(acts)
    assert model.code.count("; in place") == len(inplace)
    assert model.code.count(".add_(") == len(adds)
    assert "inplace=True" in repr(model.get_submodule(sorted(acts)[0]))


def test_convnext_residual_sums_accumulate_into_the_layer_scale_output() -> None:
    """As torchvision's CNBlock (``result = layer_scale * block(x)``, ``result += x``): every sum in place."""
    path, shape = CASES["convnext_tiny"]
    graph = archspec.analyze(path, input_shape=shape)
    adds = [n for n in graph.nodes.values() if n.op == "add"]
    assert len(adds) == 18
    inplace = inplace_nodes(graph)
    assert set(inplace) == {n.name for n in adds}
    for node in adds:  # the value overwritten: stochastic depth (passing on) the layer scale's output
        source = graph.nodes[node.inputs[inplace[node.name]]]
        assert source.op == "stochastic-depth" and graph.nodes[source.inputs[0]].op == "layer-scale"


DECISIONS = {
    # name: (graph body, {in-place node: index of the input it overwrites})
    "after conv, bn, add, concat, mul, layer-scale": ("""
        c1:   {conv: {out: 4, k: 3, pad: 1}, from: input}
        a1:   {relu: {}, from: c1}
        c2:   {conv: {out: 4, k: 1}, from: a1}
        b2:   {bn: {}, from: c2}
        a2:   {relu6: {}, from: b2}
        c3:   {conv: {out: 4, k: 1}, from: a2}
        s:    {add: [c3, a2]}
        a3:   {hardtanh: {min: -0.5, max: 2}, from: s}
        cat:  {concat: [a3, a2]}
        a4:   {leaky-relu: {slope: 0.2}, from: cat}
        g:    {conv: {out: 8, k: 1}, from: a4}
        m:    {mul: [g, a4]}
        a5:   {leaky-relu: {slope: 0}, from: m}
        ls:   {layer-scale: {init: 0.5}, from: a5}
        a6:   {relu: {}, from: ls}
        out:  {conv: {out: 2, k: 1}, from: a6}
        """, {"a1": 0, "a2": 0, "s": 0, "a3": 0, "a4": 0, "a5": 0, "a6": 0}),
    "through identity, dropout, stochastic depth; silu-type activations": ("""
        c1:   {conv: {out: 4, k: 3, pad: 1}, from: input}
        d1:   {dropout: {p: 0.3}, from: c1}
        a1:   {relu: {}, from: d1}
        c2:   {conv: {out: 4, k: 1}, from: a1}
        i2:   {identity: {}, from: c2}
        a2:   {silu: {}, from: i2}
        c3:   {conv: {out: 4, k: 1}, from: a2}
        b3:   {bn: {}, from: c3}
        sd:   {stochastic-depth: {p: 0.5}, from: b3}
        s:    {add: [sd, a2]}
        h:    {hardswish: {}, from: s}
        c4:   {conv: {out: 4, k: 1}, from: h}
        g:    {hardsigmoid: {}, from: c4}
        m:    {mul: [h, g]}
        mi:   {mish: {}, from: m}
        out:  {conv: {out: 2, k: 1}, from: mi}
        """, {"a1": 0, "a2": 0, "s": 0, "h": 0, "g": 0, "mi": 0}),
    "value with another reader, network input; an add overwriting its second input": ("""
        a0:   {relu: {}, from: input}
        c1:   {conv: {out: 4, k: 3, pad: 1}, from: a0}
        a1:   {relu: {}, from: c1}
        c2:   {conv: {out: 4, k: 1}, from: c1}
        s:    {add: [a1, c2]}
        a2:   {relu: {}, from: s}
        out:  {conv: {out: 2, k: 1}, from: s}
        """, {"s": 1}),
    "producers that alias or whose backward needs their output": ("""
        c1:   {conv: {out: 4, k: 3, pad: 1}, from: input}
        sg:   {sigmoid: {}, from: c1}
        a1:   {relu: {}, from: sg}
        a2:   {relu: {}, from: a1}
        id:   {identity: {}, from: a2}
        a3:   {relu: {}, from: id}
        dr:   {dropout: {p: 0.5}, from: a3}
        a4:   {relu6: {}, from: dr}
        sl:   {slice: {end: 2}, from: a4}
        a5:   {relu: {}, from: sl}
        c2:   {conv: {out: 4, k: 1}, from: a5}
        th:   {tanh: {}, from: c2}
        a6:   {hardtanh: {}, from: th}
        s:    {add: [th, a6]}
        c4:   {conv: {out: 4, k: 1}, from: s}
        c5:   {conv: {out: 4, k: 1}, from: s}
        s3:   {add: [a6, c4, c5]}
        c6:   {conv: {out: 4, k: 1}, from: s3}
        b6:   {bn: {}, from: c6}
        i6:   {identity: {}, from: b6}
        a7:   {silu: {}, from: b6}
        out:  {add: [a7, i6]}
        """, {}),
}


@pytest.mark.parametrize("case", DECISIONS)
def test_decision_and_bit_identity_on_hand_made_graphs(case: str, tmp_path: Path) -> None:
    body, expected = DECISIONS[case]
    path = _write_spec(tmp_path, "archspec: 1\nname: net\ninput: [3, 8, 8]\ngraph:\n"
                       + textwrap.indent(textwrap.dedent(body).strip("\n"), "  ") + "\noutput: out\n")
    graph = archspec.analyze(path)
    assert inplace_nodes(graph) == expected
    torch.manual_seed(0)
    model = archspec.build(path)
    acts = {n for n in expected if graph.nodes[n].op != "add"}
    assert {n for n, m in model.named_modules() if getattr(m, "inplace", False)} == acts
    assert model.code.count(".add_(") == len(expected) - len(acts)
    reference = _out_of_place(model)
    x = torch.randn(2, 3, 8, 8)
    _assert_same_training(model, reference, x, torch.randn(2, *graph.output_shape), (("train", (1, 2)), ("eval", (3,))))
    feats, ref_feats = model.intermediates(x), reference.intermediates(x)
    assert all(torch.equal(feats[k], ref_feats[k]) for k in ref_feats)


def test_network_output_is_never_overwritten(tmp_path: Path) -> None:
    """A relu reading the network's output value (here 'c', also returned) stays out of place."""
    path = _write_spec(tmp_path, """\
        archspec: 1
        name: net
        input: [3, 8, 8]
        graph:
          c: {conv: {out: 4, k: 1}, from: input}
          r: {relu: {}, from: c}
          d: {conv: {out: 4, k: 1}, from: r}
        output: c
        """)
    graph = archspec.analyze(path)
    assert inplace_nodes(graph) == {}
    model = archspec.build(path)
    x = torch.randn(1, 3, 8, 8)
    assert bool((model(x) < 0).any())  # the conv's value, not clamped by the relu


def test_in_place_modules_really_overwrite_their_input() -> None:
    """The in-place relu returns the very tensor its producer made (no new allocation)."""
    path, shape = CASES["seed_resnet18"]
    model = archspec.build(path, input_shape=shape).eval()
    graph = archspec.analyze(path, input_shape=shape)
    name = sorted(n for n in inplace_nodes(graph) if graph.nodes[n].op == "relu")[0]
    seen: dict[str, Any] = {}
    relu = model.get_submodule(name)
    relu.register_forward_pre_hook(lambda m, args: seen.__setitem__("in", args[0].data_ptr()))
    relu.register_forward_hook(lambda m, args, out: seen.__setitem__("out", out.data_ptr()))
    with torch.no_grad():
        model(torch.randn(1, *graph.input_shape))
    assert seen["in"] == seen["out"]
    relu.inplace = False  # the documented opt-out is honoured by the same model
    with torch.no_grad():
        model(torch.randn(1, *graph.input_shape))
    assert seen["in"] != seen["out"]


# --------------------------------------------------------------------------------------------------
# Bit-identical to the out-of-place network


@pytest.mark.parametrize("name", CASES)
def test_outputs_gradients_and_statistics_are_bit_identical(name: str) -> None:
    path, shape = CASES[name]
    graph = archspec.analyze(path, input_shape=shape)
    torch.manual_seed(0)
    model = archspec.build(path, input_shape=shape)
    assert inplace_nodes(graph)
    reference = _out_of_place(model)
    assert _n_inplace(reference) == 0
    assert list(model.state_dict()) == list(reference.state_dict())
    x = torch.randn(2, *graph.input_shape)
    # twice in train mode: the second step sees the BatchNorm statistics the first one updated
    _assert_same_training(model, reference, x, torch.randn(2, *graph.output_shape), (("train", (1, 2)), ("eval", (3,))))
    with torch.inference_mode():
        assert torch.equal(model(x), reference(x))


@pytest.mark.parametrize("name", ["resnet50", "seed_densenet"])
def test_intermediates_are_the_out_of_place_values(name: str) -> None:
    """Every value ``intermediates`` returns, including those an in-place node overwrites in forward."""
    path, shape = CASES[name]
    graph = archspec.analyze(path, input_shape=shape)
    model = archspec.build(path, input_shape=shape).eval()
    reference = _out_of_place(model)
    x = torch.randn(1, *shape)
    with torch.no_grad():
        feats, ref_feats = model.intermediates(x), reference.intermediates(x)
        out = model(x)
    assert list(feats) == list(ref_feats) == model.node_names
    assert all(torch.equal(feats[k], ref_feats[k]) for k in feats)
    assert torch.equal(feats[model.node_names[-1]], out)
    overwritten = {n: graph.nodes[n].inputs[i] for n, i in inplace_nodes(graph).items()}
    # the values before the activations and sums, negatives intact
    assert any(bool((feats[v] < 0).any()) for n, v in overwritten.items() if graph.nodes[n].op == "relu")
    sums = [(v, n) for n, v in overwritten.items() if graph.nodes[n].op == "add"]
    assert all(not torch.equal(feats[v], feats[n]) for v, n in sums)


# --------------------------------------------------------------------------------------------------
# Eject and torch.compile


@pytest.mark.parametrize("name", ["mobilenet_v2", "seed_densenet"])
def test_emit_python_writes_the_same_choices(name: str, tmp_path: Path) -> None:
    path, shape = CASES[name]
    graph = archspec.analyze(path, input_shape=shape)
    text = emit_python(graph)
    inplace = inplace_nodes(graph)
    assert "inplace=True" in text
    assert (".add_(" in text) == any(graph.nodes[n].op == "add" for n in inplace)
    _, cls = load_emitted(text, tmp_path / f"emitted_{name}.py")
    torch.manual_seed(0)
    model = archspec.build(path, input_shape=shape)
    emitted = cls()
    emitted.load_state_dict(model.state_dict())
    ours = {n for n, m in model.named_modules() if getattr(m, "inplace", False)}
    theirs = {n for n, m in emitted.named_modules() if getattr(m, "inplace", False)}
    assert ours == theirs == {n for n in inplace if graph.nodes[n].op != "add"}
    reference = _out_of_place(model)
    x = torch.randn(2, *graph.input_shape)
    _assert_same_training(emitted, reference, x, torch.randn(2, *graph.output_shape), (("train", (3,)), ("eval", (4,))))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_dynamo_captures_one_graph_in_train_and_eval(name: str) -> None:
    path, shape = IMAGENET / f"{name}.yaml", SMALL
    model = archspec.build(path, input_shape=shape)
    assert _n_inplace(model) > 0 and ".add_(" in model.code
    x = torch.randn(2, *shape)
    assert_one_graph_in_train_and_eval(model, x)
    if name != "resnet18":  # compiling a training step once is enough (it takes a while on two cores)
        return
    reference = _out_of_place(model)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    weight = torch.randn(2, 1000)
    out, grads = _run(compiled, x, weight, 4)
    ref_out, ref_grads = _run(reference, x, weight, 4)
    torch.testing.assert_close(out, ref_out)
    for k in ref_grads:
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()
