"""The compiled validators (archspec.compiled) behave exactly like the Pydantic models they come from."""

from __future__ import annotations

import copy
import importlib.util
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pydantic
import pytest
from pydantic import BaseModel, ValidationError

from archspec import compiled, models
from archspec.ops import OPS, BuiltinParams

ROOT = Path(__file__).resolve().parent.parent

# Values that probe every type, bound and union branch the op parameters use.
PROBES: list[Any] = [
    0, 1, 2, 3, 7, -1, 4096, 4097, 1 << 22, (1 << 22) + 1, 0.0, 0.01, 0.5, 1.0, 1.5, -0.5, 1e-5, True, False,
    None, "3", "same", "valid", "none", "tanh", "x", [1, 2], [3, 3], [0, 1], [1, 2, 3], [1], [], [1.5, 2],
    ["a", 1], (2, 2), {"a": 1},
]


def _plain(value: Any) -> Any:
    """Model instances and records as plain data, for comparison."""
    if isinstance(value, BaseModel):
        return {"__model__": type(value).__name__, **{k: _plain(v) for k, v in value}}
    if isinstance(value, compiled.Record):
        return {"__model__": type(value).__name__, **{k: _plain(v) for k, v in value.fields().items()}}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _outcome(validate: Any, data: Any) -> Any:
    try:
        return ("ok", _plain(validate(data)))
    except ValidationError as exc:
        return ("error", exc.errors(include_url=False))


def _cases(model: type[BaseModel], rng: random.Random, n: int) -> list[dict[str, Any]]:
    names = list(model.model_fields)
    cases: list[dict[str, Any]] = [{}, {"bogus": 1}]
    for name in names:  # each field alone with every probe
        cases += [{name: probe} for probe in PROBES]
    for _ in range(n):  # random combinations, sometimes with an unknown key
        case = {name: rng.choice(PROBES) for name in names if rng.random() < 0.7}
        if rng.random() < 0.1:
            case["kernel_size"] = 3
        cases.append(case)
    return cases


PARAM_MODELS = [m for m in models.COMPILED_MODELS if issubclass(m, models.OpParams)]


@pytest.mark.parametrize("model", PARAM_MODELS, ids=lambda m: m.__name__)
def test_compiled_params_match_pydantic(model: type[BaseModel]) -> None:
    fast = compiled.validator(model.__name__)
    rng = random.Random(model.__name__)
    cases = _cases(model, rng, 300)
    mismatches = [(case, _outcome(model.model_validate, case), _outcome(fast.validate_python, case))
                  for case in cases]
    mismatches = [m for m in mismatches if m[1] != m[2]]
    assert not mismatches, mismatches[:3]


DOCUMENTS: list[Any] = [
    {},
    {"archspec": 1},
    {"archspec": "1"},
    {"archspec": 1, "name": "net", "input": [3, 32, 32], "layers": ["relu"]},
    {"archspec": 1, "name": "9net", "input": [3, 0, -1], "layers": "relu"},
    {"archspec": 1, "name": "n", "input": [3, 1.5], "layerz": []},
    {"archspec": 1, "name": "n", "input": [True, 2, 2], "imports": "a.yaml"},
    {"archspec": 1, "name": "n", "input": [(1 << 22) + 1], "params": {"w": 2, "2bad": 1}},
    {"archspec": 1, "name": None, "description": 3, "graph": {"a": {"conv": {}}}, "output": "a"},
    {"archspec": 1, "blocks": {"unit": {"params": {"c": None}, "layers": ["relu"], "description": "d"}}},
    {"archspec": 1, "blocks": {"unit": {"params": [], "layers": {}, "graph": [], "outptu": "x"}}},
    {"archspec": 1, "blocks": {"bad-name": {"layers": []}, "ok": "notamapping"}},
    {"archspec": 1, "blocks": {"u": {"params": {"c": 1}, "graph": {"x": "relu"}, "output": "1x"}}},
    {"archspec": 1, "blocks": [], "imports": [1, "b.yaml"]},
]


@pytest.mark.parametrize("index", range(len(DOCUMENTS)))
def test_compiled_document_matches_pydantic(index: int) -> None:
    data = DOCUMENTS[index]
    fast = compiled.validator("SpecDocument")
    assert _outcome(fast.validate_python, data) == _outcome(models.SpecDocument.model_validate, data)


def test_shipped_core_schemas_are_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_core_schemas", ROOT / "scripts" / "gen_core_schemas.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    shipped = (ROOT / "src" / "archspec" / "_core_schemas.py").read_text(encoding="utf-8")
    made_with = shipped.split("Generated with pydantic ", 1)[1].split(".\n", 1)[0]
    if made_with == pydantic.VERSION:  # same Pydantic: the file must be exactly what the models compile to
        assert gen._body(shipped) == gen._body(gen.render()), "run: python scripts/gen_core_schemas.py"
    else:  # another Pydantic may spell schemas differently; the models' fields must still be the shipped ones
        from archspec._core_schemas import SCHEMAS

        for model in models.COMPILED_MODELS:
            assert compiled.field_names(model.__name__) == list(model.model_fields), model.__name__
        assert set(SCHEMAS) == {m.__name__ for m in models.COMPILED_MODELS}


