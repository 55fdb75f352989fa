"""Token sequences (issue 15): the L×D shape kind, the ops on tokens, attention, ViT-B/16 and Swin-T exactly.

The oracle is torchvision's own ``vision_transformer.py`` and ``swin_transformer.py`` (imported through
``tests/tv.py``): ``specs/imagenet/vit_b_16.yaml`` and ``swin_t.yaml`` must have their parameter counts
and published GFLOPS, load their state dicts strictly through ``mappings/`` and compute their function.
The ViT function is checked on a small VisionTransformer built from the same spec (the spec's parameters
and ``input_shape``) and once on ViT-B/16 itself at 224×224, batch 1; Swin-T at 224×224 (batch 1) and at
56×56, where the late stages are smaller than a window (padding, no shift).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import archspec
import tv
from archspec import ArchspecError
from archspec.cli import main
from archspec.mapping import KeyMapping, export_state_dict, import_state_dict, map_key
from archspec.ops import ALL_KINDS, FLAT, IMAGE, TOKENS, Op, ShapeError, check_kinds, describe_shape, get_op, shape_kind
from archspec.testing import check_op
from conftest import ROOT
from helpers_models import assert_one_graph_in_train_and_eval
from test_no_torch_import import _probe

pytestmark = pytest.mark.usefixtures("two_threads")

VIT = ROOT / "specs" / "imagenet" / "vit_b_16.yaml"
SWIN = ROOT / "specs" / "imagenet" / "swin_t.yaml"
#: A VisionTransformer small enough to run in milliseconds: 32×32 images, 8×8 patches (16 tokens + 1).
SMALL: dict[str, Any] = {"patch": 8, "layers": 2, "heads": 2, "hidden": 16, "mlp": 24, "classes": 10}
SMALL_INPUT = (3, 32, 32)


def _small_reference() -> nn.Module:
    """torchvision's VisionTransformer with SMALL's settings and every parameter random (its head starts at zero)."""
    torch.manual_seed(0)
    model = tv.torchvision_models().VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=24, num_classes=10)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.3)
    return model


def _small_archspec() -> nn.Module:
    return archspec.build(VIT, input_shape=SMALL_INPUT, **SMALL)


def _meta(name: str) -> dict[str, Any]:
    return tv.torchvision_models().get_weight(name).meta


# ------------------------------------------------------------------ the shape kind


def test_a_shape_length_is_its_kind() -> None:
    assert shape_kind((3, 4, 5)) == IMAGE and shape_kind((197, 768)) == TOKENS and shape_kind((10,)) == FLAT
    assert describe_shape((197, 768)) == "197×768 tokens"
    assert describe_shape((400,)) == "flat (400 features)"
    assert describe_shape((64, 5, 5)) == "64×5×5"
    with pytest.raises(ShapeError, match=r"1 \(F\), 2 \(L×D tokens\) or 3 \(C×H×W\) dimensions"):
        shape_kind((1, 2, 3, 4))


def test_every_builtin_op_declares_the_kinds_it_takes() -> None:
    from archspec.ops import BUILTIN_OPS, OPS

    for name in BUILTIN_OPS:
        accepts = OPS[name].accepts
        assert accepts and accepts <= ALL_KINDS, name
    on_tokens = {n for n in BUILTIN_OPS if TOKENS in OPS[n].accepts}
    assert {"linear", "layernorm", "gelu", "relu", "dropout", "add", "mul", "concat", "attention",
            "class-token", "pos-embedding", "select-token", "mean-tokens", "to-image", "flatten"} <= on_tokens
    assert not {"conv", "maxpool", "bn", "groupnorm", "prelu", "to-tokens", "channel-linear", "upsample"} & on_tokens


class _PluginLike(Op):
    name = "plugin-like"


class _PluginOnTokens(Op):
    name = "plugin-on-tokens"
    accepts = frozenset({TOKENS})


def test_ops_from_elsewhere_take_images_and_flat_unless_they_say_otherwise() -> None:
    with pytest.raises(ShapeError, match=r"plugin-like needs a C×H×W or flat input, but the input is 5×8 tokens"):
        check_kinds(_PluginLike(), [(5, 8)])
    check_kinds(_PluginLike(), [(3, 4, 4)])
    check_kinds(_PluginOnTokens(), [(5, 8)])
    with pytest.raises(ShapeError, match=r"needs a token-sequence \(L×D\) input, but the input is flat \(8 features\)"):
        check_kinds(_PluginOnTokens(), [(8,)])
    with pytest.raises(ShapeError, match="needs a C×H×W or flat input"):  # check_op checks kinds as a spec does
        check_op(_PluginLike(), {}, [(5, 8)])


ERRORS = [
    # (layers after the input 3×32×32, code, message in the diagnostic, line of the item)
    ("- to-tokens\n  - conv: {out: 4, k: 3}", "E-SHAPE",
     "conv1: conv needs a C×H×W input, but the input is 1024×3 tokens", 7),
    ("- to-tokens\n  - bn", "E-SHAPE", "bn1: bn needs a C×H×W or flat input, but the input is 1024×3 tokens", 7),
    ("- attention: {heads: 2}", "E-SHAPE", "attention needs a token-sequence (L×D) input, but the input is 3×32×32", 6),
    ("- flatten\n  - class-token", "E-SHAPE",
     "class-token needs a token-sequence (L×D) input, but the input is flat (3072 features)", 7),
    ("- conv: {out: 768, k: 16, stride: 16}\n  - to-tokens\n  - attention: {heads: 5}", "E-SHAPE",
     "attention with heads=5 needs a token width divisible by it, but the input is 4×768 tokens (768 features)", 8),
    ("- to-tokens\n  - class-token\n  - to-image", "E-SHAPE",
     "to-image without 'h' and 'w' needs a square number of tokens, but the input is 1025×3 tokens", 8),
    ("- to-tokens\n  - to-image: {h: 30, w: 30}", "E-SHAPE",
     "to-image 30×30 needs 900 tokens, but the input is 1024×3 tokens", 7),
    ("- to-tokens\n  - select-token: {index: 1024}", "E-SHAPE",
     "select-token index 1024 is out of range for 1024×3 tokens (valid: -1024..1023)", 7),
    ("- linear: {out: 3}", "E-SHAPE", "linear1: linear needs a flat input, but the input is 3×32×32", 6),
]


@pytest.mark.parametrize(("layers", "code", "message", "line"), ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_kind_and_token_errors_point_at_the_item(layers: str, code: str, message: str, line: int) -> None:
    text = f"archspec: 1\nname: t\ninput: [3, 32, 32]\nlayers:\n  - identity\n  {layers}\n"
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    diag = exc.value.diagnostics[0]
    assert diag.code == code and message in diag.message, diag.message
    assert diag.span is not None and diag.span.line == line
    assert diag.hint


def test_a_head_count_hint_names_divisors() -> None:
    with pytest.raises(ShapeError) as exc:
        check_op("attention", {"heads": 5}, [(4, 768)])
    assert exc.value.hint is not None and "4 or 6" in exc.value.hint


@pytest.mark.parametrize(("op", "shapes", "message"), [
    ("concat", [(1, 8), (6, 4)], "cannot concatenate token sequences with different features: 1×8 tokens, 6×4 tokens"),
    ("concat", [(6, 8), (8, 2, 2)], "cannot concatenate tensors of different kinds: 6×8 tokens, 8×2×2"),
    ("concat-features", [(5, 8), (6, 3)], "of different lengths: 5×8 tokens, 6×3 tokens"),
    ("add", [(5, 8), (5, 4)], "cannot add tensors of different shapes: 5×8 \\+ 5×4"),
    ("mul", [(5, 8), (8, 1, 1)], "cannot multiply tensors of different kinds"),
    ("mul", [(5, 8), (1, 4)], "their features differ"),
])
def test_merges_of_tokens_check_what_they_join(op: str, shapes: list[tuple[int, ...]], message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        check_op(op, {}, shapes)


def test_expressions_read_tokens_and_features() -> None:
    text = """archspec: 1
