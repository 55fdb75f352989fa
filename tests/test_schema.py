"""The JSON Schema of the spec language: shipped, current, describes every field, accepts every shipped
spec and rejects invalid ones."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml

import archspec
from archspec.cli import main
from archspec.errors import ArchspecError
from archspec.ops import OPS
from archspec.schema import json_schema, schema_text
from conftest import ROOT, SEEDS, SPECS

SHIPPED = ROOT / "schema" / "archspec.schema.json"
HEADER = "# yaml-language-server: $schema=../schema/archspec.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SHIPPED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_shipped_schema_is_current() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == schema_text(), (
        "schema/archspec.schema.json is stale: run 'archspec schema > schema/archspec.schema.json'"
    )


def test_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == SHIPPED.read_text(encoding="utf-8")


def test_every_field_is_described() -> None:
    schema = json_schema()
    missing: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                if not isinstance(prop, dict) or not prop.get("description"):
                    missing.append(f"{where}.{name}")
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema, "#")
    assert not missing, missing
    for name in OPS:
        if type(OPS[name]).__module__ == "archspec.ops":
            assert schema["$defs"][f"op-{name}"]["description"], name


@pytest.mark.parametrize("name", SEEDS)
def test_shipped_specs_have_header_and_validate(name: str, validator: jsonschema.Draft202012Validator) -> None:
    text = (SPECS / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.splitlines()[0] == HEADER
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(text))]
    assert not errors


def _all_specs() -> list[str]:
    """Every network spec or block library under specs/ (mapping files for weight import are another format)."""
    out = []
    for path in sorted(SPECS.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "archspec" in data:
            out.append(str(path.relative_to(SPECS)))
    return out


@pytest.mark.parametrize("rel", _all_specs())
def test_every_spec_in_the_repository_validates(rel: str, validator: jsonschema.Draft202012Validator) -> None:
    data = yaml.safe_load((SPECS / rel).read_text(encoding="utf-8"))
    assert not [e.message for e in validator.iter_errors(data)]


VALID_EXTRA = """\
archspec: 1
name: tiny
input: [3, 32, 32]
params: {k: 3, wide: true}
blocks:
  unit:
    params: {c: null}
    layers: [conv: {out: $c, k: [$k, 1], pad: same}, bn, leaky_relu: {slope: 0.2}]
graph:
  stem: {conv: {out: 8, k: $k, pad: 1}, from: input}
  a: {unit: {c: 8}, from: stem}
  b: {unit: {c: "${in.c}"}, from: stem, when: $wide}
  sum: {add: [a, b]}
  cat: {concat: [stem, sum]}
  inc: {inception-branch: {left: [conv: {out: 4, k: 1}], right: [maxpool: {k: 3, stride: 1, pad: 1}]}, from: cat}
  res: {residual-add: {body: [conv: {out: 20, k: 3, pad: 1}], shortcut: identity}, from: inc}
  dense: {dense-concat: [unit], from: res}
output: dense
"""


def test_expressions_and_every_form_validate(validator: jsonschema.Draft202012Validator) -> None:
    text = VALID_EXTRA.replace("[unit]", "[unit: {c: 4}]")
    assert archspec.analyze(text).output_shape == (24, 32, 32)
    assert not [e.message for e in validator.iter_errors(yaml.safe_load(text))]


def _lenet() -> dict[str, Any]:
    return yaml.safe_load((SPECS / "lenet.yaml").read_text(encoding="utf-8"))


def _mutations() -> list[tuple[str, dict[str, Any]]]:
    out = []

    def add(label: str, fn: Any) -> None:
        doc = _lenet()
        fn(doc)
        out.append((label, doc))

    add("unknown top-level key", lambda d: d.update(layer=[]))
    add("name not an identifier", lambda d: d.update(name="le net"))
    add("missing version", lambda d: d.pop("archspec"))
    add("wrong version", lambda d: d.update(archspec=2))
    add("unknown conv parameter", lambda d: d["layers"].__setitem__(0, {"conv": {"out": 6, "kernel": 5}}))
    add("conv out is a string", lambda d: d["layers"].__setitem__(0, {"conv": {"out": "six", "k": 5}}))
    add("negative kernel", lambda d: d["layers"].__setitem__(0, {"conv": {"out": 6, "k": -5}}))
    add("item is a number", lambda d: d["layers"].append(3))
    add("two op keys", lambda d: d["layers"].__setitem__(0, {"conv": {"out": 6, "k": 5}, "bn": None}))
    add("params for an op without", lambda d: d["layers"].__setitem__(1, {"relu": {"inplace": True}}))
    add("bad residual key", lambda d: d["layers"].append({"residual-add": {"body": ["relu"], "skip": "auto"}}))
    add("bad shortcut", lambda d: d["layers"].append({"residual-add": {"body": ["relu"], "shortcut": "none"}}))
    add("input not a list", lambda d: d.update(input="1x28x28"))
    add("bad node name", lambda d: d["layers"].__setitem__(0, {"conv": {"out": 6, "k": 5}, "name": "1st"}))
    add("block shadows op", lambda d: d.update(blocks={"conv": {"layers": ["relu"]}}))
    return out


@pytest.mark.parametrize(("label", "doc"), _mutations(), ids=[m[0] for m in _mutations()])
def test_invalid_specs_are_rejected(label: str, doc: dict[str, Any], validator: jsonschema.Draft202012Validator) -> None:
    assert list(validator.iter_errors(doc)), f"schema accepted: {label}"
    # The compiler rejects them too: the schema is never stricter than archspec itself.
    with pytest.raises(ArchspecError):
        archspec.analyze(yaml.safe_dump(copy.deepcopy(doc), sort_keys=False))


@pytest.mark.usefixtures("demo_plugin")
def test_plugin_ops_only_on_request() -> None:
    base = json_schema()
    with_plugins = json_schema(include_plugins=True)
    assert "op-pixel-shuffle" not in base["$defs"]
    assert "op-pixel-shuffle" in with_plugins["$defs"]


def test_schema_command_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; from archspec.cli import main; rc = main(['schema']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["$defs"]["op-conv"]["description"].startswith("2-D convolution")
