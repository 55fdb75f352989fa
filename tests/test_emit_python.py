"""Eject: ``archspec build SPEC --emit-python model.py`` writes torch-only source equal to ``archspec.build``."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import archspec
from archspec.cli import main
from archspec.emit_python import emit_python, module_source
from archspec.errors import ArchspecError
from archspec.ops import OPS, Op, register_op
from conftest import SEEDS, SPECS

GRAPH_SPEC = """\
archspec: 1
name: mixed
input: [3, 16, 16]
params: {wide: true}
blocks:
  unit:
    params: {c: null}
    layers: [conv: {out: $c, k: [3, 1], pad: same, bias: false}, bn, leaky_relu: {slope: 0.2}]
graph:
  stem: {conv: {out: 8, k: 3, pad: 1}, from: input}
  a: {unit: {c: 8}, from: stem}
  b: {unit: {c: "${in.c}"}, from: stem, when: $wide}
  sum: {add: [a, b]}
  cat: {concat: [stem, sum]}
  inc: {inception-branch: {left: [conv: {out: 4, k: 1}], right: [maxpool: {k: 3, stride: 1, pad: 1}]}, from: cat}
  res: {residual-add: {body: [conv: {out: 28, k: 3, pad: 1}, gelu: {approximate: tanh}]}, from: inc}
  dense: {dense-concat: [unit: {c: 4}], from: res}
  pool: {avgpool: {k: 3, stride: 2, pad: 1, ceil_mode: true, count_include_pad: false}, from: dense}
  flat: {flatten, from: pool}
  drop: {dropout: {p: 0.25}, from: flat}
  head: {linear: {out: 5, bias: false}, from: drop}
  prob: {softmax: {dim: 1}, from: head}
output: prob
""".replace("{flatten, from: pool}", "{flatten: null, from: pool}")


def _load(text: str, path: Path) -> tuple[Any, type[torch.nn.Module]]:
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[path.stem]
    last = [n for n in ast.parse(text).body if isinstance(n, ast.ClassDef)][-1]
    return module, getattr(module, last.name)


def _imports(text: str) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.add((node.module or "").split(".")[0])
    return out


def _check_equivalent(source: Any, tmp_path: Path, name: str) -> str:
    graph = archspec.analyze(source)
    text = emit_python(graph)
    assert _imports(text) == {"torch"}
    _, cls = _load(text, tmp_path / f"emitted_{name}.py")
    torch.manual_seed(0)
    built = archspec.build(graph).eval()
    ejected = cls().eval()
    built_sd, ejected_sd = built.state_dict(), ejected.state_dict()
    assert [(k, tuple(v.shape)) for k, v in ejected_sd.items()] == [(k, tuple(v.shape)) for k, v in built_sd.items()]
    ejected.load_state_dict(built_sd)
    x = torch.randn(1, *graph.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(ejected(x), built(x))
    return text


@pytest.mark.parametrize("name", SEEDS)
def test_seed_ejects_to_equivalent_module(name: str, tmp_path: Path) -> None:
    text = _check_equivalent(SPECS / f"{name}.yaml", tmp_path, name)
    # Comments name spec lines; channel counts are written in.
    assert f"{name}.yaml:" in text
    assert "nn.Conv2d(1, " in text


def test_resnet_block_classes_read_like_hand_written_code(tmp_path: Path) -> None:
    text = emit_python(archspec.analyze(SPECS / "resnet18.yaml"))
    assert "class Residual(nn.Module):" in text and "class Stage(nn.Module):" in text
    assert "class Resnet18(nn.Module):" in text
    assert "self.residual_add1.shortcut = nn.Conv2d(64, 128, 1, stride=2)" in text
    assert "x = x + inp" in text
    # One class per distinct configuration: stage1's two residuals share one class.
    assert text.count("class Residual(") == 1 and "self.residual2 = Residual()" in text
    compile(text, "resnet18_emitted.py", "exec")


def test_graph_form_and_every_op_argument(tmp_path: Path) -> None:
    text = _check_equivalent(GRAPH_SPEC, tmp_path, "mixed")
    assert "torch.cat([" in text
    assert "nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)" in text
    assert "nn.GELU(approximate='tanh')" in text
    assert "nn.Linear(" in text and "bias=False" in text


def test_plugin_op_that_lowers_to_torch_nn(tmp_path: Path) -> None:
    spec = "archspec: 1\nname: up\ninput: [3, 8, 8]\nlayers:\n  - conv: {out: 12, k: 3, pad: 1}\n  - pixel-shuffle: {factor: 2}\n"
    text = _check_equivalent(spec, tmp_path, "up")
    assert "nn.PixelShuffle(2)" in text


class _Twice(Op):
    name = "test-twice"
    summary = "Doubles its input."

    def lower(self, p: Any, inputs: list[Any], out: Any) -> torch.nn.Module:
        class Twice(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return 2 * x

        return Twice()


def test_non_torch_module_is_a_clear_error() -> None:
    register_op(_Twice)
    try:
        graph = archspec.analyze("archspec: 1\nname: t\ninput: [4]\nlayers: [linear: {out: 3}, test-twice]\n")
        with pytest.raises(ArchspecError) as exc:
            emit_python(graph)
        assert exc.value.diagnostics[0].code == "E-EMIT"
        assert "test_twice1" in exc.value.diagnostics[0].message
        assert exc.value.diagnostics[0].span.line == 4
    finally:
        del OPS["test-twice"]


def test_module_source_round_trips() -> None:
    from torch import nn

    for module in (nn.Conv2d(3, 8, (3, 5), stride=(1, 2), padding=(1, 2), groups=1, bias=False),
                   nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), nn.BatchNorm1d(7, eps=1e-3, momentum=0.2),
                   nn.LeakyReLU(0.3), nn.Conv2d(4, 4, 3, padding="same", dilation=2, groups=2)):
        src = module_source(module, "m", None)
        call = ast.parse(src, mode="eval").body
        assert isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
        rebuilt = getattr(nn, call.func.attr)(*[ast.literal_eval(a) for a in call.args],
                                               **{k.arg: ast.literal_eval(k.value) for k in call.keywords})
        assert repr(rebuilt) == repr(module), src
        assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in module.parameters()]


def test_cli_emit_python(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lenet_model.py"
    assert main(["build", str(SPECS / "lenet.yaml"), "--emit-python", str(out)]) == 0
    captured = capsys.readouterr()
    assert str(out) in captured.err and "lenet" in captured.out
    _, cls = _load(out.read_text(encoding="utf-8"), out)
    assert cls.__name__ == "Lenet"
    assert sum(p.numel() for p in cls().parameters()) == 61_706