name: t
input: [8, 4, 4]
layers:
  - to-tokens
  - linear: {out: "${in.c * 2 + in.tokens}"}
  - linear: {out: "${in.rank}"}
"""
    graph = archspec.analyze(text)
    assert graph.nodes["linear1"].shape == (16, 32) and graph.nodes["linear2"].shape == (16, 2)
    with pytest.raises(ArchspecError, match=r"'in.h' needs a C×H×W input, but the input is tokens \[16, 32\]"):
        archspec.analyze(text.replace("in.rank", "in.h"))
    with pytest.raises(ArchspecError, match=r"'in.tokens' needs a token sequence"):
        archspec.analyze(text.replace("  - to-tokens\n", ""))


def test_residual_add_projects_tokens_with_a_linear() -> None:
    graph = archspec.analyze("""archspec: 1
name: t
input: [8, 4, 4]
layers:
  - to-tokens
  - residual-add: {body: [linear: {out: 12}, gelu]}
""")
    shortcut = graph.nodes["residual_add1.shortcut"]
    assert shortcut.op == "linear" and shortcut.shape == (16, 12) and shortcut.counts.params == 8 * 12 + 12


# ------------------------------------------------------------------ the token ops compute what PyTorch does


def test_to_tokens_is_torchvisions_reshape_and_to_image_inverts_it() -> None:
    x = torch.randn(2, 6, 3, 4)
    tokens = check_op("to-tokens", {}, [(6, 3, 4)]).module(x)
    torch.testing.assert_close(tokens, x.reshape(2, 6, 12).permute(0, 2, 1), rtol=0, atol=0)
    back = check_op("to-image", {"h": 3}, [(12, 6)]).module(tokens)
    torch.testing.assert_close(back, x, rtol=0, atol=0)


@pytest.mark.parametrize("batch", [1, 2])
def test_to_image_of_contiguous_tokens_is_a_channels_last_image_with_canonical_strides(batch: int) -> None:
    """As torchvision ConvNeXt's ``Permute``: a view whose strides a conv recognises as channels-last,
    also at batch 1 (otherwise mkldnn copies the input to NCHW, and a depthwise conv's backward halves
    in speed)."""
    tokens = torch.randn(batch, 12, 6)
    image = check_op("to-image", {"h": 3}, [(12, 6)]).module(tokens)
    assert image.data_ptr() == tokens.data_ptr()  # a view, no copy
    assert image.stride() == torch.empty(batch, 6, 3, 4, memory_format=torch.channels_last).stride()
    assert torch.equal(image, tokens.permute(0, 2, 1).reshape(batch, 6, 3, 4))


def test_learned_tokens_have_torchvisions_names_and_start() -> None:
    cls = check_op("class-token", {}, [(4, 6)]).module
    assert [n for n, _ in cls.named_parameters()] == ["class_token"] and cls.class_token.shape == (1, 1, 6)
    assert not cls.class_token.any()
    x = torch.randn(3, 4, 6)
    with torch.no_grad():
        cls.class_token.normal_()
        out = cls(x)
    torch.testing.assert_close(out, torch.cat([cls.class_token.expand(3, -1, -1), x], dim=1), rtol=0, atol=0)
    torch.manual_seed(0)
    pos = check_op("pos-embedding", {"std": 0.5}, [(100, 50)]).module
    assert [n for n, _ in pos.named_parameters()] == ["pos_embedding"] and pos.pos_embedding.shape == (1, 100, 50)
    assert 0.45 < pos.pos_embedding.std().item() < 0.55
    torch.testing.assert_close(pos(torch.zeros(2, 100, 50)), pos.pos_embedding.detach().expand(2, -1, -1))


def test_head_reductions_and_feature_concat() -> None:
    x = torch.randn(2, 5, 6)
    torch.testing.assert_close(check_op("select-token", {"index": -2}, [(5, 6)]).module(x), x[:, 3], rtol=0, atol=0)
    torch.testing.assert_close(check_op("mean-tokens", {}, [(5, 6)]).module(x), x.mean(1))
    y = torch.randn(2, 5, 2)
    torch.testing.assert_close(check_op("concat-features", {}, [(5, 6), (5, 2)]).module(x, y), torch.cat([x, y], -1))
    torch.testing.assert_close(check_op("linear", {"out": 3}, [(5, 6)]).module(x).shape, torch.Size([2, 5, 3]))


@pytest.mark.parametrize("bias", [True, False])
def test_attention_is_nn_multihead_attention(bias: bool) -> None:
    module = check_op("attention", {"heads": 4, "bias": bias}, [(7, 16)]).module
    reference = nn.MultiheadAttention(16, 4, bias=bias, batch_first=True)
    assert module.state_dict().keys() == reference.state_dict().keys()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(std=0.5)
    reference.load_state_dict(module.state_dict())
    x = torch.randn(3, 7, 16)
    for training in (False, True):  # nn.MultiheadAttention's fused inference path, then its training path
        module.train(training)
        reference.train(training)
        with torch.no_grad():
            torch.testing.assert_close(module(x), reference(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-6)


def test_attention_dropout_acts_on_the_attention_weights_in_training_only() -> None:
    module = check_op("attention", {"heads": 2, "dropout": 0.5}, [(6, 8)]).module
    x = torch.randn(2, 6, 8)
    with torch.no_grad():
        module.eval()
        torch.testing.assert_close(module(x), module(x), rtol=0, atol=0)
        module.train()
        assert not torch.allclose(module(x), module(x))


def test_attention_macs_are_what_pytorch_multiplies() -> None:
    """The documented convention, checked against torch's FLOP counter (math kernel: matmuls it can see)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    length, d = 9, 12
    counts = check_op("attention", {"heads": 3}, [(length, d)]).counts
    assert counts.macs == 4 * length * d * d + 2 * length * length * d
    module = check_op("attention", {"heads": 3}, [(length, d)]).module
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as flops, torch.no_grad():
        module(torch.randn(2, length, d))
    assert flops.get_total_flops() == 2 * 2 * counts.macs  # 2 FLOPs per MAC, batch 2


