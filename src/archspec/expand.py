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

import heapq
import itertools
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import ValidationError

from .errors import ArchspecError, Diagnostic, Note, Span, did_you_mean
from .expr import ExprError, InputShape, evaluate, is_expression, references
from .ir import Graph, Group, Node
from .models import MAX_WIDTH
from .ops import Conv, Linear, Op, Shape, ShapeError, check_kinds, fmt_shape, get_op, is_builtin
from .plugins import checked_counts, checked_label, checked_shape, hook_failure
from .source import LocMap, LocSeq, span_of
from .spec import COMPOSITES, Item, SpecDocument, body_items, parse_item, pydantic_diagnostics

__all__ = ["MAX_NESTING", "MAX_NODES", "MAX_STEPS", "MAX_VALUE_ELEMENTS", "expand"]

#: Most primitive nodes one spec may expand to (real networks have a few thousand at most).
MAX_NODES = 100_000
#: Deepest nesting of block instances and composites.
MAX_NESTING = 64
#: Most expansion steps one spec may take: every item visited (pass-throughs and skipped items too),
#: every copy of a ``repeat``, every group opened (block instance, composite, branch, repeat), every
#: primitive node and every element of a value bound to a parameter or an op.  Real networks take four
#: to eight steps per node, so 100,000 nodes fit; this bounds the work of specs that expand to few
#: nodes, such as nested repeats of pass-throughs.  The product of nested repeat counts is checked
#: against it before expanding.
MAX_STEPS = 1_000_000
#: Most elements (list items and mapping entries, nested ones included) in one parameter value, block
#: argument or op argument, counted before the value is bound or copied.
MAX_VALUE_ELEMENTS = 10_000
#: At most this many "did you mean" hints per expansion, each comparing at most _SUGGEST_FROM names.
_SUGGESTIONS = 50
_SUGGEST_FROM = 1_000
#: A node name's local part: an ASCII identifier (``fullmatch``: no trailing newline slips through).
_LOCAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Attributes of ``torch.nn.Module`` and of archspec's model and container classes: a node named so could not
#: be registered as a submodule (``model.forward`` must stay the method), so such names are E-NAME errors.
#: Kept here as text because this stage never imports torch; tests/test_emit_fuzz.py checks it against torch.
MODULE_ATTRIBUTES = frozenset("""
    T_destination add_module apply bfloat16 buffers call_super_init children code compile cpu cuda double dump_patches
    eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half intermediates ipu kind
    load_state_dict modules mtia named_buffers named_children named_modules named_parameters node_names parameters
    register_backward_hook register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook register_load_state_dict_pre_hook
    register_module register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu zero_grad
    _apply _backward_hooks _backward_pre_hooks _buffers _call_impl _compiled_call_impl _forward_hooks
    _forward_hooks_always_called _forward_hooks_with_kwargs _forward_pre_hooks _forward_pre_hooks_with_kwargs
    _get_backward_hooks _get_backward_pre_hooks _get_name _is_full_backward_hook _load_from_state_dict
    _load_state_dict_post_hooks _load_state_dict_pre_hooks _maybe_warn_non_full_backward_hook _modules _named_members
    _non_persistent_buffers_set _parameters _register_load_state_dict_pre_hook _register_state_dict_hook
    _replicate_for_data_parallel _save_to_state_dict _slow_forward _state_dict_hooks _state_dict_pre_hooks _version
    _wrapped_call_impl
""".split())


def _module_attribute(name: str) -> bool:
    """Whether the last part of a node name clashes with a module attribute (see :data:`MODULE_ATTRIBUTES`)."""
    local = name.rpartition(".")[2]
    return local in MODULE_ATTRIBUTES or local.startswith(("__", "_archspec"))


#: A value flowing between items: the name of the node that produced it, or None when unknown.
Value = str | None
#: A body's structure: its items, the index of each named one, what each reads, their references, the run order.
_Plan = tuple[list[Item], dict[str, int], list[list[int]], list[list[tuple[str, Span]] | None], list[int]]


