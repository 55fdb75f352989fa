"""Eject: an analysed graph → standalone, readable PyTorch source that imports only torch.

``archspec build SPEC --emit-python model.py`` writes one ``nn.Module`` class per spec block (one per
distinct configuration, with the inferred channel counts written in) and one for the network.
Composites (``sequence``, ``residual-add``, ``inception-branch``, ...) become plain code in the
enclosing ``forward``, and their modules sit in ``nn.Module`` containers, so the emitted model has
exactly the ``state_dict`` keys of :func:`archspec.build` and loads its weights.  Every line of
``forward`` carries a comment with the spec line it came from and the output shape.

The constructor calls are read back from the modules the op lowerings build (so plugin ops whose
lowering returns a ``torch.nn`` module are supported too), in the model :func:`archspec.lower_torch.lower`
builds: the activations it runs in place (:func:`archspec.lower_torch.inplace_nodes`) are written as
``nn.ReLU(inplace=True)`` etc., and the sums it accumulates in place as ``a.add_(b)``, the same
choices.  Modules from :mod:`archspec.layers` (``LayerNorm2d``, ``ChannelLinear``, ``ChannelShuffle``,
``ChannelSlice``, ``LayerScale``, ``StochasticDepth``) are written as calls of their classes, whose
source (and the helper functions they use) is copied into the file, so it still imports only torch.
A plugin op says how to write its module with an emit hook (:meth:`archspec.ops.Op.emit` returning
:class:`archspec.ops.Emit`): the class and function definitions it needs are copied in the same way
and the constructor arguments written as literals.  Any other module cannot be written as torch-only
code: ``E-EMIT``, naming the first node that uses the op.

No spec text is ever written as code.  Names reach the source only as checked identifiers (ASCII,
``re.fullmatch``, not a keyword; any other segment of a node's path is written as a ``repr()`` string
through ``getattr``/``add_module``), constructor arguments only as checked literals, docstrings
(descriptions, block arguments, file names) only through :func:`_doc_literal`, which escapes
quotes, backslashes and every non-printable character, and comments only as printable text.
"""

from __future__ import annotations

import ast
import inspect
import keyword
import math
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArchspecError, Diagnostic, Note, Span
from .init import source_lines
from .ir import Graph, Group, Node
from .ops import Emit, Op, Shape, fmt_shape, is_builtin

__all__ = ["emit_python", "emit_python_to", "module_code", "module_source", "node_code"]

_SKIP_ARGS = {"self", "device", "dtype"}
#: Ops written as expressions in ``forward`` rather than as modules.
_FUNCTIONAL = ("add", "mul", "concat")


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_identifier(text: str) -> bool:
    """``text`` can be written as a Python name: an ASCII identifier (the whole string) and not a keyword."""
    return _IDENT.fullmatch(text) is not None and not keyword.iskeyword(text)


def _camel(name: str) -> str:
    """A class name from a spec name: ``conv_block``/``conv-block`` → ``ConvBlock``; ``none`` → ``None_``."""
    parts = re.split(r"[^A-Za-z0-9]+", name)
    out = "".join(p[:1].upper() + p[1:] for p in parts if p)
    if not out or not out[0].isalpha():
        out = "Net" + out
    return out + "_" if keyword.iskeyword(out) else out


def _doc_literal(text: str) -> str:
    """A triple-quoted string literal whose value is exactly ``text`` (for docstrings built from spec text).

    Newlines stay as they are (the text reads as written); backslashes, a quote that could end the
    literal (one followed by another quote, or the last character), and every non-printable character
    (NUL, CR, tab, U+2028, lone surrogates, ...) are escaped.
    """
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"' if i + 1 == len(text) or text[i + 1] == '"' else ch)
        elif ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])
    return '"""' + "".join(out) + '"""'


