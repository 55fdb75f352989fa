"""Custom ops without patching archspec: entry points, local plugins (``--plugin``, ``load_plugin``), ``register_op``.

The example plugin package lives in tests/plugin_pkg; the ``demo_plugin`` fixture (conftest.py)
installs it for these tests only.  The worked example of docs/plugins.md (a two-input op with a
learned parameter and an emit hook) is extracted from the page and exercised here.  Every test
leaves the op registry and the plugin state as it found them (``_fresh_plugins``).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import Field, StrictFloat

import archspec
import archspec.plugins as plugins
from archspec.cli import main
from archspec.errors import ArchspecError
from archspec.ops import OPS, Conv, Counts, Op, OpParams, Shape, register_op
from archspec.plugins import ENTRY_POINT_GROUP, load_plugin, load_plugins
from archspec.testing import check_op, check_op_cases
from conftest import ROOT

UPSAMPLER = """\
archspec: 1
name: upsampler
input: [3, 8, 8]
layers:
  - conv: {out: 12, k: 3, pad: 1}
  - pixel-shuffle: {factor: 2}
"""


pytestmark = pytest.mark.usefixtures("demo_plugin")


@pytest.fixture(autouse=True)
def _fresh_plugins() -> Iterator[None]:
    """Each test starts with the plugins unloaded and leaves the registry and plugin state as it found them."""
    state = (dict(OPS), dict(plugins._local), dict(plugins._origins), dict(plugins._module_origins))
    modules = set(sys.modules)
    plugins._loaded = None
    plugins._failures.clear()
    try:
        yield
    finally:
        OPS.clear()
        OPS.update(state[0])
        for target, saved in zip((plugins._local, plugins._origins, plugins._module_origins), state[1:], strict=True):
            target.clear()
            target.update(saved)
        plugins._loaded = None
        plugins._failures.clear()
        for name in set(sys.modules) - modules:
            if name.startswith(("_archspec_plugin_", "archspec_demo_plugin", "local_ops_", "test_gated_ops")):
                del sys.modules[name]
        archspec.api.clear_cache()


def _plugin_installed() -> bool:
    return any(ep.name == "demo" for ep in entry_points(group=ENTRY_POINT_GROUP))


def test_demo_plugin_is_installed_for_these_tests() -> None:
    assert _plugin_installed()


def test_entry_point_op_is_used_by_name() -> None:
    graph = archspec.analyze(UPSAMPLER)
    node = graph.nodes[graph.output]
    assert node.op == "pixel-shuffle"
    assert graph.output_shape == (3, 16, 16)
    assert node.label == "pixel-shuffle ×2"
    model = archspec.build(UPSAMPLER)
    assert isinstance(model.get_submodule(graph.output), torch.nn.PixelShuffle)
    assert tuple(model(torch.randn(2, 3, 8, 8)).shape) == (2, 3, 16, 16)
    assert any("pixel-shuffle" in info.ops for info in load_plugins())


def test_plugin_params_and_shape_rule_are_checked() -> None:
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(UPSAMPLER.replace("out: 12", "out: 10"))
    assert "divisible by 4, got 10" in str(exc.value)
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(UPSAMPLER.replace("factor: 2", "factr: 2"))
    assert exc.value.diagnostics[0].code == "E-UNKNOWN-KEY"
    assert exc.value.diagnostics[0].span.line == 6


def test_plugin_loads_lazily_in_a_fresh_process(tmp_path) -> None:
    """Built-in specs never import plugins; the first unknown op name does, and the CLI uses it."""
    code = (
        "import sys, archspec\n"
        "archspec.analyze('specs/lenet.yaml')\n"
        "assert 'archspec_demo_plugin.ops' not in sys.modules\n"
        "from archspec.cli import main\n"
        "sys.exit(main(['validate', sys.argv[1]]))\n"
    )
    from conftest import ROOT

    spec = tmp_path / "upsampler.yaml"
    spec.write_text(UPSAMPLER)
    run = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "upsampler: ok" in run.stdout and "3×16×16" in run.stdout


def test_unregistered_op_is_unknown() -> None:
    text = UPSAMPLER.replace("pixel-shuffle: {factor: 2}", "pixel-unshuffle: {factor: 2}")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    assert exc.value.diagnostics[0].code == "E-UNKNOWN-OP"
    assert "did you mean 'pixel-shuffle'" in (exc.value.diagnostics[0].hint or "")
    # A spec cannot name a module to import: a dotted path is just an unknown op.
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(UPSAMPLER.replace("pixel-shuffle", "archspec_demo_plugin.ops:PixelShuffle"))
    assert exc.value.diagnostics[0].code == "E-UNKNOWN-OP"


class _ScaleParams(OpParams):
    """Parameters of the test-only scale op."""

    by: StrictFloat = Field(description="Multiplier.")


class _Scale(Op):
    name = "test-scale"
    params_model = _ScaleParams
    summary = "Multiply by a constant."

    def lower(self, p: _ScaleParams, inputs: list[Shape], out: Shape) -> Any:
        class Scale(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x * p.by

        return Scale()


def test_register_op_call_from_user_code() -> None:
    text = "archspec: 1\nname: s\ninput: [4]\nlayers:\n  - test-scale: {by: 2.0}\n"
    with pytest.raises(ArchspecError):
        archspec.analyze(text)
    register_op(_Scale)
    try:
        model = archspec.build(text)
        x = torch.randn(2, 4)
        torch.testing.assert_close(model(x), 2 * x)
    finally:
        del OPS["test-scale"]


def test_block_may_share_a_plugin_ops_name_whether_or_not_plugins_are_loaded(tmp_path) -> None:
    """Only built-in op names are reserved for blocks: a spec must not turn invalid because some
    package is installed, or because another spec in the process happened to load the plugins."""
    spec = tmp_path / "net.yaml"
    spec.write_text("archspec: 1\nname: net\ninput: [4, 8, 8]\nblocks:\n  pixel_shuffle:\n    layers:\n"
                    "      - relu\nlayers:\n  - pixel_shuffle\n", encoding="utf-8")
    code = ("import sys, archspec\nfrom archspec.plugins import load_plugins\n"
            "if sys.argv[2] == 'loaded':\n    load_plugins()\n"
            "g = archspec.analyze(sys.argv[1])\nprint(sorted({n.op for n in g.nodes.values()}))")
    for state in ("fresh", "loaded"):
        out = subprocess.run([sys.executable, "-c", code, str(spec), state], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "['relu']", state  # the block, not the plugin op
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text(encoding="utf-8").replace("pixel_shuffle", "relu"), encoding="utf-8")
    with pytest.raises(ArchspecError, match="shadows the built-in op"):
        archspec.analyze(bad)


def test_a_broken_entry_point_does_not_hide_a_working_one_or_a_typo(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken installed plugin is skipped: a typo is still E-UNKNOWN-OP (with a note), a working plugin still works."""
    broken = EntryPoint("broken", "archspec_no_such_module_xyz", ENTRY_POINT_GROUP)
    demo = EntryPoint("demo", "archspec_demo_plugin.ops", ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [broken, demo])
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(UPSAMPLER.replace("pixel-shuffle", "pixel-shufle"))
    (diag,) = exc.value.diagnostics
    assert diag.code == "E-UNKNOWN-OP" and "did you mean 'pixel-shuffle'" in (diag.hint or "")
    assert any("'broken'" in n.message and "ModuleNotFoundError" in n.message for n in diag.notes)
    graph = archspec.analyze(UPSAMPLER)  # the working plugin's op
    assert graph.output_shape == (3, 16, 16)
    (warning,) = graph.warnings
    assert warning.code == "W-PLUGIN" and warning.severity == "warning" and "'broken'" in warning.message
    assert [i.name for i in load_plugins()] == ["demo"]
    with pytest.raises(ArchspecError) as strict:
        load_plugins(strict=True)
    assert strict.value.diagnostics[0].code == "E-PLUGIN" and "broken" in strict.value.diagnostics[0].message
    assert not archspec.analyze("archspec: 1\nname: n\ninput: [4]\nlayers: [relu]\n").warnings  # built-ins only


