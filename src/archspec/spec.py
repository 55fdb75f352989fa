"""Stage 2, *validate*: located YAML data → the validated spec document.

The document and block definitions are checked by the Pydantic models of :mod:`archspec.models`
(``extra="forbid"``) and come back as their frozen instances.  Layer items
(``- conv: {out: 64, k: 3}``) are parsed into :class:`Item` records that keep their YAML positions;
their op parameters are validated against each op's own model once block parameters are bound
(see :mod:`archspec.expand`), because a value such as ``$c`` is only known per instance.

Pydantic error locations are mapped back to ``path:line:col`` through the located data.

This module checks one file; :func:`archspec.imports.load_document` validates a file together with
the files it imports, using :func:`check_document` and :func:`check_bodies` from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ArchspecError, Diagnostic, Span, did_you_mean
from .expr import is_expression
from .init import check_section
from .models import BlockDef, InitSpec, SpecDocument
from .ops import BUILTIN_OPS, OPS, canonical_op_name
from .plugins import find_op, unknown_op_help
from .source import LocMap, LocSeq, span_of

__all__ = [
    "COMPOSITES",
    "ITEM_KEYS",
    "BlockDef",
    "Item",
    "SpecDocument",
    "check_bodies",
    "check_document",
    "is_identifier",
    "parse_item",
    "pydantic_diagnostics",
]

IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_identifier(text: object) -> bool:
    """Whether ``text`` is an ASCII identifier (the whole string: a trailing newline does not pass)."""
    return isinstance(text, str) and IDENT_RE.fullmatch(text) is not None

#: Composite (structural) ops, expanded into primitives by :mod:`archspec.expand`.
COMPOSITES: dict[str, str] = {
    "sequence": "A named group of layers run in order: `sequence: [layers...]`.",
    "inception-branch": "Parallel branches on one input, concatenated on channels: `inception-branch: [[...], [...]]`.",
    "residual-add": "`body(x) + shortcut(x)`; `shortcut: auto | identity | [layers...]`.",
    "dense-concat": "`concat(x, body(x))` on channels: `dense-concat: [layers...]`.",
}
#: Keys an item mapping may carry beside its op key.
ITEM_KEYS = ("name", "repeat", "from", "when")

#: Names that cannot be used for nodes or blocks.
RESERVED_NAMES = {"input", "in"}

_KEY_HINTS = {
    "kernel_size": "k", "kernel": "k", "padding": "pad", "out_channels": "out", "out_features": "out",
    "channels": "out", "filters": "out", "units": "out", "strides": "stride", "pool_size": "k",
}
#: Op names from other frameworks, for the "did you mean" of an unknown op.
_OP_HINTS = {
    "batchnorm": "bn", "batchnorm2d": "bn", "batch_norm": "bn", "batchnorm1d": "bn", "conv2d": "conv",
    "convolution": "conv", "dense": "linear", "fc": "linear", "fully_connected": "linear", "maxpool2d": "maxpool",
    "max_pool": "maxpool", "avgpool2d": "avgpool", "avg_pool": "avgpool", "globalavgpool": "gap",
    "global_avgpool": "gap", "global_avg_pool": "gap", "swish": "silu", "add_": "add", "cat": "concat",
}

@dataclass(frozen=True, slots=True)
class Item:
    """One parsed layer item: ``{op: args, name?, repeat?, from?, when?}`` or a bare op name.

    ``sources`` are the node names of ``from``; when ``from`` is a mapping (a block instance binding its
    named inputs, ``from: {low: a, skip: b}``), ``source_names`` holds its keys, one per source.
    """

    op: str
    args: Any
    name: str | None
    repeat: Any
    sources: tuple[str, ...] | None
    when: Any
    span: Span
    args_span: Span
    raw: Any
    source_names: tuple[str, ...] | None = None


def _loc_span(data: Any, loc: tuple[Any, ...], *, key: bool = False) -> Span | None:
    """Walk a Pydantic error location through the located data to the most precise span."""
    node = data
    best = span_of(data)
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, LocMap) and part in node:
            best = span_of(node, part, key_position=key and last) or best
            node = node[part]
        elif isinstance(node, LocSeq) and isinstance(part, int) and 0 <= part < len(node):
            best = span_of(node, part) or best
            node = node[part]
        else:
            break
    return best


def pydantic_diagnostics(
    exc: ValidationError, data: Any, *, prefix: tuple[Any, ...] = (), model: Any = None
) -> list[Diagnostic]:
    """Convert a Pydantic ValidationError on located ``data`` into positioned diagnostics.

    ``model`` is the Pydantic class that was validated; it supplies the allowed keys for an
    unknown-key error.
    """
    out: list[Diagnostic] = []
    for err, loc in _union_filter(exc.errors(include_url=False)):
        where = _loc_text(prefix + loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _walk(data, loc[:-1])
            allowed = _fields_at(model, loc[:-1]) if model is not None else []
            key = str(loc[-1])
            hint = _KEY_HINTS.get(key)
            hint_text = f"did you mean '{hint}'?" if hint and hint in allowed else did_you_mean(key, allowed)
            if allowed:
                hint_text = (hint_text + " " if hint_text else "") + "allowed: " + ", ".join(allowed)
            out.append(
                Diagnostic("E-UNKNOWN-KEY", f"unknown key '{key}' in {where.rsplit('.', 1)[0] if len(loc) > 1 else 'spec'}"
                           if not prefix else f"unknown key '{key}'",
                           _loc_span(data, loc, key=True) or span_of(parent), hint_text)
            )
            continue
        if kind == "missing" and loc and isinstance(loc[-1], int):
            items = _raw_at(data, loc[:-1])
            have = len(items) if isinstance(items, list) else 0
            missing = sum(1 for e, other in _union_filter(exc.errors(include_url=False))
                          if e["type"] == "missing" and other[:-1] == loc[:-1])
            out.append(Diagnostic("E-TYPE", f"'{_loc_text(prefix + loc[:-1])}': expected {have + missing} items, "
                                  f"got {have}", _loc_span(data, loc[:-1])))
            continue
        if kind == "too_long" and isinstance(_raw_at(data, loc), list):
            limit = (err.get("ctx") or {}).get("max_length")
            out.append(Diagnostic("E-TYPE", f"'{where}': expected at most {limit} items, got {len(_raw_at(data, loc))}",
                                  _loc_span(data, loc)))
            continue
        if kind == "missing":
            parent = _walk(data, loc[:-1])
            out.append(
                Diagnostic("E-MISSING", f"missing required key '{loc[-1]}'", span_of(parent) or _loc_span(data, loc))
            )
            continue
        value = err.get("input")
        raw = _raw_at(data, loc)
        message = _friendly(err["msg"], value)
        if kind == "string_pattern_mismatch":
            message = f"{value!r} is not an identifier (use letters, digits and '_', not starting with a digit)"
        if is_expression(raw) and raw != value:
            message += f" (from '{raw}')"
        out.append(
            Diagnostic(
                "E-TYPE",
                f"'{where}': {message}",
                _loc_span(data, loc),
                _type_hint(kind, value, raw),
            )
        )
    return _dedupe(out)


def _loc_text(loc: tuple[Any, ...]) -> str:
    """A location for messages: ``input[1]``, ``blocks.unit.params``; ``spec`` when empty."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "spec"