def _comment(text: str) -> str:
    """Text for a ``#`` comment: one line of printable characters (anything else becomes ``?``)."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _attr(base: str, path: str) -> str:
    """Expression for the submodule at dotted ``path`` below ``base``: ``self.b1.conv1``, or ``getattr(self, 'class')``."""
    expr = base
    for part in path.split("."):
        expr = f"{expr}.{part}" if _is_identifier(part) else f"getattr({expr}, {part!r})"
    return expr


def _set_attr(base: str, path: str, value: str) -> str:
    """Statement registering ``value`` as the submodule at dotted ``path`` below ``base``."""
    parent, _, leaf = path.rpartition(".")
    owner = _attr(base, parent) if parent else base
    return f"{owner}.{leaf} = {value}" if _is_identifier(leaf) else f"{owner}.add_module({leaf!r}, {value})"


def _literal(value: Any, where: str = "", span: Span | None = None, *, collapse: bool = True) -> str:
    """Python literal for a constructor argument; anything but plain data is refused (``E-EMIT``).

    With ``collapse`` (``torch.nn`` arguments), a tuple of equal ints is written as one int
    (``kernel_size=(3, 3)`` → ``3``), as ``torch.nn`` constructors accept.
    """
    if collapse and isinstance(value, tuple) and value and all(type(v) is int and v == value[0] for v in value):
        value = value[0]  # kernel_size=(3, 3) → 3
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({repr(value)!r})"
    if isinstance(value, (tuple, list)):
        items = [_literal(v, where, span, collapse=collapse) for v in value]
        if isinstance(value, list):
            return f"[{', '.join(items)}]"
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    raise ArchspecError([
        Diagnostic("E-EMIT", f"cannot write '{where}' as source: an argument is a {type(value).__name__}, "
                   "not plain data", span)
    ])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and not isinstance(b, tuple):
        return all(v == b for v in a)
    if isinstance(b, tuple) and not isinstance(a, tuple):
        return all(v == a for v in b)
    return isinstance(a, bool) is isinstance(b, bool) and bool(a == b)


def _emit_error(message: str, span: Span | None, hint: str | None = None) -> ArchspecError:
    return ArchspecError([Diagnostic("E-EMIT", message, span, hint)])


#: Names the ejected file defines itself: copied definitions may not take them.
_RESERVED = frozenset({"torch", "nn", "F", "Tensor", "annotations"})


def _definition(obj: Any, where: str, span: Span | None) -> tuple[str, str]:
    """``(name, source)`` of a module-level class or function, copied into the ejected file.

    The source is the object's own (``inspect.getsource``, dedented): one ``class`` or ``def``
    statement whose name is the object's ``__name__``.
    """
    name = getattr(obj, "__name__", None)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)) or not isinstance(name, str) or not _is_identifier(name):
        raise _emit_error(f"cannot write '{where}': an emit definition must be a class or a function, got {obj!r}", span)
    if name in _RESERVED:
        raise _emit_error(f"cannot write '{where}': a definition may not be named '{name}' (the ejected file "
                          "imports torch, nn, F and Tensor under those names)", span)
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError) as exc:
        raise _emit_error(f"cannot write '{where}': the source of {name} is not available ({exc})", span,
                          "emit definitions must be defined in a .py file") from None
    try:
        tree = ast.parse(source)
    except SyntaxError:  # pragma: no cover - inspect returned a fragment
        raise _emit_error(f"cannot write '{where}': the source of {name} does not parse on its own", span) from None
    if (len(tree.body) != 1 or not isinstance(tree.body[0], (ast.ClassDef, ast.FunctionDef))
            or tree.body[0].name != name):
        raise _emit_error(f"cannot write '{where}': the source of {name} is not one class or function definition "
                          f"named {name}", span, "define emit definitions at the top level of a module")
    return name, source.rstrip() + "\n"


def _layer_definitions(cls: type) -> list[tuple[str, str]]:
    """The source of an :mod:`archspec.layers` class and of the archspec.layers helpers it uses, helpers first."""
    from . import layers

    order: list[tuple[str, str]] = []
    seen: set[str] = set()

    def visit(obj: Any) -> None:
        name, source = _definition(obj, "", None)
        if name in seen:
            return
        seen.add(name)
        for other in layers.__all__:
            if other != name and re.search(rf"\b{re.escape(other)}\b", source):
                visit(getattr(layers, other))
        order.append((name, source))

    visit(cls)
    return order


def _call_args(cls: type, module: Any, where: str, span: Span | None, collapse: bool) -> list[str]:
    """The constructor arguments of ``module``, read back from its attributes (named like the parameters)."""
    args: list[str] = []
    keyword_only = False
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name in _SKIP_ARGS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name == "bias" and hasattr(module, "bias"):
            value: Any = module.bias is not None
        elif hasattr(module, name):
            value = getattr(module, name)
        elif param.default is not param.empty:
            continue
        else:
            raise _emit_error(f"cannot write '{where}': {cls.__name__} does not keep its argument '{name}'", span)
        if param.default is param.empty and not keyword_only:
            args.append(_literal(value, where, span, collapse=collapse))
            continue
        keyword_only = True
        if param.default is not param.empty and _same(value, param.default):
            continue
        if not _is_identifier(name):  # pragma: no cover - torch's own parameter names
            raise _emit_error(f"cannot write '{where}': argument name {name!r}", span)
        args.append(f"{name}={_literal(value, where, span, collapse=collapse)}")
    return args


def module_code(module: Any, where: str, span: Span | None) -> tuple[str, list[tuple[str, str]]]:
    """Python source constructing a module equal to ``module``, and the definitions it needs.

    A ``torch.nn`` module gives ``nn.Conv2d(1, 6, 5, padding=2)`` and no definitions; a module of
    :mod:`archspec.layers` gives ``LayerScale((64, 1, 1), 1e-06)`` and the ``(name, source)`` of
    its class and helpers.  Anything else is an ``E-EMIT`` error.
    """
    cls = type(module)
    import torch.nn

    if getattr(torch.nn, cls.__name__, None) is cls:
        return f"nn.{cls.__name__}({', '.join(_call_args(cls, module, where, span, True))})", []
    from . import layers

    if cls.__module__ == layers.__name__ and getattr(layers, cls.__name__, None) is cls:
        return f"{cls.__name__}({', '.join(_call_args(cls, module, where, span, False))})", _layer_definitions(cls)
    raise _emit_error(
        f"cannot write '{where}' as torch-only code: its lowering is {cls.__module__}.{cls.__qualname__}, "
        "not a torch.nn module", span,
        "emit-python writes torch.nn modules itself; a plugin op lowering to its own module needs an emit hook "
        "(Op.emit returning archspec.ops.Emit; see docs/plugins.md)")


def module_source(module: Any, where: str, span: Span | None) -> str:
    """Python source constructing an equivalent module, e.g. ``nn.Conv2d(1, 6, 5, padding=2)`` (see :func:`module_code`)."""
    return module_code(module, where, span)[0]


def _emit_hook_code(op: Op, em: Emit, where: str, span: Span | None) -> tuple[str, list[tuple[str, str]]]:
    """The constructor call and definitions an :class:`~archspec.ops.Emit` describes, checked."""
    defs = [_definition(obj, where, span) for obj in em.definitions]
    defined = {name for name, _ in defs}
    parts = em.call.split(".") if isinstance(em.call, str) else []
    if not parts or not all(_is_identifier(part) for part in parts) or parts[0] not in {"nn", "torch", "F"} | defined:
        raise _emit_error(
            f"cannot write '{where}': op '{op.name}' emits a call of {em.call!r}, which is neither torch/nn/F.<name> "
            "nor a class among its definitions", span,
            "Emit.call names a torch.nn class ('nn.PixelShuffle') or a class passed in Emit.definitions")
    if not isinstance(em.args, (tuple, list)) or not isinstance(em.kwargs, dict):
        raise _emit_error(f"cannot write '{where}': Emit.args must be a tuple and Emit.kwargs a dict", span)
    args = [_literal(a, where, span, collapse=False) for a in em.args]
    for key, value in em.kwargs.items():
        if not isinstance(key, str) or not _is_identifier(key):
            raise _emit_error(f"cannot write '{where}': keyword argument name {key!r}", span)
        args.append(f"{key}={_literal(value, where, span, collapse=False)}")
    return f"{em.call}({', '.join(args)})", defs


def node_code(op: Op, params: Any, in_shapes: list[Shape], out: Shape, module: Any, where: str,
              span: Span | None) -> tuple[str, list[tuple[str, str]]]:
    """``(constructor expression, [(name, source), ...] definitions)`` for one node's module.

    Uses the op's emit hook (:meth:`~archspec.ops.Op.emit`) when it returns an
    :class:`~archspec.ops.Emit`, else reads the call back from ``module`` (:func:`module_code`).  An
    exception from a plugin's hook, or a result that is not an ``Emit``, is ``E-PLUGIN``.
    """
    try:
        em = op.emit(params, in_shapes, out)
        if em is not None and not isinstance(em, Emit):
            from .plugins import PluginError

            raise PluginError(f"returned {type(em).__name__}, not archspec.ops.Emit or None")
    except Exception as exc:
        if is_builtin(op):
            raise
        from .plugins import hook_failure

        message, hint = hook_failure(op, "emit", exc)
        raise ArchspecError([Diagnostic("E-PLUGIN", f"{where}: {message}", span, hint)]) from None
    if em is None:
        return module_code(module, where, span)
    return _emit_hook_code(op, em, where, span)


@dataclass
class _Item:
    """One statement of a forward: a leaf node, a merge, or a call of a child block class."""

    out: str  # full name of the value produced
    inputs: tuple[str, ...]
    node: Node | None = None
    group: Group | None = None


@dataclass
class _Scope:
    """The network or one block instance emitted as a class."""

    prefix: str  # "" for the network, else the group name
    input: str
    output: str
    items: list[_Item] = field(default_factory=list)


class _Emitter:
    def __init__(self, graph: Graph, model: Any) -> None:
        self.graph = graph
        self.model = model
        self.order = {name: i for i, name in enumerate(graph.nodes)}
        self.members: dict[str, list[str]] = {}
        for gname in graph.groups:
            prefix = gname + "."
            self.members[gname] = [n for n in graph.nodes if n.startswith(prefix)]
        self.classes = [g for g in graph.groups.values() if g.kind == "block" and self._self_contained(g)]
        self.class_names = {g.name for g in self.classes}
        self.groups_by_output: dict[str, list[Group]] = {}
        for g in graph.groups.values():
            self.groups_by_output.setdefault(g.output, []).append(g)
        self.code: dict[str, str] = {}  # node name → constructor expression
        self.definitions: dict[str, str] = {}  # name → source copied into the file, in order of first use
        from .lower_torch import inplace_nodes

        self.inplace = inplace_nodes(graph)  # the model's in-place choices; here: which adds accumulate in place
        self._constructors()

    def _constructors(self) -> None:
        """Every node's constructor call, in graph order; the problems, one per op at its first node."""
        from .ops import get_op

        problems: dict[str, list[Diagnostic]] = {}
        for node in self.graph.nodes.values():
            if node.op in _FUNCTIONAL:
                continue
            op = get_op(node.op)
            module = self.model
            for part in node.name.split("."):
                module = module._modules[part]
            try:
                if op is None:  # pragma: no cover - the IR only holds registered ops
                    raise _emit_error(f"cannot write '{node.name}': no op '{node.op}'", node.span)
                expr, defs = node_code(op, node.params, [self.graph.shape_of(i) for i in node.inputs], node.shape,
                                       module, node.name, node.span)
                for name, source in defs:
                    if self.definitions.setdefault(name, source) != source:
                        raise _emit_error(f"cannot write '{node.name}': two different definitions are named '{name}'",
                                          node.span, "rename one of the classes or functions the ops emit")
            except ArchspecError as exc:
                problems.setdefault(node.op, []).extend(exc.diagnostics[:1])
                continue
            self.code[node.name] = expr
        if problems:
            diags = []
            for op_name, found in problems.items():
                first = found[0]
                if len(found) > 1:
                    more = Note(f"{len(found) - 1} more node{'s' if len(found) > 2 else ''} of op '{op_name}' "
                                "cannot be written either")
                    first = Diagnostic(first.code, first.message, first.span, first.hint, first.severity,
                                       (*first.notes, more))
                diags.append(first)
            raise ArchspecError(diags)

    # --- structure ----------------------------------------------------------------------------

    def _self_contained(self, group: Group) -> bool:
        """A block instance can be its own class when it reads one value and only its output is read outside."""
        members = self.members[group.name]
        if not members or group.output not in members:
            return False
        idx = [self.order[m] for m in members]
        if max(idx) - min(idx) + 1 != len(idx):
            return False
        inside = set(members)
        external = {i for m in members for i in self.graph.nodes[m].inputs if i not in inside}
        if external != {group.input}:
            return False
        for name, node in self.graph.nodes.items():
            if name not in inside and any(i in inside and i != group.output for i in node.inputs):
                return False
        return self.graph.output not in inside or self.graph.output == group.output

    def _class_of(self, group_name: str) -> str:
        """The innermost class group at or above ``group_name`` ("" = the network)."""
        name = group_name
        while name:
            if name in self.class_names:
                return name
            name = self.graph.groups[name].parent
        return ""

    def scope(self, prefix: str) -> _Scope:
        if prefix:
            g = self.graph.groups[prefix]
            sc = _Scope(prefix, g.input, g.output)
        else:
            sc = _Scope("", "input", self.graph.output)
        seen_children: set[str] = set()
        for node in self.graph.nodes.values():
            owner = self._class_of(node.group)
            if owner == prefix:
                if not prefix or node.name.startswith(prefix + "."):
                    sc.items.append(_Item(node.name, node.inputs, node=node))
                continue
            # Is the node inside a child class of this scope?  Find the class right below `prefix`.
            child = owner
            while child and self._class_of(self.graph.groups[child].parent) != prefix:
                child = self._class_of(self.graph.groups[child].parent)
            if not child or (prefix and not child.startswith(prefix + ".")):
                continue
            if child not in seen_children:
                seen_children.add(child)
                g = self.graph.groups[child]
                sc.items.append(_Item(g.output, (g.input,), group=g))
        return sc

    # --- text -----------------------------------------------------------------------------------

    def _rel(self, scope: _Scope, name: str) -> str:
        return name[len(scope.prefix) + 1:] if scope.prefix else name

    def _where(self, span: Span | None) -> str:
        return f"{Path(span.path).name}:{span.line}" if span else ""

    def _value_owner(self, scope: _Scope, value: str) -> str:
        """The innermost group inside ``scope`` whose output ``value`` is (e.g. ``branch2``), else the node."""
        best = value
        for g in self.groups_by_output.get(value, ()):
            inside = not scope.prefix or g.name.startswith(scope.prefix + ".")
            if g.output == value and inside and g.name != scope.prefix and (best == value or len(g.name) > len(best)):
                best = g.name
        return best

    def _var_names(self, scope: _Scope) -> dict[str, str]:
        """Variable per value: ``x`` along a chain, a short unique name where a value is reused later."""
        uses: dict[str, list[int]] = {}
        for i, item in enumerate(scope.items):
            for src in item.inputs:
                uses.setdefault(src, []).append(i)
        uses.setdefault(scope.output, []).append(len(scope.items))

        def chained(value: str, position: int) -> bool:
            return uses.get(value, []) == [position + 1]

        names: dict[str, str] = {}
        taken = {"x", "inp", "self", "torch", "nn", "getattr", "super"}
        names[scope.input] = "x" if chained(scope.input, -1) else "inp"
        taken.add(names[scope.input])
        for i, item in enumerate(scope.items):
            if chained(item.out, i):
                names[item.out] = "x"
                continue
            parts = self._rel(scope, self._value_owner(scope, item.out)).split(".")
            for k in range(1, len(parts) + 1):
                cand = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts[-k:]))
                if not _is_identifier(cand):
                    cand = "v_" + cand
                if cand not in taken:
                    break
            else:
                base, n = cand, 2
                while f"{base}_{n}" in taken:
                    n += 1
                cand = f"{base}_{n}"
            taken.add(cand)
            names[item.out] = cand
        return names

    def body(self, scope: _Scope, class_name_of: dict[str, str]) -> tuple[list[str], list[str]]:
        """``__init__`` and ``forward`` lines of a scope."""
        init: list[str] = []
        made: set[str] = set()

        def containers(path: str) -> None:
            parts = path.split(".")
            for k in range(1, len(parts)):
                sub = ".".join(parts[:k])
                if sub not in made:
                    made.add(sub)
                    full = f"{scope.prefix}.{sub}" if scope.prefix else sub
                    group = self.graph.groups.get(full)
                    what = (group.block or group.kind) if group else "container"
                    where = self._where(group.span if group else None)
                    init.append(_set_attr("self", sub, "nn.Module()") + f"  # {_comment(f'{what}, {where}')}")

        names = self._var_names(scope)
        fwd: list[str] = []
        for item in scope.items:
            var = names[item.out]
            args = [names[i] for i in item.inputs]
            if item.group is not None:
                rel = self._rel(scope, item.group.name)
                containers(rel)
                init.append(_set_attr("self", rel, f"{class_name_of[item.group.name]}()"))
                shape = fmt_shape(self.graph.shape_of(item.out))
                note = f"{shape}, block '{item.group.block}' at {self._where(item.group.span)}"
                fwd.append(f"{var} = {_attr('self', rel)}({args[0]})  # {_comment(note)}")
                continue
            node = item.node
            assert node is not None
            comment = f"  # {_comment(f'{fmt_shape(node.shape)}, {self._where(node.span)}')}"
            if node.op == "add" and node.name in self.inplace:  # as archspec.build's forward: a.add_(b)
                k = self.inplace[node.name]
                fwd.append(f"{var} = {args[k]}" + "".join(f".add_({a})" for j, a in enumerate(args) if j != k) + comment)
            elif node.op == "add":
                fwd.append(f"{var} = {' + '.join(args)}{comment}")
            elif node.op == "mul":
                fwd.append(f"{var} = {' * '.join(args)}{comment}")
            elif node.op == "concat":
                fwd.append(f"{var} = torch.cat([{', '.join(args)}], dim=1){comment}")
            else:
                rel = self._rel(scope, node.name)
                containers(rel)
                init.append(_set_attr("self", rel, self.code[node.name]))
                module = self.model  # the spec's initialisation, right after the layer is made (as archspec.build does)
                for part in node.name.split("."):
                    module = module._modules[part]
                init.extend(source_lines(self.graph, node, _attr("self", rel), module, _literal, _comment))
                fwd.append(f"{var} = {_attr('self', rel)}({', '.join(args)}){comment}")
        fwd.append(f"return {names[scope.output]}")
        return init, fwd


