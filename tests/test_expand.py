"""Expansion and inference: naming, repeat, when, from, composites, blocks, overrides."""

from __future__ import annotations

import pytest

import archspec
from archspec import ArchspecError


def spec(body: str, *, input_shape: str = "[3, 16, 16]", extra: str = "") -> str:
    return f"archspec: 1\nname: t\ninput: {input_shape}\n{extra}\n{body}\n"


def test_auto_names_are_per_op_per_scope() -> None:
    g = archspec.analyze(spec("layers: [conv: {out: 4, k: 3}, relu, conv: {out: 4, k: 3}, relu, flatten]"))
    assert list(g.nodes) == ["conv1", "relu1", "conv2", "relu2", "flatten1"]


def test_inserting_a_layer_renames_only_its_own_kind() -> None:
    before = archspec.analyze(spec("layers: [conv: {out: 4, k: 3}, bn, relu, conv: {out: 8, k: 3}]"))
    after = archspec.analyze(spec("layers: [conv: {out: 4, k: 3}, bn, dropout, relu, conv: {out: 8, k: 3}]"))
    assert set(before.nodes) <= set(after.nodes)


def test_repeat_unnamed_continues_numbering_and_named_groups() -> None:
    g = archspec.analyze(spec("layers:\n  - conv: {out: 4, k: 1}\n    repeat: 3\n  - relu\n    "))
    assert list(g.nodes) == ["conv1", "conv2", "conv3", "relu1"]
    g = archspec.analyze(spec("layers:\n  - conv: {out: 4, k: 1}\n    repeat: 2\n    name: stack\n  - relu"))
    assert list(g.nodes) == ["stack.conv1", "stack.conv2", "relu1"]
    assert g.groups["stack"].kind == "repeat"


def test_repeat_zero_and_when_false_pass_through() -> None:
    g = archspec.analyze(spec(
        "params: {deep: false}\nlayers:\n  - conv: {out: 4, k: 1}\n    repeat: 0\n"
        "  - relu: {}\n    when: $deep\n  - flatten"))
    assert list(g.nodes) == ["flatten1"]
    assert g.output_shape == (3 * 16 * 16,)
    g = archspec.analyze(spec("params: {deep: false}\nlayers:\n  - relu: {}\n    when: $deep\n  - flatten"), {"deep": True})
    assert list(g.nodes) == ["relu1", "flatten1"]


def test_blocks_bind_params_defaults_and_globals() -> None:
    text = spec("""
params: {width: 2}
blocks:
  unit:
    params: {c: null, stride: 1}
    layers: [conv: {out: "${c * width}", k: 3, pad: 1, stride: $stride}, relu]
layers:
  - unit: {c: 4}
  - unit: {c: 8, stride: 2}
""")
    g = archspec.analyze(text)
    assert g.nodes["unit1.conv1"].shape == (8, 16, 16)
    assert g.nodes["unit2.conv1"].shape == (16, 8, 8)
    assert g.groups["unit2"].block == "unit"
    assert g.groups["unit2"].args == {"c": 8, "stride": 2}
    assert archspec.analyze(text, {"width": 3}).output_shape == (24, 8, 8)


def test_in_expressions_read_the_inferred_input() -> None:
    g = archspec.analyze(spec("layers: [conv: {out: 12, k: 1}, conv: {out: \"${in.c // 3}\", k: 1}]"))
    assert g.output_shape == (4, 16, 16)


def test_inception_branch_concatenates_channels() -> None:
    g = archspec.analyze(spec("""
layers:
  - inception-branch:
      - [conv: {out: 4, k: 1}]
      - [conv: {out: 6, k: 3, pad: 1}]
      - [maxpool: {k: 3, stride: 1, pad: 1}]
"""))
    assert g.output_shape == (13, 16, 16)
    assert g.output == "inception_branch1.concat"
    assert [g.groups[c].kind for c in g.groups["inception_branch1"].children[:3]] == ["branch"] * 3


def test_inception_branch_mapping_names_branches() -> None:
    g = archspec.analyze(spec("layers:\n  - inception-branch: {a: [conv: {out: 4, k: 1}], b: [identity]}"))
    assert "inception_branch1.a.conv1" in g.nodes and "inception_branch1.b.identity1" in g.nodes
    assert g.output_shape == (7, 16, 16)


@pytest.mark.parametrize(
    ("stride", "out", "shortcut_node"),
    [(1, 3, False), (1, 8, True), (2, 8, True), (2, 3, True)],
)
def test_residual_auto_shortcut(stride: int, out: int, shortcut_node: bool) -> None:
    g = archspec.analyze(spec(
        f"layers:\n  - residual-add:\n      body: [conv: {{out: {out}, k: 3, pad: 1, stride: {stride}}}]\n"))
    assert ("residual_add1.shortcut" in g.nodes) is shortcut_node
    add = g.nodes["residual_add1.add"]
    assert add.role == ("projection" if shortcut_node else "identity")
    if shortcut_node:
        sc = g.nodes["residual_add1.shortcut"]
        assert sc.params.k == 1 and sc.params.stride == (stride, stride) and sc.shape == add.shape


