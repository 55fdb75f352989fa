"""The torch lowering: the generated model class, its forward source, and what users do with the model.

The forward is Python source that archspec generates and compiles; these tests pin down that no
spec text can become code (the source's AST is checked against a whitelist, also with hostile names),
and that the model behaves as a plain module: surgery, hooks-free feature extraction, fx tracing,
class reuse, and errors that point back at the spec.
"""

from __future__ import annotations

import ast
import copy
import pickle
import traceback
from dataclasses import replace

import pytest
import torch
from torch import nn

import archspec
from archspec.errors import Span
from archspec.lower_torch import ArchspecModule, _source
from conftest import SEEDS, SPECS


def _assert_safe(source: str) -> None:
    """Only the shapes of statement the lowering emits: ``v = container['name'](args)``, ``del``, ``+``, ``.add_``, cat, clone."""
    tree = ast.parse(source)
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.FunctionDef)
    fn = tree.body[0]
    assert fn.name in {"forward", "intermediates"} and [a.arg for a in fn.args.args] == ["self", "x"]
    assert not fn.decorator_list and fn.returns is None
    allowed = (ast.FunctionDef, ast.arguments, ast.arg, ast.Assign, ast.Name, ast.Subscript, ast.Attribute,
               ast.Constant, ast.Call, ast.Tuple, ast.BinOp, ast.Add, ast.Delete, ast.Return, ast.Dict,
               ast.Load, ast.Store, ast.Del)
    for node in ast.walk(fn):
        assert isinstance(node, allowed), ast.dump(node)
        if isinstance(node, ast.Attribute):
            assert (node.attr == "_modules" or (node.attr in ("cat", "clone") and isinstance(node.value, ast.Name)
                                                and node.value.id == "torch")
                    or (node.attr == "add_" and isinstance(node.value, (ast.Name, ast.Call)))), ast.dump(node)
        if isinstance(node, ast.Call):
            assert not node.keywords
            assert (isinstance(node.func, ast.Subscript) or ast.unparse(node.func) in ("torch.cat", "torch.clone")
                    or (isinstance(node.func, ast.Attribute) and node.func.attr == "add_" and len(node.args) == 1)), \
                ast.dump(node)
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, str) or node.value == 1, ast.dump(node)
        if isinstance(node, ast.Name):
            assert node.id.isidentifier() and node.id.isascii() and not node.id.startswith("__"), node.id


@pytest.mark.parametrize("name", SEEDS)
def test_generated_source_is_whitelisted(name: str) -> None:
    model = archspec.build(SPECS / f"{name}.yaml", device="meta")
    _assert_safe(model.code)
    _assert_safe(_source(type(model)._archspec_plan, keep=True))


HOSTILE = [
    "a'](x)\n__import__('os').system('echo pwned')#",
    'b"""\nimport os\n"""',
    "c\\\nd",
    "import",
    "9lives",
    "__class__",
    "x",
    "self",
    "torch",
    "_m",
    "é.ü",
    "a.b",
    "a_b",
]


def test_hostile_names_never_become_code(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Names that are not identifiers (only reachable through a hand-made Graph) stay data."""
    steps = []
    prev = "input"
    for i, name in enumerate(HOSTILE):
        kind = ("module", "add", "concat")[i % 3]
        inputs = (prev,) if kind == "module" else (prev, prev)
        steps.append((name, kind, inputs, f"evil\n{name}:1:1"))
        prev = name
    plan = ("Evil", tuple(steps), prev)
    for keep in (False, True):
        source = _source(plan, keep=keep)
        _assert_safe(source)
        compile(source, "<test>", "exec")  # valid Python, and nothing ran


def test_hostile_graph_builds_and_runs() -> None:
    """A Graph whose node names contain quotes and newlines compiles to a working model, names intact."""
    graph = archspec.analyze(SPECS / "lenet.yaml")
    rename = {n: f"{n}']\n#\"{i}" for i, n in enumerate(graph.nodes)}
    nodes = {}
    for n, node in graph.nodes.items():
        nodes[rename[n]] = replace(node, name=rename[n], inputs=tuple(rename.get(i, i) for i in node.inputs),
                                   span=Span("x.yaml\nimport os\r\x0c", 1, 1))
    hostile = replace(graph, nodes=nodes, output=rename[graph.output], groups={})
    model = archspec.build(hostile)
    _assert_safe(model.code)
    x = torch.randn(2, *graph.input_shape)
    torch.manual_seed(0)
    assert model(x).shape == (2, 10)
    assert set(model.intermediates(x)) == set(nodes)


def test_surgery_is_honoured() -> None:
    """Replacing a layer (fine-tuning a new head) changes what forward computes, as in any nn.Module."""
    model = archspec.build(SPECS / "resnet18.yaml").eval()
    head_path = model.node_names[-1]
    parent_path, _, leaf = head_path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = parent._modules[leaf]
    assert isinstance(old, nn.Linear)
    setattr(parent, leaf, nn.Linear(old.in_features, 3))
    x = torch.randn(2, 1, 96, 96)
    with torch.no_grad():
        assert model(x).shape == (2, 3)


def test_class_is_generated_once_per_network() -> None:
    a = archspec.build(SPECS / "lenet.yaml")
    b = archspec.build(SPECS / "lenet.yaml")
    c = archspec.build(SPECS / "alexnet.yaml", device="meta")
    assert type(a) is type(b) and type(a) is not type(c)
    assert isinstance(a, ArchspecModule) and type(a).__name__ == "Lenet"
    assert a.conv1 is not b.conv1  # separate weights


def test_runtime_error_points_at_the_spec_line() -> None:
    """A layer failing at run time shows the spec position of that node in the traceback."""
    model = archspec.build(SPECS / "lenet.yaml")
    graph = archspec.analyze(SPECS / "lenet.yaml")
    first = next(iter(graph.nodes.values()))

    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("boom")

    setattr(model, first.name, Boom())
    with pytest.raises(ValueError) as exc:
        model(torch.randn(1, *graph.input_shape))
    text = "".join(traceback.format_exception(exc.value))
    assert f"# {first.span}" in text and "lenet.yaml" in text


def test_intermediates_feature_extraction() -> None:
    model = archspec.build(SPECS / "googlenet.yaml").eval()
    x = torch.randn(1, 1, 96, 96)
    with torch.no_grad():
        feats = model.intermediates(x)
        out = model(x)
    assert list(feats) == model.node_names
    torch.testing.assert_close(feats[model.node_names[-1]], out)


def test_fx_symbolic_trace_and_copies() -> None:
    """The model is a plain module: fx traces it to the same function; copies keep the class and weights."""
    model = archspec.build(SPECS / "resnet18.yaml").eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 1, 96, 96)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(traced(x), expected)
        for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert type(clone) is type(model) and clone.code == model.code
            torch.testing.assert_close(clone(x), expected)
    calls = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    assert calls[0] == model.node_names[0]


def test_forward_drops_intermediates() -> None:
    """Each intermediate is deleted after its last use, so eval memory stays that of one layer's tensors."""
    model = archspec.build(SPECS / "densenet.yaml", device="meta")
    body = ast.parse(model.code).body[0]
    assigned = sum(isinstance(s, ast.Assign) and not ast.unparse(s.value).endswith("._modules") for s in body.body)
    deleted = sum(len(s.targets) for s in body.body if isinstance(s, ast.Delete))
    assert deleted == assigned  # every node's value and the input, except the output which is returned
