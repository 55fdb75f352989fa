"""Stage 5, *lower*: graph IR → ``torch.nn.Module``.  The only module that imports torch.

The model is an instance of a class generated for the network (``LeNet``, ``GoogLeNet``, …; a
subclass of :class:`ArchspecModule`) whose ``forward`` is straight-line Python: one call per node,
no interpreter loop, every intermediate dropped right after its last use (``model.code`` shows the
source; each line ends with the spec position it came from, and tracebacks show it too).  Activations
and residual sums run in place where the graph shows it safe (:func:`inplace_nodes`: the modules are
``nn.ReLU(inplace=True)`` etc. and the sum ``a.add_(b)``, as in torchvision), which saves a tensor
allocation each.  The submodule tree mirrors the spec: every block instance and composite is a
:class:`Block` container named as in the spec, so ``print(model)`` and ``state_dict()`` keys read like
the YAML (``b3.inception1.branch2.conv1.weight``), registered in execution order.

Why not a ``torch.fx.GraphModule``?  fx costs 60–100 µs per node to build (graph construction,
name uniquing, code generation and compilation on every model) and its forward fetches every layer
through ``nn.Module.__getattr__``.  Here the forward reads layers from ``_modules`` dicts (so model
surgery such as ``model.fc = nn.Linear(512, 10)`` is honoured), the class is generated once per
distinct network and cached, and building costs what constructing the layers costs.  The model
stays a plain module for the ecosystem: ``torch.fx.symbolic_trace``, ``torch.compile``,
``torch.export``, ``torch.jit.trace``, ``copy.deepcopy`` and pickling all work.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import keyword
import linecache
import re
import warnings
from collections.abc import Iterable
from typing import Any, ClassVar

with warnings.catch_warnings():
    # Without numpy (archspec does not need it), importing torch warns "Failed to initialize NumPy"
    # on every first command; that warning alone is silenced, and only while torch is imported.
    warnings.filterwarnings("ignore", message=r"Failed to initialize NumPy", category=UserWarning)
    import torch
    from torch import nn

from .errors import ArchspecError, Diagnostic, Span
from .init import ModuleInit, module_init, seeded
from .ir import DEFAULT_MAX_PARAMS, Graph, check_max_params
from .ops import Counts, Op, Shape, get_op, is_builtin

__all__ = ["ArchspecModule", "Block", "Lowering", "disable_inplace", "inplace_nodes", "lower", "release_points"]

# A step of the forward: (node name, kind, input names, spec position).  kind is "module" (call the
# submodule at the node's dotted path), "inplace" (the same, for an activation that overwrites its
# input: see inplace_nodes), "add" (sum the inputs), "add_" (the same, accumulated into the first input,
# which is overwritten), "mul" (multiply them, broadcasting) or "concat" (torch.cat on channels).
Step = tuple[str, str, tuple[str, ...], str]
Plan = tuple[str, tuple[Step, ...], str]  # (class name, steps, output node)
#: Ops that lower to an expression in the generated forward instead of a submodule.
FUNCTIONAL_OPS = ("add", "concat", "mul")
#: Activations that run in place where :func:`inplace_nodes` finds it safe (as torchvision builds them:
#: ``nn.ReLU(inplace=True)``, ``nn.ReLU6(inplace=True)``, ``nn.SiLU(inplace=True)``, ``nn.Hardswish(inplace=True)``).
#: relu, relu6, hardtanh and leaky-relu: their in-place backward reads the *result*
#: (``threshold_backward``/``hardtanh_backward``/``leaky_relu_backward`` with ``self_is_result``), and
#: the result tells apart exactly the inputs the input would (``y > 0`` iff ``x > 0``; ``min < y < max``
#: iff ``min < x < max``; leaky: ``y > 0`` iff ``x > 0`` for a slope ≥ 0, which the spec enforces), so
#: nothing extra is saved.  silu, hardswish, hardsigmoid and mish: their backward needs the input, and
#: autograd, when a gradient is needed, keeps a copy of it before the in-place op overwrites it (PyTorch's
#: ``original_self``): the gradient is exact and training saves as much as out of place (plus one copy,
#: as torchvision's), while inference skips the output allocation.  Either way the same kernel computes
#: the same values: outputs and gradients are bit-identical to the out-of-place op.
INPLACE_OPS = frozenset({"relu", "relu6", "hardtanh", "leaky-relu", "silu", "hardswish", "hardsigmoid", "mish"})
#: Producers whose output an in-place activation (or add) may overwrite: each always returns a newly
#: allocated tensor (never its input, a view of it, or a parameter; unlike identity, flatten, slice,
#: dropout or stochastic depth in eval mode, which return their input or a view of it), and its backward
#: reads its inputs and saved statistics but never its own output (unlike relu, sigmoid, tanh, softmax
#: or an in-place op, whose saved result would be overwritten: autograd would raise).
INPLACE_PRODUCERS = frozenset({"conv", "conv-transpose", "linear", "bn", "groupnorm", "add", "concat", "mul",
                               "layer-scale"})
#: Ops that return either their input itself or a fresh tensor, and whose backward never reads their
#: output (identity; dropout and stochastic depth: the input in eval mode, ``input * mask`` in training).
#: Their output may be overwritten when their input may: the overwritable value is followed through them.
INPLACE_PASS_THROUGH = frozenset({"identity", "dropout", "stochastic-depth"})


class Block(nn.Module):
    """Container for the modules of one block instance or composite; shows the block's name in ``print``.

    It holds submodules only: the top-level module's generated forward calls them directly.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def _get_name(self) -> str:
        return self.kind

    def forward(self, *args: Any) -> Any:
        """Not callable on its own: the generated forward of the whole model calls the leaves."""
        raise RuntimeError(f"'{self.kind}' is a container inside an archspec model; call the whole model instead")