# ------------------------------------------------------------------ ViT-B/16 = torchvision's vit_b_16


def test_vit_b_16_has_torchvisions_parameters_and_gflops() -> None:
    graph = archspec.analyze(VIT)
    meta = _meta("ViT_B_16_Weights.IMAGENET1K_V1")
    assert graph.name == "vit_b_16" and graph.output_shape == (1000,)
    assert graph.total.params == meta["num_params"] == 86_567_656
    assert graph.total.macs == 17_563_828_224 and round(graph.total.macs / 1e9, 3) == meta["_ops"] == 17.564
    shapes = {n: graph.nodes[n].shape for n in ("conv_proj", "to_tokens1", "class_token", "encoder.ln", "select_token1")}
    assert shapes == {"conv_proj": (768, 14, 14), "to_tokens1": (196, 768), "class_token": (197, 768),
                      "encoder.ln": (197, 768), "select_token1": (768,)}
    attention = graph.nodes["encoder.layers.encoder_block1.residual_add1.self_attention"]
    assert attention.counts.params == 4 * 768 * 768 + 4 * 768
    assert attention.counts.macs == 4 * 197 * 768 * 768 + 2 * 197 * 197 * 768


@pytest.mark.parametrize(("weights", "overrides"), [
    ("ViT_L_16_Weights.IMAGENET1K_V1", {"layers": 24, "heads": 16, "hidden": 1024, "mlp": 4096}),
    ("ViT_B_32_Weights.IMAGENET1K_V1", {"patch": 32}),
])
def test_the_spec_builds_torchvisions_other_vits(weights: str, overrides: dict[str, int]) -> None:
    graph = archspec.analyze(VIT, overrides)
    meta = _meta(weights)
    assert graph.total.params == meta["num_params"]
    assert round(graph.total.macs / 1e9, 3) == meta["_ops"]


