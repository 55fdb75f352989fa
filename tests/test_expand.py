"""Expansion and inference: naming, repeat, when, from, composites, blocks, overrides."""

from __future__ import annotations

import re

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


# ------------------------------------------------------------------ blocks with several inputs

UP_BLOCK = """
blocks:
  up:
    inputs: [low, skip]
    params: {c: null, cin: "${in.c}"}
    graph:
      up:   {conv-transpose: {out: $cin, k: 2, stride: 2}, from: low}
      cat:  {concat: [skip, up]}
      side: {conv: {out: $c, k: 1}, from: skip}
      out:  {add: [cat, side]}
    output: out
"""
UP_HEAD = """
layers:
  - conv: {out: 8, k: 3, pad: 1}
    name: enc
  - maxpool: {k: 2}
    name: low
"""


def test_block_with_named_inputs_binds_them_in_order_and_by_name() -> None:
    for binding in ("from: [low, enc]", "from: {low: low, skip: enc}", "from: {skip: enc, low: low}"):
        g = archspec.analyze(spec(UP_BLOCK + UP_HEAD + f"  - up: {{c: 16}}\n    {binding}\n"))
        assert g.nodes["up1.up"].inputs == ("low",)
        assert g.nodes["up1.up"].shape == (8, 16, 16)  # cin = ${in.c}: the channels of the first input, low
        assert g.nodes["up1.cat"].inputs == ("enc", "up1.up")
        assert g.nodes["up1.cat"].shape == (16, 16, 16)
        assert g.nodes["up1.side"].inputs == ("enc",)
        assert g.groups["up1"].input == "low" and g.output_shape == (16, 16, 16)


def test_in_inside_a_block_is_the_blocks_first_input_in_defaults() -> None:
    text = spec("""
blocks:
  pair:
    inputs: [a, b]
    params: {ca: "${in.c}"}
    graph:
      pa: {conv: {out: $ca, k: 1}, from: b}     # $ca: the channels of the first input, a
      pb: {conv: {out: "${in.c}", k: 1}}        # no 'from': the previous node; 'in' is its input
      s:  {concat: [a, pb]}
    output: s
layers:
  - conv: {out: 5, k: 1}
    name: five
  - conv: {out: 7, k: 1}
    name: seven
  - pair: {}
    from: [seven, five]
""")
    g = archspec.analyze(text)
    assert g.nodes["pair1.pa"].shape == (7, 16, 16)  # reads b (5 channels), makes ca = 7 channels
    assert g.nodes["pair1.pb"].shape == (7, 16, 16)
    assert g.output_shape == (14, 16, 16)


def test_input_is_the_first_named_input() -> None:
    text = spec("""
blocks:
  gate:
    inputs: [x, g]
    layers:
      - sigmoid: {}
        from: g
        name: s
      - mul: [input, s]
layers:
  - conv: {out: 4, k: 1}
    name: a
  - conv: {out: 4, k: 1}
    name: b
  - gate: {}
    from: [a, b]
""")
    g = archspec.analyze(text)
    assert g.nodes["gate1.s"].inputs == ("b",)
    assert g.nodes["gate1.mul1"].inputs == ("a", "gate1.s")
    assert not g.warnings


def test_unread_block_input_is_a_warning() -> None:
    text = spec("blocks:\n  two:\n    inputs: [x, y]\n    layers: [relu]\n"
                "layers:\n  - relu: {}\n    name: a\n  - two: {}\n    from: [a, a]\n")
    g = archspec.analyze(text)
    assert [(w.code, w.span.line if w.span else None) for w in g.warnings] == [("W-UNUSED", 7)]
    assert "input 'y' is never read" in g.warnings[0].message


