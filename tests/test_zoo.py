"""The shipped model zoo: models by name, the catalogue, shipped imports, weights, notebook display, the wheel."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
import torch
from torch import nn

import archspec
import tv
from archspec import shipped
from archspec.cli import main
from archspec.errors import ArchspecError
from archspec.mapping import find_mapping
from conftest import ROOT, SPECS
from helpers_models import randomize_batchnorm

pytestmark = pytest.mark.usefixtures("two_threads")

IMAGENET = SPECS / "imagenet"
#: The clashes between the seeds (top of specs/) and the ImageNet library: the seeds keep the bare names.
CLASHES = ["alexnet", "googlenet", "resnet18", "vgg11"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def codes(exc: pytest.ExceptionInfo[ArchspecError]) -> list[str]:
    return [d.code for d in exc.value.diagnostics]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# Names


def test_the_shipped_specs_are_the_repositorys() -> None:
    """Editable or installed from the wheel, the shipped specs are the top-level specs/ folder's files."""
    root = shipped.specs_root()
    assert root is not None

    def listing(folder: Path) -> list[str]:
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.yaml"))

    assert listing(root) == listing(SPECS)
    assert "imagenet/mappings/resnet.yaml" in listing(root)


def test_list_models_names_order_and_patterns() -> None:
    names = archspec.list_models()
    assert {"lenet", "nin", "densenet", "resnet50", "resnet101", "mobilenet_v2", "vgg11_bn"} <= set(names)
    for stem in CLASHES:  # the seed owns the bare name, the ImageNet spec is qualified
        assert stem in names and f"imagenet/{stem}" in names
    assert not [n for n in names if "family" in n or "mapping" in n]  # block libraries and mappings are no models
    assert len(names) == len(set(names))
    resnets = archspec.list_models("resnet*")
    assert resnets == ["imagenet/resnet18", "resnet18", "resnet34", "resnet50", "resnet101"]  # natural order
    assert archspec.list_models("RESNET5?") == ["resnet50"]  # case-insensitive, fnmatch syntax
    assert archspec.list_models(["lenet", "vgg1?"]) == ["imagenet/vgg11", "lenet", "vgg11", "vgg16"]
    imagenet = archspec.list_models("imagenet/*")  # qualified names match too
    assert "resnet50" in imagenet and "imagenet/googlenet" in imagenet and "lenet" not in imagenet
    assert archspec.list_models("no-such-model*") == []


def test_every_name_and_qualified_name_finds_its_file() -> None:
    for name in archspec.list_models():
        path = shipped.model_path(name)
        assert path.is_file() and path.suffix == ".yaml"
        qualified = path.relative_to(shipped.specs_root()).with_suffix("").as_posix()
        assert shipped.model_path(qualified) == path
        assert name in (path.stem, qualified)
    assert shipped.model_path("googlenet").resolve() == (SPECS / "googlenet.yaml").resolve()
    assert shipped.model_path("imagenet/googlenet").resolve() == (IMAGENET / "googlenet.yaml").resolve()
    assert shipped.model_path("resnet50").resolve() == (IMAGENET / "resnet50.yaml").resolve()


def test_equal_stems_at_one_depth_need_qualified_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = "archspec: 1\nname: {}\ninput: [4]\nlayers: [linear: {{out: 2}}]\n"
    write(tmp_path / "a" / "net.yaml", net.format("net"))
    write(tmp_path / "b" / "net.yaml", net.format("net"))
    write(tmp_path / "b" / "deep" / "solo.yaml", net.format("solo"))
    write(tmp_path / "b" / "mappings" / "x.yaml", "archspec-mapping: 1\ntarget: t\nmodels: [net]\n")
    monkeypatch.setattr(shipped, "specs_root", lambda: tmp_path)
    assert archspec.list_models() == ["a/net", "b/net", "solo"]
    with pytest.raises(ArchspecError) as exc:
        shipped.model_path("net")
    assert codes(exc) == ["E-IO"] and "a/net, b/net" in exc.value.diagnostics[0].message
    assert shipped.model_path("b/deep/solo") == shipped.model_path("solo")