def test_unknown_op_hint_mentions_plugins() -> None:
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(UPSAMPLER.replace("pixel-shuffle: {factor: 2}", "gated-sum: {}"))
    hint = exc.value.diagnostics[0].hint or ""
    assert "README" in hint and "--plugin" in hint and "load_plugin" in hint and ENTRY_POINT_GROUP in hint


# ------------------------------------------------------------------ the worked example of docs/plugins.md

DOCS = ROOT / "docs" / "plugins.md"


def _docs_files() -> dict[str, str]:
    """The code blocks of docs/plugins.md that start with a ``# FILE`` line, by file name (that line removed)."""
    text = DOCS.read_text(encoding="utf-8")
    files = {m.group(1): m.group(2) for m in re.finditer(r"```(?:python|yaml)\n# ([\w./]+)\n(.*?)```", text, re.S)}
    assert set(files) == {"gated_ops/__init__.py", "gated_ops/layers.py", "gated.yaml", "test_gated_ops.py"}, files
    return files


def _docs_console(command: str) -> list[str]:
    """The lines a ```console block of docs/plugins.md shows after ``$ command``."""
    text = DOCS.read_text(encoding="utf-8")
    block = text.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    return block.rstrip("\n").split("\n")


@pytest.fixture
def gated_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The docs' plugin folder, spec and test file written to a temporary directory, which becomes the cwd."""
    for name, text in _docs_files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_docs_example_commands_print_what_the_docs_show(gated_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "gated.yaml"]) == 1  # not loaded yet: unknown, with the hint the docs show
    out = capsys.readouterr()
    assert (out.err + out.out).splitlines() == _docs_console("archspec validate gated.yaml")
    assert main(["build", "gated.yaml", "--plugin", "gated_ops"]) == 0
    assert capsys.readouterr().out.splitlines() == _docs_console("archspec build gated.yaml --plugin gated_ops")
    for command in (["render", "gated.yaml"], ["summary", "gated.yaml"], ["validate", "gated.yaml"]):
        assert main([*command, "--plugin", "./gated_ops"]) == 0, command
    assert "gated-sum w=0.9" in capsys.readouterr().out