def test_vit_macs_are_what_pytorch_multiplies() -> None:
    """Every multiply-accumulate of vit_b_16 — convs, linears and attention's two products — on the meta device."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = archspec.build(VIT, device="meta").eval()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as flops, torch.no_grad():
        out = model(torch.empty(1, 3, 224, 224, device="meta"))
    assert out.shape == (1, 1000)
    assert flops.get_total_flops() == 2 * 17_563_828_224


def test_static_table_of_a_transformer_needs_no_torch() -> None:
    for argv in (["summary", "vit_b_16"], ["render", "vit_b_16", "--format", "dot"], ["validate", str(VIT)]):
        result = _probe(*argv)
        assert result["status"] == 0 and result["torch"] == [], argv


def test_small_vit_is_torchvisions_vision_transformer() -> None:
    reference = _small_reference()
    model = _small_archspec()
    state = import_state_dict(VIT, reference.state_dict(), **SMALL)
    model.load_state_dict(state, strict=True)
    x = torch.randn(3, *SMALL_INPUT)
    for training in (False, True):  # dropout 0: training mode is deterministic too
        model.train(training)
        reference.train(training)
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
    back = export_state_dict(VIT, model.state_dict(), **SMALL)
    assert back.keys() == reference.state_dict().keys()
    reference.load_state_dict(back, strict=True)


def test_vit_b_16_loads_torchvisions_weights_and_computes_its_function() -> None:
    """The one full-size check: strict loading of torchvision's state dict and one 224×224 forward."""
    torch.manual_seed(0)
    reference = tv.build("vit_b_16").eval()
    with torch.no_grad():
        nn.init.normal_(reference.heads.head.weight, std=0.02)  # torchvision starts the head at zero
        nn.init.normal_(reference.heads.head.bias, std=0.02)
    model = archspec.build(VIT).eval()
    model.load_state_dict(import_state_dict(VIT, reference.state_dict()), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
    assert expected.abs().max() > 0.1


def test_vit_mapping_reads_like_torchvision() -> None:
    graph = archspec.analyze(VIT)
    mapping = KeyMapping.load(ROOT / "specs" / "imagenet" / "mappings" / "vision_transformer.yaml")
    table = mapping.module_map(graph)
    assert table["class_token"] == "" and table["encoder.pos_embedding"] == "encoder"
    assert table["encoder.layers.encoder_block12.residual_add2.mlp.linear2"] == "encoder.layers.encoder_layer_11.mlp.3"
    assert table["heads.linear1"] == "heads.head"
    inverse = {t: s for s, t in table.items()}
    assert map_key("class_token", inverse) == ("class_token.class_token", "")
    assert map_key("encoder.layers.encoder_layer_0.self_attention.out_proj.weight", inverse) == (
        "encoder.layers.encoder_block1.residual_add1.self_attention.out_proj.weight",
        "encoder.layers.encoder_layer_0.self_attention")
    assert map_key("nowhere.weight", inverse) is None and map_key("nowhere", {"x": "y"}) is None


def test_weights_flag_loads_a_torchvision_checkpoint(tmp_path: Path) -> None:
    reference = _small_reference()
    path = tmp_path / "small_vit.pth"
    torch.save(reference.state_dict(), path)
    model = archspec.build(VIT, input_shape=SMALL_INPUT, weights=path, **SMALL).eval()
    x = torch.randn(2, *SMALL_INPUT)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference.eval()(x), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ the ecosystem: compile, export, eject, render


def test_vit_compiles_without_graph_breaks_and_exports_with_a_dynamic_batch() -> None:
    model = _small_archspec()
    x = torch.randn(2, *SMALL_INPUT)
    assert_one_graph_in_train_and_eval(model, x)
    model.eval()
    program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    y = torch.randn(5, *SMALL_INPUT)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(y), model(y), rtol=1e-5, atol=1e-6)