def test_a_name_resolves_in_analyze_and_build() -> None:
    graph = archspec.analyze("resnet50")
    assert graph.name == "resnet50" and graph.path == str(shipped.model_path("resnet50"))
    assert archspec.analyze("imagenet/resnet18").input_shape == (3, 224, 224)
    assert archspec.analyze("resnet18").input_shape == (1, 96, 96)  # the seed
    model = archspec.build("lenet", classes=10)
    assert isinstance(model, nn.Module) and model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    assert archspec.build("resnet50", classes=10, device="meta").resnet.fc.out_features == 10


def test_an_existing_path_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "lenet", "archspec: 1\nname: mine\ninput: [4]\nlayers: [linear: {out: 3}]\n")
    assert archspec.analyze("lenet").name == "mine"
    assert archspec.build("lenet").linear1.out_features == 3
    (tmp_path / "resnet50").mkdir()
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze("resnet50")
    assert codes(exc) == ["E-IO"] and "is a directory" in exc.value.format()
    with pytest.raises(ArchspecError, match="no such file"):  # a path object is a path, never a name
        archspec.analyze(Path("googlenet"))


def test_yaml_text_is_never_a_name() -> None:
    text = "archspec: 1\nname: lenet\ninput: [4]\nlayers: [linear: {out: 2}]\n"
    assert archspec.analyze(text).total.params == 10
    assert archspec.build(text).linear1.out_features == 2


def test_an_unknown_name_gets_did_you_mean(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArchspecError) as exc:
        archspec.build("resnt50")
    [d] = exc.value.diagnostics
    assert d.code == "E-IO" and "'resnt50'" in d.message and "did you mean 'resnet50'?" in d.hint
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze("resnet50.yaml")
    assert "no such file: 'resnet50.yaml'" in exc.value.format() and "named without '.yaml'" in exc.value.format()
    code, out, err = run(capsys, "build", "googlenett")
    assert code == 1 and out == "" and "did you mean 'googlenet'?" in err and "[E-IO]" in err and "Traceback" not in err
    code, out, err = run(capsys, "validate", "lenet", "lenett")
    assert code == 1 and "lenet: lenet: ok" in out and "did you mean 'lenet'?" in err


# --------------------------------------------------------------------------------------------------
# The command line by name


def test_cli_list_table_pattern_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["name", "family", "input", "params", "GMACs"]
    rows = {line.split()[0]: line.split() for line in lines[2:-1]}
    assert set(rows) == set(archspec.list_models())
    assert rows["resnet50"] == ["resnet50", "resnet", "3×224×224", "25,557,032", "4.089"]
    assert rows["imagenet/googlenet"][1:] == ["googlenet", "3×224×224", "6,624,904", "1.498"]
    assert rows["lenet"][1:4] == ["lenet", "1×28×28", "61,706"]
    assert rows["mobilenet_v2"][1] == "mobilenet" and rows["vgg11_bn"][1] == "vgg"
    assert lines[-1].startswith(f"{len(rows)} models; specs in ")
    code, out, _ = run(capsys, "list", "densenet*")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[2:-1]] == ["densenet", "densenet121", "densenet161"]
    code, out, _ = run(capsys, "list", "resnet50", "--json")
    [info] = json.loads(out)
    graph = archspec.analyze("resnet50")
    assert info["name"] == "resnet50" and info["qualified_name"] == "imagenet/resnet50" and info["family"] == "resnet"
    assert (info["params"], info["macs"]) == (graph.total.params, graph.total.macs)
    assert info["input_shape"] == [3, 224, 224] and info["output_shape"] == [1000]
    code, out, err = run(capsys, "list", "resnt50")
    assert code == 1 and out == "" and "no shipped model matches 'resnt50'" in err and "did you mean 'resnet50'?" in err


def test_model_info_matches_the_analysis() -> None:
    infos = {i.name: i for i in archspec.model_info()}
    assert set(infos) == set(archspec.list_models())
    for name in ("lenet", "imagenet/resnet18", "densenet161"):
        graph = archspec.analyze(name)
        assert (infos[name].params, infos[name].macs, infos[name].input_shape) == (
            graph.total.params, graph.total.macs, graph.input_shape)


