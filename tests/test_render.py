"""render: IR → deterministic DOT (golden files), images through Graphviz, the CLI and the docs gallery.

Regenerate the golden DOT files with ``ARCHSPEC_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py``
and review the diff; regenerate the gallery with ``archspec render --gallery docs/gallery specs``.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import archspec
from archspec.cli import main
from archspec.errors import ArchspecError
from archspec.render import RenderOptions, format_for, gallery, gallery_sources, render, svg_dot_hash, to_dot
from conftest import ROOT, SEEDS, SPECS

GOLDEN = Path(__file__).resolve().parent / "golden" / "dot"
GALLERY = ROOT / "docs" / "gallery"
UPDATE = os.environ.get("ARCHSPEC_UPDATE_GOLDEN") == "1"

#: Extra golden variants: (file stem, spec, options).
VARIANTS = [
    ("resnet18-depth1-fold-residual", "resnet18", RenderOptions(depth=1, fold=frozenset({"residual"}))),
    ("densenet-depth0", "densenet", RenderOptions(depth=0)),
    ("googlenet-fold-lr-dark", "googlenet", RenderOptions(fold=frozenset({"*"}), direction="LR", theme="dark")),
    ("resnet18-all-unfused-mono", "resnet18", RenderOptions(depth=None, fuse=False, theme="mono")),
]


def _graph(name: str) -> archspec.Graph:
    return archspec.analyze(SPECS / f"{name}.yaml")


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
        proc = _cli("render", str(SPECS / "googlenet.yaml"), "--fold", env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    assert outs[0] == to_dot(_graph("googlenet"), RenderOptions(fold=frozenset({"*"})))


def test_node_ids_are_spec_paths_and_edges_carry_shapes() -> None:
    graph = _graph("googlenet")
    text = to_dot(graph, RenderOptions(depth=None, fuse=False))
    for name in graph.nodes:
        assert re.search(rf'^\s+"{re.escape(name)}" \[label=', text, re.M), name
    # Every IR edge is drawn with the producer's shape.
    for node in graph.nodes.values():
        for src in node.inputs:
            shape = "×".join(map(str, graph.shape_of(src)))
            assert f'"{src}" -> "{node.name}" [label=" {shape}"' in text


def test_labels_show_settings_and_params() -> None:
    text = to_dot(_graph("resnet18"))
    # conv 7×7 (3,200 params) with its bn (128) and relu drawn in one box.
    assert '"b1.conv1" [label="conv 7×7/2, 64 + bn + relu\\n3.33K params"' in text
    assert '"b1.maxpool1" [label="maxpool 3×3/2"' in text
    # A pre-activation bn is not fused into anything before it, but takes its relu.
    dense = to_dot(_graph("densenet"))
    assert '"dense_block1.dense_concat1.conv_block1.bn1" [label="batchnorm + relu\\n128 params"' in dense
    assert "11,178,378 params" in text  # total in the title
    assert 'label="stage2 · 526K params"' in text  # 230,272 + 295,680  # per-block params on the cluster
    unfused = to_dot(_graph("resnet18"), RenderOptions(fuse=False))
    assert '"b1.relu1" [label="relu"' in unfused


def test_concat_and_add_are_distinct_shapes() -> None:
    g = to_dot(_graph("googlenet"))
    assert re.search(r'"b3\.inception1\.inception_branch1\.concat" \[label="concat 64\+128\+32\+32 → 256", '
                     r'tooltip="[^"]+", shape="invtrapezium"', g)
    r = to_dot(_graph("resnet18"))
    assert re.search(r'"stage1\.residual1\.residual_add1\.add" \[label="add\\nidentity shortcut", [^]]*shape="ellipse"', r)
    assert re.search(r'"stage2\.residual1\.residual_add1\.add" \[label="add\\nprojection shortcut", [^]]*shape="ellipse"', r)
    assert "shortcut\\nconv 1×1/2, 128" in r


def test_skip_edges_are_dashed() -> None:
    r = to_dot(_graph("resnet18"))
    dashed = [line for line in r.splitlines() if "->" in line and 'style="dashed"' in line]
    # 5 identity shortcuts (one edge each) and 3 projections (into and out of the 1×1 conv).
    assert len(dashed) == 5 + 3 * 2
    assert '"stage1.residual1.relu1" -> "stage1.residual2.residual_add1.add"' in "\n".join(dashed)
    d = to_dot(_graph("densenet"))
    dense = [line for line in d.splitlines() if "->" in line and 'style="dashed"' in line]
    assert len(dense) == 16  # one per dense layer: block input → concat
    assert all(".concat\"" in line.split("->")[1] for line in dense)
    plain = to_dot(_graph("vgg11"))
    assert 'style="dashed"' not in plain and "skip connections" not in plain


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


def test_fold_consecutive_instances() -> None:
    graph = _graph("resnet18")
    text = to_dot(graph, RenderOptions(fold=frozenset({"residual"})))
    assert ('"stage1.residual1..residual2" [label="residual ×2\\nresidual1 … residual2\\n64×24×24 → 64×24×24\\n'
            '148K params"') in text
    stages = to_dot(graph, RenderOptions(fold=frozenset({"stage"})))
    assert '"stage1..stage4" [label="stage ×4\\nstage1 … stage4\\n64×24×24 → 512×3×3\\n11.2M params"' in stages
    dense = to_dot(_graph("densenet"), RenderOptions(fold=frozenset({"dense-concat"})))
    assert dense.count("dense-concat (conv_block) ×4") == 4
    # Parallel siblings (inception branches) never fold, and nothing folds unless asked.
    googlenet = _graph("googlenet")
    assert to_dot(googlenet, RenderOptions(fold=frozenset({"branch"}))) == to_dot(googlenet)
    assert " ×" not in to_dot(graph)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="direction"):
        RenderOptions(direction="BT")
    with pytest.raises(ValueError, match="theme"):
        RenderOptions(theme="neon")
    with pytest.raises(ValueError, match="depth"):
        RenderOptions(depth=-1)


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
    assert "![lenet](sub/lenet.svg)" in (tmp_path / "out" / "index.md").read_text()


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


def test_gallery_covers_every_seed() -> None:
    stems = {stem for _, stem, _ in gallery_sources([SPECS])}
    assert set(SEEDS) <= stems