def test_onnx_export_of_a_vit_keeps_the_batch_dynamic(tmp_path: Path) -> None:
    import onnxruntime as ort

    from archspec.export import export_onnx

    graph = archspec.analyze(VIT, {**SMALL, "layers": 1}, input_shape=SMALL_INPUT)
    torch.manual_seed(0)
    model = archspec.build(graph).eval()
    out = tmp_path / "vit.onnx"
    export_onnx(graph, out, model=model)  # the default batch 1 (a dynamic batch is traced with 2)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    x = torch.randn(3, *SMALL_INPUT)
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-5)


def test_emitted_python_is_the_same_vit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    import torch._dynamo as dynamo

    out = tmp_path / "vit_small.py"
    sets = [arg for k, v in SMALL.items() for arg in ("--set", f"{k}={v}")]
    assert main(["build", str(VIT), "--input", "3,32,32", *sets, "--emit-python", str(out)]) == 0
    capsys.readouterr()
    spec = importlib.util.spec_from_file_location("vit_small_ejected", out)
    assert spec is not None and spec.loader is not None
    ejected = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ejected)
    source = out.read_text()
    assert "import archspec" not in source and "class SelfAttention(nn.MultiheadAttention)" in source
    model = _small_archspec().eval()
    copy = ejected.VitB16().eval()
    copy.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *SMALL_INPUT)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), model(x), rtol=0, atol=0)
    dynamo.reset()
    assert dynamo.explain(copy)(x).graph_break_count == 0