@dataclass
class _Scope:
    """Where an item is being expanded: the enclosing group, parameter values and instance chain."""

    group: str
    env: Mapping[str, Any]
    notes: tuple[Note, ...]
    depth: int
    counters: dict[str, int] = field(default_factory=dict)
    #: How many times this scope is expanded: the product of the enclosing repeat counts.
    mult: int = 1
    #: In a copy of a repeated composite: the counters of block instances and composites, shared by all
    #: copies so that they are numbered on (``dense_concat2`` holds ``dense_layer2``); ops restart per copy.
    shared: dict[str, int] | None = None

    def child_name(self, local: str) -> str:
        return f"{self.group}.{local}" if self.group else local

    def auto_name(self, base: str, group: bool = False) -> str:
        counters = self.shared if group and self.shared is not None else self.counters
        n = counters.get(base, 0) + 1
        counters[base] = n
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
    #: The shared counters for the next group opened (see :attr:`_Scope.shared`); set around each copy.
    _carry: dict[str, int] | None = None

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
        self.steps = 0  # expansion steps taken so far (see MAX_STEPS)
        self._checked_defaults: set[str] = set()  # blocks whose parameter defaults were size-checked
        self._uses: dict[str, dict[str, list[tuple[str, str, Span | None]] | None]] = {}  # see _param_uses
        self._plans: dict[int, tuple[Any, _Plan]] = {}  # id(body) → (body, its plan), shared by all instances
        self._block_sources: dict[str, LocMap] = {}
        self._suggestions_left = _SUGGESTIONS  # "did you mean" hints still to compute (see _suggest)

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

    # ------------------------------------------------------------------ limits
    def _step(self, span: Span | None, scope: _Scope | None, cost: int = 1) -> None:
        """Count ``cost`` expansion steps; stop the whole expansion (E-LIMIT) past :data:`MAX_STEPS`."""
        self.steps += cost
        if self.steps > MAX_STEPS:
            self.error("E-LIMIT", f"the spec takes more than {MAX_STEPS:,} expansion steps to expand (every item, "
                       "repeat copy, block instance, composite and bound value counts, not only the nodes)", span, scope,
                       hint="look for nested repeats, or blocks instantiated inside repeated blocks")
            raise ArchspecError(self._finish_diags())

    def _check_size(self, value: Any, span: Span | None, scope: _Scope | None, what: str) -> int:
        """Count the elements of ``value`` (stopping early); E-LIMIT when there are more than allowed."""
        n = _size(value, MAX_VALUE_ELEMENTS)
        if n > MAX_VALUE_ELEMENTS:
            self.error("E-LIMIT", f"{what} has more than {MAX_VALUE_ELEMENTS:,} elements (list items and mapping entries, "
                       "nested ones included)", span, scope, hint="parameter values are small settings such as "
                       "channel lists; a value this large is usually an alias repeated by mistake")
            raise _Abort
        return n

    def _suggest(self, word: str, candidates: Collection[str]) -> str | None:
        """"did you mean" for a misspelt name, within a budget: a spec with thousands of unknown names
        among thousands of nodes would otherwise spend minutes comparing every pair."""
        if self._suggestions_left <= 0:
            return None
        self._suggestions_left -= 1
        names = [c for c in candidates if c[:1] == word[:1] and abs(len(c) - len(word)) <= 2] \
            if len(candidates) > _SUGGEST_FROM else candidates  # compare with names of about the same length and start
        return did_you_mean(word, itertools.islice(names, _SUGGEST_FROM))

    def _child(self, scope: _Scope, local: Any, span: Span | None) -> str:
        """The dotted name of ``local`` inside ``scope``; E-NAME unless ``local`` is an identifier.

        Every node and group name is made here, whatever its source (``name:``, a graph key, a branch
        key, an automatic name), so no empty, dotted or otherwise malformed name reaches the IR.
        """
        if not isinstance(local, str) or not _LOCAL_NAME.fullmatch(local):
            self.error("E-NAME", f"node name {local!r} is not an identifier (ASCII letters, digits and _, not starting "
                       "with a digit)", span, scope, hint="rename it", key=f"name:{local!r}")
            raise _Abort
        self._check_name(local, span, scope)
        return scope.child_name(local)

    # ------------------------------------------------------------------ entry
    def run(self, overrides: Mapping[str, Any], input_shape: Shape | None) -> Graph:
        if not isinstance(overrides, Mapping):
            raise ArchspecError.single("E-OVERRIDE", f"overrides must be a mapping of parameter names to values, got "
                                       f"{_type_name(overrides)}", span_of(self.data, "params") or span_of(self.data))
        env = self._top_params(overrides)
        self._top_env = env
        given = input_shape if input_shape is not None else self.doc.input
        shape = tuple(given) if isinstance(given, (list, tuple)) else ()
        if len(shape) not in (1, 3) or any(not isinstance(d, int) or isinstance(d, bool) or not 0 < d <= MAX_WIDTH
                                           for d in shape):
            raise ArchspecError.single("E-INPUT", f"input shape must be C,H,W or F positive integers up to "
                                       f"{MAX_WIDTH:,}, got {_short(given)}", span_of(self.data, "input"))
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
        unknown = [k for k in overrides if not isinstance(k, str) or k not in params]
        if unknown:
            diags = []
            for k in unknown:
                hint = self._suggest(k, params) if isinstance(k, str) else None
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
            where = f"--set {k}" if k in overrides else f"parameter '{k}'"
            if k in overrides and _has_huge_number(value):
                raise ArchspecError.single("E-LIMIT", f"{where}: a number in the value has more than {MAX_NUMBER_DIGITS} digits",
                                           span_of(holder, k), hint="no layer needs such a number; check for a typo")
            try:
                self._check_size(value, span_of(holder, k) or span_of(self.data), None, where)
                env[k] = self._subst(value, env, None)
                self._check_size(env[k], span_of(holder, k) or span_of(self.data), None, f"the value of {where}")
            except _Abort:
                raise ArchspecError(self._finish_diags()) from None
            except ExprError as exc:
                raise ArchspecError.single("E-EXPR", f"parameter '{k}': {exc}", span_of(holder, k)) from None
            if k in overrides and default is not None and not _same_kind(default, env[k]):
                raise ArchspecError.single("E-PARAM-TYPE",
                                           f"--set {k}: expected {_type_name(default)}, got {_type_name(env[k])} "
                                           f"({_short_repr(env[k])})", span_of(holder, k))
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
        """Like :meth:`_subst` but reports the innermost failing expression at its own position.

        The value is bounded before it is copied (at most :data:`MAX_VALUE_ELEMENTS` elements) and so
        is the result (an expression may build a list of large parameters); its elements count as
        expansion steps, so binding a large value in every copy of a repeat is bounded too.
        """
        if isinstance(value, (list, dict)):
            n = _size(value, MAX_VALUE_ELEMENTS)
            if n > MAX_VALUE_ELEMENTS:
                self._check_size(value, span_of(container, key), scope, f"{what}: the value of '{key}'")
            self._step(span_of(container, key), scope, n)
        result = self._subst_tree(value, env, shape, scope, container, key, what)
        if isinstance(result, (list, dict)) and not isinstance(value, (list, dict)):  # an expression made a list
            self._step(span_of(container, key), scope,
                       self._check_size(result, span_of(container, key), scope, f"{what}: the value of '{key}'"))
        elif isinstance(result, (list, dict)) and _size(result, MAX_VALUE_ELEMENTS) > MAX_VALUE_ELEMENTS:
            self._check_size(result, span_of(container, key), scope, f"{what}: the value of '{key}'")
        return result

    def _subst_tree(self, value: Any, env: Mapping[str, Any], shape: Shape | None, scope: _Scope,
                    container: Any, key: Any, what: str) -> Any:
        if isinstance(value, str) and is_expression(value):
            try:
                return evaluate(value, env, InputShape(shape) if shape is not None else None)
            except ExprError as exc:
                self.error("E-EXPR", f"{what}: in '{value}': {exc}", span_of(container, key), scope,
                           key=f"{value}:{exc}")
                raise _Abort from None
        if isinstance(value, list):
            return [self._subst_tree(v, env, shape, scope, value, i, what) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self._subst_tree(v, env, shape, scope, value, k, what) for k, v in value.items()}
        return value

    def shape(self, value: Value) -> Shape | None:
        return None if value is None else self.shapes.get(value)

    # ------------------------------------------------------------------ bodies
    def run_body(self, body: Any, holder: Any, key: Any, scope: _Scope, inp: Value, *, output: str | None = None,
                 output_span: Span | None = None, inputs: Mapping[str, str] | None = None) -> Value:
        """Expand a ``layers`` list or ``graph`` mapping; return the value of its output item.

        In a ``layers`` list an item may only read earlier items (``from``); a ``graph`` mapping may
        name its nodes in any order.  Each item counts one expansion step, even when it turns out to be
        a pass-through.  The body's structure (parsed items, references, order) is worked out once per
        body and reused by every instance of it.  ``inputs`` are the named inputs of a block's body
        (name → value, the first being ``inp``): the items read them like nodes.
        """
        self._step(span_of(holder, key), scope, len(body) if isinstance(body, (LocSeq, LocMap)) else 1)
        cached = self._plans.get(id(body))
        if cached is not None and cached[0] is body:
            plan = cached[1]
        else:
            plan = self._plan_body(body, holder, key, scope, tuple(inputs or ()))
            if plan is None:
                return None
            self._plans[id(body)] = (body, plan)
        parsed, declared, deps, all_refs, order = plan
        if inputs:
            self._warn_unused_inputs(inputs, holder, parsed, deps, all_refs, scope)
        if not parsed:
            return inp
        if output is not None and output not in declared:
            hint = self._suggest(output, declared)
            self.error("E-OUTPUT", f"output '{output}' is not a node of this graph", output_span, scope,
                       (hint + " " if hint else "") + "nodes: " + _listing(declared, len(declared)))
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
                    sources = [known_input if r == "input" else inputs[r] if inputs and r in inputs
                               else values[declared[r]] for r, _ in refs]
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

    def _plan_body(self, body: Any, holder: Any, key: Any, scope: _Scope, input_names: tuple[str, ...] = ()) -> _Plan | None:
        """Parse a body's items and order them by their references; None (reported) when that fails.

        ``input_names`` are the named inputs of a block's body: references to them, like ``input``,
        read no item of the body.
        """
        layers_form = not isinstance(body, LocMap)
        parsed: list[Item] = []
        for raw, cont, idx, gname in body_items(body, holder, key):
            try:
                parsed.append(parse_item(raw, cont, idx, graph_name=gname))
            except ArchspecError as exc:  # pragma: no cover - already reported by validate_document
                for d in exc.diagnostics:
                    self.error(d.code, d.message, d.span, scope, d.hint)
                return None
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
                    if ref == "input" or ref in input_names:
                        continue
                    if ref not in declared:
                        hint = self._suggest(ref, [*declared, "input", *input_names]) if self._suggestions_left > 0 \
                            else None
                        self.error("E-UNKNOWN-NODE", f"unknown node '{ref}'", ref_span, scope,
                                   (hint + " " if hint else "") + "nodes here: "
                                   + _listing(itertools.chain(("input", *input_names), declared),
                                              len(declared) + 1 + len(input_names)))
                        ok = False
                    elif layers_form and declared[ref] >= i:
                        later = "its own output" if declared[ref] == i else (
                            f"'{ref}', which comes later (line {parsed[declared[ref]].span.line})")
                        self.error("E-FROM", f"this item reads {later}: in 'layers' an item can only read earlier "
                                   "items", ref_span, scope,
                                   hint="move the item after the one it reads, or write the network as a 'graph' "
                                   "mapping, where nodes may come in any order")
                        ok = False
                    else:
                        d.append(declared[ref])
            deps.append(d)
        if not ok:
            return None
        order = self._topo_order(parsed, deps, scope)
        if order is None:
            return None
        return parsed, declared, deps, all_refs, order

    def _item_refs(self, item: Item) -> list[tuple[str, Span]] | None:
        """Explicit inputs of an item (``from`` or a merge's list), or None for 'the previous item'."""
        spans_from = item.raw if isinstance(item.raw, LocMap) else None
        if item.sources is not None:
            src = spans_from["from"] if spans_from is not None else None
            if item.source_names is not None and isinstance(src, LocMap):  # a block's named inputs, in its order
                block = self.doc.blocks.get(item.op)
                names = [n for n in (block.inputs or []) if n in src] if block is not None else list(src)
                return [(str(src[n]), span_of(src, n) or item.span) for n in names]
            return [(s, span_of(src, j) if isinstance(src, LocSeq) else span_of(spans_from, "from") or item.span)
                    for j, s in enumerate(item.sources)]
        if item.op in self.doc.blocks or item.op.replace("_", "-") in COMPOSITES:
            return None  # blocks and composites take their input from the previous item
        op = get_op(item.op)
        if op is not None and op.arity != 1 and isinstance(item.args, LocSeq):
            return [(str(s), span_of(item.args, j) or item.span) for j, s in enumerate(item.args)]
        return None

    def _topo_order(self, items: list[Item], deps: list[list[int]], scope: _Scope) -> list[int] | None:
        """Kahn's algorithm, stable in written order; report each cycle by exactly its members."""
        indeg = [0] * len(items)
        users: list[list[int]] = [[] for _ in items]
        for i, d in enumerate(deps):
            for j in d:
                users[j].append(i)
                indeg[i] += 1
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
            # The stuck nodes are the cycles plus everything downstream of them: report only the cycles.
            for cycle in _cycles(deps, {i for i, n in enumerate(indeg) if n > 0}):
                names = [items[i].name or f"item {i + 1}" for i in cycle]
                if len(names) > 40:  # a very long cycle: its first and last members, and how many between
                    names = [*names[:20], f"… ({len(names) - 40:,} more) …", *names[-20:]]
                self.error("E-CYCLE", "the graph has a cycle: " + " → ".join([*names, names[0]]), items[cycle[0]].span,
                           scope, hint="every node must be computable from 'input' and earlier nodes")
            return None
        return order

    def _warn_unused_inputs(self, inputs: Mapping[str, str], holder: Any, items: list[Item], deps: list[list[int]],
                            all_refs: list[list[tuple[str, Span]] | None], scope: _Scope) -> None:
        """Warn about a named input of a block that its body never reads (the first is also read as 'input')."""
        read = {r for refs in all_refs if refs for r, _ in refs}
        first = next(iter(inputs))
        if "input" in read or any(not d and r is None for d, r in zip(deps, all_refs, strict=True)):
            read.add(first)
        seq = holder.get("inputs") if isinstance(holder, LocMap) else None
        for j, name in enumerate(inputs):
            if name not in read:
                self.error("W-UNUSED", f"input '{name}' is never read", span_of(seq, j) if seq is not None else None,
                           scope, hint="read it with 'from' (or in a merge), or remove it from 'inputs'",
                           severity="warning")

    def _warn_unused(self, items: list[Item], deps: list[list[int]], out_index: int, scope: _Scope) -> None:
        used = {j for d in deps for j in d}
        for i, item in enumerate(items):
            if i != out_index and i not in used and item.name is not None:
                self.error("W-UNUSED", f"node '{item.name}' is never used", item.span, scope,
                           hint="connect it with 'from', make it the 'output', or remove it", severity="warning")

    def _skip_item(self, item: Item, scope: _Scope) -> None:
        """An input is unknown (an earlier error): consume auto-name counters so names stay stable.

        A repeat count that reads the (unknown) input shape is not evaluated: that would only report
        the earlier error again, as "'in' is not available".  Other problems of the count are reported.
        """
        self._step(item.span, scope)
        if item.repeat is not None and is_expression(item.repeat):
            try:
                if "in" in references(item.repeat):
                    return
            except ExprError:
                pass  # a syntax error: _repeat_count reports it
        try:
            n = self._repeat_count(item, scope, None)
        except _Abort:
            return
        if item.name is not None:
            return
        base = self._base_name(item)
        counters = scope.shared if scope.shared is not None and self._is_group_item(item) else scope.counters
        counters[base] = counters.get(base, 0) + n

    # ------------------------------------------------------------------ items
    def _base_name(self, item: Item) -> str:
        return item.op.replace("-", "_")

    def _is_group_item(self, item: Item) -> bool:
        """Whether the item opens a group (a block instance or a composite) rather than adding an op."""
        return item.op in self.doc.blocks or item.op.replace("_", "-") in COMPOSITES

    def _repeat_count(self, item: Item, scope: _Scope, shape: Shape | None) -> int:
        """The item's repeat count, checked against the limits before anything is expanded.

        ``scope.mult`` copies of this item are expanded in all (the product of the enclosing repeats),
        so ``scope.mult × n`` copies at one step each must fit in :data:`MAX_STEPS`.
        """
        if item.repeat is None:
            return 1
        raw = item.raw
        n = self._subst_located(item.repeat, scope.env, shape, scope, raw, "repeat", "repeat")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            self.error("E-REPEAT", f"repeat must be a whole number ≥ 0, got {_short(n)}", span_of(raw, "repeat"), scope)
            raise _Abort
        if n > MAX_NODES:
            self.error("E-LIMIT", f"repeat {n} is more than the {MAX_NODES:,}-node limit", span_of(raw, "repeat"), scope)
            raise _Abort
        if scope.mult * n > MAX_STEPS:
            self.error("E-LIMIT", f"repeat {n:,} here, inside enclosing repeats that make {scope.mult:,} copies of it, "
                       f"expands {scope.mult * n:,} copies: more than the limit of {MAX_STEPS:,} expansion steps",
                       span_of(raw, "repeat"), scope, hint="the counts of nested repeats multiply; reduce one of them")
            raise _Abort
        return n

    def run_item(self, item: Item, scope: _Scope, sources: list[str]) -> Value:
        """Expand one item (with its ``when`` and ``repeat``) on the given input values.

        With ``repeat``, the first copy reads the item's inputs and each later copy reads the copy
        before it, so an item with several inputs (a merge, or ``from: [a, b]``) cannot be repeated
        more than once; ``name`` only groups the copies and changes nothing of this.
        """
        first = sources[0]
        if item.when is not None:
            cond = self._subst_located(item.when, scope.env, self.shape(first), scope, item.raw, "when", "when")
            if not isinstance(cond, bool):
                self.error("E-WHEN", f"'when' must be true or false, got {_short(cond)}", span_of(item.raw, "when"),
                           scope)
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
        if n > 1 and len(sources) > 1:
            self.error("E-REPEAT", f"an item with {len(sources)} inputs cannot be repeated: the first copy would read "
                       "them all, but each later copy reads only the copy before it", span_of(item.raw, "repeat"), scope,
                       hint="merge the inputs in an item of their own (add or concat), then repeat the item after it")
            raise _Abort
        if item.name is not None:  # an explicit name that cannot be a submodule is reported at the name itself
            self._check_name(item.name, span_of(item.raw, "name") if isinstance(item.raw, LocMap) and "name" in item.raw
                             else item.span, scope)
        base = self._base_name(item)
        value: Value = None
        current = sources
        group = self._is_group_item(item)
        # The copies of a repeated composite number the groups inside them on, copy after copy.
        carry: dict[str, int] | None = {} if item.repeat is not None and group and item.op not in self.doc.blocks \
            else None
        if item.repeat is not None and item.name is not None:
            name_span = span_of(item.raw, "name") if isinstance(item.raw, LocMap) and "name" in item.raw else item.span
            gname = self._child(scope, item.name, name_span)
            inner = self._open_group(gname, "repeat", None, item.span, scope, first, {"repeat": n}, mult=scope.mult * n)
            for _ in range(n):
                self._step(item.span, inner)
                self._carry = carry
                try:
                    value = self._one(item, inner, inner.auto_name(base, group), current, inner.mult)
                finally:
                    self._carry = None
                if value is None:
                    break
                current = [value]
            self._close_group(gname, value)
            return value
        for _ in range(n):
            self._step(item.span, scope)
            name = item.name if item.name is not None else scope.auto_name(base, group)
            self._carry = carry
            try:
                value = self._one(item, scope, name, current, scope.mult * n)
            finally:
                self._carry = None
            if value is None:
                break
            current = [value]
        return value

    def _one(self, item: Item, scope: _Scope, local: str, sources: list[str], mult: int) -> Value:
        """One copy of an item; a group it opens is expanded ``mult`` times in all (see :attr:`_Scope.mult`)."""
        if not sources:
            return None
        op_name = item.op
        if op_name in self.doc.blocks:
            return self._instantiate(item, scope, local, sources, mult)
        comp = op_name.replace("_", "-")
        if comp in COMPOSITES:
            if len(sources) != 1:
                self.error("E-FROM", f"'{comp}' takes one input, got {len(sources)}", item.span, scope)
                raise _Abort
            return getattr(self, "_c_" + comp.replace("-", "_"))(item, scope, local, sources[0], mult)
        op = get_op(op_name)
        if op is None:  # pragma: no cover - reported by validate_document
            self.error("E-UNKNOWN-OP", f"unknown op or block '{op_name}'", item.span, scope)
            raise _Abort
        return self._primitive(op, item, scope, local, sources)

    # ------------------------------------------------------------------ primitives
    def _primitive(self, op: Op, item: Item, scope: _Scope, local: str, sources: list[str]) -> Value:
        name = self._child(scope, local, item.span)
        in_shapes = [self.shapes[s] for s in sources]
        if op.arity is None and len(sources) < 2:
            self.error("E-FROM", f"{name}: '{op.name}' merges two or more inputs, got {len(sources)}", item.span,
                       scope, hint=f"write '{op.name}: [a, b]' with node names")
            raise _Abort
        if op.arity == 1 and len(sources) != 1:
            self.error("E-FROM", f"{name}: '{op.name}' takes one input, got {len(sources)}", item.span, scope,
                       hint="merge inputs first with 'add' or 'concat'")
            raise _Abort
        if op.arity is not None and op.arity > 1 and len(sources) != op.arity:  # a plugin op on exactly N inputs
            names = ", ".join(f"x{i + 1}" for i in range(op.arity))
            self.error("E-FROM", f"{name}: '{op.name}' takes exactly {op.arity} inputs, got {len(sources)}", item.span,
                       scope, hint=f"give it {op.arity} node names: 'from: [{names}]' (or '{op.name}: [{names}]' "
                       "when it needs no parameters)")
            raise _Abort
        args: Any
        if op.arity != 1 and (isinstance(item.args, LocSeq) or item.args is None or not op.param_names()):
            args = {}  # the inputs were given as a list of node names (or the op takes no parameters)
        else:
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
            for d in pydantic_diagnostics(exc, raw_args, model=op.params_model):
                hint = d.hint
                if d.code == "E-MISSING":
                    hint = hint or f"e.g. {op.name}: {{{', '.join(_required(op))}}}"
                self.error(d.code, f"{name}: {op.name}: {d.message}", d.span, scope, hint,
                           key=f"{op.name}:{d.message}")
            raise _Abort from None
        except Exception as exc:  # a plugin's parameter model raised: E-PLUGIN (archspec's own models never do)
            self._plugin_failed(op, "params_model", exc, name, item.span, scope)
        return self._add_node(op, params, name, sources, in_shapes, item.span, scope)

    def _add_node(self, op: Op, params: Any, name: str, sources: list[str], in_shapes: list[Shape],
                  span: Span | None, scope: _Scope, role: str = "") -> str:
        plugin = not is_builtin(op)
        try:
            check_kinds(op, in_shapes)  # an input of a kind the op does not take (conv on tokens): E-SHAPE
            shape = op.infer(params, in_shapes)
            if plugin:
                shape = checked_shape(shape)
        except ShapeError as exc:
            self.error("E-SHAPE", f"{name}: {exc.message}", span, scope, exc.hint, key=exc.message)
            raise _Abort from None
        except Exception as exc:  # a plugin's shape rule raised: E-PLUGIN, never a traceback (built-in ops re-raise)
            self._plugin_failed(op, "infer", exc, name, span, scope)
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
        self._step(span, scope)
        if plugin:
            hook = "count"
            try:
                counts = checked_counts(op.count(params, in_shapes, shape))
                hook = "label"
                label = checked_label(op.label(params))
            except Exception as exc:
                self._plugin_failed(op, hook, exc, name, span, scope)
        else:
            counts, label = op.count(params, in_shapes, shape), op.label(params)
        node = Node(name=name, op=op.name, params=params, inputs=tuple(sources), shape=shape, counts=counts,
                    span=span, group=scope.group, label=label, role=role)
        self.nodes[name] = node
        self.shapes[name] = shape
        if scope.group:
            self.groups[scope.group].children.append(name)
        return name

    def _plugin_failed(self, op: Op, hook: str, exc: Exception, name: str, span: Span | None, scope: _Scope) -> None:
        """Report an exception from a plugin op's ``hook`` as ``E-PLUGIN`` and abort the item; re-raise for built-in ops."""
        if is_builtin(op):
            raise exc
        message, hint = hook_failure(op, hook, exc)
        self.error("E-PLUGIN", f"{name}: {message}", span, scope, hint, key=f"{op.name}:{hook}:{message}")
        raise _Abort from None

    def _check_name(self, name: str, span: Span | None, scope: _Scope) -> None:
        """Refuse a node or group name that the torch module tree cannot hold (see :data:`MODULE_ATTRIBUTES`)."""
        if _module_attribute(name):
            local = name.rpartition(".")[2]
            where = f"'{name}': " if name != local else ""
            self.error("E-NAME", f"{where}'{local}' is an attribute of every torch module and cannot name a node",
                       span, scope, hint=f"rename it, e.g. '{local.strip('_')}_'" if local.strip("_") else "rename it")
            raise _Abort

    # ------------------------------------------------------------------ groups
    def _open_group(self, name: str, kind: str, block: str | None, span: Span | None, scope: _Scope, inp: Value,
                    args: dict[str, Any] | None = None, env: Mapping[str, Any] | None = None,
                    notes: tuple[Note, ...] | None = None, mult: int | None = None) -> _Scope:
        """Open the group ``name`` (one expansion step); ``mult`` is how often it is expanded in all."""
        self._step(span, scope)
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
        shared, self._carry = self._carry, None  # only the repeated composite's own scope shares the counters
        return _Scope(group=name, env=scope.env if env is None else env,
                      notes=scope.notes if notes is None else notes, depth=scope.depth + 1,
                      mult=scope.mult if mult is None else mult, shared=shared)

    def _close_group(self, name: str, value: Value) -> None:
        self.groups[name].output = value or ""

    def _instantiate(self, item: Item, scope: _Scope, local: str, sources: list[str], mult: int) -> Value:
        block_name = item.op
        block = self.doc.blocks[block_name]
        name = self._child(scope, local, item.span)
        if block_name not in self._checked_defaults:  # defaults are shared, not copied: check them once
            holder = self._block_source(block_name).get("params")
            for pname, default in block.params.items():
                self._check_size(default, span_of(holder, pname), scope, f"block '{block_name}': the default of '{pname}'")
            self._checked_defaults.add(block_name)
        input_names = block.inputs or []
        if len(sources) != max(1, len(input_names)):
            if input_names:
                listed = ", ".join(input_names)
                self.error("E-FROM", f"{name}: block '{block_name}' takes {len(input_names)} inputs ({listed}), got "
                           f"{len(sources)}", span_of(item.raw, "from") if isinstance(item.raw, LocMap) and "from" in
                           item.raw else item.span, scope,
                           hint=f"bind them in order with 'from: [{listed}]' (node names), or by name with "
                           f"'from: {{{', '.join(f'{n}: ...' for n in input_names)}}}'")
            else:
                self.error("E-FROM", f"{name}: block '{block_name}' takes one input, got {len(sources)}", item.span, scope,
                           hint="merge the inputs first with 'add' or 'concat', or name the block's inputs with "
                           "'inputs: [a, b]' in its definition")
            raise _Abort
        inp = sources[0]
        in_shape = self.shapes[inp]
        args = item.args if isinstance(item.args, LocMap) else {}
        bound: dict[str, Any] = {}
        bad = False
        for pname, default in block.params.items():
            if pname in args:
                value = self._subst_located(args[pname], scope.env, in_shape, scope, args, pname, name)
                fits, why = (True, None) if default is None or is_expression(default) else \
                    self._fits(block_name, pname, value)
                if not fits:
                    self.error("E-PARAM-TYPE", f"{name}: block '{block_name}' parameter '{pname}' expects "
                               f"{_type_name(default)} (like its default {_short(default)}), got {_type_name(value)} "
                               f"({_short(value)})", span_of(args, pname), scope, hint=why)
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
        self._step(item.span, scope, len(self._top_env))  # the instance's environment is a copy of the top one
        env = {**self._global_env(scope), **bound}
        # Defaults may be expressions over earlier parameters and the input shape.
        holder = self._block_source(block_name).get("params")
        for pname in block.params:
            if pname not in args and is_expression(bound[pname]):
                env[pname] = self._subst_located(bound[pname], env, in_shape, scope, holder, pname, name)
        note = Note(f"in '{name}', an instance of block '{block_name}'" + self._bindings(item, input_names, sources),
                    item.span)
        inner = self._open_group(name, "block", block_name, item.span, scope, inp, bound, env, (note, *scope.notes),
                                 mult=mult)
        bdata = self._block_source(block_name)  # may live in an imported file
        key = "layers" if "layers" in bdata else "graph"
        out = self.run_body(bdata[key], bdata, key, inner, inp, output=block.output, output_span=span_of(bdata, "output"),
                            inputs=dict(zip(input_names, sources, strict=True)) if input_names else None)
        self._close_group(name, out)
        return out

    def _bindings(self, item: Item, input_names: list[str], sources: list[str]) -> str:
        """`` with low = down4 (1024×16×16), skip = down3 (512×32×32)``: what an instance binds to a block's named
        inputs, as written in its ``from``, with their shapes (empty for a block with one unnamed input)."""
        if not input_names:
            return ""
        written = item.sources or ()
        if item.source_names is not None:
            written = tuple(written[item.source_names.index(n)] for n in input_names if n in item.source_names)
        parts = [f"{n} = {w} ({fmt_shape(self.shapes[v])})"
                 for n, w, v in zip(input_names, written, sources, strict=False)]
        return " with " + ", ".join(parts)

    def _fits(self, block_name: str, pname: str, value: Any, depth: int = 0) -> tuple[bool, str | None]:
        """Whether ``value`` may be passed to parameter ``pname`` of block ``block_name``, and if not, a hint why.

        A value of the default's kind always may.  A value of another kind may when the body only ever
        passes the parameter whole to op (or inner block) arguments (``k: $k``) and every one of them
        takes the value: ``k: [1, 7]`` reaches a block whose ``k`` defaults to 3 when it feeds ``conv``'s
        ``k``, and ``pad: same`` one whose ``pad`` defaults to 1.  The op's model still validates the
        final value; this decides only whether the instance is refused up front (at its own line).
        """
        default = self.doc.blocks[block_name].params.get(pname)
        if default is not None and not is_expression(default) and _same_kind(default, value, pairs=False):
            return True, None
        uses = self._param_uses(block_name).get(pname)
        if uses is None:
            return False, f"'{pname}' is used inside an expression or a list in block '{block_name}', so it keeps " \
                "its default's kind"
        if not uses or depth >= MAX_NESTING:
            return False, None
        for target, key, span in uses:
            where = f" (line {span.line})" if span is not None else ""
            if target in self.doc.blocks:
                ok = key in self.doc.blocks[target].params and self._fits(target, key, value, depth + 1)[0]
                what = f"block '{target}' parameter '{key}'"
            else:
                op = get_op(target)
                ok = op is not None and _op_accepts(op, key, value)
                what = f"'{op.name if op is not None else target}' parameter '{key}'"
            if not ok:
                return False, f"'{pname}' is passed to {what}{where}, which does not take {_short(value)}"
        return True, None

    def _param_uses(self, block_name: str) -> dict[str, list[tuple[str, str, Span | None]] | None]:
        """Where each parameter of a block goes: ``[(op or block, argument, span), ...]`` for each op or inner block
        argument it is passed to whole (``k: $k``); None when it is also used any other way (inside a larger
        expression or a list, in ``repeat``/``when``, in another parameter's default).  Worked out once per block."""
        cached = self._uses.get(block_name)
        if cached is not None:
            return cached
        block = self.doc.blocks[block_name]
        bdata = self._block_source(block_name)
        uses: dict[str, list[tuple[str, str, Span | None]] | None] = {p: [] for p in block.params}

        def other(value: Any) -> None:
            for text in _expressions(value):
                try:
                    names = references(text)
                except ExprError:
                    continue  # reported where it is evaluated
                for n in names & uses.keys():
                    uses[n] = None

        def body(items: Any, holder: Any, key: Any) -> None:
            for raw, cont, idx, gname in body_items(items, holder, key):
                try:
                    item = parse_item(raw, cont, idx, graph_name=gname)
                except ArchspecError:
                    continue  # reported by validation
                other(item.repeat)
                other(item.when)
                comp, args = item.op.replace("_", "-"), item.args
                if item.op not in self.doc.blocks and comp in COMPOSITES:
                    if comp in ("sequence", "dense-concat") and isinstance(args, LocSeq):
                        body(args, item.raw, item.op)
                    elif comp == "inception-branch" and isinstance(args, (LocSeq, LocMap)):
                        for k in (args if isinstance(args, LocMap) else range(len(args))):
                            if isinstance(args[k], LocSeq):
                                body(args[k], args, k)
                    elif comp == "residual-add" and isinstance(args, LocMap):
                        for k in ("body", "shortcut"):
                            if isinstance(args.get(k), LocSeq):
                                body(args[k], args, k)
                elif isinstance(args, LocMap):
                    for k, v in args.items():
                        whole = _whole_name(v)
                        found = uses.get(whole) if whole is not None else None
                        if found is not None:
                            found.append((item.op, str(k), span_of(args, k)))
                        else:
                            other(v)
                else:
                    other(args)

        for default in block.params.values():
            other(default)
        key = "layers" if "layers" in bdata else "graph"
        if isinstance(bdata.get(key), (LocSeq, LocMap)):
            body(bdata[key], bdata, key)
        self._uses[block_name] = uses
        return uses

    def _block_source(self, name: str) -> LocMap:
        """The located YAML of block ``name`` (which may live in an imported file), looked up once."""
        src = self._block_sources.get(name)
        if src is None:
            src = self._block_sources[name] = self.doc.block_source(name)
        return src

    def _global_env(self, scope: _Scope) -> dict[str, Any]:
        """Block bodies see the top-level parameters, then their own."""
        return dict(self._top_env)

    # ------------------------------------------------------------------ composites
    def _c_sequence(self, item: Item, scope: _Scope, local: str, inp: str, mult: int) -> Value:
        name = self._child(scope, local, item.span)
        inner = self._open_group(name, "sequence", None, item.span, scope, inp, mult=mult)
        out = self.run_body(item.args, item.raw, item.op, inner, inp)
        self._close_group(name, out)
        return out

    def _c_inception_branch(self, item: Item, scope: _Scope, local: str, inp: str, mult: int) -> Value:
        name = self._child(scope, local, item.span)
        inner = self._open_group(name, "inception-branch", None, item.span, scope, inp, mult=mult)
        args = item.args
        branches = list(args.items()) if isinstance(args, LocMap) else [(f"branch{i + 1}", b) for i, b in enumerate(args)]
        outs: list[Value] = []
        for i, (bname, branch) in enumerate(branches):
            key = bname if isinstance(args, LocMap) else i
            try:
                bfull = self._child(inner, bname if isinstance(args, LocMap) else str(bname),
                                    span_of(args, key, key_position=True) if isinstance(args, LocMap) else span_of(args, key))
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

    def _c_residual_add(self, item: Item, scope: _Scope, local: str, inp: str, mult: int) -> Value:
        name = self._child(scope, local, item.span)
        inner = self._open_group(name, "residual-add", None, item.span, scope, inp, mult=mult)
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
        """The 1×1 conv (or linear, for flat tensors and per token) that makes ``x`` the shape of ``y``."""
        if (len(x) == 1 and len(y) == 1) or (len(x) == 2 and len(y) == 2 and x[0] == y[0]):  # flat, or per token
            op: Op = Linear()
            params: Any = op.validate_params({"out": y[-1]})
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

    def _c_dense_concat(self, item: Item, scope: _Scope, local: str, inp: str, mult: int) -> Value:
        name = self._child(scope, local, item.span)
        inner = self._open_group(name, "dense-concat", None, item.span, scope, inp, mult=mult)
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