def _union_filter(errors: list[Any]) -> list[tuple[Any, tuple[Any, ...]]]:
    """Pair each Pydantic error with its location, keeping one error per location of a union.

    A value such as ``k`` is ``int | [h, w]``; Pydantic reports a failure for every branch.  When
    one branch got further (an error deeper inside the value) only that one is kept; otherwise the
    first error that is not a plain type mismatch (or else the first one) speaks for the location.
    """
    # Union/tagged errors add type names to the location; keep only real keys/indices.
    locs = [tuple(p for p in e["loc"] if isinstance(p, int) or not _is_type_tag(p)) for e in errors]
    kept: list[tuple[Any, tuple[Any, ...]]] = []
    for i, (err, loc) in enumerate(zip(errors, locs, strict=True)):
        if any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs):
            continue
        same = [j for j, other in enumerate(locs) if other == loc]
        if len(same) > 1:
            specific = [j for j in same if not str(errors[j]["type"]).endswith("_type")]
            if i != (specific or same)[0]:
                continue
        kept.append((err, loc))
    return kept


def _raw_at(data: Any, loc: tuple[Any, ...]) -> Any:
    """The value the user wrote at ``loc`` in the located data, or None."""
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


def _is_type_tag(part: Any) -> bool:
    return isinstance(part, str) and (
        part in {"int", "str", "float", "bool", "list", "tuple", "dict", "none"}
        or part.startswith(("constrained-", "function-", "literal[", "tuple[", "list[", "dict["))
        or "[" in part
    )