def test_cli_commands_take_names(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "build", "lenet")
    assert code == 0, err
    assert "61,706 parameters" in out
    code, out, err = run(capsys, "build", "resnet50", "--json")
    assert code == 0 and json.loads(out)["params"] == 25_557_032
    code, out, err = run(capsys, "render", "googlenet", "-o", "g.svg")
    assert code == 0, err
    assert "<svg" in (tmp_path / "g.svg").read_text()
    code, out, err = run(capsys, "summary", "mobilenet_v2", "--depth", "1")
    assert code == 0 and "Total params: 3,504,872" in out
    code, out, err = run(capsys, "validate", "imagenet/vgg11", "vgg11")
    assert code == 0 and out.splitlines()[0].startswith("imagenet/vgg11: vgg11: ok") and "128,806,154" in out


def test_listing_and_display_never_import_torch() -> None:
    probe = textwrap.dedent("""
        import sys
        from archspec.cli import main
        import archspec
        status = main(["list", "resnet*"])
        graph = archspec.analyze("lenet")
        assert "<table" in graph._repr_html_() and "<svg" in graph._repr_svg_()
        print("TORCH" if any(m == "torch" or m.startswith("torch.") for m in sys.modules) else "NO-TORCH", status)
        """)
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "NO-TORCH 0"


# --------------------------------------------------------------------------------------------------
# Importing shipped libraries by name


NET = """
archspec: 1
name: resnet26
imports: [{lib}]
input: [3, 32, 32]
layers:
  - conv: {{out: 16, k: 3, pad: 1, bias: false}}
  - bn
  - relu
  - stage: {{c: 16, n: 2, bottleneck: true}}
  - bottleneck: {{c: 32, stride: 2}}
  - gap
  - flatten
  - linear: {{out: 10}}
"""