#: Overrides passed from Python are refused when they hold an integer with more digits than this.
MAX_NUMBER_DIGITS = 100


def _has_huge_number(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` (plain data from an override) holds an integer too long to be a layer setting."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value.bit_length() > MAX_NUMBER_DIGITS * 10 // 3
    if isinstance(value, (list, tuple)) and depth < 64:
        return any(_has_huge_number(v, depth + 1) for v in value)
    if isinstance(value, dict) and depth < 64:
        return any(_has_huge_number(v, depth + 1) for v in value.values())
    return False


def _short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same_kind(default: Any, value: Any, *, pairs: bool = True) -> bool:
    """Whether ``value`` is of the kind of ``default`` (an int passes for a float, not the reverse).

    With ``pairs`` (a top-level parameter set with ``--set``), a number and an [h, w] pair of numbers
    count as one kind, as for the op parameters they may feed (``k: 3``, ``k: [1, 7]``); a block
    parameter decides that from its uses instead (:meth:`_Expander._fits`).
    """
    if pairs and isinstance(value, list) and len(value) == 2 and _is_number(default):
        return all(_same_kind(default, v) for v in value)
    if pairs and isinstance(default, list) and len(default) == 2 and all(map(_is_number, default)) and _is_number(value):
        return all(_same_kind(d, value) for d in default)
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


_WHOLE_NAME = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)|\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def _whole_name(value: Any) -> str | None:
    """``c`` for the expression ``$c`` or ``${c}`` (a parameter passed whole), else None."""
    m = _WHOLE_NAME.fullmatch(value) if isinstance(value, str) else None
    return (m.group(1) or m.group(2)) if m else None


def _expressions(value: Any) -> Iterable[str]:
    """Every expression string inside ``value`` (through lists and mappings, iteratively)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if is_expression(v):
            yield v
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def _op_accepts(op: Op, key: str, value: Any) -> bool:
    """Whether op parameter ``key`` takes ``value`` (by the op's own model; other parameters are not looked at)."""
    try:
        op.validate_params({key: value})
    except ValidationError as exc:
        return not any(e["loc"][:1] == (key,) for e in exc.errors())
    except Exception:  # a plugin's model that raises: let the op's own validation report it (E-PLUGIN)
        return True
    return True


def _size(value: Any, limit: int) -> int:
    """The elements of ``value``: list items and mapping entries, nested ones included (0 for a scalar).

    Stops counting once past ``limit``, so a huge value (or one that shares or contains itself) costs
    at most about ``limit`` steps to measure.
    """
    if not isinstance(value, (list, tuple, dict)):
        return 0
    n = 0
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        n += len(v)
        if n > limit:
            return n
        for x in v.values() if isinstance(v, dict) else v:
            if isinstance(x, (list, tuple, dict)):
                stack.append(x)
    return n


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about values that may be large."""
    text = repr(value) if _size(value, limit) <= limit else f"<{_type_name(value)} of more than {limit} elements>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listing(names: Iterable[str], total: int, limit: int = 20) -> str:
    """``a, b, c`` — the first ``limit`` of ``total`` names, then how many more (a hint must stay readable,
    and listing a huge body for every unknown reference in it would cost quadratic time)."""
    shown = ", ".join(itertools.islice(names, limit))
    return shown if total <= limit else f"{shown}, … ({total - limit:,} more)"


def _cycles(deps: list[list[int]], stuck: set[int]) -> list[list[int]]:
    """One cycle through each cyclic strongly connected component of the ``stuck`` nodes.

    ``deps[i]`` lists the nodes ``i`` reads.  Each cycle is given in data-flow order (each node reads
    the one before it, the first reads the last), starting at its earliest-written member; only
    nodes on that cycle are listed.  Iterative (Tarjan), so a long chain cannot exhaust the stack.
    """
    users: dict[int, list[int]] = {i: [] for i in stuck}
    for i in stuck:
        for j in deps[i]:
            if j in stuck:
                users[j].append(i)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    components: list[list[int]] = []
    for root in sorted(stuck):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, k = work.pop()
            if k == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            succ = users[v]
            if k < len(succ):
                work.append((v, k + 1))
                w = succ[k]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                components.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    cycles = []
    for comp in components:
        members = set(comp)
        start = min(comp)
        if len(comp) == 1 and start not in deps[start]:
            continue  # not on a cycle: only downstream of one
        # Shortest way round from ``start`` back to itself, following data flow inside the component.
        prev: dict[int, int] = {}
        frontier = [start]
        found = start in deps[start]
        while frontier and not found:
            nxt = []
            for v in frontier:
                for w in sorted(users[v]):
                    if w not in members or w in prev:
                        continue
                    prev[w] = v
                    if w == start:
                        found = True
                        break
                    nxt.append(w)
                if found:
                    break
            frontier = nxt
        path = [start]
        v = prev.get(start, start)
        while v != start:
            path.append(v)
            v = prev[v]
        cycles.append([path[0], *reversed(path[1:])])
    cycles.sort(key=lambda c: c[0])
    return cycles
