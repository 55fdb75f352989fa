"""render: IR → deterministic DOT (golden files), page-sized figures, images through Graphviz, the CLI and
the docs gallery.

Regenerate the golden DOT files with ``ARCHSPEC_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py``
and review the diff; regenerate the gallery with ``archspec render --gallery docs/gallery specs``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import archspec
from archspec.cli import main
from archspec.errors import ArchspecError
from archspec.render import (
    PAGE_HEIGHT_PX,
    PAGE_WIDTH_PX,
    RenderOptions,
    format_for,
    gallery,
    gallery_sources,
    render,
    svg_dot_hash,
    to_dot,
)
from conftest import ROOT, SEEDS, SPECS

GOLDEN = Path(__file__).resolve().parent / "golden" / "dot"
GALLERY = ROOT / "docs" / "gallery"
UPDATE = os.environ.get("ARCHSPEC_UPDATE_GOLDEN") == "1"

#: Extra golden variants: (file stem, spec, options).
VARIANTS = [
    ("resnet18-depth1-fold-residual", "resnet18", RenderOptions(depth=1, fold=frozenset({"residual"}))),
    ("densenet-depth0", "densenet", RenderOptions(depth=0)),
    ("googlenet-fold-lr-dark", "googlenet", RenderOptions(direction="LR", theme="dark")),
    ("resnet18-all-unfused-mono", "resnet18", RenderOptions(depth=None, fuse=False, fold=frozenset(), wrap=False,
                                                            theme="mono")),
]
#: Everything, one box per op: every IR node and edge is drawn as itself.
EVERYTHING = RenderOptions(depth=None, fold=frozenset(), fuse=False, wrap=False)


def _graph(name: str) -> archspec.Graph:
    return archspec.analyze(SPECS / f"{name}.yaml")


def _shipped() -> list[str]:
    """Every network under specs/ (block libraries are not networks), as paths relative to specs/."""
    return [stem for _, stem, _ in gallery_sources([SPECS]) if not stem.endswith("_family")]


def _check_golden(stem: str, text: str) -> None:
    path = GOLDEN / f"{stem}.dot"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden {path}; run with ARCHSPEC_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"DOT for {stem} changed; regenerate the goldens if intended"


def _env_without_dot(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds only the Python interpreter's directory (no Graphviz)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    os.symlink(sys.executable, bindir / "python")
    return {**os.environ, "PATH": str(bindir)}


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archspec", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, check=False)


def _boxes(text: str) -> int:
    """How many boxes (DOT nodes) a diagram draws."""
    return len(re.findall(r'^\s+"[^"]+" \[label=', text, re.M))


def _dashed(text: str) -> list[str]:
    return [line for line in text.splitlines() if "->" in line and 'style="dashed"' in line]


def _layout(tmp_path: Path, name: str, text: str, png: bool = False) -> tuple[float, float, float]:
    """Lay DOT text out with Graphviz: (natural width, natural height) in px at 96 dpi and the scale it is
    drawn at; with ``png``, also write ``<name>.dot.png`` (one ``dot`` run makes both)."""
    dot_file = tmp_path / f"{name.replace('/', '_')}.dot"
    dot_file.write_text(text, encoding="utf-8")
    formats = ["-Tjson", "-Tpng"] if png else ["-Tjson"]
    # In tmp_path: Graphviz 2.43 also leaves an empty noname.gv.xdot in its working folder for -Tjson -O.
    subprocess.run(["dot", *formats, "-O", str(dot_file)], check=True, capture_output=True, timeout=120, cwd=tmp_path)
    data = json.loads(Path(f"{dot_file}.json").read_text(encoding="utf-8"))
    _, _, w, h = (float(v) for v in data["bb"].split(","))
    page = data.get("size")
    scale = min(1.0, float(page.split(",")[0]) * 72 / w) if page else 1.0
    return w * 96 / 72, h * 96 / 72, scale


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


# --- DOT text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SEEDS)
def test_golden_dot_for_seed(name: str) -> None:
    _check_golden(name, to_dot(_graph(name)))


@pytest.mark.parametrize(("stem", "name", "opts"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_golden_dot_for_options(stem: str, name: str, opts: RenderOptions) -> None:
    _check_golden(stem, to_dot(_graph(name), opts))


def test_dot_is_identical_across_processes_and_hash_seeds() -> None:
    outs = []
    for seed in ("1", "2"):
        proc = _cli("render", str(SPECS / "googlenet.yaml"), "--direction", "LR",
                    env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    assert outs[0] == to_dot(_graph("googlenet"), RenderOptions(direction="LR"))


def test_node_ids_are_spec_paths_and_edges_carry_shapes() -> None:
    graph = _graph("googlenet")
    text = to_dot(graph, EVERYTHING)
    for name in graph.nodes:
        assert re.search(rf'^\s+"{re.escape(name)}" \[label=', text, re.M), name
    # Every IR edge is drawn; where the tensor's shape changes, the edge carries it.
    for node in graph.nodes.values():
        for src in node.inputs:
            m = re.search(rf'^  "{re.escape(src)}" -> "{re.escape(node.name)}"(?: \[(.*)\])?;$', text, re.M)
            assert m, (src, node.name)
            shape = "×".join(map(str, graph.shape_of(src)))
            changed = src != "input" and graph.nodes[src].inputs and graph.shape_of(graph.nodes[src].inputs[0]) != \
                graph.shape_of(src)
            assert (f'xlabel="{shape}"' in (m.group(1) or "")) == bool(changed), (src, node.name)


def test_labels_show_settings_and_params() -> None:
    text = to_dot(_graph("resnet18"))
    # conv 7×7 (3,200 params) with its bn (128) and relu drawn in one box; the add with the block's relu.
    assert '"b1.conv1" [label="conv 7×7/2, 64 + bn + relu\\n3.33K params"' in text
    assert '"b1.maxpool1" [label="maxpool 3×3/2"' in text
    assert '"stage2.residual1.residual_add1.add" [label="add + relu\\nprojection shortcut"' in text
    # A pre-activation bn is not fused into anything before it, but takes its relu.
    dense = to_dot(_graph("densenet"), RenderOptions(depth=None, fold=frozenset(), wrap=False))
    assert '"dense_block1.dense_concat1.conv_block1.bn1" [label="batchnorm + relu\\n128 params"' in dense
    assert "11,178,378 params" in text  # total in the title
    assert 'label="stage2 · 526K params"' in text  # 230,272 + 295,680  # per-block params on the cluster
    unfused = to_dot(_graph("resnet18"), RenderOptions(fuse=False))
    assert '"b1.relu1" [label="relu"' in unfused


def test_concat_and_add_are_distinct_shapes() -> None:
    g = to_dot(_graph("googlenet"), RenderOptions(depth=None))
    assert re.search(r'"b3\.inception1\.inception_branch1\.concat" \[label="concat 64\+128\+32\+32 → 256", '
                     r'tooltip="[^"]+", shape="invtrapezium"', g)
    r = to_dot(_graph("resnet18"), EVERYTHING)
    assert re.search(r'"stage1\.residual1\.residual_add1\.add" \[label="add\\nidentity shortcut", [^]]*shape="ellipse"', r)
    assert re.search(r'"stage2\.residual1\.residual_add1\.add" \[label="add\\nprojection shortcut", [^]]*shape="ellipse"', r)
    assert "shortcut\\nconv 1×1/2, 128" in r


def test_skip_edges_are_dashed() -> None:
    r = to_dot(_graph("resnet18"), EVERYTHING)
    dashed = _dashed(r)
    # 5 identity shortcuts (one edge each) and 3 projections (into and out of the 1×1 conv).
    assert len(dashed) == 5 + 3 * 2
    assert '"stage1.residual1.relu1" -> "stage1.residual2.residual_add1.add"' in "\n".join(dashed)
    d = to_dot(_graph("densenet"), EVERYTHING)
    dense = _dashed(d)
    assert len(dense) == 16  # one per dense layer: block input → concat
    assert all(".concat\"" in line.split("->")[1] for line in dense)
    plain = to_dot(_graph("vgg11"))
    assert 'style="dashed"' not in plain and "skip connections" not in plain


@pytest.mark.parametrize("name", ["resnet18", "imagenet/resnet18", "imagenet/resnet34", "imagenet/resnet50",
                                  "imagenet/resnet101"])
def test_default_resnet_figures_show_the_skips_of_every_stage(name: str) -> None:
    """With no options, every stage of a ResNet shows its residual blocks and their skip connections."""
    graph = _graph(name)
    text = to_dot(graph)
    stages = sorted({m.group(0) for n in graph.nodes if (m := re.search(r"\b(stage|layer)\d", n))})
    assert len(stages) == 4
    for stage in stages:
        into_adds = [line for line in _dashed(text) if re.search(rf'-> "[^"]*\b{stage}\.[^"]*\.add"', line)]
        assert into_adds, stage
    assert "skip connections" in text


def test_depth_collapses_block_instances() -> None:
    graph = _graph("resnet18")
    text = to_dot(graph, RenderOptions(depth=0))
    assert "subgraph" not in text
    for stage in ("stage1", "stage2", "stage3", "stage4"):
        grp = graph.groups[stage]
        shapes = f"{'×'.join(map(str, graph.shape_of(grp.input)))} → {'×'.join(map(str, graph.shape_of(grp.output)))}"
        assert f'"{stage}" [label="{stage}\\n{shapes}\\n' in text
    one = to_dot(graph, RenderOptions(depth=1))
    assert '"cluster_stage2"' in one and '"cluster_stage2.residual1"' not in one
    assert '"stage2.residual1" [label="residual1\\n64×24×24 → 128×12×12\\nadd, projection shortcut\\n230K params"' in one
    full = to_dot(graph, RenderOptions(depth=None))
    assert '"cluster_stage2.residual1"' in full


def test_depth_one_of_googlenet_keeps_kernel_sizes() -> None:
    """Collapsing never hides kernel sizes: a conv + bn + relu block stays its box, an inception block
    becomes a table of its branches."""
    seed = to_dot(_graph("googlenet"), RenderOptions(depth=1))
    assert "<TD>conv 1×1, 96<BR/>conv 3×3, 128</TD>" in seed and "conv 5×5, 32" in seed
    assert "concat 64+128+32+32 → 256" in seed
    imagenet = to_dot(_graph("imagenet/googlenet"), RenderOptions(depth=1))
    assert '"inception3a.inception_branch1.branch2.basic_conv2.conv1" [label="conv 3×3, 128 + bn + relu' in imagenet
    assert "cluster_inception3a" in imagenet
    deeper = to_dot(_graph("imagenet/googlenet"), RenderOptions(depth=2))
    assert _boxes(imagenet) <= _boxes(deeper)
    zero = to_dot(_graph("imagenet/googlenet"), RenderOptions(depth=0))
    assert "<TD>conv 1×1, 128<BR/>conv 3×3, 192</TD>" in zero  # inception3b's second branch


@pytest.mark.parametrize("name", _shipped())
def test_a_shallower_depth_never_draws_more(name: str) -> None:
    """--depth d draws no more boxes than --depth d + 1 (nor than --depth all), for every shipped spec."""
    graph = _graph(name)
    levels = 1 + max((g.name.count(".") + 1 for g in graph.groups.values()), default=0)
    counts = [(depth, _boxes(to_dot(graph, RenderOptions(depth=depth, wrap=False)))) for depth in [*range(levels), None]]
    for (d1, n1), (d2, n2) in itertools.pairwise(counts):
        assert n1 <= n2, (d1, n1, d2, n2)


@pytest.mark.parametrize("name", ["googlenet", "resnet18", "densenet", "imagenet/resnet50", "imagenet/googlenet",
                                  "imagenet/mobilenet_v2"])
def test_a_shallower_depth_never_gives_a_bigger_figure(tmp_path: Path, name: str) -> None:
    """Measured by Graphviz: the laid-out area grows (within 3%, layout noise) with the depth."""
    graph = _graph(name)
    levels = 1 + max((g.name.count(".") + 1 for g in graph.groups.values()), default=0)
    areas = []
    for depth in [*range(levels), None]:
        w, h, _ = _layout(tmp_path, f"{name}-{depth}", to_dot(graph, RenderOptions(depth=depth)))
        areas.append((depth, w * h))
    for (d1, a1), (d2, a2) in itertools.pairwise(areas):
        assert a1 <= a2 * 1.03, (d1, a1, d2, a2)


def test_fold_draws_identical_instances_once() -> None:
    graph = _graph("resnet18")
    text = to_dot(graph)
    # stage1's two residual blocks are identical: drawn once, titled ×2; the other stages' first block
    # downsamples, so it is not identical to the second.
    assert 'subgraph "cluster_stage1.residual1" {' in text
    assert 'label="residual ×2: residual1 … residual2 · 148K params"' in text
    assert '"cluster_stage2.residual1"' in text and '"cluster_stage2.residual2"' in text
    assert '"stage1.residual2.' not in text  # the second instance is the first one's picture
    # Stages with different widths never fold, asked or not; the stage clusters stay around what folds.
    stages = to_dot(graph, RenderOptions(fold=frozenset({"stage"})))
    assert " ×4" not in stages and stages == to_dot(graph, RenderOptions(fold=frozenset()))
    resnet34 = _graph("imagenet/resnet34")
    only = to_dot(resnet34, RenderOptions(fold=frozenset({"basic"}), depth=2))
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        assert f'subgraph "cluster_resnet.{stage}" {{' in only, stage
    assert "basic ×2\\nbasic1 … basic2" not in only  # layer1: basic1 … basic3 are all identical
    assert "basic ×3\\nbasic1 … basic3" in only and "basic ×5\\nbasic2 … basic6" in only
    # Dense layers fold although each reads more channels; the changing numbers are shown as ranges.
    dense = to_dot(_graph("imagenet/densenet121"), RenderOptions(depth=None))
    assert "dense_layer ×6: dense_layer1 … dense_layer6 · 335K params" in dense
    assert "concat 64…224+32 → 96…256" in dense
    # Parallel siblings (inception branches) never fold, and nothing folds when not asked.
    googlenet = _graph("googlenet")
    assert to_dot(googlenet, RenderOptions(fold=frozenset({"branch"}), depth=None)) == \
        to_dot(googlenet, RenderOptions(fold=frozenset(), depth=None))
    assert " ×" not in to_dot(graph, RenderOptions(fold=frozenset()))


def test_repeated_layers_have_distinct_names() -> None:
    """dense_concat2 holds conv_block2: names tell repeated layers apart in diagrams and module paths."""
    graph = _graph("densenet")
    blocks = [g.name for g in graph.groups.values() if g.block == "conv_block" and g.name.startswith("dense_block1.")]
    assert blocks == [f"dense_block1.dense_concat{i}.conv_block{i}" for i in range(1, 5)]
    text = to_dot(graph, RenderOptions(depth=None, fold=frozenset(), wrap=False))
    titles = re.findall(r'graph \[label="(conv_block\d+) ·', text)
    assert titles[:4] == ["conv_block1", "conv_block2", "conv_block3", "conv_block4"]
    d121 = _graph("imagenet/densenet121")
    layers = [g.local_name for g in d121.groups.values() if g.block == "dense_layer" and ".denseblock1." in g.name]
    assert layers == [f"dense_layer{i}" for i in range(1, 7)]
    text = to_dot(d121, RenderOptions(depth=None, fold=frozenset(), wrap=False))
    titles = re.findall(r'label="(dense_layer\d+) ·', text)
    assert len(titles) == 6 + 12 + 24 + 16 and titles[:7] == [*(f"dense_layer{i}" for i in range(1, 7)), "dense_layer1"]


def test_direction_lr_wraps_into_rows(tmp_path: Path) -> None:
    """Left to right, a long network is cut into rows of a readable width."""
    for name, depth in (("imagenet/vgg16", None), ("imagenet/resnet50", 2), ("densenet", None),
                        ("imagenet/mobilenet_v2", 1)):
        graph = _graph(name)
        text = to_dot(graph, RenderOptions(direction="LR", depth=depth))
        assert '"A:start"' in text and '"A:end"' in text, name
        w, h, scale = _layout(tmp_path, name, text)
        assert scale >= 0.65 and w * scale <= PAGE_WIDTH_PX and h * scale <= 1.1 * PAGE_HEIGHT_PX, (name, w, h, scale)
        strip = to_dot(graph, RenderOptions(direction="LR", depth=depth, wrap=False))
        strip_w, _, _ = _layout(tmp_path, name + "-strip", strip)
        assert strip_w > 2 * w, (name, strip_w, w)  # one strip would be far wider


def test_wrapped_columns_join_at_lettered_connectors() -> None:
    text = to_dot(_graph("imagenet/resnet50"))
    letters = re.findall(r'"([A-Z]):start" \[label="\1"', text)
    assert letters and letters == re.findall(r'"([A-Z]):end" \[label="\1"', text)
    for letter in letters:
        # The end connector is fed by one drawn node; the start connector feeds the next column.
        assert len(re.findall(rf'-> "{letter}:end"', text)) == 1
        assert re.search(rf'^  "{letter}:start" -> ', text, re.M)
    assert "circled letters: the network continues at the same letter" in text
    assert "circled letters" not in to_dot(_graph("imagenet/resnet50"), RenderOptions(wrap=False))


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="direction"):
        RenderOptions(direction="BT")
    with pytest.raises(ValueError, match="theme"):
        RenderOptions(theme="neon")
    with pytest.raises(ValueError, match="depth"):
        RenderOptions(depth=-1)
    with pytest.raises(ValueError, match="depth"):
        RenderOptions(depth="deep")


def test_format_from_extension() -> None:
    assert format_for("a/b.SVG", None) == "svg"
    assert format_for("x.gv", None) == "dot"
    assert format_for(None, None) == "dot"
    assert format_for("x.svg", "png") == "png"
    with pytest.raises(ArchspecError, match="cannot tell the format"):
        format_for("x.bmp", None)
    with pytest.raises(ArchspecError, match="unknown format"):
        format_for(None, "gif")


# --- images, files, the CLI ---------------------------------------------------------------------------


def test_render_svg_png_pdf(tmp_path: Path) -> None:
    graph = _graph("lenet")
    assert render(graph, tmp_path / "l.svg").lstrip().startswith(b"<?xml")
    assert (tmp_path / "l.png").exists() is False
    assert render(graph, tmp_path / "l.png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "l.png").read_bytes()[:4] == b"\x89PNG"
    assert render(graph, tmp_path / "l.pdf")[:5] == b"%PDF-"
    assert render(graph, tmp_path / "l.dot").decode() == to_dot(graph)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.dot", "l.pdf", "l.png", "l.svg"]


def test_cli_render_writes_file_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.svg"
    assert main(["render", str(SPECS / "lenet.yaml"), "-o", str(out), "--depth", "all", "--theme", "mono"]) == 0
    assert "<svg" in out.read_text()
    assert main(["render", str(SPECS / "lenet.yaml"), "--direction", "LR"]) == 0
    assert 'rankdir="LR"' in capsys.readouterr().out
    assert main(["render", str(SPECS / "lenet.yaml"), "--set", "classes=7", "--input", "1,32,32"]) == 0
    assert "lenet: 1×32×32 → 7" in capsys.readouterr().out


def test_cli_detail_options(capsys: pytest.CaptureFixture[str]) -> None:
    """--depth auto|all|N, --fold[=NAMES], --no-fold and --no-wrap each mean one thing."""
    spec = str(SPECS / "resnet18.yaml")
    graph = _graph("resnet18")
    cases = [
        ([], RenderOptions()),
        (["--depth", "auto"], RenderOptions()),
        (["--depth", "all"], RenderOptions(depth=None)),
        (["--depth", "1", "--fold=residual"], RenderOptions(depth=1, fold=frozenset({"residual"}))),
        (["--fold"], RenderOptions()),
        (["--no-fold", "--no-wrap"], RenderOptions(fold=frozenset(), wrap=False)),
    ]
    for argv, opts in cases:
        assert main(["render", spec, *argv]) == 0, argv
        assert capsys.readouterr().out == to_dot(graph, opts), argv
    with pytest.raises(SystemExit) as exc:
        main(["render", spec, "--depth", "most"])
    assert exc.value.code == 2 and "'auto'" in capsys.readouterr().err


def test_cli_usage_and_spec_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(SPECS / "lenet.yaml")
    assert main(["render", spec, "--format", "png"]) == 2
    assert "give -o FILE" in capsys.readouterr().err
    assert main(["render", spec, str(SPECS / "nin.yaml")]) == 2
    assert main(["render", spec, "--gallery", str(tmp_path), "-o", "x.svg"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["render", spec, "--depth", "deep"])
    assert exc.value.code == 2
    assert main(["render", spec, "-o", str(tmp_path / "x.bmp")]) == 1
    assert "[E-FORMAT]" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\nname: bad\ninput: [1, 8, 8]\nlayers: [conv: {out: 4, k: 9}]\n")
    assert main(["render", str(bad), "-o", str(tmp_path / "bad.svg")]) == 1
    err = capsys.readouterr().err
    assert re.search(r"bad\.yaml:\d+:\d+: error: .*\[E-SHAPE\]", err) and "Traceback" not in err
    assert not (tmp_path / "bad.svg").exists()
    # The spec itself is never overwritten.
    copy = tmp_path / "lenet.dot"
    copy.write_text((SPECS / "lenet.yaml").read_text())
    assert main(["render", str(copy), "-o", str(copy)]) == 1
    assert copy.read_text() == (SPECS / "lenet.yaml").read_text()


def test_without_graphviz_dot_format_works_and_images_fail_in_one_line(tmp_path: Path) -> None:
    env = _env_without_dot(tmp_path)
    target = tmp_path / "out.svg"
    target.write_text("previous picture")
    proc = _cli("render", str(SPECS / "densenet.yaml"), "-o", str(target), env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "[E-NO-DOT]" in lines[0] and "install Graphviz" in lines[0], proc.stderr
    assert target.read_text() == "previous picture"  # untouched
    proc = _cli("render", str(SPECS / "densenet.yaml"), "-o", str(tmp_path / "d.dot"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d.dot").read_text() == to_dot(_graph("densenet"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "d.dot", "out.svg"]


def test_failing_dot_leaves_no_partial_file(tmp_path: Path) -> None:
    env = _env_without_dot(tmp_path)
    fake = tmp_path / "bin" / "dot"
    fake.write_text("#!/bin/sh\nprintf '<svg partial'\necho 'Error: out of memory' >&2\nexit 3\n")
    fake.chmod(0o755)
    out = tmp_path / "x" / "g.svg"
    out.parent.mkdir()
    proc = _cli("render", str(SPECS / "lenet.yaml"), "-o", str(out), env=env)
    assert proc.returncode == 1
    assert "[E-DOT]" in proc.stderr and "out of memory" in proc.stderr
    assert list(out.parent.iterdir()) == []


def test_render_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from archspec.cli import main\n"
        f"assert main(['render', {str(SPECS / 'googlenet.yaml')!r}, '-o', {str(tmp_path / 'g.svg')!r}]) == 0\n"
        f"assert main(['render', {str(SPECS / 'resnet18.yaml')!r}, '--gallery', {str(tmp_path / 'gal')!r}]) == 0\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "g.svg").exists() and (tmp_path / "gal" / "resnet18.svg").exists()


# --- the docs gallery ------------------------------------------------------------------------------


def test_gallery_writes_dot_svg_and_index(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    (specs / "sub").mkdir(parents=True)
    (specs / "sub" / "lenet.yaml").write_text((SPECS / "lenet.yaml").read_text())
    (specs / "notes.yaml").write_text("just: data\n")  # not a spec: skipped
    files = gallery([specs], tmp_path / "out")
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in files)
    assert names == ["index.md", "sub/lenet.dot", "sub/lenet.svg"]
    svg = (tmp_path / "out" / "sub" / "lenet.svg").read_text()
    dot = (tmp_path / "out" / "sub" / "lenet.dot").read_bytes()
    assert svg_dot_hash(svg) == hashlib.sha256(dot).hexdigest()
    index = (tmp_path / "out" / "index.md").read_text()
    assert "\n![lenet](sub/lenet.svg)\n" in index
    # The diagram sits beside its spec's text.
    assert '<table><tr><td valign="top">\n\n```yaml\narchspec: 1\nname: lenet\n' in index
    assert index.index("name: lenet") < index.index("![lenet](sub/lenet.svg)") < index.index("</td></tr></table>")


def test_docs_gallery_is_current(tmp_path: Path) -> None:
    """docs/gallery holds a DOT file and an SVG made from exactly that DOT for every spec in specs/."""
    fresh = tmp_path / "gallery"
    gallery([SPECS], fresh, images=False)
    expected = sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file())
    hint = "regenerate it with: archspec render --gallery docs/gallery specs"
    committed = sorted(p.relative_to(GALLERY).as_posix() for p in GALLERY.rglob("*") if p.suffix in (".dot", ".md"))
    assert committed == expected, f"docs/gallery lists other specs than specs/; {hint}"
    for rel in expected:
        assert (GALLERY / rel).read_bytes() == (fresh / rel).read_bytes(), f"docs/gallery/{rel} is stale; {hint}"
    svgs = sorted(p.relative_to(GALLERY).with_suffix("").as_posix() for p in GALLERY.rglob("*.svg"))
    assert svgs == sorted(r[: -len(".dot")] for r in expected if r.endswith(".dot")), hint
    for stem in svgs:
        dot = (GALLERY / f"{stem}.dot").read_bytes()
        assert svg_dot_hash((GALLERY / f"{stem}.svg").read_text()) == hashlib.sha256(dot).hexdigest(), \
            f"docs/gallery/{stem}.svg was not made from its .dot; {hint}"


def test_every_shipped_spec_fits_a_page(tmp_path: Path) -> None:
    """Every spec under specs/, drawn with no options, is a PNG at most 1,000 px wide and about 2,000 px tall
    at 96 dpi that Graphviz did not shrink below 65% to fit (its text stays readable)."""
    names = _shipped()
    assert set(SEEDS) <= set(names) and "imagenet/resnet50" in names

    def draw(name: str) -> tuple[str, float, float, float, tuple[int, int]]:
        w, h, scale = _layout(tmp_path, name, to_dot(_graph(name)), png=True)
        return name, w, h, scale, _png_size(tmp_path / f"{name.replace('/', '_')}.dot.png")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(draw, names))
    problems = []
    for name, w, h, scale, (png_w, png_h) in results:
        if not (png_w <= PAGE_WIDTH_PX and png_h <= 1.1 * PAGE_HEIGHT_PX and scale >= 0.65):
            problems.append(f"{name}: {png_w}×{png_h} px (laid out {w:.0f}×{h:.0f}, scaled {scale:.2f})")
        assert abs(png_w - min(w, PAGE_WIDTH_PX)) <= 16, (name, png_w, w)  # the PNG is the layout (+ margin), scaled
    assert not problems, "\n".join(problems)


def test_gallery_covers_every_seed() -> None:
    stems = {stem for _, stem, _ in gallery_sources([SPECS])}
    assert set(SEEDS) <= stems
