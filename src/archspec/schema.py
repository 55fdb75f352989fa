"""The JSON Schema of the spec language, for editors (completion, hover docs, squiggles) and tools.

Generated from the Pydantic models: the document and block models of :mod:`archspec.spec` and each
op's parameter model in :data:`archspec.ops.OPS`.  A layer item is an op (with that op's parameter
schema), a composite (``sequence``, ``inception-branch``, ``residual-add``, ``dense-concat``), or a
block instance (any other key, with a mapping of block parameters).  Anywhere an expression may
stand for a value (``$c``, ``${in.c // 2}``), the schema accepts a ``$``-string too, so valid specs
always validate; the compiler's own checks remain the authority on everything the schema cannot say
(shapes, block parameter names, expression results).

The repository ships the generated schema as ``schema/archspec.schema.json``; ``archspec schema``
prints it.  Nothing here imports torch.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .models import BlockDef, SpecDocument
from .ops import OPS, Op
from .spec import COMPOSITES, ITEM_KEYS

__all__ = ["SCHEMA_ID", "json_schema", "schema_text"]

#: The ``$id`` of the schema (where the repository publishes it).
SCHEMA_ID = "https://github.com/archspec/archspec/raw/main/schema/archspec.schema.json"

_EXPR = {"$ref": "#/$defs/expression"}
_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SCALAR_TYPES = {"integer", "number", "boolean", "string"}


def _permit_expressions(schema: Any) -> Any:
    """Return ``schema`` where every scalar (or list of scalars) may also be an expression string."""
    if not isinstance(schema, dict):
        return schema
    out = {k: _permit_expressions(v) if k in ("items", "additionalProperties") else v for k, v in schema.items()}
    if "properties" in out:
        out["properties"] = {k: _permit_expressions(v) for k, v in out["properties"].items()}
    if "prefixItems" in out:
        out["prefixItems"] = [_permit_expressions(v) for v in out["prefixItems"]]
    if "anyOf" in out:
        options = [_permit_expressions(v) for v in out["anyOf"]]
        if _EXPR not in options:
            options.append(_EXPR)
        out["anyOf"] = options
        return out
    is_scalar = out.get("type") in _SCALAR_TYPES or "enum" in out or "const" in out
    is_list = out.get("type") == "array"
    if is_scalar or is_list:
        keep = {k: out.pop(k) for k in ("description", "title", "default") if k in out}
        return {**keep, "anyOf": [out, _EXPR]}
    return out


def _op_params_schema(op: Op) -> dict[str, Any]:
    raw = op.params_model.model_json_schema()
    if raw.get("$defs"):  # nested models: keep them local to this op's schema
        raw = copy.deepcopy(raw)
    schema = _permit_expressions(raw)
    schema.pop("title", None)
    schema["description"] = (op.summary or schema.get("description") or op.name).strip()
    return schema


def _item_key_properties() -> dict[str, Any]:
    descriptions = {
        "name": "Name of the node or group (default: the op name plus a counter, e.g. conv2).",
        "repeat": "Stack this many copies in sequence (0 skips the item).",
        "from": "Input node name(s) (graph form, or to branch off an earlier node); for a block with named "
                "inputs, a list in their order or a mapping {input: node}.",
        "when": "Keep the item only when this is true (usually an expression).",
    }
    props: dict[str, Any] = {
        "name": {"type": "string", "pattern": _IDENT},
        "repeat": {"anyOf": [{"type": "integer", "minimum": 0}, _EXPR]},
        "from": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
                           {"type": "object", "propertyNames": {"pattern": _IDENT}, "additionalProperties": {"type": "string"},
                            "minProperties": 1}]},
        "when": {"anyOf": [{"type": "boolean"}, _EXPR]},
    }
    assert set(props) == set(ITEM_KEYS)
    return {k: {"description": descriptions[k], **v} for k, v in props.items()}


def _spellings(name: str) -> list[str]:
    under = name.replace("-", "_")
    return [name] if under == name else [name, under]


def _ops_for_schema(include_plugins: bool) -> dict[str, Op]:
    return {
        name: op for name, op in sorted(OPS.items())
        if include_plugins or type(op).__module__ == "archspec.ops"
    }


def json_schema(*, include_plugins: bool = False) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an archspec YAML document.

    Built-in ops only by default, so the shipped file does not depend on what is installed;
    ``include_plugins`` also describes ops registered by plugins or :func:`~archspec.ops.register_op`.
    """
    if include_plugins:
        from .plugins import load_plugins

        load_plugins()
    ops = _ops_for_schema(include_plugins)
    defs: dict[str, Any] = {
        "expression": {
            "type": "string",
            "pattern": r"^\$",
            "description": "An expression evaluated by archspec: $name, or ${...} (e.g. ${in.c // 2}).",
        },
        "identifier": {"type": "string", "pattern": _IDENT},
    }
    item_keys = _item_key_properties()
    op_names = [s for name in ops for s in _spellings(name)]
    composite_names = [s for name in COMPOSITES for s in _spellings(name)]
    item_options: list[dict[str, Any]] = []

    for name, op in ops.items():
        def_name = "op-" + name
        if op.arity != 1:  # several inputs: a list of node names, or (a plugin op's) parameters with 'from'
            names: dict[str, Any] = {"type": "array", "items": {"type": "string"}, "minItems": op.arity or 2}
            if op.arity is not None:
                names["maxItems"] = op.arity
            options: list[dict[str, Any]] = [names, {"type": "null"}]
            if op.param_names():
                options.insert(1, _op_params_schema(op))
            args: dict[str, Any] = {
                "description": (op.summary or name) + (" Takes the list of node names to merge." if op.arity is None
                                                       else f" Takes {op.arity} inputs (node names)."),
                "anyOf": options,
            }
        else:
            params = _op_params_schema(op)
            args = {"description": params["description"], "anyOf": [params, {"type": "null"}, _EXPR]}
        defs[def_name] = args
        for spelling in _spellings(name):
            item_options.append(_item_object(spelling, {"description": args["description"], "$ref": f"#/$defs/{def_name}"},
                                             item_keys))

    composite_args = {
        "sequence": {"$ref": "#/$defs/layers"},
        "dense-concat": {"$ref": "#/$defs/layers"},
        "inception-branch": {
            "anyOf": [
                {"type": "array", "items": {"$ref": "#/$defs/layers"}, "minItems": 1},
                {"type": "object", "additionalProperties": {"$ref": "#/$defs/layers"}, "minProperties": 1},
            ]
        },
        "residual-add": {
            "type": "object",
            "properties": {
                "body": {"description": "The residual branch.", "$ref": "#/$defs/layers"},
                "shortcut": {
                    "description": "'auto' (identity, or a 1×1 projection when shapes differ), 'identity', or layers.",
                    "anyOf": [{"enum": ["auto", "identity"]}, {"$ref": "#/$defs/layers"}],
                },
            },
            "required": ["body"],
            "additionalProperties": False,
        },
    }
    for name, text in COMPOSITES.items():
        defs["composite-" + name] = {"description": text, **composite_args[name]}
        for spelling in _spellings(name):
            item_options.append(_item_object(spelling, {"description": text, "$ref": f"#/$defs/composite-{name}"},
                                             item_keys))

    builtin = op_names + composite_names
    block_instance = {
        "description": "An instance of a block defined under 'blocks', with its parameters.",
        "type": "object",
        "properties": item_keys,
        "additionalProperties": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        "minProperties": 1,
        "not": {"anyOf": [{"required": [n]} for n in builtin]},
    }
    item_options.append(block_instance)
    defs["item"] = {
        "description": "A layer: an op or block name, or a mapping {op-or-block: parameters, name?, repeat?, from?, when?}.",
        "anyOf": [
            {"description": "An op without parameters.", "enum": op_names},
            {"description": "A block without parameters.", "type": "string", "pattern": _IDENT,
             "not": {"enum": builtin}},
            *item_options,
        ],
    }
    defs["layers"] = {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1}
    defs["graph"] = {"type": "object", "additionalProperties": {"$ref": "#/$defs/item"}, "minProperties": 1,
                     "propertyNames": {"pattern": _IDENT}}

    block_schema = _model_schema(BlockDef)
    defs["block"] = block_schema
    doc = _model_schema(SpecDocument)
    doc["properties"]["archspec"]["const"] = 1
    doc["properties"]["blocks"]["additionalProperties"] = {"$ref": "#/$defs/block"}
    doc["properties"]["blocks"]["propertyNames"] = {"pattern": _IDENT, "not": {"enum": builtin}}
    defs.update(_init_defs())
    for holder in (doc, block_schema):  # init: PRESET lists the preset names for completion
        _name_presets(holder["properties"]["init"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "archspec network spec",
        **doc,
        "$defs": defs,
    }


def _init_defs() -> dict[str, Any]:
    """The models of an ``init:`` section (``InitSpec``, ``InitRule``, ``InitScheme``), with the preset names listed."""
    from .init import PRESETS

    defs = {k: copy.deepcopy(v) for k, v in SpecDocument.model_json_schema().get("$defs", {}).items() if k.startswith("Init")}
    presets = {"type": "string", "enum": list(PRESETS)}
    defs["InitSpec"]["properties"]["preset"]["anyOf"] = [presets, {"type": "null"}]
    return defs


def _name_presets(schema: Any) -> None:
    """Give the plain-string branch of an ``init`` value's schema the preset names as its ``enum``."""
    from .init import PRESETS

    if isinstance(schema, dict):
        if schema.get("type") == "string" and "enum" not in schema:
            schema["enum"] = list(PRESETS)
        for value in schema.values():
            _name_presets(value)
    elif isinstance(schema, list):
        for value in schema:
            _name_presets(value)


def _item_object(key: str, args: dict[str, Any], item_keys: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: args, **item_keys},
        "required": [key],
        "additionalProperties": False,
    }