@pytest.mark.parametrize(
    ("instance", "code", "line", "words"),
    [
        ("  - up: {c: 16}\n", "E-FROM", 22, "takes 2 inputs (low, skip), got 1"),
        ("  - up: {c: 16}\n    from: [low]\n", "E-FROM", 23, "takes 2 inputs (low, skip), got 1"),
        ("  - up: {c: 16}\n    from: [low, enc, enc]\n", "E-FROM", 23, "got 3"),
        ("  - up: {c: 16}\n    from: {low: low, skp: enc}\n", "E-FROM", 23, "has no input 'skp'"),
        ("  - up: {c: 16}\n    from: {low: low}\n", "E-FROM", 23, "needs input 'skip'"),
        ("  - relu: {}\n    from: {x: low}\n", "E-FROM", 23, "'relu' is not a block"),
        ("  - up: {c: 16}\n    from: {low: low, skip: nowhere}\n", "E-UNKNOWN-NODE", 23, "unknown node 'nowhere'"),
        ("  - up: {c: 16}\n    from: [low, enc]\n    repeat: 2\n", "E-REPEAT", 24, "cannot be repeated"),
    ],
)
def test_block_input_binding_errors_point_at_the_instance(instance: str, code: str, line: int, words: str) -> None:
    text = spec(UP_BLOCK + UP_HEAD + instance)
    assert text.splitlines()[line - 1].strip().startswith(("- ", "from:", "repeat:"))
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    (d,) = exc.value.diagnostics
    assert (d.code, d.span.line if d.span else None) == (code, line)
    assert words in d.message


def test_by_name_from_on_a_block_with_one_input_is_refused() -> None:
    text = spec("blocks:\n  plain:\n    layers: [relu]\nlayers:\n  - relu: {}\n    name: a\n"
                "  - plain: {}\n    from: {x: a}\n")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert [(d.code, d.span.line if d.span else None) for d in exc.value.diagnostics] == [("E-FROM", 12)]
    assert "one unnamed input" in exc.value.diagnostics[0].message


def test_block_input_definition_errors_point_at_the_definition() -> None:
    text = spec("""
blocks:
  a:
    inputs: [x, input]
    layers: [relu]
  b:
    inputs: [x, x]
    layers: [relu]
  c:
    inputs: [x, y]
    graph:
      y: {relu: {}, from: x}
    output: y
layers: [relu]
""")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    got = [(d.code, d.span.line if d.span else None) for d in exc.value.diagnostics]
    assert got == [("E-NAME", 8), ("E-DUP-NAME", 11), ("E-DUP-NAME", 14)]
    assert "also the name of a node" in exc.value.diagnostics[2].message
    for bad in ("inputs: []", "inputs: [1x]", "inputs: x"):
        with pytest.raises(ArchspecError) as exc:
            archspec.analyze(spec(f"blocks:\n  a:\n    {bad}\n    layers: [relu]\nlayers: [relu]"))
        assert exc.value.diagnostics[0].code == "E-TYPE" and exc.value.diagnostics[0].span.line == 7


def test_shape_error_inside_a_two_input_block_notes_what_the_instance_bound() -> None:
    text = spec(UP_BLOCK + UP_HEAD + "  - up: {c: 16}\n    from: [enc, low]\n")  # swapped
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    (d,) = exc.value.diagnostics
    assert d.code == "E-SHAPE" and "8×8×8" in d.message and "8×32×32" in d.message
    assert d.notes[0].span is not None and d.notes[0].span.line == 22
    assert d.notes[0].message.endswith("with low = enc (8×16×16), skip = low (8×8×8)")


# ------------------------------------------------------------------ block parameter values


KINDS = spec("""
blocks:
  unit:
    params: {c: 4, k: 3, pad: 1}
    layers: [conv: {out: $c, k: $k, pad: $pad}]
  outer:
    params: {k: 3}
    layers: [unit: {k: $k, pad: same}]
  expr:
    params: {k: 3}
    layers: [conv: {out: 4, k: $k, pad: "${k // 2}"}]
  listed:
    params: {k: 3}
    layers: [conv: {out: 4, k: [$k, 1]}]
  needed:
    params: {k: null}
    layers: [conv: {out: 4, k: $k}]
layers:
""")


@pytest.mark.parametrize(
    ("instance", "kernel", "shape"),
    [
        ("unit: {k: 3}", (3, 3), (4, 16, 16)),
        ("unit: {k: [1, 7], pad: [0, 3]}", (1, 7), (4, 16, 16)),  # a pair where the default is an int
        ("unit: {k: 5, pad: same}", (5, 5), (4, 16, 16)),  # 'same' where the default is an int
        ("unit: {k: [3, 1], pad: valid}", (3, 1), (4, 14, 16)),
        ("outer: {k: [7, 1]}", (7, 1), (4, 16, 16)),  # through an inner block
        ("expr: {k: 5}", (5, 5), (4, 16, 16)),
        ("needed: {k: [1, 3]}", (1, 3), (4, 16, 14)),  # required: no default to compare with
    ],
)
def test_block_parameter_takes_every_form_its_op_takes(instance: str, kernel: tuple[int, int], shape: tuple[int, ...]) -> None:
    g = archspec.analyze(KINDS + f"  - {instance}\n")
    (node,) = g.nodes.values()
    assert (node.params.k if isinstance(node.params.k, tuple) else (node.params.k,) * 2) == kernel
    assert node.shape == shape