def _class_text(name: str, doc: str, init: Iterable[str], fwd: Iterable[str], arg: str) -> str:
    lines = [f"class {name}(nn.Module):", f"    {_doc_literal(doc)}", "", "    def __init__(self) -> None:",
             "        super().__init__()"]
    lines += [f"        {line}" for line in init]
    lines += ["", f"    def forward(self, {arg}: torch.Tensor) -> torch.Tensor:"]
    lines += [f"        {line}" for line in fwd]
    return "\n".join(lines) + "\n"


def emit_python(graph: Graph) -> str:
    """Standalone PyTorch source for an analysed graph (imports torch to read the lowered modules)."""
    from . import __version__
    from .lower_torch import lower

    model = lower(graph, device="meta")
    em = _Emitter(graph, model)
    # Children first (reverse creation order), so a parent's text can name its children's classes.
    variant_of: dict[str, int] = {}  # group name → index in `variants`
    variants: list[dict[str, Any]] = []
    token = "\x00{}\x00"
    for g in reversed(em.classes):
        sc = em.scope(g.name)
        refs = {c.group.name: token.format(variant_of[c.group.name]) for c in sc.items if c.group is not None}
        init, fwd = em.body(sc, refs)
        arg = "x" if em._var_names(sc)[sc.input] == "x" else "inp"
        args = ", ".join(f"{k}={v!r}" for k, v in g.args.items())
        key = (g.block, tuple(init), tuple(fwd), arg)
        for i, v in enumerate(variants):
            if v["key"] == key:
                variant_of[g.name] = i
                v["groups"].append(g)
                break
        else:
            variant_of[g.name] = len(variants)
            variants.append({"key": key, "groups": [g], "init": init, "fwd": fwd, "arg": arg, "args": args,
                             "block": g.block or g.kind})
    # Name variants in execution order: Residual, Residual2, ...
    order = sorted(range(len(variants)), key=lambda i: em.order[em.members[variants[i]["groups"][-1].name][0]])
    taken: set[str] = set()

    def class_name(base: str) -> str:
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}{n}"
        taken.add(name)
        return name

    if em.definitions:  # copied classes and the imports they use keep their names
        taken.update(em.definitions, ("F", "Tensor"))
    names = {i: class_name(_camel(variants[i]["block"])) for i in order}
    model_name = _camel(graph.name)
    model_name = class_name(model_name + "Net" if model_name in taken else model_name)

    def resolve(text: str) -> str:
        return re.sub("\x00(\\d+)\x00", lambda m: names[int(m.group(1))], text)

    top = em.scope("")
    top_init, top_fwd = em.body(top, {c.group.name: token.format(variant_of[c.group.name])
                                      for c in top.items if c.group is not None})
    top_arg = "x" if em._var_names(top)["input"] == "x" else "inp"

    # Emit children before their users: post-order from the network's direct children.
    emitted: list[int] = []

    def visit(i: int) -> None:
        if i in emitted:
            return
        for line in variants[i]["init"]:
            for m in re.finditer("\x00(\\d+)\x00", line):
                visit(int(m.group(1)))
        emitted.append(i)

    for line in top_init:
        for m in re.finditer("\x00(\\d+)\x00", line):
            visit(int(m.group(1)))

    src = Path(graph.path).name
    module_doc = (
        f"{graph.name}: standalone PyTorch model generated by archspec {__version__} from {src}.\n\n"
        + (f"{graph.description}\n\n" if graph.description else "")
        + f"Input {fmt_shape(graph.input_shape)} (plus the batch dimension), output {fmt_shape(graph.output_shape)}.\n"
        "The comments name the spec line of each layer and its output shape (without the batch dimension).\n"
    )
    if em.definitions:
        parts = [_doc_literal(module_doc) + "\n\nfrom __future__ import annotations\n\nimport torch\n"
                 "from torch import Tensor, nn\nfrom torch.nn import functional as F\n"]
        parts += list(em.definitions.values())
    else:
        parts = [_doc_literal(module_doc) + "\n\nimport torch\nfrom torch import nn\n"]
    for i in emitted:
        v = variants[i]
        used = ", ".join(f"{g.name} ({em._where(g.span)})"
                         for g in sorted(v["groups"], key=lambda g: em.order[em.members[g.name][0]]))
        doc = f"Block '{v['block']}'" + (f" with {v['args']}" if v["args"] else "") + f"; instances: {used}."
        body = _class_text(names[i], doc, v["init"], v["fwd"], v["arg"])
        parts.append(resolve(body))
    doc = graph.description or f"The {graph.name} network."
    parts.append(resolve(_class_text(model_name, doc, top_init, top_fwd, top_arg)))
    text = "\n\n".join(parts)
    try:
        compile(text, f"{model_name}.py", "exec")
    except SyntaxError as exc:  # pragma: no cover - every part is checked above
        raise _emit_error(f"the ejected source does not compile: {exc}", Span(graph.path, 1, 1)) from None
    return text


def emit_python_to(graph: Graph, path: str | Path, *, protect: Iterable[str | Path] = ()) -> str:
    """Write the emitted source to ``path`` and return the text.

    ``path`` is checked before the source is generated, then written by :func:`archspec.fsutil.write_atomic`
    (atomically for a regular file, never over a ``protect``-ed input file such as the spec or its imports).
    """
    from .fsutil import check_output, write_atomic

    protect = tuple(protect)
    check_output(path, protect=protect)
    text = emit_python(graph)
    write_atomic(path, text, protect=protect)
    return text