def test_render_folds_the_encoder_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "vit_b_16", "--format", "dot"]) == 0
    dot = capsys.readouterr().out
    assert "encoder_block ×12: encoder_block1 … encoder_block12" in dot
    assert "attention 12 heads" in dot and "196×768" in dot and "class-token" in dot
    assert dot.count("attention 12 heads") == 1  # drawn once, not twelve times
    assert main(["render", "vit_b_16", "--format", "dot", "--depth", "1"]) == 0
    assert "layers: encoder_block ×12" in capsys.readouterr().out


def test_json_and_table_show_token_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "vit_b_16", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    nodes = {n["name"]: n for n in data["nodes"]}
    assert nodes["class_token"]["output_shape"] == [197, 768] and nodes["class_token"]["params"] == 768
    assert data["params"] == 86_567_656 and data["macs"] == 17_563_828_224
    graph = archspec.analyze(VIT)
    from archspec.summary import graph_table

    row = next(line for line in graph_table(graph).splitlines() if line.startswith("encoder.pos_embedding "))
    assert "pos-embedding" in row and "197×768" in row and "151,296" in row
    assert math.prod(graph.nodes["encoder.pos_embedding"].shape) == 151_296


def test_a_hybrid_goes_from_tokens_back_to_an_image() -> None:
    """to-image after attention: a conv reads the tokens as a grid again (a hybrid CNN-transformer)."""
    text = """archspec: 1
name: hybrid
input: [3, 16, 16]
layers:
  - conv: {out: 8, k: 4, stride: 4}
  - to-tokens
  - attention: {heads: 2}
  - to-image: {h: 4, w: 4}
  - conv: {out: 6, k: 3, pad: 1}
  - gap
  - flatten
  - linear: {out: 5}
"""
    graph = archspec.analyze(text)
    assert graph.nodes["to_image1"].shape == (8, 4, 4) and graph.output_shape == (5,)
    model = archspec.build(graph)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    assert get_op("to_image") is get_op("to-image")


# ------------------------------------------------------------------ Swin-T = torchvision's swin_t


def test_window_attention_is_torchvisions_shifted_window_attention() -> None:
    tv.torchvision_models()  # (imports torchvision without its compiled extension)
    from torchvision.models.swin_transformer import ShiftedWindowAttention

    torch.manual_seed(0)
    for (h, w), window, shift in [((8, 8), (4, 4), (2, 2)), ((5, 9), (3, 4), (1, 2)), ((4, 4), (7, 7), (3, 3)),
                                  ((6, 6), (2, 3), (0, 1)), ((14, 14), (7, 7), (0, 0))]:
        params = {"heads": 2, "window": list(window), "shift": list(shift), "h": h}
        module = check_op("window-attention", params, [(h * w, 8)]).module
        reference = ShiftedWindowAttention(8, list(window), list(shift), 2)
        with torch.no_grad():
            for p in reference.parameters():
                p.normal_(std=0.3)
        module.load_state_dict(reference.state_dict(), strict=True)
        x = torch.randn(2, h, w, 8)
        with torch.no_grad():
            torch.testing.assert_close(module(x.reshape(2, h * w, 8)), reference(x).reshape(2, h * w, 8),
                                       rtol=1e-5, atol=1e-5)