def test_a_spec_imports_a_shipped_library_by_name(tmp_path: Path) -> None:
    spec = write(tmp_path / "net.yaml", NET.format(lib="archspec:imagenet/resnet_family.yaml"))
    graph = archspec.analyze(spec)
    assert graph.output_shape == (10,)
    # stem; the stage's two bottlenecks (the first with a projection shortcut); the strided bottleneck and its shortcut
    assert sum(n.op == "conv" for n in graph.nodes.values()) == 1 + (3 + 1) + 3 + (3 + 1)
    assert archspec.build(spec)(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(("entry", "message"), [
    ("archspec:../../../../../../../etc/passwd", "outside archspec's shipped specs"),
    ("archspec:../README.md", "outside archspec's shipped specs"),
    ("archspec:/etc/passwd", "give a path under the shipped specs"),
    ("archspec:imagenet/nope_family.yaml", "does not exist"),
])
def test_shipped_imports_stay_in_the_shipped_specs(tmp_path: Path, entry: str, message: str) -> None:
    spec = write(tmp_path / "net.yaml", NET.format(lib=f"'{entry}'"))
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(spec)
    [d] = exc.value.diagnostics
    assert d.code == "E-IMPORT" and message in d.message and (d.span.line, d.span.column) == (3, 11)


def test_a_relative_path_into_the_shipped_specs_is_still_outside_the_tree(tmp_path: Path) -> None:
    lib = os.path.relpath(IMAGENET / "resnet_family.yaml", tmp_path)
    spec = write(tmp_path / "net.yaml", NET.format(lib=lib))
    with pytest.raises(ArchspecError, match="outside the spec's directory tree"):
        archspec.analyze(spec)


def test_a_shipped_library_imports_its_neighbours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped_dir = tmp_path / "shipped"
    write(shipped_dir / "lib" / "common.yaml", """
        archspec: 1
        blocks:
          cbr:
            params: {c: null}
            layers: [conv: {out: $c, k: 3, pad: 1, bias: false}, bn, relu]
        """)
    write(shipped_dir / "lib" / "family.yaml", """
        archspec: 1
        imports: [common.yaml]
        blocks:
          pair:
            params: {c: null}
            layers: [cbr: {c: $c}, cbr: {c: $c}]
        """)
    monkeypatch.setattr(shipped, "specs_root", lambda: shipped_dir)
    user = write(tmp_path / "user" / "net.yaml", """
        archspec: 1
        name: net
        imports: ['archspec:lib/family.yaml']
        input: [3, 8, 8]
        layers: [pair: {c: 4}, cbr: {c: 8}]
        """)
    assert archspec.analyze(user).output_shape == (8, 8, 8)
    # A shipped file reaches its neighbours and the user's tree, nothing else.
    write(tmp_path / "elsewhere" / "other.yaml", "archspec: 1\nblocks: {y: {layers: [relu]}}\n")
    write(shipped_dir / "lib" / "sneaky.yaml",
          "archspec: 1\nimports: [../../elsewhere/other.yaml]\nblocks: {x: {layers: [relu]}}\n")
    user.write_text(user.read_text().replace("archspec:lib/family.yaml", "archspec:lib/sneaky.yaml"))
    with pytest.raises(ArchspecError, match="outside the spec's directory tree"):
        archspec.analyze(user)


# --------------------------------------------------------------------------------------------------
# Weights


@pytest.fixture(scope="module")
def resnet18_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    reference = tv.build("resnet18").eval()
    randomize_batchnorm(reference)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    return path, reference


def test_build_by_name_with_torchvision_weights(resnet18_checkpoint: tuple[Path, nn.Module]) -> None:
    path, reference = resnet18_checkpoint
    model = archspec.build("imagenet/resnet18", weights=path, input_shape=(3, 32, 32)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)


def test_cli_build_with_weights(capsys: pytest.CaptureFixture[str], resnet18_checkpoint: tuple[Path, nn.Module]) -> None:
    path, _ = resnet18_checkpoint
    code, out, err = run(capsys, "build", "imagenet/resnet18", "--weights", str(path), "--input", "3,32,32", "--json")
    assert code == 0, err
    assert json.loads(out)["params"] == 11_689_512
    assert f"loaded 122 tensors from {path} through " in err and err.rstrip().endswith("mappings/resnet.yaml")
    code, out, err = run(capsys, "build", "imagenet/resnet18", "--weights", str(path), "--set", "classes=10")
    assert code == 1 and out == "" and "[E-WEIGHTS]" in err and "fc.weight is 1000×512" in err
    before = path.read_bytes()
    code, out, err = run(capsys, "build", "imagenet/resnet18", "--weights", str(path), "--emit-python", str(path))
    assert code == 1 and out == "" and "[E-IO]" in err and path.read_bytes() == before


def test_old_checkpoints_without_batchnorm_counters_load(tmp_path: Path, resnet18_checkpoint: tuple[Path, nn.Module]) -> None:
    _, reference = resnet18_checkpoint
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    model = archspec.build("imagenet/resnet18", weights=tmp_path / "old.pth", input_shape=(3, 32, 32))
    assert model.resnet.fc.weight.equal(reference.fc.weight)


def test_an_archspec_state_dict_loads_as_is(tmp_path: Path) -> None:
    torch.manual_seed(1)
    trained = archspec.build("lenet")
    torch.save(trained.state_dict(), tmp_path / "lenet.pth")
    model = archspec.build("lenet", weights=str(tmp_path / "lenet.pth"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values(), strict=True))


def test_weights_errors_are_located_and_clear(tmp_path: Path, resnet18_checkpoint: tuple[Path, nn.Module]) -> None:
    path, _ = resnet18_checkpoint
    with pytest.raises(ArchspecError) as exc:  # shapes: the checkpoint has 1000 classes
        archspec.build("imagenet/resnet18", weights=path, classes=10, input_shape=(3, 32, 32))
    [d] = exc.value.diagnostics
    assert d.code == "E-WEIGHTS" and d.span.path == str(path)
    assert "fc.weight is 1000×512, the model's resnet.fc.weight 10×512" in d.message
    with pytest.raises(ArchspecError) as exc:  # the seed resnet18 has no mapping; the ImageNet one has
        archspec.build("resnet18", weights=path)
    [d] = exc.value.diagnostics
    assert d.code == "E-MAPPING" and "no mapping file" in d.message and "did you mean 'imagenet/resnet18'" in d.hint
    with pytest.raises(ArchspecError) as exc:  # another model's state dict: the keys are named, and the file
        archspec.build("resnet50", weights=path, input_shape=(3, 32, 32))
    assert "E-MAPPING" in codes(exc) and "receive nothing" in exc.value.format()
    assert f"while loading '{path}'" in exc.value.format()
    with pytest.raises(ArchspecError) as exc:
        archspec.build("imagenet/resnet18", weights=tmp_path / "missing.pth")
    assert codes(exc) == ["E-IO"] and "no such checkpoint file" in exc.value.format()
    with pytest.raises(ArchspecError) as exc:
        archspec.build("imagenet/resnet18", weights=path, device="meta")
    assert codes(exc) == ["E-WEIGHTS"] and "meta" in exc.value.format()
    text = "archspec: 1\nname: resnet18\ninput: [4]\nlayers: [linear: {out: 2}]\n"
    with pytest.raises(ArchspecError, match="a spec given as text has no key mapping"):
        archspec.build(text, weights=path)


class _Evil:
    """Unpickling this would run code: create a marker file."""

    marker = ""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["text", "empty", "code", "training", "list"])