def test_docs_example_two_inputs_and_learned_weight(gated_dir: Path) -> None:
    info = load_plugin("gated_ops")
    assert info.ops == ["gated-sum"] and info.kind == "package" and load_plugin(gated_dir / "gated_ops") is info
    graph = archspec.analyze("gated.yaml")
    node = graph.nodes["gated_sum1"]
    assert node.inputs == ("body", "stem") and node.counts == Counts(params=16) and node.label == "gated-sum w=0.9"
    assert graph.category(node) == "merge"
    model = archspec.build("gated.yaml").eval()
    assert tuple(model.gated_sum1.gate.shape) == (16, 1, 1) and sum(p.numel() for p in model.parameters()) == 2_986
    with torch.no_grad():
        model.gated_sum1.gate.uniform_()
        feats = model.intermediates(torch.randn(2, 3, 32, 32))
    w = model.gated_sum1.gate
    torch.testing.assert_close(feats["gated_sum1"], w * feats["body"] + (1 - w) * feats["stem"])  # forward(a, b) in order
    # The list form names the inputs when no parameter is needed; the order is kept.
    listed = archspec.analyze(Path("gated.yaml").read_text(encoding="utf-8").replace(
        "  - gated-sum: {init: 0.9}        # 0.9 · body + 0.1 · stem at first; w is learned per channel\n"
        "    from: [body, stem]\n", "  - gated-sum: [stem, body]\n"))
    assert listed.nodes["gated_sum1"].inputs == ("stem", "body") and listed.nodes["gated_sum1"].label == "gated-sum w=0.5"