def _walk(data: Any, loc: tuple[Any, ...]) -> Any:
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return node
    return node


def _fields_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """The fields of the model at ``loc`` within the Pydantic class ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields and part in fields:
            ann = fields[part].annotation
            current = _model_in(ann) or ann
        elif fields is None and hasattr(current, "__args__"):
            current = _model_in(current)
        else:
            if isinstance(current, type) and issubclass(current, BaseModel):
                continue
            return []
    return list(getattr(current, "model_fields", {}) or [])


def _model_in(ann: Any, depth: int = 0) -> Any:
    """The first Pydantic model inside a type annotation (through unions, ``Annotated`` and containers), or None."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) if depth < 8 else ():
        found = _model_in(arg, depth + 1)
        if found is not None:
            return found
    return None


def _friendly(msg: str, value: Any) -> str:
    if isinstance(value, float) and msg.startswith("Input should be a valid integer"):
        return f"expected an integer, got {value!r}"
    for word, wanted in (("list", "a list"), ("dictionary", "a mapping (key: value)"), ("string", "a string")):
        if msg == f"Input should be a valid {word}":
            return f"expected {wanted}, got {_kind(value)}"
    return msg[0].lower() + msg[1:] + (f" (got {value!r})" if value is not None and not isinstance(value, (dict, list)) else "")


def _type_hint(kind: str, value: Any, raw: Any = None) -> str | None:
    if isinstance(value, float) and kind.startswith("int"):
        if is_expression(raw):
            return "use '//' for integer division in expressions, e.g. ${in.c // 2}"
        return "write a whole number"
    if isinstance(value, str) and value.isdigit():
        return "write the number without quotes"
    if kind == "less_than_equal" and isinstance(value, int) and value > 4096:
        return "no real layer is this large; check for a typo (an extra digit?)"
    return None


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[str, str, Span | None]] = set()
    out = []
    for d in diags:
        key = (d.code, d.message, d.span)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


# --------------------------------------------------------------------------------------------------
# Items


