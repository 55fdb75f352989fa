"""Eject: ``archspec build SPEC --emit-python model.py`` writes torch-only source equal to ``archspec.build``."""

from __future__ import annotations

import ast
import keyword
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import archspec
from archspec.cli import main
from archspec.emit_python import emit_python, module_source
from archspec.errors import ArchspecError
from archspec.ops import OPS, Op, register_op
from conftest import SEEDS, SPECS
from helpers_emit import assert_emitted_equals_build, load_emitted

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


def _imports(text: str) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            out.add((node.module or "").split(".")[0])
    return out


def _check_equivalent(source: Any, tmp_path: Path, name: str) -> str:
    graph = archspec.analyze(source)
    text = emit_python(graph)
    assert _imports(text) == {"torch"}
    _, cls = load_emitted(text, tmp_path / f"emitted_{name}.py")
    torch.manual_seed(0)
    assert_emitted_equals_build(graph, cls)
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
    assert "x = x.add_(inp)" in text or "x = x + inp" in text  # in place where safe (issue 18)
    # One class per distinct configuration: stage1's two residuals share one class.
    assert text.count("class Residual(") == 1 and "self.residual2 = Residual()" in text
    compile(text, "resnet18_emitted.py", "exec")


def test_graph_form_and_every_op_argument(tmp_path: Path) -> None:
    text = _check_equivalent(GRAPH_SPEC, tmp_path, "mixed")
    assert "torch.cat([" in text
    assert "nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)" in text
    assert "nn.GELU(approximate='tanh')" in text
    assert "nn.Linear(" in text and "bias=False" in text


@pytest.mark.usefixtures("demo_plugin")
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
        assert "emit hook" in (exc.value.diagnostics[0].hint or "")
    finally:
        del OPS["test-twice"]


def test_an_op_that_cannot_be_written_is_reported_at_its_first_node() -> None:
    """One E-EMIT per op, at the node that comes first, with a note counting the others."""
    spec = """\
archspec: 1
name: t
input: [4]
blocks:
  blk:
    layers: [test-twice, relu, test-twice]
layers:
  - linear: {out: 3}
  - test-twice
  - blk
  - blk
"""
    register_op(_Twice)
    try:
        with pytest.raises(ArchspecError) as exc:
            emit_python(archspec.analyze(spec))
    finally:
        del OPS["test-twice"]
    (diag,) = exc.value.diagnostics
    assert diag.code == "E-EMIT" and "'test_twice1'" in diag.message and diag.span.line == 9
    assert [n.message for n in diag.notes] == ["4 more nodes of op 'test-twice' cannot be written either"]


# ------------------------------------------------------------------ archspec's own layers and plugin emit hooks

LAYERS_SPEC = """\
archspec: 1
name: modern
input: [8, 6, 6]
blocks:
  channel_slice:                   # named like the copied class ChannelSlice: the block's class must differ
    params: {init: 1.0e-6}
    layers: [layer-scale: {init: $init}, stochastic-depth: {p: 0.25, mode: batch}]
graph:
  ln: {layernorm: {}, from: input}
  cl: {channel-linear: {out: 12}}
  sh: {channel-shuffle: {groups: 3}}
  a: {slice: {end: 6}, from: sh}
  b: {slice: {start: -6}, from: sh}
  ls: {layer-scale: {init: 0.5}, from: b}
  sd: {stochastic-depth: {p: 0.2}}
  cat: {concat: [a, sd]}
  blk: {channel_slice: {init: 0.1}}
  nol: {layernorm: {affine: false}}
  flat: {flatten: {}}
  ls2: {layer-scale: {}}
  cl2: {linear: {out: 5, bias: false}}
  ln2: {layernorm: {eps: 1.0e-3}}
output: ln2
"""