@pytest.mark.parametrize(("sources", "got"), [("[body]", 1), ("[body, stem, body]", 3), ("body", 1)])
def test_fixed_arity_needs_exactly_that_many_inputs(gated_dir: Path, sources: str, got: int) -> None:
    load_plugin("gated_ops")
    text = Path("gated.yaml").read_text(encoding="utf-8").replace("from: [body, stem]", f"from: {sources}")
    with pytest.raises(ArchspecError) as exc:
        archspec.analyze(text)
    (diag,) = exc.value.diagnostics
    assert diag.code == "E-FROM" and diag.span.line == 11
    assert f"'gated-sum' takes exactly 2 inputs, got {got}" in diag.message and "from: [x1, x2]" in (diag.hint or "")


def test_docs_example_tests_pass_and_check_the_emit_hook(gated_dir: Path) -> None:
    spec = importlib.util.spec_from_file_location("test_gated_ops", gated_dir / "test_gated_ops.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()


def test_docs_example_ejects_to_equivalent_standalone_source(gated_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "gated.yaml", "--plugin", "gated_ops", "--emit-python", "gated_model.py"]) == 0
    capsys.readouterr()
    text = Path("gated_model.py").read_text(encoding="utf-8")
    assert "class GatedSum(nn.Module):" in text and "self.gated_sum1 = GatedSum((16, 1, 1), 0.9)" in text
    assert "x = self.gated_sum1(x, stem)" in text and "gated_ops" not in text and "archspec" not in text.split('"""', 2)[2]
    spec = importlib.util.spec_from_file_location("gated_model", gated_dir / "gated_model.py")
    assert spec is not None and spec.loader is not None
    ejected_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ejected_module)
    built = archspec.build("gated.yaml").eval()
    ejected = ejected_module.Gated().eval()
    assert list(ejected.state_dict()) == list(built.state_dict())
    ejected.load_state_dict(built.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ejected(x), built(x))


def test_static_commands_with_a_local_plugin_never_import_torch(gated_dir: Path) -> None:
    code = ("import sys\nfrom archspec.cli import main\nrc = main(['validate', 'gated.yaml', '--plugin', 'gated_ops'])\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nsys.exit(rc)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=gated_dir, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "gated: ok" in run.stdout


# ------------------------------------------------------------------ local plugin modules: loading and its errors

LOCAL_OP = '''\
from archspec import Op, register_op


@register_op
class {cls}(Op):
    name = "{name}"

    def lower(self, p, inputs, out):
        from torch import nn

        return nn.{module}()
'''

SMALL = "archspec: 1\nname: small\ninput: [4]\nlayers:\n  - linear: {{out: 6}}\n  - {op}\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_plugin_files_with_one_name_do_not_clash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "a" / "ops.py", LOCAL_OP.format(cls="Twice", name="local-a", module="ReLU"))
    b = _write(tmp_path / "b" / "ops.py", LOCAL_OP.format(cls="Twice", name="local-b", module="Tanh"))
    spec = _write(tmp_path / "net.yaml", SMALL.format(op="local-a") + "  - local-b\n")
    assert main(["build", str(spec), "--plugin", str(a), "--plugin", str(b)]) == 0
    out = capsys.readouterr().out
    assert "local_a1" in out and "local_b1" in out
    model = archspec.build(spec)
    assert isinstance(model.local_a1, torch.nn.ReLU) and isinstance(model.local_b1, torch.nn.Tanh)
    names = {type(OPS["local-a"]).__module__, type(OPS["local-b"]).__module__}
    assert len(names) == 2 and all(n.startswith("_archspec_plugin_ops_") for n in names)


def test_plugin_by_module_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "local_ops_xyz.py", LOCAL_OP.format(cls="Mod", name="local-mod", module="SiLU"))
    monkeypatch.syspath_prepend(str(tmp_path))
    info = load_plugin("local_ops_xyz")
    assert info.ops == ["local-mod"] and info.kind == "module"
    assert archspec.analyze(SMALL.format(op="local-mod")).nodes["local_mod1"].op == "local-mod"