def parse_item(raw: Any, container: Any, index: Any, *, graph_name: str | None = None) -> Item:
    """Parse one layer item; raise ArchspecError for a malformed one.

    ``container[index]`` is ``raw`` (used for positions).  In the graph form ``graph_name`` is the
    node's key and the item may not carry its own ``name``.
    """
    span = span_of(container, index) or Span("<spec>", 1, 1)
    if isinstance(raw, str):
        if is_expression(raw):
            raise ArchspecError.single("E-ITEM", f"an item must name an op or block, not an expression ('{raw}')", span)
        return Item(raw, None, graph_name, None, None, None, span, span, raw)
    if not isinstance(raw, LocMap):
        raise ArchspecError.single(
            "E-ITEM",
            f"a layer item must be an op name or a mapping like '{{conv: {{out: 64, k: 3}}}}', not {_kind(raw)}",
            span,
        )
    op_keys = [k for k in raw if k not in ITEM_KEYS]
    if not op_keys:
        raise ArchspecError.single("E-ITEM", "item names no op or block (only " + ", ".join(map(str, raw)) + ")", span)
    if len(op_keys) > 1:
        second = op_keys[1]
        raise ArchspecError.single(
            "E-ITEM",
            f"item has two op keys, '{op_keys[0]}' and '{second}'; an item holds one op",
            span_of(raw, second, key_position=True),
            hint="put each op in its own list item ('- ' before each)"
            + (f"; or did you mean '{_suggest_item_key(str(second))}'?" if _suggest_item_key(str(second)) else ""),
        )
    op = op_keys[0]
    if not isinstance(op, str):
        raise ArchspecError.single("E-ITEM", f"op name must be a string, got {op!r}", span_of(raw, op, key_position=True))
    name = raw.get("name", graph_name)
    if "name" in raw:
        if graph_name is not None:
            raise ArchspecError.single(
                "E-ITEM", "a graph node is named by its key; remove 'name'", span_of(raw, "name", key_position=True)
            )
        if not is_identifier(name):
            raise ArchspecError.single(
                "E-NAME", f"node name must be an identifier (letters, digits, _), got {name!r}", span_of(raw, "name")
            )
    if name in RESERVED_NAMES:
        raise ArchspecError.single(
            "E-NAME", f"'{name}' is reserved and cannot name a node", span_of(raw, "name") if "name" in raw else span
        )
    sources: tuple[str, ...] | None = None
    source_names: tuple[str, ...] | None = None
    if "from" in raw:
        src = raw["from"]
        if isinstance(src, str):
            sources = (src,)
        elif isinstance(src, list) and src and all(isinstance(s, str) for s in src):
            sources = tuple(src)
        elif isinstance(src, dict) and src and all(isinstance(k, str) and isinstance(s, str) for k, s in src.items()):
            source_names, sources = tuple(src), tuple(src.values())  # a block's named inputs: {low: a, skip: b}
        else:
            raise ArchspecError.single(
                "E-FROM", f"'from' takes a node name, a list of node names or (for a block with named inputs) a "
                f"mapping {{input: node}}, got {_kind(src)}", span_of(raw, "from")
            )
    return Item(
        op=op,
        args=raw[op],
        name=name,
        repeat=raw.get("repeat"),
        sources=sources,
        when=raw.get("when"),
        span=span_of(raw, op, key_position=True) or span,
        args_span=span_of(raw, op) or span,
        raw=raw,
        source_names=source_names,
    )


def _suggest_item_key(key: str) -> str | None:
    match = did_you_mean(key, ITEM_KEYS)
    return match.split("'")[1] if match else None