def test_every_builtin_op_uses_a_compiled_model() -> None:
    for name, op in OPS.items():
        if type(op).__module__ != "archspec.ops":
            continue  # a plugin registered by another test
        attr = next(k.__dict__["params_model"] for k in type(op).__mro__ if "params_model" in k.__dict__)
        assert isinstance(attr, BuiltinParams), name
        assert attr.model in {m.__name__ for m in models.COMPILED_MODELS}, name
        assert op.params_model is getattr(models, attr.model)  # the Pydantic class, on demand
        assert op.param_names() == list(op.params_model.model_fields)
        assert op.required_params() == [k for k, f in op.params_model.model_fields.items() if f.is_required()]


def test_record_behaves_like_a_frozen_model() -> None:
    v = compiled.validator("ConvParams")
    p = v.validate_python({"out": 64, "k": 3})
    ref = models.ConvParams(out=64, k=3)
    assert repr(p) == repr(ref)
    assert (p.out, p.k, p.stride, p.pad, p.bias) == (64, 3, 1, 0, True)
    assert p == v.validate_python({"k": 3, "out": 64}) and p != v.validate_python({"out": 64, "k": 5})
    assert hash(p) == hash(v.validate_python({"out": 64, "k": 3}))
    assert len({p, v.validate_python({"out": 64, "k": 3})}) == 1
    with pytest.raises(AttributeError, match="frozen"):
        p.out = 3  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del p.out
    q = p.replace(out=32)
    assert (q.out, p.out) == (32, 64) and type(q) is type(p)
    with pytest.raises(AttributeError, match="no field 'nope'"):
        p.replace(nope=1)
    for copied in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p), copy.copy(p)):
        assert copied == p and type(copied) is type(p)
    assert p.fields() == dict(ref) == dict(p)
    assert p == mock.ANY and p != ref  # other types decide equality themselves (NotImplemented)
    assert p.model_copy(update={"out": 8}) == p.replace(out=8)
    assert p.model_dump() == ref.model_dump()
    doc = compiled.validator("SpecDocument").validate_python({"archspec": 1, "blocks": {"u": {"layers": ["relu"]}}})
    ref_doc = models.SpecDocument.model_validate({"archspec": 1, "blocks": {"u": {"layers": ["relu"]}}})
    assert doc.model_dump() == ref_doc.model_dump()


def test_fields_at_walks_into_nested_models() -> None:
    assert compiled.fields_at("SpecDocument", ()) == list(models.SpecDocument.model_fields)
    assert compiled.fields_at("SpecDocument", ("blocks", "unit")) == list(models.BlockDef.model_fields)
    assert compiled.fields_at("SpecDocument", ("input",)) == []
    assert compiled.fields_at("SpecDocument", ("nope",)) == []


def test_validate_never_imports_pydantic_model_machinery() -> None:
    code = ("import sys, archspec.cli as c\n"
            "try:\n    c.main(['validate', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('pydantic.main', 'archspec.models', 'torch') if m in sys.modules))")
    for spec in ("googlenet.yaml", "densenet.yaml", "resnet18.yaml"):
        out = subprocess.run([sys.executable, "-c", code, str(ROOT / "specs" / spec)], capture_output=True,
                             text=True, check=True).stdout
        assert out.strip().splitlines()[-1] == "[]", out


def test_fallback_when_pydantic_core_rejects_the_shipped_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another pydantic-core release may read the shipped schemas differently: the models take over."""
    from pydantic_core import SchemaError

    def refuse(schema: Any) -> Any:
        raise SchemaError("unknown key")

    monkeypatch.setattr(compiled, "SchemaValidator", refuse)
    monkeypatch.setattr(compiled, "_VALIDATORS", {})
    conv = compiled.validator("ConvParams")
    p = conv.validate_python({"out": 8, "k": [3, 3]})
    assert isinstance(p, compiled.Record) and p == compiled.validator("ConvParams").validate_python({"out": 8, "k": (3, 3)})
    assert repr(p) == "ConvParams(out=8, k=(3, 3), stride=1, pad=0, dilation=1, groups=1, bias=True)"
    with pytest.raises(ValidationError) as exc:
        conv.validate_python({"out": 0})
    assert [e["type"] for e in exc.value.errors()] == ["greater_than", "missing"]
    doc = compiled.validator("SpecDocument").validate_python(
        {"archspec": 1, "blocks": {"u": {"layers": ["relu"]}}})
    assert type(doc).__name__ == "SpecDocument" and isinstance(doc.blocks["u"], compiled.Record)
    assert doc.blocks["u"].layers == ["relu"] and doc.replace(name="x").name == "x"
    graph = __import__("archspec").analyze(ROOT / "specs" / "googlenet.yaml")
    assert graph.total.params == 5_977_530


def test_spec_document_copies_keep_block_sources() -> None:
    from archspec.source import read_file
    from archspec.spec import validate_document

    data, path = read_file(ROOT / "specs" / "googlenet.yaml")
    doc = validate_document(data, path)
    for copied in (copy.copy(doc), copy.deepcopy(doc), pickle.loads(pickle.dumps(doc))):
        assert copied == doc
        assert copied.block_source("inception") == doc.block_source("inception")


def test_param_models_are_reachable_by_their_old_names() -> None:
    import archspec
    import archspec.ops as ops

    assert ops.ConvParams is models.ConvParams and ops.OpParams is models.OpParams
    assert archspec.OpParams is models.OpParams
    with pytest.raises(AttributeError):
        ops.NoSuchParams  # noqa: B018


def test_strings_that_look_like_placeholders_are_refused() -> None:
    with pytest.raises(TypeError, match="'@' marks"):
        models._plain({"type": "literal", "expected": ["@auto"]})