def _model_schema(model: Any) -> dict[str, Any]:
    """A document/block model's schema with ``layers``/``graph`` pointing at the item schemas."""
    raw = model.model_json_schema()
    props: dict[str, Any] = {}
    for name, prop in raw["properties"].items():
        desc = prop.get("description") or model.model_fields[name].description
        if name == "layers":
            props[name] = {"description": desc, "$ref": "#/$defs/layers"}
        elif name == "graph":
            props[name] = {"description": desc, "$ref": "#/$defs/graph"}
        elif name in ("params",):
            props[name] = {"description": desc, "type": "object", "propertyNames": {"pattern": _IDENT}}
        elif name == "blocks":
            props[name] = {"description": desc, "type": "object"}
        else:
            clean = {k: v for k, v in prop.items() if k not in ("title", "default")}
            clean["description"] = desc
            props[name] = clean
    return {
        "description": (model.__doc__ or "").strip().splitlines()[0],
        "type": "object",
        "properties": props,
        "required": raw.get("required", []),
        "additionalProperties": False,
    }


def schema_text(*, include_plugins: bool = False) -> str:
    """The schema as pretty-printed JSON text (what ``archspec schema`` prints and the repository ships)."""
    return json.dumps(json_schema(include_plugins=include_plugins), indent=2, ensure_ascii=False) + "\n"