def test_residual_explicit_shortcut_and_identity_error() -> None:
    g = archspec.analyze(spec(
        "layers:\n  - residual-add:\n      body: [conv: {out: 8, k: 1}]\n"
        "      shortcut: [conv: {out: 8, k: 1, bias: false}, bn]\n"))
    assert {"residual_add1.shortcut.conv1", "residual_add1.shortcut.bn1"} <= set(g.nodes)
    with pytest.raises(ArchspecError, match="identity shortcut cannot add"):
        archspec.analyze(spec("layers:\n  - residual-add:\n      body: [conv: {out: 8, k: 1}]\n      shortcut: identity\n"))


def test_dense_concat_grows_channels() -> None:
    g = archspec.analyze(spec("layers:\n  - dense-concat: [bn, relu, conv: {out: 5, k: 3, pad: 1}]\n    repeat: 3"))
    assert g.output_shape == (3 + 15, 16, 16)
    assert [g.shape_of(g.groups[f"dense_concat{i}"].output)[0] for i in (1, 2, 3)] == [8, 13, 18]


def test_graph_form_and_out_of_order_definitions() -> None:
    g = archspec.analyze(spec("""
graph:
  out: {concat: [left, right]}
  left: {conv: {out: 4, k: 1}, from: input}
  right: {conv: {out: 2, k: 1}, from: input}
output: out
"""))
    assert list(g.nodes) == ["left", "right", "out"]
    assert g.output_shape == (6, 16, 16)


def test_named_layers_with_from_skip() -> None:
    g = archspec.analyze(spec("""
layers:
  - conv: {out: 4, k: 1}
    name: stem
  - conv: {out: 4, k: 3, pad: 1}
    name: body
  - add: [stem, body]
"""))
    assert g.nodes["add1"].inputs == ("stem", "body")


def test_block_graph_body_with_output() -> None:
    g = archspec.analyze(spec("""
blocks:
  fork:
    params: {c: 4}
    graph:
      a: {conv: {out: $c, k: 1}}
      b: {conv: {out: $c, k: 1}, from: input}
      s: {add: [a, b]}
    output: s
layers: [fork, fork: {c: 2}]
"""))
    assert g.output_shape == (2, 16, 16)
    assert "fork2.s" in g.nodes


def test_flat_residual_projects_with_linear() -> None:
    g = archspec.analyze(spec("layers:\n  - residual-add: {body: [linear: {out: 5}]}", input_shape="[7]"))
    assert g.nodes["residual_add1.shortcut"].op == "linear"


def test_counts_for_grouped_conv_and_bn() -> None:
    g = archspec.analyze(spec("layers: [conv: {out: 6, k: 3, groups: 3, bias: false}, bn]"))
    assert g.nodes["conv1"].counts.params == 6 * 1 * 9
    assert g.nodes["conv1"].counts.macs == 6 * 1 * 9 * 14 * 14
    assert (g.nodes["bn1"].counts.params, g.nodes["bn1"].counts.buffers) == (12, 13)


def test_input_shape_override() -> None:
    g = archspec.analyze(spec("layers: [conv: {out: 4, k: 3}]"), input_shape=(1, 10, 10))
    assert g.output_shape == (4, 8, 8)


def test_ir_lint_holds_for_seeds() -> None:
    from conftest import SEEDS, SPECS

    for name in SEEDS:
        archspec.analyze(SPECS / f"{name}.yaml").lint()


@pytest.mark.parametrize(
    ("overrides", "input_shape", "code"),
    [
        ({1: 2}, None, "E-OVERRIDE"),  # a key that is not a name
        ([("width", 2)], None, "E-OVERRIDE"),  # not a mapping
        (None, 5, "E-INPUT"),  # not a sequence
        (None, "3,16,16", "E-INPUT"),
        (None, (True, 16, 16), "E-INPUT"),  # a boolean is no size
        (None, (3, 2**70, 16), "E-INPUT"),  # larger than any real input
        (None, (3, 16), "E-INPUT"),
    ],
)
def test_api_arguments_are_checked(overrides: object, input_shape: object, code: str) -> None:
    """Odd Python arguments to analyze() are ArchspecErrors, never a TypeError from inside."""
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(spec("params: {width: 1}\nlayers: [relu]"), overrides, input_shape=input_shape)  # type: ignore[arg-type]
    assert [d.code for d in exc.value.diagnostics] == [code]


def test_named_repeat_with_one_copy_reads_all_inputs() -> None:
    """A named group of one copy is the item itself: a merge in it reads every input."""
    g = archspec.analyze(spec("layers:\n  - conv: {out: 4, k: 1}\n    name: a\n  - concat: [input, a]\n"
                              "    name: both\n    repeat: 1\n"))
    assert g.nodes["both.concat1"].inputs == ("input", "a")
    assert g.output_shape == (7, 16, 16)