@pytest.mark.parametrize(("text", "line", "found"), [
    ("import archspec\nx = (\n", 2, "SyntaxError"),
    ("from archspec import Op, register_op\n\n\n@register_op\nclass Half(Op):\n    name = 'local-half'\n\n\n"
     "raise RuntimeError('the plugin is broken')\n", 9, "RuntimeError: the plugin is broken"),
    ("from archspec import Op, register_op\n\n\n@register_op\nclass Bad(Op):\n    arity = 0\n    name = 'bad'\n", 4,
     "'arity' must be None"),
])
def test_a_broken_plugin_file_is_a_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                                 line: int, found: str) -> None:
    plugin = _write(tmp_path / "broken_ops.py", text)
    spec = _write(tmp_path / "net.yaml", SMALL.format(op="relu"))
    before = dict(OPS)
    assert main(["validate", str(spec), "--plugin", str(plugin)]) == 1
    err = capsys.readouterr().err
    assert f"{plugin}:{line}:" in err and "[E-PLUGIN]" in err and found in err and "Traceback" not in err
    assert OPS == before and not [m for m in sys.modules if m.startswith("_archspec_plugin_broken_ops")]


def test_missing_plugins_are_errors_with_hints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    spec = _write(tmp_path / "net.yaml", SMALL.format(op="relu"))
    assert main(["build", str(spec), "--plugin", "no_such_dir/ops.py"]) == 1
    assert "plugin 'no_such_dir/ops.py': no such file or folder [E-PLUGIN]" in capsys.readouterr().err
    assert main(["summary", str(spec), "--plugin", "no_such_plugin_module_q"]) == 1
    assert "plugin module 'no_such_plugin_module_q' not found" in capsys.readouterr().err
    (tmp_path / "folder").mkdir()
    with pytest.raises(ArchspecError, match="not a Python package"):
        load_plugin("folder")
    with pytest.raises(ArchspecError, match="not a module name"):
        load_plugin("not a module!")


# ------------------------------------------------------------------ a plugin's code never shows a traceback

HOOKS = '''\
from pydantic import field_validator

from archspec import Counts, Op, OpParams, register_op


class HookyParams(OpParams):
    fail: str = ""

    @field_validator("fail")
    @classmethod
    def _check(cls, value):
        if value == "params_model":
            raise TypeError("the validator broke")
        return value


@register_op
class Hooky(Op):
    name = "hooky"
    params_model = HookyParams

    def infer(self, p, inputs):
        if p.fail == "infer":
            return 1 // 0
        if p.fail == "infer-type":
            return "wide"
        return inputs[0]

    def count(self, p, inputs, out):
        if p.fail == "count":
            raise KeyError("no such count")
        if p.fail == "count-type":
            return 5
        return Counts()

    def label(self, p):
        if p.fail == "label":
            raise RuntimeError("label broke")
        return "hooky"

    def lower(self, p, inputs, out):
        import torch

        if p.fail == "lower":
            raise ValueError("cannot lower")
        if p.fail == "lower-type":
            return "not a module"
        if p.fail == "count-missing":
            return torch.nn.PReLU(inputs[0][0])
        if p.fail == "buffers-missing":
            return torch.nn.BatchNorm1d(inputs[0][0], affine=False)
        return torch.nn.Identity()

    def emit(self, p, inputs, out):
        if p.fail == "emit":
            raise AttributeError("emit broke")
        if p.fail == "emit-type":
            return "nn.Identity()"
        return None
'''