def test_archspec_layers_are_ejected_with_their_definitions(tmp_path: Path) -> None:
    """layernorm (C×H×W), channel-linear, channel-shuffle, slice, layer-scale and stochastic-depth eject
    with archspec.layers' classes copied in: same state_dict keys, same outputs as archspec.build."""
    text = _check_equivalent(LAYERS_SPEC, tmp_path, "modern")
    for call in ("LayerNorm2d((8,))", "ChannelLinear(8, 12)", "ChannelShuffle(3)", "ChannelSlice(0, 6)",
                 "ChannelSlice(6, 12)", "LayerScale((6, 1, 1), 0.5)", "StochasticDepth(0.2, 'row')",
                 "LayerScale((432,), 1e-06)", "LayerNorm2d((12,), elementwise_affine=False, bias=False)"):
        assert call in text, call
    classes = [n.name for n in ast.parse(text).body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    for name in ("LayerNorm2d", "ChannelLinear", "channel_shuffle", "ChannelShuffle", "ChannelSlice", "LayerScale",
                 "stochastic_depth", "StochasticDepth"):
        assert classes.count(name) == 1, name
    assert classes.index("channel_shuffle") < classes.index("ChannelShuffle")
    assert "ChannelSlice2" in classes and "self.blk = ChannelSlice2()" in text  # the block's class
    assert "archspec" not in text.split('"""', 2)[2]  # nothing refers back to archspec


class Scaled(torch.nn.Module):
    """Multiplies by a constant factor and adds a learned per-feature bias."""

    def __init__(self, features: int, factor: float, label: str = "") -> None:
        super().__init__()
        self.factor = factor
        self.label = label
        self.shift = torch.nn.Parameter(torch.arange(features, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor + self.shift


class _ScaledOp(Op):
    name = "test-scaled"
    summary = "x * 3 + shift"

    def count(self, p: Any, inputs: list[Any], out: Any) -> Any:
        from archspec.ops import Counts

        return Counts(params=inputs[0][0])

    def lower(self, p: Any, inputs: list[Any], out: Any) -> torch.nn.Module:
        return Scaled(inputs[0][0], 3.0, 'it\'s "quoted"\n')

    def emit(self, p: Any, inputs: list[Any], out: Any) -> Any:
        from archspec.ops import Emit

        return Emit(self.call, args=(inputs[0][0], 3.0), kwargs={"label": 'it\'s "quoted"\n'}, definitions=self.defs)

    call = "Scaled"
    defs: tuple[Any, ...] = (Scaled,)


def test_plugin_emit_hook_writes_its_definitions_and_literal_arguments(tmp_path: Path) -> None:
    register_op(_ScaledOp)
    try:
        spec = "archspec: 1\nname: s\ninput: [4]\nlayers: [linear: {out: 3}, test-scaled, test-scaled]\n"
        text = _check_equivalent(spec, tmp_path, "scaled")
        assert text.count("class Scaled(torch.nn.Module):") == 1
        assert "Scaled(3, 3.0, label='it\\'s \"quoted\"\\n')" in text
    finally:
        del OPS["test-scaled"]


def _renamed() -> None:
    """A function whose ``__name__`` is not the name its source defines."""


_renamed.__name__ = "Other"


@pytest.mark.parametrize(("call", "defs", "args", "message"), [
    ("Unknown", (Scaled,), (3, 3.0), "emits a call of 'Unknown'"),
    ("__import__('os').system", (Scaled,), (3, 3.0), "emits a call of"),
    ("Scaled", (Scaled,), (3, torch.float32), "not plain data"),
    ("Scaled", ("class Scaled: pass",), (3, 3.0), "must be a class or a function"),
    ("Scaled", (Scaled, _renamed), (3, 3.0), "not one class or function definition named Other"),
    ("Scaled", (Scaled, type("Made", (torch.nn.Module,), {})), (3, 3.0), "the source of Made is not available"),
])
def test_emit_hook_results_are_checked(call: str, defs: tuple[Any, ...], args: tuple[Any, ...], message: str) -> None:
    class Bad(_ScaledOp):
        def emit(self, p: Any, inputs: list[Any], out: Any) -> Any:
            from archspec.ops import Emit

            return Emit(call, args=args, definitions=defs)

    register_op(Bad)
    try:
        graph = archspec.analyze("archspec: 1\nname: s\ninput: [4]\nlayers: [linear: {out: 3}, test-scaled]\n")
        with pytest.raises(ArchspecError) as exc:
            emit_python(graph)
    finally:
        del OPS["test-scaled"]
    assert exc.value.diagnostics[0].code == "E-EMIT" and message in exc.value.diagnostics[0].message
    assert "test_scaled1" in exc.value.diagnostics[0].message


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
    _, cls = load_emitted(out.read_text(encoding="utf-8"), out)
    assert cls.__name__ == "Lenet"
    assert sum(p.numel() for p in cls().parameters()) == 61_706


# ------------------------------------------------------------------ spec text is data, never code

HOSTILE_TEXT = [
    '"""; __import__("pathlib").Path(SENTINEL).touch() #',
    "'''\n__import__('pathlib').Path(SENTINEL).touch()\n'''",
    "C:\\new\\table",
    'ends with a quote "',
    "ends with a backslash \\",
    'two quotes ""',
    "lines\nand\r\nCR\rtab\tform\x0cfeed",
    "U+2028 \u2028 U+2029 \u2029 NEL \x85 BOM \ufeff",
    "NUL \x00 byte",
    "non-ASCII: é ü Ω 中文 😀",
    "\\N{BULLET} \\x00 \\u2028 (escapes written out)",
    "",
]


def _yaml(text: str) -> str:
    from test_emit_fuzz import q

    return q(text)


def _sentinel_text(text: str, sentinel: Path) -> str:
    return text.replace("SENTINEL", repr(str(sentinel)))


@pytest.mark.parametrize("raw", HOSTILE_TEXT)
def test_descriptions_and_string_arguments_stay_text(raw: str, tmp_path: Path) -> None:
    """A description or string block argument with quotes, backslashes, newlines, NUL... is an exact docstring."""
    sentinel = tmp_path / "ran"
    text = _sentinel_text(raw, sentinel)
    spec = (f"archspec: 1\nname: t\ndescription: {_yaml(text)}\ninput: [1, 8, 8]\n"
            f"blocks:\n  b:\n    params: {{s: x}}\n    layers: [conv: {{out: 2, k: 1}}]\n"
            f"layers: [b: {{s: {_yaml(text)}}}]\n")
    source = _check_equivalent(spec, tmp_path, f"hostile_{HOSTILE_TEXT.index(raw)}")
    assert not sentinel.exists()
    tree = ast.parse(source)
    module_doc = ast.get_docstring(tree, clean=False)
    assert module_doc is not None and (f"\n\n{text}\n\n" in module_doc if text else "\n\n\n" not in module_doc)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert ast.get_docstring(classes[-1], clean=False) == (text or "The t network.")
    assert f"s={text!r}" in (ast.get_docstring(classes[0], clean=False) or "")
    assert "\x00" not in source and "\r" not in source and "\u2028" not in source


@pytest.mark.parametrize("model", ["none", "None", "true", "class", "print", "torch", "nn", "self", "x", "super",
                                   "getattr", "_", "__x", "Net", "T", "a"])
def test_model_names_make_valid_distinct_class_names(model: str, tmp_path: Path) -> None:
    """A model named like a keyword or builtin gets a valid class name that clashes with no block class.

    Blocks named like the model and like the model plus ``_net`` take the obvious class names first.
    """
    spec = (f"archspec: 1\nname: '{model}'\ninput: [1, 8, 8]\nblocks:\n  '{model}':\n    layers: [conv: {{out: 2, k: 1}}]\n"
            f"  {model}_net:\n    layers: [relu]\n"
            f"layers: [{{'{model}': null, name: n1}}, {{{model}_net: null, name: n2}}]\n")
    text = _check_equivalent(spec, tmp_path, f"model_{model.strip('_')}")
    names = [n.name for n in ast.parse(text).body if isinstance(n, ast.ClassDef)]
    assert len(set(names)) == len(names) == 3, names
    assert all(n.isidentifier() and n.isascii() and not keyword.iskeyword(n) and n[0].isupper() for n in names)


def test_block_class_names_never_clash(tmp_path: Path) -> None:
    """Variants of a block (Res, Res2) and a block whose own name gives Res2 get distinct classes."""
    spec = """\
archspec: 1
name: res
input: [1, 8, 8]
blocks:
  res:
    params: {c: 2}
    layers: [conv: {out: $c, k: 1}]
  res2:
    layers: [conv: {out: 3, k: 1}]
  res_2:
    layers: [relu]
layers: [res, res: {c: 4}, res2, res_2]
"""
    text = _check_equivalent(spec, tmp_path, "clash")
    names = [n.name for n in ast.parse(text).body if isinstance(n, ast.ClassDef)]
    assert len(set(names)) == len(names) == 5, names
    assert names[-1] == "ResNet"


def test_keyword_node_names_are_registered_by_string(tmp_path: Path) -> None:
    """Node names that are Python keywords become add_module/getattr with a string, with the same state_dict."""
    spec = """\
archspec: 1
name: kw
input: [1, 8, 8]
blocks:
  blk:
    layers: [{conv: {out: 2, k: 1}, name: class}]
graph:
  global: {blk: null, from: input}
  lambda: {inception-branch: {None: [conv: {out: 2, k: 1}], if: [relu]}, from: global}
  match: {relu: null, from: lambda}
"""
    text = _check_equivalent(spec, tmp_path, "kw")
    assert "self.add_module('global', Blk())" in text and "getattr(self, 'global')(x)" in text
    assert "self.add_module('class', nn.Conv2d(1, 2, 1))" in text
    assert "getattr(self.add_module" not in text and "self.match = nn.ReLU(inplace=True)" in text  # after a concat: in place


@pytest.mark.parametrize("newline", [False, True])
def test_hostile_spec_file_name(newline: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spec's file name reaches docstrings and comments; quotes, backslashes and newlines stay inert."""
    monkeypatch.chdir(tmp_path)  # a file name holds no '/': the injected code would touch ./ran
    sentinel = tmp_path / "ran"
    code = '__import__("pathlib").Path("ran").touch()'
    name = f'x""" {code} #\'\\ é\u2028.yaml' if not newline else f'x"""\n{code}\n\r\\.yaml'
    spec = tmp_path / name
    spec.write_text("archspec: 1\nname: f\ninput: [1, 8, 8]\nlayers: [conv: {out: 2, k: 1}, relu]\n", encoding="utf-8")
    out = tmp_path / "emitted_from_hostile_name.py"
    if newline:  # the command line reads an argument with a newline as spec text, so go through the API
        out.write_text(emit_python(archspec.analyze(spec)), encoding="utf-8")
    else:
        assert main(["build", str(spec), "--emit-python", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    module, cls = load_emitted(text, out)
    assert not sentinel.exists()
    assert name in (module.__doc__ or "")
    assert cls()(torch.randn(1, 1, 8, 8)).shape == (1, 2, 8, 8)
    # In comments the name is one printable line.
    assert len([line for line in text.splitlines() if line.endswith(".yaml:4")]) == 2


def test_infinite_float_arguments_are_written_as_float_calls(tmp_path: Path) -> None:
    """``inf`` is no Python literal: a ``.inf`` slope is written ``float('inf')`` and loads."""
    spec = "archspec: 1\nname: f\ninput: [1, 8, 8]\nlayers: [conv: {out: 2, k: 1}, leaky_relu: {slope: .inf}]\n"
    text = emit_python(archspec.analyze(spec))
    assert "nn.LeakyReLU(negative_slope=float('inf'), inplace=True)" in text
    _, cls = load_emitted(text, tmp_path / "emitted_inf.py")
    assert cls().leaky_relu1.negative_slope == float("inf")


def test_literal_refuses_what_is_not_plain_data() -> None:
    """A module attribute that is not plain data is an E-EMIT error, never repr()'d into the source."""
    from archspec.emit_python import _literal

    assert _literal((3, 3)) == "3" and _literal((1, 2)) == "(1, 2)" and _literal([0.5]) == "[0.5]"
    assert _literal(float("-inf")) == "float('-inf')" and _literal(float("nan")) == "float('nan')"
    assert _literal("a'\"\n") == repr("a'\"\n") and _literal((True,)) == "(True,)"
    with pytest.raises(ArchspecError) as exc:
        _literal(torch.float32, "m.conv", None)
    assert exc.value.diagnostics[0].code == "E-EMIT" and "m.conv" in exc.value.diagnostics[0].message


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(text=st.text(st.characters(exclude_categories=())))
def test_doc_literal_and_comment_round_trip(text: str) -> None:
    """Any string, lone surrogates included, is a docstring with exactly its value, and a one-line comment."""
    from archspec.emit_python import _comment, _doc_literal

    literal = _doc_literal(text)
    assert ast.literal_eval(literal) == text
    tree = ast.parse(f"class A:\n    {literal}\n\n    x = 1  # {_comment(text)}\n")
    assert ast.get_docstring(tree.body[0], clean=False) == text  # type: ignore[arg-type]
    assert len(tree.body) == 1 and len(tree.body[0].body) == 2  # type: ignore[attr-defined]
    assert all(c.isprintable() or c == "\n" for c in literal)