def test_files_that_are_not_state_dicts_are_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pth"
    marker = tmp_path / "executed"
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "code":
        evil = _Evil()
        evil.marker = str(marker)
        path.write_bytes(pickle.dumps({"conv1.weight": evil}))
    elif kind == "training":
        torch.save({"state_dict": archspec.build("lenet").state_dict(), "epoch": 3}, path)
    else:
        torch.save([torch.zeros(1)], path)
    with pytest.raises(ArchspecError) as exc:
        archspec.build("lenet", weights=path)
    [d] = exc.value.diagnostics
    assert d.code == "E-WEIGHTS" and d.span.path == str(path) and "Traceback" not in exc.value.format()
    assert not marker.exists()  # weights_only=True: no pickled code ran
    expected = {"text": "not a PyTorch checkpoint", "empty": "empty or cut short", "code": "Python objects besides tensors",
                "training": "is not a state dict", "list": "holds a list"}[kind]
    assert expected in d.message
    if kind == "training":
        assert "'state_dict' entry" in d.hint


def test_every_shipped_imagenet_model_has_a_one_to_one_mapping() -> None:
    """Every shipped spec with a torchvision counterpart (all of specs/imagenet) loads through a mapping."""
    names = archspec.list_models("imagenet/*")
    assert len(names) >= 12
    problems = []
    for name in names:
        graph = archspec.analyze(name)
        try:
            mapping = find_mapping(shipped.model_path(name), graph.name)
            table = mapping.module_map(graph)  # raises when not one-to-one
        except ArchspecError as exc:
            problems.append(f"{name}: {exc.diagnostics[0].message}")
            continue
        assert len(table) == sum(1 for n in graph.nodes.values() if n.counts.params or n.counts.buffers)
    assert problems == []


# --------------------------------------------------------------------------------------------------
# Notebook display


def test_notebook_display_shows_the_diagram_and_the_summary() -> None:
    graph = archspec.analyze("lenet")
    svg = graph._repr_svg_()
    assert svg is not None and "<svg" in svg and "</svg>" in svg
    page = graph._repr_html_()
    assert page.count("<svg") == 1 and "<?xml" not in page and "<!DOCTYPE" not in page
    assert "<table" in page and "conv1" in page and "Total params: 61,706" in page
    bundle = graph._repr_mimebundle_()
    assert set(bundle) == {"image/svg+xml", "text/html", "text/plain"}
    assert bundle["text/plain"].startswith("<archspec Graph lenet: 1×28×28 → 10")
    assert set(graph._repr_mimebundle_(include=["text/html"])) == {"text/html"}
    assert set(graph._repr_mimebundle_(exclude=["image/svg+xml", "text/html"])) == {"text/plain"}


def test_notebook_display_without_graphviz_falls_back_to_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' anywhere
    graph = archspec.analyze("googlenet")
    assert graph._repr_svg_() is None
    page = graph._repr_html_()
    assert "<svg" not in page and "No diagram" in page and "install Graphviz" in page and "<table" in page
    assert set(graph._repr_mimebundle_()) == {"text/html", "text/plain"}


