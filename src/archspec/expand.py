"""Stages 3–4, *expand* and *infer*: spec document → flat, shape-annotated :class:`~archspec.ir.Graph`.

Expansion and shape inference run as one walk, because the spec language lets structure depend on
inferred shapes: ``out: ${in.c // 2}`` reads the input's channels, and ``residual-add`` with
``shortcut: auto`` picks identity or a 1×1 projection by comparing shapes.  For each item the walk
binds block parameters, evaluates expressions, validates the op's parameters with its Pydantic model,
applies the op's shape rule and records a node with its counts.

Problems are collected, not raised one at a time: a failed node's value becomes *unknown* and
everything downstream of it is skipped silently, so each root cause is reported once while
independent errors elsewhere are still found.  A problem inside an expanded block points at the
line in the block definition and carries notes naming each enclosing instance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import ValidationError

from .errors import ArchspecError, Diagnostic, Note, Span, did_you_mean
from .expr import ExprError, InputShape, evaluate, is_expression
from .ir import Graph, Group, Node
from .ops import Conv, Linear, Op, Shape, ShapeError, fmt_shape, get_op
from .source import LocMap, LocSeq, span_of
from .spec import COMPOSITES, Item, SpecDocument, body_items, parse_item, pydantic_diagnostics

__all__ = ["MAX_NESTING", "MAX_NODES", "expand"]

#: Most primitive nodes one spec may expand to (real networks have a few thousand at most).
MAX_NODES = 100_000
#: Deepest nesting of block instances and composites.
MAX_NESTING = 64

#: A value flowing between items: the name of the node that produced it, or None when unknown.
Value = str | None


@dataclass
class _Scope:
    """Where an item is being expanded: the enclosing group, parameter values and instance chain."""

    group: str
    env: Mapping[str, Any]
    notes: tuple[Note, ...]
    depth: int
    counters: dict[str, int] = field(default_factory=dict)

    def child_name(self, local: str) -> str:
        return f"{self.group}.{local}" if self.group else local

    def auto_name(self, base: str) -> str:
        n = self.counters.get(base, 0) + 1
        self.counters[base] = n
        return f"{base}{n}"


class _Abort(Exception):
    """Stops expansion of the current item after its diagnostic has been recorded."""


def expand(doc: SpecDocument, data: LocMap, path: str, overrides: Mapping[str, Any] | None = None,
           input_shape: Shape | None = None) -> Graph:
    """Expand a validated document into a shape-inferred graph.

    ``overrides`` replace top-level parameter defaults (unknown names are errors); ``input_shape``
    replaces the spec's ``input``.  Raises :class:`ArchspecError` with every problem found.
    """
    return _Expander(doc, data, path).run(overrides or {}, input_shape)


class _Expander:
    def __init__(self, doc: SpecDocument, data: LocMap, path: str) -> None:
        self.doc = doc
        self.data = data
        self.path = path
        self.nodes: dict[str, Node] = {}
        self.groups: dict[str, Group] = {}
        self.shapes: dict[str, Shape] = {}
        self.diags: list[Diagnostic] = []
        self._diag_index: dict[tuple[str, Span | None, str], int] = {}
        self._diag_repeats: dict[int, int] = {}
        self._top_env: dict[str, Any] = {}

    # ------------------------------------------------------------------ diagnostics
    def error(self, code: str, message: str, span: Span | None, scope: _Scope | None, hint: str | None = None,
              *, key: str | None = None, severity: str = "error") -> None:
        """Record a diagnostic once per source position (instances of one block repeat the same one)."""
        dedupe = (code, span, key or message)
        if dedupe in self._diag_index:
            idx = self._diag_index[dedupe]
            self._diag_repeats[idx] = self._diag_repeats.get(idx, 0) + 1
            return
        notes = scope.notes if scope else ()
        self._diag_index[dedupe] = len(self.diags)
        self.diags.append(Diagnostic(code, message, span, hint, severity, notes))

    def _finish_diags(self) -> list[Diagnostic]:
        out = []
        for i, d in enumerate(self.diags):
            extra = self._diag_repeats.get(i)
            if extra:
                more = f"the same problem occurs in {extra} more instance{'s' if extra > 1 else ''}"
                d = Diagnostic(d.code, d.message, d.span, d.hint, d.severity, (*d.notes, Note(more)))
            out.append(d)
        return out

    # ------------------------------------------------------------------ entry
    def run(self, overrides: Mapping[str, Any], input_shape: Shape | None) -> Graph:
        env = self._top_params(overrides)
        self._top_env = env
        shape = tuple(input_shape) if input_shape is not None else tuple(self.doc.input)
        if len(shape) not in (1, 3) or any((not isinstance(d, int)) or d <= 0 for d in shape):
            raise ArchspecError.single("E-INPUT", f"input shape must be C,H,W or F positive integers, got {shape}",
                                       span_of(self.data, "input"))
        self.shapes["input"] = shape
        scope = _Scope(group="", env=env, notes=(), depth=0)
        body_key = "layers" if "layers" in self.data else "graph"
        out = self.run_body(self.data[body_key], self.data, body_key, scope, "input",
                            output=self.doc.output, output_span=span_of(self.data, "output"))
        if out is None and not any(d.severity == "error" for d in self.diags):
            self.error("E-OUTPUT", "the network produces no output", span_of(self.data), None)
        diags = self._finish_diags()
        if any(d.severity == "error" for d in diags):
            raise ArchspecError(diags)
        graph = Graph(
            name=self.doc.name, description=self.doc.description, input_shape=shape, nodes=self.nodes,
            groups=self.groups, output=out or "input", path=self.path, params=dict(env), warnings=diags,
        )
        return graph

    def _top_params(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        params = self.doc.params
        unknown = [k for k in overrides if k not in params]
        if unknown:
            diags = []
            for k in unknown:
                hint = did_you_mean(k, params)
                allowed = ", ".join(params) or "none"
                diags.append(Diagnostic("E-OVERRIDE", f"--set {k}: the spec has no top-level parameter '{k}'",
                                        span_of(self.data, "params") or span_of(self.data),
                                        (hint + " " if hint else "") + f"parameters: {allowed}"))
            raise ArchspecError(diags)
        env: dict[str, Any] = {}
        holder = self.data.get("params")
        for k, default in params.items():
            value = overrides.get(k, default)
            if value is None:
                raise ArchspecError.single("E-PARAM", f"top-level parameter '{k}' has no value",
                                           span_of(holder, k), hint=f"give it a default or pass --set {k}=VALUE")
            try:
                env[k] = self._subst(value, env, None)
            except ExprError as exc:
                raise ArchspecError.single("E-EXPR", f"parameter '{k}': {exc}", span_of(holder, k)) from None
            if k in overrides and default is not None and not _same_kind(default, env[k]):
                raise ArchspecError.single("E-PARAM-TYPE",
                                           f"--set {k}: expected {_type_name(default)}, got {_type_name(env[k])} "
                                           f"({env[k]!r})", span_of(holder, k))
        return env

    # ------------------------------------------------------------------ values and expressions
    def _subst(self, value: Any, env: Mapping[str, Any], shape: Shape | None) -> Any:
        """Evaluate every expression inside ``value`` (recursively through lists and mappings)."""
        if isinstance(value, str) and is_expression(value):
            return evaluate(value, env, InputShape(shape) if shape is not None else None)
        if isinstance(value, list):
            return [self._subst(v, env, shape) for v in value]
        if isinstance(value, dict):
            return {k: self._subst(v, env, shape) for k, v in value.items()}
        return value

    def _subst_located(self, value: Any, env: Mapping[str, Any], shape: Shape | None, scope: _Scope,
                       container: Any, key: Any, what: str) -> Any:
        """Like :meth:`_subst` but reports the innermost failing expression at its own position."""
        if isinstance(value, str) and is_expression(value):
            try:
                return evaluate(value, env, InputShape(shape) if shape is not None else None)
            except ExprError as exc:
                self.error("E-EXPR", f"{what}: in '{value}': {exc}", span_of(container, key), scope,
                           key=f"{value}:{exc}")
                raise _Abort from None
        if isinstance(value, list):
            return [self._subst_located(v, env, shape, scope, value, i, what) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self._subst_located(v, env, shape, scope, value, k, what) for k, v in value.items()}
        return value

    def shape(self, value: Value) -> Shape | None:
        return None if value is None else self.shapes.get(value)

    # ------------------------------------------------------------------ bodies
    def run_body(self, body: Any, holder: Any, key: Any, scope: _Scope, inp: Value, *, output: str | None = None,
                 output_span: Span | None = None) -> Value:
        """Expand a ``layers`` list or ``graph`` mapping; return the value of its output item."""
        parsed: list[Item] = []
        for raw, cont, idx, gname in body_items(body, holder, key):
            try:
                parsed.append(parse_item(raw, cont, idx, graph_name=gname))
            except ArchspecError as exc:  # pragma: no cover - already reported by validate_document
                for d in exc.diagnostics:
                    self.error(d.code, d.message, d.span, scope, d.hint)
                return None
        if not parsed:
            return inp
        # Names declared in this body, and the order items must run in.
        declared: dict[str, int] = {}
        for i, item in enumerate(parsed):
            if item.name is not None:
                if item.name in declared:
                    first = parsed[declared[item.name]].span
                    self.error("E-DUP-NAME", f"duplicate node name '{item.name}' (first used at line {first.line})",
                               span_of(item.raw, "name") if isinstance(item.raw, LocMap) and "name" in item.raw
                               else item.span, scope)
                    return None
                declared[item.name] = i
        deps: list[list[int]] = []
        all_refs: list[list[tuple[str, Span]] | None] = []
        ok = True
        for i, item in enumerate(parsed):
            refs = self._item_refs(item)
            all_refs.append(refs)
            d: list[int] = []
            if refs is None:
                if i > 0:
                    d.append(i - 1)
            else:
                for ref, ref_span in refs:
                    if ref == "input":
                        continue
                    if ref not in declared:
                        hint = did_you_mean(ref, [*list(declared), "input"])
                        self.error("E-UNKNOWN-NODE", f"unknown node '{ref}'", ref_span, scope,
                                   (hint + " " if hint else "") + "nodes here: " + ", ".join(["input", *declared]))
                        ok = False
                    else:
                        d.append(declared[ref])
            deps.append(d)
        if not ok:
            return None
        order = self._topo_order(parsed, deps, scope)
        if order is None:
            return None
        if output is not None and output not in declared:
            hint = did_you_mean(output, declared)
            self.error("E-OUTPUT", f"output '{output}' is not a node of this graph", output_span, scope,
                       (hint + " " if hint else "") + "nodes: " + ", ".join(declared))
            return None
        out_index = declared[output] if output is not None else len(parsed) - 1
        values: dict[int, Value] = {}
        known_input = inp
        for i in order:
            item = parsed[i]
            refs = all_refs[i]
            if deps[i] or refs is not None:
                if refs is None:
                    sources = [values[deps[i][0]]]
                else:
                    sources = [known_input if r == "input" else values[declared[r]] for r, _ in refs]
            else:
                sources = [known_input]
            if any(s is None for s in sources):
                values[i] = None
                self._skip_item(item, scope)
                continue
            try:
                values[i] = self.run_item(item, scope, sources)
            except _Abort:
                values[i] = None
        self._warn_unused(parsed, deps, out_index, scope)
        return values.get(out_index)

    def _item_refs(self, item: Item) -> list[tuple[str, Span]] | None:
        """Explicit inputs of an item (``from`` or a merge's list), or None for 'the previous item'."""
        spans_from = item.raw if isinstance(item.raw, LocMap) else None
        if item.sources is not None:
            src = spans_from["from"] if spans_from is not None else None
            return [(s, span_of(src, j) if isinstance(src, LocSeq) else span_of(spans_from, "from") or item.span)
                    for j, s in enumerate(item.sources)]
        if item.op in self.doc.blocks or item.op.replace("_", "-") in COMPOSITES:
            return None  # blocks and composites take their input from the previous item
        op = get_op(item.op)
        if op is not None and op.arity is None and isinstance(item.args, LocSeq):
            return [(str(s), span_of(item.args, j) or item.span) for j, s in enumerate(item.args)]
        return None

    def _topo_order(self, items: list[Item], deps: list[list[int]], scope: _Scope) -> list[int] | None:
        """Kahn's algorithm, stable in written order; report a cycle by its members."""
        indeg = [0] * len(items)
        users: list[list[int]] = [[] for _ in items]
        for i, d in enumerate(deps):
            for j in d:
                users[j].append(i)
                indeg[i] += 1
        import heapq

        ready = [i for i, n in enumerate(indeg) if n == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for u in users[i]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) < len(items):
            stuck = [i for i, n in enumerate(indeg) if n > 0]
            names = [items[i].name or f"item {i + 1}" for i in stuck]
            self.error("E-CYCLE", "the graph has a cycle through " + " → ".join(names), items[stuck[0]].span, scope,
                       hint="every node must be computable from 'input' and earlier nodes")
            return None
        return order

    def _warn_unused(self, items: list[Item], deps: list[list[int]], out_index: int, scope: _Scope) -> None:
        used = {j for d in deps for j in d}
        for i, item in enumerate(items):
            if i != out_index and i not in used and item.name is not None:
                self.error("W-UNUSED", f"node '{item.name}' is never used", item.span, scope,
                           hint="connect it with 'from', make it the 'output', or remove it", severity="warning")

    def _skip_item(self, item: Item, scope: _Scope) -> None:
        """An input is unknown (an earlier error): consume auto-name counters so names stay stable."""
        try:
            n = self._repeat_count(item, scope, None)
        except _Abort:
            return
        base = self._base_name(item)
        if item.name is None:
            for _ in range(n):
                scope.auto_name(base)

    # ------------------------------------------------------------------ items
    def _base_name(self, item: Item) -> str:
        return item.op.replace("-", "_")

    def _repeat_count(self, item: Item, scope: _Scope, shape: Shape | None) -> int:
        if item.repeat is None:
            return 1
        raw = item.raw
        try:
            n = self._subst_located(item.repeat, scope.env, shape, scope, raw, "repeat", "repeat")
        except _Abort:
            raise
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            self.error("E-REPEAT", f"repeat must be a whole number ≥ 0, got {n!r}", span_of(raw, "repeat"), scope)
            raise _Abort
        if n > MAX_NODES:
            self.error("E-LIMIT", f"repeat {n} is more than the {MAX_NODES:,}-node limit", span_of(raw, "repeat"), scope)
            raise _Abort
        return n

    def run_item(self, item: Item, scope: _Scope, sources: list[str]) -> Value:
        """Expand one item (with its ``when`` and ``repeat``) on the given input values."""
        first = sources[0]
        if item.when is not None:
            cond = self._subst_located(item.when, scope.env, self.shape(first), scope, item.raw, "when", "when")
            if not isinstance(cond, bool):
                self.error("E-WHEN", f"'when' must be true or false, got {cond!r}", span_of(item.raw, "when"), scope)
                raise _Abort
            if not cond:
                if len(sources) != 1:
                    self.error("E-WHEN", "'when' can only skip an item with one input", span_of(item.raw, "when"), scope)
                    raise _Abort
                return first
        n = self._repeat_count(item, scope, self.shape(first))
        if n == 0:
            if len(sources) != 1:
                self.error("E-REPEAT", "'repeat: 0' can only skip an item with one input", span_of(item.raw, "repeat"),
                           scope)
                raise _Abort
            return first
        base = self._base_name(item)
        if item.repeat is not None and item.name is not None:
            gname = scope.child_name(item.name)
            inner = self._open_group(gname, "repeat", None, item.span, scope, first, {"repeat": n})
            value: Value = first
            for _ in range(n):
                value = self._one(item, inner, inner.auto_name(base), [value] if value else [])
                if value is None:
                    break
            self._close_group(gname, value)
            return value
        value = None
        current = sources
        for _ in range(n):
            name = item.name if item.name is not None else scope.auto_name(base)
            value = self._one(item, scope, name, current)
            if value is None:
                break
            current = [value]
        return value

    def _one(self, item: Item, scope: _Scope, local: str, sources: list[str]) -> Value:
        if not sources:
            return None
        op_name = item.op
        if op_name in self.doc.blocks:
            return self._instantiate(item, scope, local, sources)
        comp = op_name.replace("_", "-")
        if comp in COMPOSITES:
            if len(sources) != 1:
                self.error("E-FROM", f"'{comp}' takes one input, got {len(sources)}", item.span, scope)
                raise _Abort
            return getattr(self, "_c_" + comp.replace("-", "_"))(item, scope, local, sources[0])
        op = get_op(op_name)
        if op is None:  # pragma: no cover - reported by validate_document
            self.error("E-UNKNOWN-OP", f"unknown op or block '{op_name}'", item.span, scope)
            raise _Abort
        return self._primitive(op, item, scope, local, sources)

    # ------------------------------------------------------------------ primitives
    def _primitive(self, op: Op, item: Item, scope: _Scope, local: str, sources: list[str]) -> Value:
        name = scope.child_name(local)
        in_shapes = [self.shapes[s] for s in sources]
        if op.arity is None:
            if len(sources) < 2:
                self.error("E-FROM", f"{name}: '{op.name}' merges two or more inputs, got {len(sources)}", item.span,
                           scope, hint=f"write '{op.name}: [a, b]' with node names")
                raise _Abort
            args: Any = {}
        else:
            if len(sources) != 1:
                self.error("E-FROM", f"{name}: '{op.name}' takes one input, got {len(sources)}", item.span, scope,
                           hint="merge inputs first with 'add' or 'concat'")
                raise _Abort
            args = item.args
            if args is None:
                args = {}
            elif is_expression(args):
                args = self._subst_located(args, scope.env, in_shapes[0], scope, item.raw, item.op, name)
            else:
                args = self._subst_located(args, scope.env, in_shapes[0], scope, item.raw, item.op, name)
        if not isinstance(args, dict):
            self.error("E-ARGS", f"{name}: '{op.name}' takes a mapping of parameters, got {args!r}", item.args_span,
                       scope)
            raise _Abort
        try:
            params = op.validate_params(args)
        except ValidationError as exc:
            raw_args = item.args if isinstance(item.args, LocMap) else LocMap(item.args_span)
            for d in pydantic_diagnostics(exc, raw_args, model=op.params_schema()):
                hint = d.hint
                if d.code == "E-MISSING":
                    hint = hint or f"e.g. {op.name}: {{{', '.join(_required(op))}}}"
                self.error(d.code, f"{name}: {op.name}: {d.message}", d.span, scope, hint,
                           key=f"{op.name}:{d.message}")
            raise _Abort from None
        return self._add_node(op, params, name, sources, in_shapes, item.span, scope)

    def _add_node(self, op: Op, params: Any, name: str, sources: list[str], in_shapes: list[Shape],
                  span: Span | None, scope: _Scope, role: str = "") -> str:
        try:
            shape = op.infer(params, in_shapes)
        except ShapeError as exc:
            self.error("E-SHAPE", f"{name}: {exc.message}", span, scope, exc.hint, key=exc.message)
            raise _Abort from None
        if any(d <= 0 for d in shape):
            self.error("E-SHAPE", f"{name}: output shape {fmt_shape(shape)} has an empty dimension "
                       f"(input {fmt_shape(in_shapes[0])})", span, scope,
                       "the feature map has shrunk to nothing: reduce strides/pooling earlier or use a larger input",
                       key="empty")
            raise _Abort
        if name in self.nodes or name in self.groups:
            self.error("E-DUP-NAME", f"two nodes are named '{name}'", span, scope,
                       hint="rename one of them with 'name:'")
            raise _Abort
        if len(self.nodes) >= MAX_NODES:
            self.error("E-LIMIT", f"the spec expands to more than {MAX_NODES:,} nodes", span, scope)
            raise ArchspecError(self._finish_diags())
        counts = op.count(params, in_shapes, shape)
        node = Node(name=name, op=op.name, params=params, inputs=tuple(sources), shape=shape, counts=counts,
                    span=span, group=scope.group, label=op.label(params), role=role)
        self.nodes[name] = node
        self.shapes[name] = shape
        if scope.group:
            self.groups[scope.group].children.append(name)
        return name

    # ------------------------------------------------------------------ groups
    def _open_group(self, name: str, kind: str, block: str | None, span: Span | None, scope: _Scope, inp: Value,
                    args: dict[str, Any] | None = None, env: Mapping[str, Any] | None = None,
                    notes: tuple[Note, ...] | None = None) -> _Scope:
        if name in self.groups or name in self.nodes:
            self.error("E-DUP-NAME", f"two nodes are named '{name}'", span, scope,
                       hint="rename one of them with 'name:'")
            raise _Abort
        if scope.depth >= MAX_NESTING:
            self.error("E-LIMIT", f"blocks and composites nest deeper than {MAX_NESTING} levels at '{name}'", span,
                       scope)
            raise _Abort
        self.groups[name] = Group(name=name, kind=kind, block=block, span=span, parent=scope.group,
                                  input=inp or "", args=dict(args or {}))
        if scope.group:
            self.groups[scope.group].children.append(name)
        return _Scope(group=name, env=scope.env if env is None else env,
                      notes=scope.notes if notes is None else notes, depth=scope.depth + 1)

    def _close_group(self, name: str, value: Value) -> None:
        self.groups[name].output = value or ""

    def _instantiate(self, item: Item, scope: _Scope, local: str, sources: list[str]) -> Value:
        block_name = item.op
        block = self.doc.blocks[block_name]
        name = scope.child_name(local)
        if len(sources) != 1:
            self.error("E-FROM", f"{name}: block '{block_name}' takes one input, got {len(sources)}", item.span, scope)
            raise _Abort
        inp = sources[0]
        in_shape = self.shapes[inp]
        args = item.args if isinstance(item.args, LocMap) else {}
        bound: dict[str, Any] = {}
        bad = False
        for pname, default in block.params.items():
            if pname in args:
                value = self._subst_located(args[pname], scope.env, in_shape, scope, args, pname, name)
                if default is not None and not is_expression(default) and not _same_kind(default, value):
                    self.error("E-PARAM-TYPE", f"{name}: block '{block_name}' parameter '{pname}' expects "
                               f"{_type_name(default)} (like its default {default!r}), got {_type_name(value)} "
                               f"({value!r})", span_of(args, pname), scope)
                    bad = True
                bound[pname] = value
            elif default is None:
                self.error("E-BLOCK-PARAM", f"{name}: block '{block_name}' needs parameter '{pname}'", item.span, scope,
                           hint=f"write '{block_name}: {{{pname}: ...}}'")
                bad = True
            else:
                bound[pname] = default
        if bad:
            raise _Abort
        env = {**self._global_env(scope), **bound}
        # Defaults may be expressions over earlier parameters and the input shape.
        holder = self.doc.block_source(block_name).get("params")
        for pname in block.params:
            if pname not in args and is_expression(bound[pname]):
                env[pname] = self._subst_located(bound[pname], env, in_shape, scope, holder, pname, name)
        note = Note(f"in '{name}', an instance of block '{block_name}'", item.span)
        inner = self._open_group(name, "block", block_name, item.span, scope, inp, bound, env, (note, *scope.notes))
        bdata = self.doc.block_source(block_name)  # may live in an imported file
        key = "layers" if "layers" in bdata else "graph"
        out = self.run_body(bdata[key], bdata, key, inner, inp, output=block.output, output_span=span_of(bdata, "output"))
        self._close_group(name, out)
        return out

    def _global_env(self, scope: _Scope) -> dict[str, Any]:
        """Block bodies see the top-level parameters, then their own."""
        return dict(self._top_env)

    # ------------------------------------------------------------------ composites
    def _c_sequence(self, item: Item, scope: _Scope, local: str, inp: str) -> Value:
        name = scope.child_name(local)
        inner = self._open_group(name, "sequence", None, item.span, scope, inp)
        out = self.run_body(item.args, item.raw, item.op, inner, inp)
        self._close_group(name, out)
        return out

    def _c_inception_branch(self, item: Item, scope: _Scope, local: str, inp: str) -> Value:
        name = scope.child_name(local)
        inner = self._open_group(name, "inception-branch", None, item.span, scope, inp)
        args = item.args
        branches = list(args.items()) if isinstance(args, LocMap) else [(f"branch{i + 1}", b) for i, b in enumerate(args)]
        outs: list[Value] = []
        for i, (bname, branch) in enumerate(branches):
            key = bname if isinstance(args, LocMap) else i
            bfull = inner.child_name(str(bname))
            try:
                bscope = self._open_group(bfull, "branch", None, span_of(args, key), inner, inp)
                out = self.run_body(branch, args, key, bscope, inp)
                self._close_group(bfull, out)
            except _Abort:
                out = None
            outs.append(out)
        if any(o is None for o in outs):
            raise _Abort
        concat = get_op("concat")
        assert concat is not None
        out_name = self._add_node(concat, None, inner.child_name("concat"), [o for o in outs if o],
                                  [self.shapes[o] for o in outs if o], item.span, inner, role="merge")
        self._close_group(name, out_name)
        return out_name

    def _c_residual_add(self, item: Item, scope: _Scope, local: str, inp: str) -> Value:
        name = scope.child_name(local)
        inner = self._open_group(name, "residual-add", None, item.span, scope, inp)
        args = item.args
        body = self.run_body(args["body"], args, "body", inner, inp)
        if body is None:
            raise _Abort
        sc = args.get("shortcut", "auto")
        x_shape, y_shape = self.shapes[inp], self.shapes[body]
        short: str = inp
        sc_span = span_of(args, "shortcut") if "shortcut" in args else item.span
        if isinstance(sc, LocSeq):
            sname = inner.child_name("shortcut")
            sscope = self._open_group(sname, "shortcut", None, sc_span, inner, inp)
            out = self.run_body(sc, args, "shortcut", sscope, inp)
            self._close_group(sname, out)
            if out is None:
                raise _Abort
            short = out
        elif x_shape != y_shape:
            if sc == "identity":
                self.error("E-SHAPE", f"{name}: identity shortcut cannot add the input {fmt_shape(x_shape)} to the "
                           f"body output {fmt_shape(y_shape)}", sc_span, inner,
                           hint="use 'shortcut: auto' for a 1×1 projection, or give the shortcut layers")
                raise _Abort
            short = self._projection(name, inner, inp, x_shape, y_shape, sc_span)
        add = get_op("add")
        assert add is not None
        out_name = self._add_node(add, None, inner.child_name("add"), [body, short], [y_shape, self.shapes[short]],
                                  item.span, inner, role="identity" if short == inp else "projection")
        self._close_group(name, out_name)
        return out_name

    def _projection(self, name: str, scope: _Scope, inp: str, x: Shape, y: Shape, span: Span | None) -> str:
        """The 1×1 conv (or linear, for flat tensors) that makes ``x`` the shape of ``y``."""
        if len(x) == 1 and len(y) == 1:
            op: Op = Linear()
            params: Any = op.validate_params({"out": y[0]})
        elif len(x) == 3 and len(y) == 3:
            strides = []
            for dim, (a, b) in zip(("height", "width"), ((x[1], y[1]), (x[2], y[2])), strict=True):
                s = math.ceil(a / b)
                if s < 1 or (a - 1) // s + 1 != b:
                    self.error("E-SHAPE", f"{name}: no strided 1×1 projection maps the input {fmt_shape(x)} to the "
                               f"body output {fmt_shape(y)} ({dim} {a} → {b})", span, scope,
                               hint="the body must keep the size or divide it by a whole stride; "
                               "otherwise give the shortcut layers explicitly")
                    raise _Abort
                strides.append(s)
            op = Conv()
            params = op.validate_params({"out": y[0], "k": 1, "stride": (strides[0], strides[1])})
        else:
            self.error("E-SHAPE", f"{name}: cannot add the input {fmt_shape(x)} to the body output {fmt_shape(y)}",
                       span, scope, hint="the body must not flatten its input")
            raise _Abort
        return self._add_node(op, params, scope.child_name("shortcut"), [inp], [x], span, scope, role="shortcut")

    def _c_dense_concat(self, item: Item, scope: _Scope, local: str, inp: str) -> Value:
        name = scope.child_name(local)
        inner = self._open_group(name, "dense-concat", None, item.span, scope, inp)
        body = self.run_body(item.args, item.raw, item.op, inner, inp)
        if body is None:
            raise _Abort
        concat = get_op("concat")
        assert concat is not None
        out_name = self._add_node(concat, None, inner.child_name("concat"), [inp, body],
                                  [self.shapes[inp], self.shapes[body]], item.span, inner, role="dense")
        self._close_group(name, out_name)
        return out_name


def _required(op: Op) -> list[str]:
    return [f"{k}: ..." for k in op.required_params()]


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return type(v).__name__


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and (isinstance(default, float) or isinstance(value, int))
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True
