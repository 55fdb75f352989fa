"""The model zoo: the catalogue of shipped models, building one by name, and loading checkpoints.

:mod:`archspec.shipped` knows where the shipped specs are and resolves names (``resnet50``,
``imagenet/resnet18``); this module analyses them for ``archspec list`` (:func:`model_info`,
:func:`models_table`), and provides :func:`build` — exported as ``archspec.build`` — which is
:func:`archspec.api.build` plus ``weights=``: a checkpoint file loaded by :func:`load_weights` with
``torch.load(..., weights_only=True)`` (tensors only: no pickled code runs), through the spec's key
mapping (:mod:`archspec.mapping`) when its keys are another implementation's, e.g. torchvision's.
Nothing here imports torch until a model is built or a checkpoint loaded.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from . import api
from .errors import ArchspecError, Diagnostic, Note, Span
from .ir import Graph
from .ops import Shape, fmt_shape
from .shipped import ShippedModel, list_models, resolve_source, shipped_models

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "LoadedWeights",
    "ModelInfo",
    "build",
    "catalogue",
    "list_models",
    "load_weights",
    "model_info",
    "models_table",
]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """One row of the catalogue: a shipped model and its static numbers (at the spec's defaults)."""

    name: str
    qualified: str
    family: str
    path: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    macs: int


def _family(model: ShippedModel) -> str:
    """A model's family: the ``X_family.yaml`` library it imports when its name contains ``X``
    (``wide_resnet50_2`` → ``resnet``), else its name's leading letters (``efficientnet_b0`` → ``efficientnet``)."""
    stem = model.qualified.rsplit("/", 1)[-1]
    for item in model.imports:
        library = os.path.splitext(os.path.basename(item))[0]
        if library.endswith("_family") and library != "_family" and library[: -len("_family")] in stem:
            return library[: -len("_family")]
    letters = re.match(r"[A-Za-z]+", stem)
    return letters.group(0).lower() if letters else stem


def catalogue(pattern: str | Iterable[str] = "*") -> tuple[list[ModelInfo], list[Diagnostic]]:
    """:func:`model_info`, returning the diagnostics of shipped specs that fail to analyse instead of raising."""
    infos: list[ModelInfo] = []
    problems: list[Diagnostic] = []
    for model in shipped_models(pattern):
        try:
            graph = api.analyze(str(model.path))
        except ArchspecError as exc:
            problems.extend(exc.diagnostics)
            continue
        total = graph.total
        infos.append(ModelInfo(model.name, model.qualified, _family(model), str(model.path),
                               tuple(graph.input_shape), tuple(graph.output_shape), total.params, total.macs))
    return infos, problems


def model_info(pattern: str | Iterable[str] = "*") -> list[ModelInfo]:
    """Analyse the shipped models matching ``pattern`` (see :func:`list_models`): shapes, parameters, MACs.

    Static (no torch import).  Raises :class:`ArchspecError` if a shipped spec fails to analyse.
    """
    infos, problems = catalogue(pattern)
    if problems:
        raise ArchspecError(problems)
    return infos


def _gmacs(macs: int) -> str:
    return f"{macs / 1e9:.3f}" if macs >= 10**6 or not macs else f"{macs / 1e9:.1e}"


def models_table(infos: Sequence[ModelInfo]) -> str:
    """The ``archspec list`` table: name, family, input, parameters and GMACs (multiply-accumulates / 10⁹)."""
    header = ("name", "family", "input", "params", "GMACs")
    rows = [(i.name, i.family, fmt_shape(i.input_shape), f"{i.params:,}", _gmacs(i.macs)) for i in infos]
    widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(cell.rjust(w) if c >= 3 else cell.ljust(w)
                         for c, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows)])


# --------------------------------------------------------------------------------------------------
# Weights


class LoadedWeights(NamedTuple):
    """What :func:`load_weights` loaded: the number of tensors and the key mapping used (None: none needed)."""

    tensors: int
    mapping: str | None


def _weights_error(message: str, path: str, hint: str | None = None) -> ArchspecError:
    return ArchspecError.single("E-WEIGHTS", message, Span(path, 1, 1), hint)