@pytest.mark.parametrize(
    ("instance", "hint"),
    [
        ("unit: {k: '3'}", "'k' is passed to 'conv' parameter 'k' (line 9), which does not take '3'"),
        ("unit: {k: 3.5}", "which does not take 3.5"),
        ("unit: {pad: nope}", "'pad' is passed to 'conv' parameter 'pad' (line 9)"),
        ("outer: {k: [1, 2, 3]}", "'k' is passed to block 'unit' parameter 'k' (line 12)"),
        ("expr: {k: [1, 7]}", "'k' is used inside an expression or a list in block 'expr'"),
        ("listed: {k: [1, 7]}", "'k' is used inside an expression or a list in block 'listed'"),
        ("unit: {c: wide}", "'c' is passed to 'conv' parameter 'out'"),
    ],
)
def test_block_parameter_value_that_no_use_takes_is_refused_at_the_instance(instance: str, hint: str) -> None:
    text = KINDS + f"  - {instance}\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    (d,) = exc.value.diagnostics
    assert d.code == "E-PARAM-TYPE" and d.span is not None and d.span.line == len(text.splitlines())
    assert d.hint is not None and hint in d.hint, d.hint


def test_unused_block_parameter_keeps_its_default_kind() -> None:
    text = spec("blocks:\n  b:\n    params: {v: 1}\n    layers: [relu]\nlayers:\n  - b: {v: [1, 2]}\n")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert [d.code for d in exc.value.diagnostics] == ["E-PARAM-TYPE"]


def test_expressions_compare_strings() -> None:
    text = spec("""
params: {mode: nearest}
blocks:
  up:
    params: {mode: nearest}
    layers:
      - upsample: {scale: 2, mode: bilinear, align_corners: false}
        when: ${mode == "bilinear"}
      - upsample: {scale: 2}
        when: ${mode != "bilinear"}
layers:
  - up: {mode: $mode}
""")
    for mode in ("nearest", "bilinear"):
        (node,) = archspec.analyze(text, {"mode": mode}).nodes.values()
        assert node.params.mode == mode and node.span is not None and node.span.line == (13 if mode == "nearest" else 11)


def _readme_yaml(marker: str) -> str:
    from conftest import ROOT

    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    (found,) = [b for b in blocks if marker in b]
    return found


def test_readme_block_parameter_example() -> None:
    g = archspec.analyze(spec(_readme_yaml("conv_bn:"), input_shape="[3, 32, 32]"))
    kernels = [g.nodes[f"conv_bn{i}.conv1"].params.k for i in (1, 2, 3)]
    assert kernels == [3, (1, 7), 5]
    assert all(g.nodes[f"conv_bn{i}.conv1"].shape == (32, 32, 32) for i in (1, 2, 3))


def test_readme_up_block_example() -> None:
    """The README's U-Net fragment, completed with the encoder it elides, expands as specs/unet.yaml does."""
    text = _readme_yaml("inputs: [low, skip]")
    encoder = ("  - double_conv: {c: 64}\n    name: inc\n"
               + "".join(f"  - down: {{c: {64 << i}}}\n    name: down{i}\n" for i in range(1, 5)))
    text = text.replace("  # ... encoder items named inc, down1 … down4 ...\n", encoder)
    text = text.replace("blocks:\n", """blocks:
  double_conv:
    params: {c: null}
    layers: [conv: {out: $c, k: 3, pad: 1, bias: false}, bn, relu, conv: {out: $c, k: 3, pad: 1, bias: false}, bn, relu]
  down:
    params: {c: null}
    layers: [maxpool: {k: 2}, double_conv: {c: $c}]
""", 1)
    g = archspec.analyze(spec(text, input_shape="[3, 64, 64]"))
    assert g.nodes["up2.cat"].inputs == (g.groups["down2"].output, "up2.up")
    assert g.output_shape == (256, 16, 16)