class ArchspecModule(nn.Module):
    """Base class of every model archspec builds.

    Each network gets a subclass with a generated ``forward``; instances pickle and deep-copy by
    re-creating that class from its plan (plain data), like ``torch.fx.GraphModule`` does.
    """

    _archspec_plan: ClassVar[Plan]
    _archspec_source: ClassVar[str]
    _archspec_intermediates: ClassVar[Any] = None

    @property
    def code(self) -> str:
        """The Python source of the generated ``forward``."""
        return type(self)._archspec_source

    @property
    def node_names(self) -> list[str]:
        """The spec names of the graph's nodes, in execution order (keys of :meth:`intermediates`)."""
        return [step[0] for step in type(self)._archspec_plan[1]]

    def intermediates(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the network on ``x`` and return every node's output by spec name (feature extraction).

        Runs the same generated code as ``forward``, keeping each intermediate instead of dropping it;
        an activation that runs in place there gets a copy of its input here, and sums are not
        accumulated in place, so every value is returned as the out-of-place network computes it.
        """
        cls = type(self)
        if cls.__dict__.get("_archspec_intermediates") is None:
            source = _source(cls._archspec_plan, keep=True)
            cls._archspec_intermediates = _compile(source, "intermediates", f"{cls.__name__}.intermediates")
        return cls._archspec_intermediates(self, x)

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (_restore, (type(self)._archspec_plan,), self.__getstate__())


def _restore(plan: Plan) -> ArchspecModule:
    """Unpickling/deep-copy helper: an empty instance of the class for ``plan`` (state is set after)."""
    cls = _model_class(plan)
    return cls.__new__(cls)


def camel(name: str) -> str:
    """``inception-branch`` / ``conv_block`` → ``InceptionBranch`` / ``ConvBlock``."""
    parts = re.split(r"[-_\s]+", name)
    out = "".join(p[:1].upper() + p[1:] for p in parts if p)
    out = re.sub(r"\W", "", out)
    return out if out and out[0].isalpha() else "Net" + out


def lower(graph: Graph, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
          max_params: float | None = DEFAULT_MAX_PARAMS, seed: int | None = None) -> ArchspecModule:
    """Build the PyTorch module for a shape-inferred graph.

    ``device="meta"`` builds without allocating weight memory; ``dtype`` converts after building.
    Like :func:`archspec.build`, a graph with more than ``max_params`` parameter and buffer elements
    is refused (``E-TOO-LARGE``) before anything is allocated, unless ``device="meta"`` or
    ``max_params=None``.  The weights start as the graph's ``init`` says; ``seed`` makes them reproducible
    (see :func:`archspec.init.seeded`).
    """
    check_max_params(graph, max_params, device)
    return Lowering(graph).build(device=device, dtype=dtype, seed=seed)


class Lowering:
    """Everything about building a graph's module that does not depend on the weights.

    Made once per graph (the model class, and per layer its op, parameters and shapes, and the
    containers to create); :meth:`build` then only constructs modules, so rebuilding an unchanged
    spec (:func:`archspec.build` caches the ``Lowering`` with the graph) costs what constructing
    the layers costs.  The graph must not change afterwards.
    """

    __slots__ = ("cls", "elements", "inits", "inplace", "path", "steps")

    def __init__(self, graph: Graph) -> None:
        inplace = inplace_nodes(graph)
        self.cls = _model_class(_plan(graph, inplace))
        # (parent path, name) of the activations switched to in place after the modules are made
        self.inplace = tuple(name.rpartition(".")[::2] for name in inplace if graph.nodes[name].op not in FUNCTIONAL_OPS)
        total = graph.total
        self.path = graph.path
        self.elements = total.params + total.buffers  # what building allocates (for the out-of-memory error)
        # ("container", parent path, name, display name) or ("module", parent path, name, op, params, in, out)
        self.steps: list[tuple[Any, ...]] = []
        # step index → the node's initialisation (the spec's init), applied right after the module is made
        self.inits: dict[int, ModuleInit] = {}
        made: set[str] = set()
        for node in graph.nodes.values():
            if node.op in FUNCTIONAL_OPS:
                continue
            op = get_op(node.op)
            if op is None:  # pragma: no cover - the IR only holds registered ops
                raise RuntimeError(f"no op '{node.op}'")
            *prefix, leaf = node.name.split(".")
            for i, part in enumerate(prefix):
                path = ".".join(prefix[: i + 1])
                if path not in made:
                    made.add(path)
                    group = graph.groups.get(path)
                    kind = camel(group.block or group.kind) if group is not None else None
                    self.steps.append(("container", ".".join(prefix[:i]), part, kind))
            in_shapes = [graph.shape_of(i) for i in node.inputs]
            check = None if is_builtin(op) else (node.name, node.span, node.counts)  # plugin ops: checked when built
            self.steps.append(("module", ".".join(prefix), leaf, op, node.params, in_shapes, node.shape, check))
            init = module_init(graph, node)
            if init is not None:
                self.inits[len(self.steps) - 1] = init

    def build(self, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
              seed: int | None = None) -> ArchspecModule:
        """A new model with freshly initialised weights (as the spec's ``init`` says; ``seed``: reproducibly).

        No size guard here (callers check :func:`archspec.ir.check_max_params` first); running out
        of memory while allocating is an ``E-TOO-LARGE`` error, not a traceback.
        """
        if seed is not None:
            with seeded(seed, device):
                return self.build(device=device, dtype=dtype)
        try:
            with torch.device(device) if device is not None else contextlib.nullcontext():
                root = self.cls()
                where: dict[str, nn.Module] = {"": root}
                for index, step in enumerate(self.steps):
                    parent = where[step[1]]
                    if step[0] == "container":
                        child = Block(step[3]) if step[3] is not None else nn.Module()
                        parent.add_module(step[2], child)
                        where[f"{step[1]}.{step[2]}" if step[1] else step[2]] = child
                    else:
                        _, _, leaf, op, params, in_shapes, out, check = step
                        if check is None:
                            parent.add_module(leaf, op.lower(params, in_shapes, out))
                        else:
                            parent.add_module(leaf, _lower_plugin(op, params, in_shapes, out, *check))
                        if index in self.inits:  # each module re-initialised as soon as it exists, like --emit-python's
                            self.inits[index].apply(parent._modules[leaf])
                for parent_path, leaf in self.inplace:  # nn.ReLU(inplace=True) etc.: same module tree and state dict
                    where[parent_path]._modules[leaf].inplace = True
            if dtype is not None:
                root = root.to(dtype)
        except (MemoryError, RuntimeError) as exc:
            if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
                raise
            raise ArchspecError.single(
                "E-TOO-LARGE", f"out of memory while allocating the model's {self.elements:,} parameter and buffer "
                f"elements on {device or 'the default device'}", Span(self.path, 1, 1),
                hint="lower the limit with --max-params (max_params=) to refuse such models up front, inspect the "
                "model with 'archspec build --json' (device='meta'), or reduce its widths") from None
        return root


def _lower_plugin(op: Op, params: Any, in_shapes: list[Shape], out: Shape, name: str, span: Span | None,
                  counts: Counts) -> nn.Module:
    """``op.lower(...)`` for an op that is not archspec's own, checked against the graph's static counts.

    An exception from the plugin's ``lower`` (other than running out of memory), a result that is not
    an ``nn.Module``, or a module whose parameter or buffer elements differ from what the op's ``count``
    said (what the table, ``--json`` and ``--max-params`` use) is an ``E-PLUGIN`` error naming the
    node, the op and its plugin.
    """
    from .plugins import hook_failure, op_origin

    try:
        module = op.lower(params, in_shapes, out)
    except MemoryError:
        raise
    except Exception as exc:
        if isinstance(exc, RuntimeError) and "allocate" in str(exc):
            raise  # out of memory: E-TOO-LARGE, like any op
        message, hint = hook_failure(op, "lower", exc)
        raise ArchspecError([Diagnostic("E-PLUGIN", f"{name}: {message}", span, hint)]) from None
    if not isinstance(module, nn.Module):
        raise ArchspecError([Diagnostic(
            "E-PLUGIN", f"{name}: op '{op.name}' from {op_origin(op)}: lower() returned {type(module).__name__}, "
            "not a torch.nn.Module", span, "lower() must return the module computing the op (see docs/plugins.md)")])
    n_params = sum(t.numel() for t in module.parameters())
    n_buffers = sum(t.numel() for t in module.buffers())
    if (n_params, n_buffers) != (counts.params, counts.buffers):
        what = [f"{kind} elements: the module has {real:,}, count() says {static:,}"
                for kind, real, static in (("parameter", n_params, counts.params), ("buffer", n_buffers, counts.buffers))
                if real != static]
        raise ArchspecError([Diagnostic(
            "E-PLUGIN", f"{name}: op '{op.name}' from {op_origin(op)}: the built module disagrees with the op's static "
            f"counts ({'; '.join(what)}), so the table, --json and --max-params would be wrong", span,
            "the plugin must define count() returning Counts(params=..., buffers=...) equal to the numel() of its "
            "module's parameters and buffers; archspec.testing.check_op checks it (see docs/plugins.md)")])
    return module


# ------------------------------------------------------------------ the generated class


def inplace_nodes(graph: Graph) -> dict[str, int]:
    """The nodes that overwrite one of their inputs, decided from the graph alone: name → input index.

    An activation (one of archspec's own :data:`INPLACE_OPS`, built as ``nn.ReLU(inplace=True)`` etc.)
    overwrites its input, an ``add`` the input it accumulates into (``a.add_(b)``, as torchvision's
    residual ``out += identity``), when that input is the output of one of archspec's own
    :data:`INPLACE_PRODUCERS` (a fresh tensor no backward reads), possibly through
    :data:`INPLACE_PASS_THROUGH` ops, and no other node reads it (nor any value on the way), it is not
    the network's output and it has the node's output shape (no broadcasting).  The network input is
    never overwritten.  An ``add`` of two inputs may overwrite either (IEEE addition is commutative, so
    ``b + a`` is bit-identical to ``a + b``); one of three or more only its first, keeping the order of
    the additions.  :meth:`ArchspecModule.intermediates` gives in-place activations a copy of their input
    and adds out of place, so every value it returns is the one the out-of-place network computes.
    """
    readers: dict[str, int] = {}
    for node in graph.nodes.values():
        for name in node.inputs:
            readers[name] = readers.get(name, 0) + 1

    def overwritable(name: str, shape: Shape) -> bool:
        while True:
            source = graph.nodes.get(name)
            if (source is None or readers[name] != 1 or name == graph.output or source.shape != shape
                    or source.op not in INPLACE_PRODUCERS | INPLACE_PASS_THROUGH):
                return False
            op = get_op(source.op)
            if op is None or not is_builtin(op):  # a plugin may have replaced a built-in op's name
                return False
            if source.op in INPLACE_PRODUCERS:
                return True
            name = source.inputs[0]  # a pass-through op: what it returns may be its input

    out: dict[str, int] = {}
    for node in graph.nodes.values():
        if node.op not in INPLACE_OPS and node.op != "add":
            continue
        op = get_op(node.op)
        if op is None or not is_builtin(op):
            continue
        if node.op == "leaky-relu" and not getattr(node.params, "slope", -1) >= 0:
            continue  # pragma: no cover - the spec's parameter model already refuses a negative slope
        candidates = range(len(node.inputs)) if node.op == "add" and len(node.inputs) == 2 else range(1)
        for i in candidates:
            if overwritable(node.inputs[i], node.shape):
                out[node.name] = i
                break
    return out


def disable_inplace(model: ArchspecModule) -> ArchspecModule:
    """Make ``model`` compute everything out of place (it is changed, and returned).

    Its activation modules get ``inplace=False`` and its class becomes the one generated without
    in-place sums (same modules, state dict and results; pickling and copies keep the choice).  For
    what overwriting values gets in the way of: full backward hooks (Captum, Grad-CAM), forward hooks
    that keep a producer's output, or surgery that makes a producer return its input (``nn.Identity()``).
    """
    name, steps, output = type(model)._archspec_plan
    for step in steps:
        if step[1] == "inplace":
            model.get_submodule(step[0]).inplace = False
    plain = tuple((n, {"inplace": "module", "add_": "add"}.get(kind, kind), inputs, where)
                  for n, kind, inputs, where in steps)
    model.__class__ = _model_class((name, plain, output))
    return model


def _plan(graph: Graph, inplace: dict[str, int] | None = None) -> Plan:
    """The data the forward is generated from: node names, kinds, inputs and spec positions.

    ``inplace`` (:func:`inplace_nodes`) makes activations ``"inplace"`` and adds ``"add_"`` with the
    overwritten input first.
    """
    inplace = inplace or {}
    steps: list[Step] = []
    for node in graph.nodes.values():
        kind, inputs = (node.op if node.op in FUNCTIONAL_OPS else "module"), tuple(node.inputs)
        if node.name in inplace:
            i = inplace[node.name]
            kind, inputs = ("add_", (inputs[i], *inputs[:i], *inputs[i + 1:])) if kind == "add" else ("inplace", inputs)
        steps.append((node.name, kind, inputs, str(node.span) if node.span else ""))
    return (camel(graph.name), tuple(steps), graph.output)


_PRINTABLE = re.compile(r"[^\x20-\x7e]")  # spec positions go into comments: one printable ASCII line
_classes: dict[Plan, type[ArchspecModule]] = {}
_MAX_CLASSES = 256


def _model_class(plan: Plan) -> type[ArchspecModule]:
    """The model class for ``plan``: generated and compiled once, then reused."""
    cls = _classes.get(plan)
    if cls is None:
        source = _source(plan, keep=False)
        name = plan[0]
        forward = _compile(source, "forward", name)
        cls = type(name, (ArchspecModule,), {
            "forward": forward,
            "_archspec_plan": plan,
            "_archspec_source": source,
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"The network '{name}' compiled by archspec (``model.code`` shows its forward).",
        })
        if len(_classes) >= _MAX_CLASSES:
            _classes.pop(next(iter(_classes)))
        _classes[plan] = cls
    return cls


def _compile(source: str, fn_name: str, label: str) -> Any:
    """Compile generated source (never spec text: only identifiers and quoted names from the IR)."""
    digest = hashlib.blake2b(source.encode(), digest_size=6).hexdigest()
    filename = f"<archspec {label} {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"torch": torch, "__builtins__": builtins}
    # archspec's own generated code (identifiers and repr() literals only), never spec text
    exec(compile(source, filename, "exec"), namespace)
    return namespace[fn_name]


def _identifiers(names: Iterable[str], taken: set[str], *, private: bool = False) -> dict[str, str]:
    """A distinct ASCII Python identifier for each dotted name (``b1.conv`` → ``b1_conv``).

    Only ``private`` ones (the container variables) may start with an underscore, so they never
    collide with a node's variable.
    """
    out: dict[str, str] = {}
    for name in names:
        base = re.sub(r"[^0-9A-Za-z_]", "_", name)
        if not base or base[0].isdigit() or keyword.iskeyword(base) or (base.startswith("_") and not private):
            base = "v_" + base
        ident, k = base, 1
        while ident in taken:
            k += 1
            ident = f"{base}_{k}"
        taken.add(ident)
        out[name] = ident
    return out


def release_points(steps: tuple[Step, ...], output: str) -> dict[int, list[str]]:
    """Where the generated ``forward`` drops each intermediate: step index → names, in ``del`` order.

    A value lives exactly as long as it would in the same network written as a tree of
    ``nn.Module`` s: its scope is the innermost container holding its producer and all its readers,
    and it is released when the child of that scope that reads it last has returned (right after the
    reader itself when that is a layer of the scope). Values released together go innermost scope
    first, as nested calls return, and within a scope the newest first, as Python drops a tuple or
    list of them (``torch.cat([a, b])``). A hand-written module tree (torchvision's models, checked
    in ``tests/test_release.py``) frees in this order, and matching it matters more than it seems:
    on CPU, glibc reuses, trims and re-faults memory according to the order of frees, and freeing
    each value after its very last reader instead measured up to 1.29x slower at batch 32 with the
    same arithmetic (``benchmarks/README.md``, "Where the time goes"). The cost is at most one block
    input held during that block, as in the hand-written model.
    """
    index = {name: i for i, (name, _, _, _) in enumerate(steps)}
    readers: dict[str, list[int]] = {}
    last_in: dict[str, int] = {}  # container path → index of its last step
    for i, (name, _, inputs, _) in enumerate(steps):
        for a in inputs:
            readers.setdefault(a, []).append(i)
        parts = name.split(".")
        for k in range(1, len(parts)):
            last_in[".".join(parts[:k])] = i
    found: dict[int, list[tuple[int, int, str]]] = {}
    for value, reads in readers.items():
        if value == output:
            continue
        scope = value.split(".")[:-1] if value in index else []  # the producer's container ("input": the model)
        for r in reads:
            path = steps[r][0].split(".")[:-1]
            while scope != path[: len(scope)]:  # shrink to the innermost container holding this reader too
                scope = scope[:-1]
        last = max(reads)
        where = steps[last][0].split(".")
        if len(where) > len(scope) + 1:  # read inside a child container: free when that child returns
            last = max(last, last_in[".".join(where[: len(scope) + 1])])
        found.setdefault(last, []).append((-len(scope), -index.get(value, -1), value))
    return {i: [v for _, _, v in sorted(group)] for i, group in found.items()}


def _source(plan: Plan, *, keep: bool) -> str:
    """Python source of ``forward`` (``keep=False``) or of ``intermediates`` (``keep=True``).

    Names reach the source only as identifiers built by :func:`_identifiers`, as ``repr()`` string
    literals, or inside comments reduced to printable ASCII, so no spec text is ever executed.
    """
    _, steps, output = plan
    taken = {"self", "x", "torch"}
    var = _identifiers([s[0] for s in steps], taken)
    var["input"] = "x"
    body: list[str] = []
    containers: dict[str, str] = {}

    def container(prefix: str) -> str:
        """The variable holding the ``_modules`` dict of the container at ``prefix``, fetched on first use."""
        if prefix not in containers:
            key = "_m_" + prefix if prefix else "_m"
            ident = _identifiers([key], taken, private=True)[key]
            if prefix:
                parent, _, part = prefix.rpartition(".")
                body.append(f"{ident} = {container(parent)}[{part!r}]._modules")
            else:
                body.append(f"{ident} = self._modules")
            containers[prefix] = ident
        return containers[prefix]

    release = {} if keep else release_points(steps, output)
    for i, (name, kind, inputs, where) in enumerate(steps):
        args = [var[a] for a in inputs]
        if kind == "add" or (kind == "add_" and keep):
            expr = " + ".join(args)
        elif kind == "add_":
            expr = args[0] + "".join(f".add_({a})" for a in args[1:])
        elif kind == "mul":
            expr = " * ".join(args)
        elif kind == "concat":
            expr = f"torch.cat(({', '.join(args)},), 1)"
        else:
            if kind == "inplace" and keep:  # the activation overwrites its input: keep a copy of that value
                args = [f"torch.clone({a})" for a in args]
            prefix, _, leaf = name.rpartition(".")
            expr = f"{container(prefix)}[{leaf!r}]({', '.join(args)})"
        note = "; ".join(filter(None, (_PRINTABLE.sub("?", where), "in place" if kind in ("inplace", "add_") else "")))
        body.append(f"{var[name]} = {expr}" + (f"  # {note}" if note else ""))
        if i in release:
            body.append(f"del {', '.join(var[a] for a in release[i])}")
    if keep:
        items = ", ".join(f"{n!r}: {var[n]}" for n, _, _, _ in steps)
        header, ret = "def intermediates(self, x):", f"return {{{items}}}"
    else:
        header, ret = "def forward(self, x):", f"return {var[output]}"
    return "\n".join([header, *(f"    {line}" for line in [*body, ret])]) + "\n"