def _read_checkpoint(weights: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    import stat
    import warnings

    import torch

    path = os.fsdecode(os.fspath(weights))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ArchspecError.single("E-IO", f"no such checkpoint file: '{path}'") from None
    except (OSError, ValueError) as exc:
        raise ArchspecError.single("E-IO", f"cannot read checkpoint '{path}': {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArchspecError.single("E-IO", f"checkpoint '{path}' is not a regular file", Span(path, 1, 1))
    save_hint = "save the weights alone: torch.save(model.state_dict(), path)"
    try:
        with warnings.catch_warnings():  # torch's remark on the pickle protocol of a file it then refuses
            warnings.filterwarnings("ignore", message=r"Detected \w+ protocol \d+ in the checkpoint", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except EOFError:
        raise _weights_error(f"'{path}' is not a PyTorch checkpoint saved with torch.save (it is empty or cut short)",
                             path, save_hint) from None
    except Exception as exc:  # refused objects, a truncated zip, text, another format …: never a traceback
        first = (str(exc).strip().splitlines() or [""])[0]
        if first.lower().startswith("weights only load failed"):  # torch's weights_only unpickler refused it
            raise _weights_error(f"'{path}' holds Python objects besides tensors, which archspec does not load "
                                 "(it loads with weights_only=True: no pickled code runs)", path, save_hint) from None
        detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        raise _weights_error(f"'{path}' is not a PyTorch checkpoint saved with torch.save ({detail})",
                             path, save_hint) from None
    if not isinstance(state, Mapping):
        raise _weights_error(f"'{path}' holds a {type(state).__name__}, not a state dict", path, save_hint)
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        nested = [k for k, v in state.items() if isinstance(v, Mapping)]
        hint = (f"it looks like a training checkpoint; save its {nested[0]!r} entry on its own" if nested else save_hint)
        raise _weights_error(f"'{path}' is not a state dict (a mapping of names to tensors): its entries are "
                             + ", ".join(repr(k) for k in list(state)[:6]) + (" …" if len(state) > 6 else ""), path, hint)
    return dict(state)


def _mapped_namesakes(spec: str) -> list[str]:
    """Names of other shipped models with the stem of ``spec`` that a key mapping serves."""
    from .mapping import find_mapping

    stem = os.path.splitext(os.path.basename(spec))[0]
    if any(c in stem for c in "*?["):
        return []
    found = []
    for m in shipped_models(stem):
        if m.qualified.rsplit("/", 1)[-1] != stem or os.path.realpath(m.path) == os.path.realpath(spec):
            continue
        try:
            find_mapping(m.path, stem)
        except ArchspecError:
            continue
        found.append(m.name)
    return found


def _dims(shape: Iterable[int]) -> str:
    return "×".join(map(str, shape)) or "scalar"


def load_weights(model: torch.nn.Module, graph: Graph, weights: str | os.PathLike[str]) -> LoadedWeights:
    """Load a checkpoint file into ``model`` (built from ``graph``), strictly.

    The file is a state dict saved with ``torch.save`` and is read with ``weights_only=True``.  A
    state dict with exactly the model's own keys (saved from an archspec model) loads as is; any
    other goes through the key mapping beside the spec (``mappings/``, see :mod:`archspec.mapping`),
    e.g. torchvision's.  Every problem is an :class:`ArchspecError`: ``E-IO`` for an unreadable file,
    ``E-WEIGHTS`` for a file that is not a state dict or whose tensors do not fit the model (named with
    both shapes), ``E-MAPPING`` for a missing mapping or keys without counterpart.
    """
    from .mapping import find_mapping, map_key

    path = os.fsdecode(os.fspath(weights))
    state = _read_checkpoint(path)
    own = model.state_dict()
    mapping_path: str | None = None
    if state.keys() == own.keys():
        mapped, origin = state, {k: k for k in state}
    else:
        if graph.path.startswith("<"):
            raise ArchspecError.single(
                "E-MAPPING", f"the keys of '{path}' are not this model's own, and a spec given as text has no key mapping",
                Span(path, 1, 1), hint="read the spec from its file, next to its mappings/ folder",
            )
        try:
            mapping = find_mapping(graph.path, graph.name)
        except ArchspecError as exc:
            d = exc.diagnostics[0]
            others = _mapped_namesakes(graph.path)
            raise ArchspecError([dataclasses.replace(
                d, message=f"the keys of '{path}' are not this model's own, and {d.message}",
                hint=(f"did you mean {' or '.join(repr(o) for o in others)}, which has one? " if others else "")
                + "a checkpoint of another implementation loads through a key mapping (docs/imagenet.md); "
                "one saved from this archspec model (model.state_dict()) loads as is",
            )]) from None
        mapping_path = mapping.path
        table = {t: s for s, t in mapping.module_map(graph).items()}
        try:
            mapped = mapping.to_archspec(state, graph)  # raises E-MAPPING naming keys without counterpart
        except ArchspecError as exc:
            note = Note(f"while loading '{path}' into '{graph.name}' ({graph.path})")
            raise ArchspecError([dataclasses.replace(d, notes=(*d.notes, note)) for d in exc.diagnostics]) from None
        origin = {}
        for key in state:
            found = map_key(key, table)
            if found is not None:
                origin[found[0]] = key
    # torch fills in a missing BatchNorm step counter (checkpoints older than its introduction lack it)
    missing = [k for k in own if k not in mapped and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in mapped if k not in own]
    wrong = [k for k in own if k in mapped and tuple(mapped[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing or unexpected:
        problems.append(f"{len(missing)} tensor(s) missing ({', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}) "
                        f"and {len(unexpected)} unexpected ({', '.join(unexpected[:6])}{' …' if len(unexpected) > 6 else ''})")
    if wrong:
        shown = [f"{origin.get(k, k)} is {_dims(mapped[k].shape)}, the model's {k} {_dims(own[k].shape)}" for k in wrong[:4]]
        problems.append(f"{len(wrong)} tensor(s) have the wrong shape: " + "; ".join(shown) + (" …" if len(wrong) > 4 else ""))
    if problems:
        raise ArchspecError([Diagnostic(
            "E-WEIGHTS", f"the checkpoint '{path}' does not fit model '{graph.name}': {p}", Span(path, 1, 1),
            hint="build the model with the top-level parameters the checkpoint was trained with, e.g. its number "
                 "of classes" if wrong else None,
        ) for p in problems])
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:  # pragma: no cover - the checks above leave nothing for torch to refuse
        raise _weights_error(f"loading '{path}' failed: {str(exc).strip().splitlines()[0]}", path) from None
    return LoadedWeights(len(mapped), mapping_path)


# --------------------------------------------------------------------------------------------------
# Building by name, with weights


def build(
    source: api.SpecSource,
    *,
    input_shape: Shape | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    max_params: int | None = api.DEFAULT_MAX_PARAMS,
    import_roots: Iterable[str | os.PathLike[str]] = (),
    weights: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    **overrides: Any,
) -> torch.nn.Module:
    """Compile a spec to a ``torch.nn.Module``; ``archspec.build``.

    ``source`` is a path, a shipped model's name (``build("resnet50", classes=10)``; an existing
    path always wins), YAML text or a :class:`~archspec.ir.Graph`, as for :func:`archspec.analyze`.
    Keyword arguments other than the named ones override top-level spec parameters.  ``weights``
    names a checkpoint file (a state dict saved with ``torch.save``, e.g. torchvision's) to load
    strictly (:func:`load_weights`).  Everything else is :func:`archspec.api.build`: a model with
    more than ``max_params`` parameter and buffer elements is refused before any weight is
    allocated (``None`` disables the guard; ``device="meta"`` allocates nothing and skips it).  The
    weights start as the spec's ``init`` says; ``seed`` makes them reproducible (equal seeds, equal
    ``state_dict``s; the global random state is left as it was).
    """
    if weights is None:
        return api.build(source, input_shape=input_shape, device=device, dtype=dtype, max_params=max_params,
                         import_roots=import_roots, seed=seed, **overrides)
    if str(device) == "meta":
        raise ArchspecError.single("E-WEIGHTS", "weights cannot be loaded into a model on the meta device",
                                   hint="build on a real device (the default is the CPU)")
    graph = api.analyze(resolve_source(source), overrides, input_shape=input_shape, import_roots=import_roots)
    model = api.build(graph, device=device, dtype=dtype, max_params=max_params, seed=seed)
    load_weights(model, graph, weights)
    return model