def test_merge_patches_is_torchvisions_patch_merging_order() -> None:
    tv.torchvision_models()  # (imports torchvision without its compiled extension)
    from torchvision.models.swin_transformer import _patch_merging_pad

    for h, w in [(4, 6), (5, 7)]:
        x = torch.randn(2, h, w, 3)
        module = check_op("merge-patches", {"h": h}, [(h * w, 3)]).module
        torch.testing.assert_close(module(x.reshape(2, h * w, 3)), _patch_merging_pad(x).reshape(2, -1, 12),
                                   rtol=0, atol=0)


def test_window_attention_errors() -> None:
    with pytest.raises(ShapeError, match="window-attention shift 7 must be smaller than the window 7"):
        check_op("window-attention", {"heads": 2, "shift": 7}, [(49, 8)])
    with pytest.raises(ShapeError, match="window-attention with heads=3 needs a token width divisible by it"):
        check_op("window-attention", {"heads": 3}, [(49, 8)])
    with pytest.raises(ShapeError, match="window-attention without 'h' and 'w' needs a square number of tokens"):
        check_op("window-attention", {"heads": 2}, [(50, 8)])
    with pytest.raises(ShapeError, match="merge-patches with h=3 needs a number of tokens divisible by it"):
        check_op("merge-patches", {"h": 3}, [(50, 8)])


def test_swin_t_has_torchvisions_parameters_and_gflops() -> None:
    graph = archspec.analyze(SWIN)
    meta = _meta("Swin_T_Weights.IMAGENET1K_V1")
    assert graph.total.params == meta["num_params"] == 28_288_354
    assert graph.total.macs == 4_490_566_656 and round(graph.total.macs / 1e9, 3) == meta["_ops"] == 4.491
    assert graph.total.buffers == 12 * 49 * 49  # relative_position_index, int64, as torchvision's
    assert graph.nodes["features.stem.to_tokens1"].shape == (3136, 96)
    assert graph.nodes["features.patch_merging3.reduction"].shape == (49, 768)
    attn = graph.nodes["features.stage1.swin_block2.residual_add1.attn"]
    assert attn.label == "window-attention 7, 3 heads, shift 3"
    assert attn.counts.macs == 4 * 3136 * 96 * 96 + 2 * 3136 * 49 * 96


def test_swin_macs_are_what_pytorch_multiplies() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = archspec.build(SWIN, device="meta").eval()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as flops, torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    assert flops.get_total_flops() == 2 * 4_490_566_656


def test_swin_t_loads_torchvisions_weights_and_computes_its_function() -> None:
    import torch._dynamo as dynamo

    torch.manual_seed(0)
    reference = tv.build("swin_t").eval()
    with torch.no_grad():
        for p in reference.parameters():  # (torchvision starts biases at zero)
            p.normal_(std=0.02)
    state = import_state_dict(SWIN, reference.state_dict())
    model = archspec.build(SWIN).eval()
    model.load_state_dict(state, strict=True)
    assert export_state_dict(SWIN, model.state_dict()).keys() == reference.state_dict().keys()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
    small = archspec.build(SWIN, input_shape=(3, 56, 56)).eval()  # stages of 14, 7, 4 (padded) and 2 (padded)
    small.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(small(x), reference(x), rtol=1e-4, atol=1e-5)
    dynamo.reset()  # (training mode traces the same code; ViT's test checks it for stochastic depth and dropout)
    explained = dynamo.explain(small)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons

