"""The module structure: dependencies point one way, and validated values are the Pydantic models.

Every ``from .x import`` counts, at module level or inside a function: a lazy import is still a
dependency, and a circle of them is what makes a codebase hard to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pydantic

import archspec
from archspec import models
from archspec.ops import OPS

SRC = Path(archspec.__file__).parent


def _edges() -> dict[str, set[str]]:
    """Module → the archspec modules it imports (relatively or absolutely), anywhere in its body."""
    edges: dict[str, set[str]] = {}
    for path in sorted(SRC.glob("*.py")):
        mod = path.stem
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    deps.add(node.module.split(".")[0])
                elif node.level == 1:
                    deps.update(alias.name for alias in node.names)
                elif node.module and node.module.startswith("archspec."):
                    deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("archspec."))
        edges[mod] = {d for d in deps if (SRC / f"{d}.py").exists() and d != mod}
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert _cycles(_edges()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a made-up circle is found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layering() -> None:
    """The op registry, the parameter models and plugin loading each depend only downward."""
    edges = _edges()
    assert edges["models"] == set()
    assert edges["ops"] == {"models", "layers"}  # layers: the torch modules some ops lower to (imported lazily)
    assert edges["layers"] == set()
    assert edges["plugins"] <= {"ops", "errors", "models"}
    assert "imports" not in edges["spec"]


def test_params_are_model_instances() -> None:
    graph = archspec.analyze("specs/googlenet.yaml")
    for node in graph.nodes.values():
        op = OPS[node.op]
        if op.arity is None:  # merges take node names, not parameters
            assert node.params is None
            continue
        assert type(node.params) is op.params_model, node.name
        assert isinstance(node.params, models.OpParams)
    conv = graph.nodes["b1.conv1"].params
    assert isinstance(conv, pydantic.BaseModel)
    assert conv.model_dump_json() == '{"out":64,"k":7,"stride":2,"pad":3,"dilation":1,"groups":1,"bias":true}'
    assert list(type(conv).model_fields)[:2] == ["out", "k"]


def test_document_is_a_model_instance(tmp_path: Path) -> None:
    from archspec.api import read_spec
    from archspec.imports import load_document

    data, path = read_spec("specs/imagenet/resnet50.yaml")
    doc = load_document(data, path)
    assert isinstance(doc, models.SpecDocument)
    assert all(isinstance(b, models.BlockDef) for b in doc.blocks.values())
    assert "bottleneck" in doc.blocks and doc.block_source("bottleneck") is not None
