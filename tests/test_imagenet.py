"""The ImageNet spec library (specs/imagenet), block imports between spec files, and torchvision key mappings."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
import torch

import archspec
import tv
from archspec import analyze
from archspec.errors import ArchspecError
from archspec.mapping import KeyMapping, export_state_dict, find_mapping, import_state_dict
from conftest import ROOT
from helpers_models import assert_counts_match, assert_family_library, randomize_batchnorm

IMAGENET = ROOT / "specs" / "imagenet"

#: torchvision 0.29 weight metadata: (num_params, GFLOPS as published) — shared/REFERENCE.md.
PUBLISHED: dict[str, tuple[int, str]] = {
    "alexnet": (61_100_840, "0.714"),
    "vgg11": (132_863_336, "7.609"),
    "vgg11_bn": (132_868_840, "7.609"),
    "vgg16": (138_357_544, "15.47"),
    "googlenet": (6_624_904, "1.498"),
    "resnet18": (11_689_512, "1.814"),
    "resnet34": (21_797_672, "3.664"),
    "resnet50": (25_557_032, "4.089"),
    "resnet101": (44_549_160, "7.801"),
    "densenet121": (7_978_856, "2.834"),
    "densenet161": (28_681_000, "7.728"),
    "mobilenet_v2": (3_504_872, "0.301"),
}
FAMILIES = {"resnet": ["resnet18", "resnet34", "resnet50", "resnet101"], "densenet": ["densenet121", "densenet161"],
            "vgg": ["vgg11", "vgg11_bn", "vgg16"]}


#: torchvision constructor arguments that give the spec's network: GoogLeNet without its auxiliary heads
#: (``init_weights=True`` is torchvision's own default for random weights, passed to silence its warning).
TV_KWARGS: dict[str, dict[str, object]] = {"googlenet": {"aux_logits": False, "init_weights": True}}


def spec(name: str) -> Path:
    return IMAGENET / f"{name}.yaml"


def torchvision_model(name: str, **kwargs: object) -> torch.nn.Module:
    """torchvision's own model ``name`` (``tests/tv.py``), random weights, as the spec describes it."""
    return tv.build(name, **{**TV_KWARGS.get(name, {}), **kwargs})


def randomize_zeros(model: torch.nn.Module, seed: int = 1) -> None:
    """Redraw every all-zero parameter (torchvision starts many biases at zero), so a mis-mapped bias shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def codes(exc: pytest.ExceptionInfo[ArchspecError]) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


# --------------------------------------------------------------------------------------------------
# Published numbers (static analysis only)


@pytest.mark.parametrize("name", PUBLISHED)
def test_parameters_and_gflops_match_torchvision(name: str) -> None:
    graph = analyze(spec(name))
    params, gflops = PUBLISHED[name]
    assert graph.name == name
    assert graph.input_shape == (3, 224, 224) and graph.output_shape == (1000,)
    assert graph.total.params == params
    decimals = len(gflops.split(".")[1])
    assert round(graph.total.macs / 1e9, decimals) == float(gflops)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_members_share_one_definition(family: str) -> None:
    assert (IMAGENET / f"{family}_family.yaml").exists()
    assert_family_library(f"{family}_family", FAMILIES[family])  # no network of its own; the members import it
    for name in FAMILIES[family]:
        text = spec(name).read_text()
        assert "\nblocks:" not in text and len(text.splitlines()) <= 12


def test_classes_override_reaches_the_family_block() -> None:
    graph = analyze(spec("resnet50"), {"classes": 10})
    assert graph.output_shape == (10,)
    assert graph.total.params == PUBLISHED["resnet50"][0] - 2048 * 990 - 990


# --------------------------------------------------------------------------------------------------
# MobileNetV2: depthwise convs, ReLU6, conditional residuals, width multiplier


def test_mobilenet_v2_structure() -> None:
    graph = analyze(spec("mobilenet_v2"))
    convs = [n for n in graph.nodes.values() if n.op == "conv"]
    depthwise = [n for n in convs if n.params.groups > 1]
    assert len(depthwise) == 17
    assert all(n.params.groups == graph.shape_of(n.inputs[0])[0] == n.shape[0] for n in depthwise)
    assert sum(n.op == "relu6" for n in graph.nodes.values()) == 2 + 17 + 16  # stem/last, depthwise, expansions
    adds = [n for n in graph.nodes.values() if n.op == "add"]
    # A residual exactly where stride is 1 and channels match: the repeats of stages 2-6 (1+2+3+2+2).
    assert len(adds) == 10
    for add in adds:
        assert graph.shape_of(add.inputs[1]) == add.shape  # the identity shortcut is the block's input
        assert add.inputs[1] not in {n.name for n in depthwise}


@pytest.mark.parametrize("width", [0.5, 0.75, 1.4])
def test_mobilenet_v2_width_multiplier_matches_torchvision(width: float) -> None:
    graph = analyze(spec("mobilenet_v2"), {"width": width})
    with torch.device("meta"):
        reference = torchvision_model("mobilenet_v2", width_mult=width)
    assert_counts_match(graph, reference)
    channels = [n.shape[0] for n in graph.nodes.values() if n.op == "conv"]
    assert all(c % 8 == 0 for c in channels)


# --------------------------------------------------------------------------------------------------
# Block imports


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


LIB = """
archspec: 1
blocks:
  cbr:
    params: {c: null}
    layers: [conv: {out: $c, k: 3, pad: 1, bias: false}, bn, relu]