#: fail → (stage that reports it, words the message must hold)
HOOK_FAILURES = {
    "params_model": ("analyze", "failed in its parameter model (params_model): TypeError: the validator broke"),
    "infer": ("analyze", "failed in infer(): ZeroDivisionError"),
    "infer-type": ("analyze", "infer() returned 'wide', not a shape"),
    "count": ("analyze", "failed in count(): KeyError"),
    "count-type": ("analyze", "count() returned 5, not archspec.Counts"),
    "label": ("analyze", "failed in label(): RuntimeError: label broke"),
    "lower": ("build", "failed in lower(): ValueError: cannot lower"),
    "lower-type": ("build", "lower() returned str, not a torch.nn.Module"),
    "count-missing": ("build", "parameter elements: the module has 6, count() says 0"),
    "buffers-missing": ("build", "buffer elements: the module has 13, count() says 0"),
    "emit": ("emit", "failed in emit(): AttributeError: emit broke"),
    "emit-type": ("emit", "emit() returned str, not archspec.ops.Emit"),
}

#: fail → the text of the line in HOOKS that raises
RAISES = {"params_model": "raise TypeError", "infer": "1 // 0", "count": "raise KeyError", "label": "raise RuntimeError",
          "lower": "raise ValueError", "emit": "raise AttributeError"}