def _kind(value: Any, *, echo: bool = True) -> str:
    """What ``value`` is, for messages; ``echo=False`` never quotes a string's text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ('{value}')" if echo and len(value) <= 80 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def body_items(body: Any, container: Any, key: Any) -> Iterator[tuple[Any, Any, Any, str | None]]:
    """Yield ``(raw, container, index, graph_name)`` for each item of a layers list or graph mapping."""
    if isinstance(body, LocSeq):
        for i, raw in enumerate(body):
            yield raw, body, i, None
    elif isinstance(body, LocMap):
        for k, raw in body.items():
            yield raw, body, k, str(k)


# --------------------------------------------------------------------------------------------------
# Document validation


def check_document(data: Any, path: str, *, library_ok: bool = False) -> tuple[SpecDocument, list[Diagnostic]]:
    """Validate one file's top-level structure: the document and block models, the version, the body.

    Returns the document (its ``blocks`` are the file's own) and the independent problems found, for
    the caller to report together with what :func:`check_bodies` finds; a document that the model
    rejects raises at once.  ``library_ok`` allows a block library (``blocks`` without ``input``,
    ``layers`` or ``graph``): only an imported file may be one.
    """
    if data is None:
        raise ArchspecError.single(
            "E-EMPTY", "the spec file is empty", Span(path, 1, 1),
            hint="a spec needs at least 'archspec: 1', 'name', 'input' and 'layers'",
        )
    if not isinstance(data, LocMap):
        raise ArchspecError.single(
            "E-TOP", f"a spec must be a mapping of keys (archspec, name, input, layers, ...), not {_kind(data, echo=False)}",
            span_of(data) or Span(path, 1, 1),
        )
    # InitSpec's validator first: SpecDocument's then reuses its schema instead of generating the init
    # subtree a second time, and init presets validate with it (about 15 ms less per process).
    InitSpec.model_rebuild()
    try:
        doc = SpecDocument.model_validate(dict(data))
    except ValidationError as exc:
        raise ArchspecError(pydantic_diagnostics(exc, data, model=SpecDocument)) from None
    errors: list[Diagnostic] = []
    if doc.archspec != 1:
        errors.append(Diagnostic("E-VERSION", f"unsupported spec version {doc.archspec}; this archspec reads version 1",
                                 span_of(data, "archspec")))
    check_section(doc.init, data.get("init"), data, "init", errors)  # presets and op kinds of every init section
    for bname, block in doc.blocks.items():
        check_section(block.init, data["blocks"][bname].get("init"), data["blocks"][bname], "init", errors)
    library = "blocks" in data and not any(key in data for key in ("input", "layers", "graph"))
    if library and not library_ok:
        errors.append(Diagnostic("E-LIBRARY", "this file only defines blocks (it has no 'input' and no 'layers'), "
                                 "so it describes no network", span_of(data),
                                 hint="import it from a spec with 'imports: [file.yaml]', or add 'input' and 'layers'"))
    elif not library:
        errors.extend(Diagnostic("E-MISSING", f"missing required key '{key}'", span_of(data))
                      for key in ("name", "input") if key not in data)
        errors.extend(Diagnostic("E-TYPE", f"'{key}' is empty (null)", span_of(data, key),
                                 hint="give the model's name" if key == "name" else "e.g. input: [3, 224, 224]")
                      for key in ("name", "input") if key in data and data[key] is None)
        if doc.input is not None and len(doc.input) not in (1, 3):
            errors.append(Diagnostic("E-INPUT", f"input must be [C, H, W] or [features], got {len(doc.input)} numbers",
                                     span_of(data, "input")))
        _check_body_choice(data, errors, "the network")
    return doc, errors


def check_bodies(
    doc: SpecDocument,
    data: LocMap,
    imported: dict[str, BlockDef],
    imported_sources: dict[str, LocMap],
    errors: list[Diagnostic],
) -> SpecDocument:
    """Check block names and every item of every body, given the blocks the file imports.

    Checks: each item parses; each op or block name exists (with "did you mean"); literal op
    arguments have no unknown keys; blocks do not use themselves.  Raises :class:`ArchspecError` with
    ``errors`` and everything found here; returns the document whose ``blocks`` hold every visible
    block, its own and imported ones.
    """
    for bname in doc.blocks:
        if bname in imported:
            first = span_of(imported_sources[bname])
            errors.append(Diagnostic("E-IMPORT-CLASH", f"block '{bname}' is also defined in an imported file"
                                     + (f" ({first})" if first else ""),
                                     span_of(data["blocks"], bname, key_position=True),
                                     hint="rename one of them; imported block names share one namespace"))
        if bname in RESERVED_NAMES:
            errors.append(Diagnostic("E-NAME", f"'{bname}' is reserved and cannot name a block",
                                     span_of(data["blocks"], bname, key_position=True)))
        if canonical_op_name(bname) in BUILTIN_OPS or bname in COMPOSITES:
            errors.append(Diagnostic("E-NAME", f"block name '{bname}' shadows the built-in op of that name",
                                     span_of(data["blocks"], bname, key_position=True), hint="rename the block"))
        _check_body_choice(data["blocks"][bname], errors, f"block '{bname}'")
        _check_block_inputs(bname, doc.blocks[bname], data["blocks"][bname], errors)
    visible = doc.model_copy(update={"blocks": {**imported, **doc.blocks}})
    visible._block_sources = {**imported_sources, **{b: data["blocks"][b] for b in doc.blocks}}
    block_refs: dict[str, list[tuple[str, Span]]] = {b: [] for b in doc.blocks}
    scopes: list[tuple[str | None, Any]] = [(None, data)] + [(b, data["blocks"][b]) for b in doc.blocks]
    for owner, holder in scopes:
        for key in ("layers", "graph"):
            if isinstance(holder, LocMap) and key in holder:
                _check_body(holder[key], holder, key, visible, errors, block_refs.get(owner) if owner else None)
    errors.extend(_block_cycles(block_refs, data))
    if errors:
        raise ArchspecError(sorted(_dedupe(errors), key=Diagnostic.sort_key))
    return visible


def _check_body_choice(holder: Any, errors: list[Diagnostic], what: str) -> None:
    if not isinstance(holder, LocMap):
        return
    has_layers, has_graph = "layers" in holder, "graph" in holder
    if has_layers and has_graph:
        errors.append(Diagnostic("E-BODY", f"{what} has both 'layers' and 'graph'; give one",
                                 span_of(holder, "graph", key_position=True)))
    elif not has_layers and not has_graph:
        errors.append(Diagnostic("E-BODY", f"{what} has no 'layers' (or 'graph')", span_of(holder),
                                 hint="add 'layers:' with a list of ops"))
    else:
        body = holder["layers"] if has_layers else holder["graph"]
        if not body:
            key = "layers" if has_layers else "graph"
            errors.append(Diagnostic("E-BODY", f"{what} has an empty '{key}'", span_of(holder, key)))


def _check_block_inputs(bname: str, block: BlockDef, holder: Any, errors: list[Diagnostic]) -> None:
    """A block's named inputs: not reserved, distinct, and not also the name of a node of its body."""
    if not block.inputs or not isinstance(holder, LocMap):
        return
    seq = holder["inputs"]
    nodes: dict[str, Span | None] = {}
    for key in ("layers", "graph"):
        if key in holder and isinstance(holder[key], (LocSeq, LocMap)):
            for raw, cont, idx, gname in body_items(holder[key], holder, key):
                if gname is not None:
                    nodes.setdefault(gname, span_of(cont, idx, key_position=True))
                elif isinstance(raw, LocMap) and isinstance(raw.get("name"), str):
                    nodes.setdefault(raw["name"], span_of(raw, "name"))
    seen: set[str] = set()
    for j, name in enumerate(block.inputs):
        where = span_of(seq, j)
        if name in RESERVED_NAMES:
            errors.append(Diagnostic("E-NAME", f"block '{bname}': '{name}' is reserved and cannot name an input", where,
                                     hint="'input' already means the block's first input; give each input its own name"))
        elif name in seen:
            errors.append(Diagnostic("E-DUP-NAME", f"block '{bname}' names two inputs '{name}'", where))
        elif name in nodes:
            node = nodes[name]
            errors.append(Diagnostic("E-DUP-NAME", f"block '{bname}': input '{name}' is also the name of a node of its "
                                     "body" + (f" (line {node.line})" if node else ""), where,
                                     hint="rename the input or the node: inside the block both are nodes"))
        seen.add(name)


def _check_body(
    body: Any,
    container: Any,
    key: Any,
    doc: SpecDocument,
    errors: list[Diagnostic],
    refs: list[tuple[str, Span]] | None,
) -> None:
    for raw, cont, idx, gname in body_items(body, container, key):
        try:
            item = parse_item(raw, cont, idx, graph_name=gname)
        except ArchspecError as exc:
            errors.extend(exc.diagnostics)
            continue
        _check_item(item, doc, errors, refs)


def _check_item(item: Item, doc: SpecDocument, errors: list[Diagnostic], refs: list[tuple[str, Span]] | None) -> None:
    op = item.op
    if op in doc.blocks:
        if refs is not None:
            refs.append((op, item.span))
        if item.source_names is not None:
            _check_named_sources(op, doc.blocks[op], item, errors)
        if item.args is not None and not isinstance(item.args, LocMap):
            errors.append(Diagnostic("E-ARGS", f"block '{op}' takes a mapping of parameters, not {_kind(item.args)}",
                                     item.args_span))
        elif isinstance(item.args, LocMap):
            known = doc.blocks[op].params
            for k in item.args:
                if k not in known:
                    hint = did_you_mean(str(k), known)
                    allowed = ", ".join(known) or "none"
                    errors.append(Diagnostic("E-BLOCK-PARAM", f"block '{op}' has no parameter '{k}'",
                                             span_of(item.args, k, key_position=True),
                                             (hint + " " if hint else "") + f"parameters: {allowed}"))
        return
    if item.source_names is not None and isinstance(item.raw, LocMap) and (
            op.replace("_", "-") in COMPOSITES or find_op(op) is not None):
        errors.append(Diagnostic("E-FROM", f"'from' as a mapping binds the named inputs of a block, and '{op}' is not "
                                 "a block", span_of(item.raw, "from"), hint="write 'from: node' or 'from: [a, b]'"))
    cop = op.replace("_", "-")
    if cop in COMPOSITES:
        _check_composite(cop, item, doc, errors, refs)
        return
    spec_op = find_op(op)
    if spec_op is None:
        names = list(doc.blocks) + sorted(OPS) + list(COMPOSITES)
        names += [n.replace("-", "_") for n in OPS]
        alias = _OP_HINTS.get(op.lower())
        hint = f"did you mean '{alias}'?" if alias else did_you_mean(op, names)
        where, notes = unknown_op_help()
        errors.append(Diagnostic("E-UNKNOWN-OP", f"unknown op or block '{op}'", item.span,
                                 (hint + " " if hint else "") + where, notes=notes))
        return
    if spec_op.arity != 1 and (isinstance(item.args, LocSeq) or item.args is None or not spec_op.param_names()):
        return  # ops on several inputs may take them as a list of node names; checked during expansion
    if item.args is None or is_expression(item.args):
        return
    if not isinstance(item.args, LocMap):
        errors.append(Diagnostic("E-ARGS", f"'{op}' takes a mapping of parameters, not {_kind(item.args)}",
                                 item.args_span, hint=f"e.g. {_example(spec_op.name)}"))
        return
    fields = spec_op.param_names()
    for k in item.args:
        if k not in fields:
            hint = _KEY_HINTS.get(str(k))
            hint_text = f"did you mean '{hint}'?" if hint in fields else did_you_mean(str(k), fields)
            allowed = ", ".join(fields) or "none"
            errors.append(Diagnostic("E-UNKNOWN-KEY", f"unknown parameter '{k}' for '{spec_op.name}'",
                                     span_of(item.args, k, key_position=True),
                                     (hint_text + " " if hint_text else "") + f"parameters: {allowed}"))


def _check_named_sources(op: str, block: BlockDef, item: Item, errors: list[Diagnostic]) -> None:
    """``from: {low: a, skip: b}`` on an instance of ``block``: every named input once, no other name."""
    assert item.source_names is not None and isinstance(item.raw, LocMap)
    src = item.raw["from"]
    names = block.inputs or []
    if not names:
        errors.append(Diagnostic("E-FROM", f"block '{op}' has one unnamed input; 'from' by input name needs a block "
                                 "with named inputs", span_of(item.raw, "from"),
                                 hint="write 'from: node', or give the block 'inputs: [name, ...]'"))
        return
    for key in item.source_names:
        if key not in names:
            hint = did_you_mean(key, names)
            errors.append(Diagnostic("E-FROM", f"block '{op}' has no input '{key}'", span_of(src, key, key_position=True),
                                     (hint + " " if hint else "") + "inputs: " + ", ".join(names)))
    missing = [n for n in names if n not in item.source_names]
    if missing and all(key in names for key in item.source_names):
        errors.append(Diagnostic("E-FROM", f"block '{op}' needs input{'s' if len(missing) > 1 else ''} "
                                 + ", ".join(f"'{n}'" for n in missing), span_of(item.raw, "from"),
                                 hint="bind every input: 'from: {" + ", ".join(f"{n}: ..." for n in names) + "}'"))


def _example(op: str) -> str:
    return {"conv": "conv: {out: 64, k: 3}", "linear": "linear: {out: 10}", "maxpool": "maxpool: {k: 2}"}.get(
        op, f"{op}: {{...}}"
    )


def _check_composite(
    op: str, item: Item, doc: SpecDocument, errors: list[Diagnostic], refs: list[tuple[str, Span]] | None
) -> None:
    args = item.args
    if op in ("sequence", "dense-concat"):
        if not isinstance(args, LocSeq) or not args:
            errors.append(Diagnostic("E-ARGS", f"'{op}' takes a non-empty list of layers", item.args_span))
            return
        _check_body(args, item.raw, item.op, doc, errors, refs)
    elif op == "inception-branch":
        branches = list(args.items()) if isinstance(args, LocMap) else list(enumerate(args or []))
        if not isinstance(args, (LocSeq, LocMap)) or len(branches) < 1:
            errors.append(Diagnostic("E-ARGS", "'inception-branch' takes a list of branches, each a list of layers",
                                     item.args_span))
            return
        for key, branch in branches:
            if isinstance(args, LocMap) and (not isinstance(key, str) or not IDENT_RE.fullmatch(key)
                                             or key in RESERVED_NAMES or key == "concat"):
                # The key names the branch's group (`inception_branch1.<key>.conv1`): an identifier, like any name.
                why = ("is reserved" if key in RESERVED_NAMES else "names the merge of the branches"
                       if key == "concat" else "is not an identifier (letters, digits, _, not starting with a digit)")
                errors.append(Diagnostic("E-NAME", f"inception branch name {key!r} {why}",
                                         span_of(args, key, key_position=True),
                                         hint="name branches like 'b3x3', or give a list of branches (named branch1, ...)"))
                continue
            if not isinstance(branch, LocSeq) or not branch:
                errors.append(Diagnostic("E-ARGS", "each inception branch is a non-empty list of layers",
                                         span_of(args, key)))
                continue
            _check_body(branch, args, key, doc, errors, refs)
    elif op == "residual-add":
        if not isinstance(args, LocMap):
            errors.append(Diagnostic("E-ARGS", "'residual-add' takes a mapping with 'body' and optional 'shortcut'",
                                     item.args_span))
            return
        for k in args:
            if k not in ("body", "shortcut"):
                hint = did_you_mean(str(k), ["body", "shortcut"])
                errors.append(Diagnostic("E-UNKNOWN-KEY", f"unknown key '{k}' in residual-add",
                                         span_of(args, k, key_position=True), (hint + " " if hint else "")
                                         + "allowed: body, shortcut"))
        body = args.get("body")
        misspelt_body = "body" not in args and any(did_you_mean(str(k), ["body"]) for k in args)
        if misspelt_body:
            pass  # reported above as an unknown key with "did you mean 'body'?"
        elif not isinstance(body, LocSeq) or not body:
            errors.append(Diagnostic("E-ARGS", "residual-add needs 'body', a non-empty list of layers",
                                     span_of(args, "body") if "body" in args else item.args_span))
        else:
            _check_body(body, args, "body", doc, errors, refs)
        sc = args.get("shortcut", "auto")
        if isinstance(sc, LocSeq):
            if not sc:
                errors.append(Diagnostic("E-ARGS", "an explicit shortcut needs at least one layer",
                                         span_of(args, "shortcut"), hint="use 'shortcut: identity'"))
            _check_body(sc, args, "shortcut", doc, errors, refs)
        elif sc not in ("auto", "identity"):
            errors.append(Diagnostic("E-ARGS", f"shortcut must be 'auto', 'identity' or a list of layers, not {_kind(sc)}",
                                     span_of(args, "shortcut")))


def _block_cycles(refs: dict[str, list[tuple[str, Span]]], data: Any) -> list[Diagnostic]:
    """Report every block that uses itself, directly or through other blocks."""
    out: list[Diagnostic] = []
    state: dict[str, int] = {}
    stack: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(root: str) -> None:
        # Iterative depth-first search: a long chain of blocks must not exhaust Python's stack.
        state[root] = 1
        stack.append(root)
        todo: list[tuple[str, int]] = [(root, 0)]
        while todo:
            b, i = todo.pop()
            targets = refs.get(b, [])
            if i >= len(targets):
                stack.pop()
                state[b] = 2
                continue
            todo.append((b, i + 1))
            target, span = targets[i]
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target):], target]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    how = "itself" if len(cycle) == 2 else "itself through " + " → ".join(cycle)
                    out.append(Diagnostic("E-RECURSION", f"block '{target}' uses {how}", span,
                                          hint="blocks cannot be recursive; use 'repeat' to stack copies"))
            elif state.get(target) is None and target in refs:
                state[target] = 1
                stack.append(target)
                todo.append((target, 0))

    for b in refs:
        if b not in state:
            visit(b)
    return out