def test_summary_html_nests_block_rows() -> None:
    text = "archspec: 1\nname: x\ninput: [4]\nblocks:\n  b:\n    layers: [linear: {out: 2}]\nlayers: [b]\n"
    page = archspec.analyze(text)._repr_html_()
    rows = re.findall(r"<tr><td([^>]*)>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", page)
    assert rows == [(' style="padding-left:0.0em" title="b1"', "<b>b1</b>", "b", "2"),
                    (' style="padding-left:1.2em" title="b1.linear1"', "linear1", "linear 2", "2")]


# --------------------------------------------------------------------------------------------------
# No stray warnings


NUMPY_ABSENT = "import sys\nsys.modules['numpy'] = None  # as if numpy were not installed\n"


def test_no_numpy_warning_on_a_first_build(tmp_path: Path) -> None:
    """Without numpy, ``import torch`` warns "Failed to initialize NumPy"; archspec's own import of torch does not."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    control = subprocess.run([sys.executable, "-W", "default", "-c", NUMPY_ABSENT + "import torch"],
                             capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert "Failed to initialize NumPy" in control.stderr  # the warning the test is about exists here
    ours = subprocess.run([sys.executable, "-W", "default", "-c",
                           NUMPY_ABSENT + "from archspec.cli import main\nsys.exit(main(['build', 'lenet']))"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert ours.returncode == 0 and "61,706 parameters" in ours.stdout
    assert ours.stderr == ""


# --------------------------------------------------------------------------------------------------
# The wheel


def _copy_project(dest: Path) -> Path:
    """The files the wheel is built from, copied so that the build never writes into the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    src = dest / "project"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("src", "specs"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    return src


def test_the_wheel_carries_the_specs_and_works_outside_the_checkout(tmp_path: Path) -> None:
    project = _copy_project(tmp_path)
    dist = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONWARNINGS", "PIP_REQUIRE_VIRTUALENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(dist), str(project)], check=True, capture_output=True, timeout=300, env=env)
    [wheel] = dist.glob("archspec-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "archspec/_specs/lenet.yaml" in names and "archspec/_specs/imagenet/mappings/resnet.yaml" in names
    assert "archspec/_specs/imagenet/resnet_family.yaml" in names and "archspec/shipped.py" in names

    # A fresh environment that sees the system's torch, pydantic … but gets archspec from the wheel only.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300, env=env)
    empty = tmp_path / "empty"
    empty.mkdir()
    cli = str(env_dir / "bin" / "archspec")

    def sh(*argv: str) -> str:
        proc = subprocess.run(list(argv), cwd=empty, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", proc.stderr  # no stray warnings
        return proc.stdout

    out = sh(cli, "list")
    assert re.search(r"^resnet50\s+resnet\s+3×224×224\s+25,557,032\s+4\.089$", out, re.M)
    assert f"specs in {env_dir}" in out.splitlines()[-1]  # the installed package's own copy
    assert json.loads(sh(cli, "build", "resnet50", "--json"))["params"] == 25_557_032
    sh(cli, "render", "googlenet", "-o", "g.svg")
    assert "<svg" in (empty / "g.svg").read_text()
    shown = "convnext_tiny" if (SPECS / "imagenet" / "convnext_tiny.yaml").exists() else "mobilenet_v2"
    assert "Total params:" in sh(cli, "summary", shown)
    write(empty / "net.yaml", NET.format(lib="archspec:imagenet/resnet_family.yaml"))
    script = textwrap.dedent("""
        import archspec, torch
        print(archspec.__file__)
        model = archspec.build('lenet', classes=10)
        print(model(torch.zeros(1, 1, 28, 28)).shape[1])
        print(archspec.analyze('net.yaml').output_shape[0], len(archspec.list_models('resnet*')))
        """)
    lines = sh(str(python), "-c", script).splitlines()
    assert Path(lines[0]).resolve().is_relative_to(env_dir.resolve())  # not /work/main/src
    assert lines[1:] == ["10", "10 5"]
    assert sorted(p.name for p in empty.iterdir()) == ["g.svg", "net.yaml"]