@pytest.mark.parametrize("fail", sorted(HOOK_FAILURES))
def test_plugin_hook_failures_are_located_e_plugin_diagnostics(fail: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    stage, words = HOOK_FAILURES[fail]
    plugin = _write(tmp_path / "hooks.py", HOOKS)
    spec = _write(tmp_path / "net.yaml", SMALL.format(op=f"hooky: {{fail: {fail}}}"))
    load_plugin(plugin)
    if stage != "analyze":
        graph = archspec.analyze(spec)  # the static stages cannot see it
        assert graph.total.params == 30
    with pytest.raises(ArchspecError) as exc:
        if stage == "analyze":
            archspec.analyze(spec)
        elif stage == "build":
            archspec.build(spec)
        else:
            from archspec.emit_python import emit_python

            emit_python(archspec.analyze(spec))
    (diag,) = exc.value.diagnostics
    assert diag.code == "E-PLUGIN" and diag.span is not None and (diag.span.path, diag.span.line) == (str(spec), 6)
    assert words in diag.message and f"op 'hooky' from plugin file '{plugin}'" in diag.message, diag.message
    if fail in RAISES:  # an exception names the line of the plugin that raised it
        line = next(i for i, text in enumerate(HOOKS.splitlines(), 1) if RAISES[fail] in text)
        assert f"(raised at {plugin}:{line})" in diag.message, diag.message
    command = ["build", str(spec), "--plugin", str(plugin)]
    if stage == "emit":
        command += ["--emit-python", str(tmp_path / "out.py")]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "[E-PLUGIN]" in err and "Traceback" not in err


def test_json_and_max_params_never_disagree_with_the_built_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin that forgot count() cannot make --json print totals the module does not have."""
    plugin = _write(tmp_path / "hooks.py", HOOKS)
    spec = _write(tmp_path / "net.yaml", SMALL.format(op="hooky: {fail: count-missing}"))
    assert main(["build", str(spec), "--plugin", str(plugin), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "count() says 0" in captured.err
    assert main(["build", str(spec), "--plugin", str(plugin), "--json", "--max-params", "10"]) == 0  # static only
    assert '"params": 30' in capsys.readouterr().out


def test_builtin_ops_keep_their_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Conv, p: Any, inputs: list[Shape]) -> Shape:
        raise ZeroDivisionError("a bug in archspec")

    monkeypatch.setattr(Conv, "infer", broken)
    with pytest.raises(ZeroDivisionError, match="a bug in archspec"):
        archspec.analyze("archspec: 1\nname: n\ninput: [1, 8, 8]\nlayers: [conv: {out: 2, k: 3}]\n")


# ------------------------------------------------------------------ merges with parameters, and check_op on plugin ops


class _WeightedParams(OpParams):
    """Parameters of the test merge."""

    scale: StrictFloat = Field(1.0, description="Multiplier of the sum.")


class _WeightedSum(Op):
    name = "test-wsum"
    params_model = _WeightedParams
    arity = None
    category = "merge"

    def infer(self, p: _WeightedParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def lower(self, p: _WeightedParams, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        return _WeightedSumModule(p.scale)


class _WeightedSumModule(torch.nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.scale * sum(xs)  # type: ignore[return-value]


def test_a_merge_of_two_or_more_inputs_takes_parameters() -> None:
    register_op(_WeightedSum)
    text = ("archspec: 1\nname: w\ninput: [3]\ngraph:\n  a: {linear: {out: 4}, from: input}\n"
            "  b: {linear: {out: 4}, from: input}\n  c: {linear: {out: 4}, from: input}\n"
            "  s: {test-wsum: {scale: 2.0}, from: [a, b, c]}\noutput: s\n")
    model = archspec.build(text).eval()
    x = torch.randn(2, 3)
    with torch.no_grad():
        feats = model.intermediates(x)
        torch.testing.assert_close(feats["s"], 2.0 * (feats["a"] + feats["b"] + feats["c"]))
    with pytest.raises(ArchspecError, match="unknown parameter 'scal'"):
        archspec.analyze(text.replace("scale: 2.0", "scal: 2.0"))
    with pytest.raises(ArchspecError, match="merges two or more inputs, got 1"):
        archspec.analyze(text.replace("from: [a, b, c]", "from: [a]"))
    check_op(_WeightedSum(), {"scale": 0.5}, [(2, 3, 3)] * 3)


class _ForgotCount(Op):
    name = "test-forgot"

    def lower(self, p: Any, inputs: list[Shape], out: Shape) -> torch.nn.Module:
        return torch.nn.PReLU(inputs[0][0])


def test_check_op_finds_what_a_plugin_got_wrong() -> None:
    with pytest.raises(AssertionError, match="static parameter count 0 but the module has 3"):
        check_op(_ForgotCount(), {}, [(3, 2, 2)])
    checks = check_op_cases("pixel-shuffle", [({"factor": 2}, [(8, 3, 3)]), ({"factor": 3}, [(9, 1, 2)])])
    assert [c.shape for c in checks] == [(2, 6, 6), (1, 3, 6)] and checks[0].emitted == "nn.PixelShuffle(2)"
    with pytest.raises(ValueError, match="at least one"):
        check_op_cases("pixel-shuffle", [])


def test_register_op_refuses_malformed_ops() -> None:
    class NoModel(Op):
        name = "test-no-model"
        params_model = dict  # type: ignore[assignment]

    class Nameless(Op):
        pass

    with pytest.raises(TypeError, match="params_model"):
        register_op(NoModel)
    with pytest.raises(ValueError, match="must set 'name'"):
        register_op(Nameless)
    with pytest.raises(TypeError, match="Op subclass"):
        register_op(int)  # type: ignore[arg-type]


def test_every_command_that_reads_a_spec_takes_plugin(gated_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from archspec.cli import make_parser

    parser = make_parser()
    for command in (["build", "s"], ["validate", "s"], ["render", "s"], ["summary", "s"], ["export", "s", "-o", "x"],
                    ["schema"]):
        args = parser.parse_args([*command, "--plugin", "a.py", "--plugin", "b"])
        assert args.plugin == ["a.py", "b"], command
    assert main(["schema", "--plugin", "gated_ops"]) == 0
    import json

    schema = json.loads(capsys.readouterr().out)
    gated = schema["$defs"]["op-gated-sum"]
    names, params = gated["anyOf"][0], gated["anyOf"][1]
    assert (names["minItems"], names["maxItems"]) == (2, 2) and "init" in params["properties"]