"""


def test_import_resolves_relative_to_the_importing_file(tmp_path: Path) -> None:
    write(tmp_path, "lib/common.yaml", LIB)
    write(tmp_path, "lib/family.yaml", """
        archspec: 1
        imports: [common.yaml]
        blocks:
          pair:
            params: {c: null}
            layers: [cbr: {c: $c}, cbr: {c: $c}]
        """)
    main = write(tmp_path, "nets/net.yaml", """
        archspec: 1
        name: net
        imports: [../lib/family.yaml, ../lib/common.yaml]
        input: [3, 8, 8]
        layers: [pair: {c: 4}, cbr: {c: 8}]
        """)
    with pytest.raises(ArchspecError, match="outside the spec's directory tree"):
        analyze(main)  # a sibling folder is outside the spec's tree unless the user allows it
    graph = analyze(main, import_roots=[tmp_path])  # the diamond (common.yaml twice) is one definition, not a clash
    assert [n.name for n in graph.nodes.values() if n.op == "conv"] == ["pair1.cbr1.conv1", "pair1.cbr2.conv1",
                                                                         "cbr1.conv1"]
    assert graph.output_shape == (8, 8, 8)


def test_missing_import_is_reported_at_its_line(tmp_path: Path) -> None:
    main = write(tmp_path, "net.yaml", """
        archspec: 1
        name: net
        imports:
          - nope.yaml
        input: [3, 8, 8]
        layers: [relu]
        """)
    with pytest.raises(ArchspecError) as exc:
        analyze(main)
    [d] = exc.value.diagnostics
    assert d.code == "E-IMPORT" and "nope.yaml" in d.message
    assert (d.span.path, d.span.line, d.span.column) == (str(main), 4, 5)


def test_import_cycle_is_reported_at_the_import_that_closes_it(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", """
        archspec: 1
        imports: [b.yaml]
        blocks:
          x: {layers: [relu]}
        """)
    write(tmp_path, "b.yaml", """
        archspec: 1
        blocks:
          y: {layers: [relu]}
        imports: [c.yaml, a.yaml]
        """)
    write(tmp_path, "c.yaml", LIB)
    main = write(tmp_path, "net.yaml", """
        archspec: 1
        name: net
        imports: [a.yaml]
        input: [3, 8, 8]
        layers: [x]
        """)
    with pytest.raises(ArchspecError) as exc:
        analyze(main)
    [d] = exc.value.diagnostics  # no cascade of "unknown block 'x'"
    assert d.code == "E-IMPORT-CYCLE"
    assert "a.yaml → b.yaml → a.yaml" in d.message
    assert d.span.path.endswith("b.yaml") and (d.span.line, d.span.column) == (4, 19)
    assert [(n.span.path.rsplit("/", 1)[-1], n.span.line) for n in d.notes] == [("a.yaml", 2), ("net.yaml", 3)]


def test_a_file_importing_itself_is_a_cycle(tmp_path: Path) -> None:
    main = write(tmp_path, "net.yaml", """
        archspec: 1
        name: net
        imports: [net.yaml]
        input: [3, 8, 8]
        layers: [relu]
        """)
    with pytest.raises(ArchspecError) as exc:
        analyze(main)
    assert codes(exc) == ["E-IMPORT-CYCLE"]
    assert exc.value.diagnostics[0].span.line == 3


def test_errors_inside_an_imported_file_point_into_it(tmp_path: Path) -> None:
    write(tmp_path, "lib.yaml", """
        archspec: 1
        blocks:
          bad:
            layers: [conv: {out: 8, kernel: 3}]
        """)
    main = write(tmp_path, "net.yaml", """
        archspec: 1
        name: net
        imports: [lib.yaml]
        input: [3, 8, 8]
        layers: [bad]
        """)
    with pytest.raises(ArchspecError) as exc:
        analyze(main)
    [d] = exc.value.diagnostics
    assert d.code == "E-UNKNOWN-KEY" and d.span.path.endswith("lib.yaml") and d.span.line == 4
    assert d.notes[-1].span.path == str(main) and d.notes[-1].span.line == 3


def test_shape_errors_in_imported_blocks_name_the_instance(tmp_path: Path) -> None:
    write(tmp_path, "lib.yaml", LIB)
    main = write(tmp_path, "net.yaml", """
        archspec: 1
        name: net
        imports: [lib.yaml]
        input: [16]
        layers: [cbr: {c: 4}]
        """)
    with pytest.raises(ArchspecError) as exc:
        analyze(main)
    [d] = exc.value.diagnostics
    assert d.code == "E-SHAPE" and d.span.path.endswith("lib.yaml")
    assert any(n.span and n.span.path == str(main) and "cbr1" in n.message for n in d.notes)


def test_clashing_block_names_are_errors(tmp_path: Path) -> None:
    write(tmp_path, "lib.yaml", LIB)
    write(tmp_path, "other.yaml", LIB)
    two_imports = write(tmp_path, "net.yaml", """
        archspec: 1
        name: net
        imports:
          - lib.yaml
          - other.yaml
        input: [3, 8, 8]
        layers: [cbr: {c: 4}]
        """)
    with pytest.raises(ArchspecError) as exc:
        analyze(two_imports)
    [d] = exc.value.diagnostics
    assert d.code == "E-IMPORT-CLASH" and (d.span.line, d.span.column) == (5, 5) and "lib.yaml" in d.message
    local = write(tmp_path, "local.yaml", """
        archspec: 1
        name: net
        imports: [lib.yaml]
        input: [3, 8, 8]
        blocks:
          cbr: {layers: [relu]}
        layers: [cbr]
        """)
    with pytest.raises(ArchspecError) as exc:
        analyze(local)
    [d] = exc.value.diagnostics
    assert d.code == "E-IMPORT-CLASH" and (d.span.line, d.span.column) == (6, 3)


def test_imports_must_be_a_list_of_paths(tmp_path: Path) -> None:
    main = write(tmp_path, "net.yaml", """
        archspec: 1
        name: net
        imports: lib.yaml
        input: [3, 8, 8]
        layers: [relu]
        """)
    with pytest.raises(ArchspecError) as exc:
        analyze(main)
    assert codes(exc) == ["E-TYPE"] and exc.value.diagnostics[0].span.line == 3


# --------------------------------------------------------------------------------------------------
# torchvision state_dict mappings


@pytest.mark.parametrize("name", PUBLISHED)
def test_mapping_covers_every_key_with_the_right_shape(name: str) -> None:
    with torch.device("meta"):
        reference = torchvision_model(name)
    assert sum(p.numel() for p in reference.parameters()) == PUBLISHED[name][0]
    assert_counts_match(analyze(spec(name)), reference)
    model = archspec.build(spec(name), device="meta")
    mapped = import_state_dict(spec(name), reference.state_dict())
    ours = model.state_dict()
    assert mapped.keys() == ours.keys()
    assert all(mapped[k].shape == ours[k].shape for k in ours)
    back = export_state_dict(spec(name), ours)
    assert back.keys() == reference.state_dict().keys()


@pytest.mark.parametrize(("name", "size"), [("resnet50", 224), ("mobilenet_v2", 224), ("resnet18", 32),
                                            ("densenet121", 32), ("googlenet", 32)])
def test_torchvision_state_dict_loads_and_outputs_match(name: str, size: int) -> None:
    torch.manual_seed(0)
    reference = torchvision_model(name).eval()
    randomize_batchnorm(reference)
    randomize_zeros(reference)
    model = archspec.build(spec(name), input_shape=(3, size, size)).eval()
    result = model.load_state_dict(import_state_dict(spec(name), reference.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = reference(x)
        assert expected.abs().max() > 0
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
    # and back: archspec weights load into torchvision's module under torchvision's names
    other = torchvision_model(name).eval()
    other.load_state_dict(export_state_dict(spec(name), model.state_dict()), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(other(x), reference(x), rtol=0, atol=0)


def test_mapping_examples_read_like_torchvision() -> None:
    graph = analyze(spec("resnet50"))
    table = find_mapping(spec("resnet50"), "resnet50").module_map(graph)
    assert table["resnet.layer1.bottleneck1.residual_add1.shortcut.conv1"] == "layer1.0.downsample.0"
    assert table["resnet.layer3.bottleneck6.residual_add1.bn3"] == "layer3.5.bn3"
    graph = analyze(spec("mobilenet_v2"))
    table = find_mapping(spec("mobilenet_v2"), "mobilenet_v2").module_map(graph)
    assert table["features.inverted_residual1.conv.conv_bn_relu61.conv1"] == "features.1.conv.0.0"
    assert table["features.inverted_residual3.residual_add1.conv.conv1"] == "features.3.conv.2"
    assert table["classifier.linear1"] == "classifier.1"


def test_foreign_state_dict_is_refused_with_the_keys_named() -> None:
    with torch.device("meta"):
        resnet18 = torchvision_model("resnet18")
    with pytest.raises(ArchspecError) as exc:
        import_state_dict(spec("resnet50"), resnet18.state_dict())
    message = exc.value.format()
    assert "E-MAPPING" in message and "receive nothing" in message and "conv3" in message


def test_mapping_file_problems_are_positioned(tmp_path: Path) -> None:
    bad = write(tmp_path, "m.yaml", """
        archspec-mapping: 1
        target: x
        models: [resnet50]
        rename:
          - ['(unclosed', '']
        numbre: [features]
        """)
    with pytest.raises(ArchspecError) as exc:
        KeyMapping.load(bad)
    found = {(d.code, d.span.line) for d in exc.value.diagnostics}
    assert ("E-UNKNOWN-KEY", 6) in found
    assert any(code == "E-TYPE" and line in (4, 5) for code, line in found)


def test_a_mapping_that_is_not_one_to_one_is_refused(tmp_path: Path) -> None:
    clash = write(tmp_path, "m.yaml", """
        archspec-mapping: 1
        target: x
        models: [resnet18]
        rename:
          - ['\\.residual_add1\\..*$', '.block']
        """)
    with pytest.raises(ArchspecError) as exc:
        KeyMapping.load(clash).module_map(analyze(spec("resnet18")))
    assert "both map to" in exc.value.format()


# --------------------------------------------------------------------------------------------------
# The generated table


def _table_module():
    loaded = importlib.util.spec_from_file_location("model_table", ROOT / "scripts" / "model_table.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def test_model_table_lists_every_spec_and_docs_hold_it() -> None:
    table = _table_module().model_table([IMAGENET])
    rows = [line for line in table.splitlines()[2:]]
    assert [r.split("|")[1].strip() for r in rows] == [
        "alexnet", "convnext_tiny", "densenet121", "densenet161", "efficientnet_b0", "googlenet", "inception_v3",
        "mnasnet1_0", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_y_400mf", "resnet18",
        "resnet34", "resnet50", "resnet101", "resnext50_32x4d", "shufflenet_v2_x1_0", "squeezenet1_0", "squeezenet1_1",
        "swin_t", "vgg11", "vgg11_bn", "vgg16", "vit_b_16", "wide_resnet50_2"]
    assert "| resnet50 | 3×224×224 | 25,557,032 | 4.089 | `specs/imagenet/resnet50.yaml` |" in rows
    assert table in (ROOT / "docs" / "imagenet.md").read_text(), "regenerate with: python scripts/model_table.py"
