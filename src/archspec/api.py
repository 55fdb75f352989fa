"""The Python API: read → validate → expand/infer (:func:`analyze`), and → PyTorch (:func:`build`).

:func:`analyze` never imports torch; :func:`build` does, through :mod:`archspec.lower_torch`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ArchspecError
from .expand import expand
from .imports import load_document
from .init import resolve as resolve_init
from .ir import DEFAULT_MAX_PARAMS, Graph, check_max_params
from .ops import Shape, get_op, is_builtin
from .plugins import load_plugin, plugin_failures
from .shipped import resolve_source
from .source import LocMap, file_digest, load_yaml_text, read_file, record_reads

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["DEFAULT_MAX_PARAMS", "analyze", "build", "check_max_params", "clear_cache", "load_plugin", "read_spec"]


SpecSource = str | os.PathLike[str] | Graph


def read_spec(source: str | os.PathLike[str]) -> tuple[LocMap, str]:
    """Read a spec from a path, or from YAML text when ``source`` is a string containing a newline."""
    if isinstance(source, str) and "\n" in source:
        data, path = load_yaml_text(source, "<string>"), "<string>"
    else:
        data, path = read_file(source)
    return data, path


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the pipeline builds its (acyclic, long-lived) data.

    Reading and expanding a spec allocates millions of small containers that all survive; each
    collection rescans every one of them, which made big specs cost superlinear time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: How many analysed graphs :func:`build` keeps (least recently used first out).
CACHE_SIZE = 16
# key → [graph, its prepared Lowering (made on the first build), (real path, digest) of each imported file]
_graph_cache: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
_cache_lock = threading.Lock()  # builds may run in several threads


def clear_cache() -> None:
    """Forget the graphs :func:`build` cached for unchanged spec files."""
    with _cache_lock:
        _graph_cache.clear()


def _analyze_cached(
    source: SpecSource, overrides: Mapping[str, Any] | None, input_shape: Shape | None, import_roots: tuple[str, ...] = ()
) -> list[Any]:
    """:func:`analyze`, reusing the graph of an unchanged spec file (for :func:`build` only).

    Returns the cache entry ``[graph, lowering, imported files]`` (the
    :class:`~archspec.lower_torch.Lowering` is None until the first build fills it in).  The key
    is the file's absolute path (a relative path names another file after a ``chdir``) and the path as
    given, a digest of the file's bytes (timestamps are too coarse to notice a quick same-size
    edit), the overrides and the input shape; the files the spec imports are digested too and
    checked on every hit, so editing the spec or anything it imports, or changing an argument,
    analyses it afresh.  YAML text and :class:`Graph` sources are never cached.  The graph is
    shared between builds, which only read it; :func:`analyze` always returns a new one.  Safe to
    call from several threads.
    """
    if isinstance(source, Graph) or (isinstance(source, str) and "\n" in source):
        return [analyze(source, overrides, input_shape=input_shape, import_roots=import_roots), None, []]
    try:
        digest = _digest(source)
        where = os.path.abspath(source)
    except (OSError, TypeError, ValueError):
        return [analyze(source, overrides, input_shape=input_shape, import_roots=import_roots), None, []]  # reports the problem
    # The absolute path finds the file (a relative path means another file after a chdir); the path
    # as given is what the graph's positions show.
    rest = (os.fspath(source), repr(sorted((overrides or {}).items())),
            None if input_shape is None else tuple(input_shape), import_roots)
    with _cache_lock:
        entry = _graph_cache.get((where, digest, *rest))
        if entry is not None:
            _graph_cache.move_to_end((where, digest, *rest))
    if entry is not None and all(_same_file(p, d) for p, d in entry[2]):
        return entry
    with record_reads() as reads:
        graph = analyze(source, overrides, input_shape=input_shape, import_roots=import_roots)
    real = os.path.realpath(source)
    # Key the entry by the digest of the bytes actually analysed (the file may have changed since).
    digest = next((d for p, d in reads if p == real), digest)
    entry = [graph, None, [(p, d) for p, d in reads if p != real]]
    with _cache_lock:
        _graph_cache[(where, digest, *rest)] = entry
        while len(_graph_cache) > CACHE_SIZE:
            _graph_cache.popitem(last=False)
    return entry


def _digest(path: Any) -> bytes:
    from .source import read_spec_bytes  # bounded, regular files only: never blocks on a FIFO or reads /dev/zero

    try:
        return file_digest(read_spec_bytes(path))
    except ArchspecError as exc:
        raise OSError(exc.diagnostics[0].message) from None  # the caller lets analyze() report it


def _same_file(path: str, digest: bytes) -> bool:
    try:
        return _digest(path) == digest
    except OSError:
        return False


def analyze(
    source: SpecSource,
    overrides: Mapping[str, Any] | None = None,
    *,
    input_shape: Shape | None = None,
    import_roots: Iterable[str | os.PathLike[str]] = (),
) -> Graph:
    """Validate a spec and infer every node's shape, parameters and MACs, without importing torch.

    ``source`` is a path, a shipped model's name (``"resnet50"``, see :mod:`archspec.shipped`; an
    existing path always wins), YAML text (a string with a newline), or an already analysed
    :class:`~archspec.ir.Graph` (returned as is).  ``overrides`` set top-level parameters;
    ``input_shape`` replaces the spec's ``input``; ``import_roots`` names directories beside the
    spec's own from which its ``imports`` may read (see :mod:`archspec.imports`).  Raises :class:`ArchspecError` on any problem.
    """
    if isinstance(source, Graph):
        return source
    source = resolve_source(source)
    with _gc_paused():
        data, path = read_spec(source)
        doc = load_document(data, path, import_roots=import_roots)
        graph = expand(doc, data, path, overrides, input_shape)
        resolve_init(graph, doc, data)  # every tensor's initialisation, from the init sections (graph.init)
    if plugin_failures():  # installed plugins that failed to load: warn where a spec relies on plugins
        ops = {n.op for n in graph.nodes.values()}
        if any((op := get_op(name)) is not None and not is_builtin(op) for name in ops):
            graph.warnings.extend(plugin_failures())
    return graph


def build(
    source: SpecSource,
    *,
    input_shape: Shape | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    max_params: int | None = DEFAULT_MAX_PARAMS,
    import_roots: Iterable[str | os.PathLike[str]] = (),
    seed: int | None = None,
    **overrides: Any,
) -> torch.nn.Module:
    """Compile a spec to a ``torch.nn.Module`` (see :class:`archspec.lower_torch.ArchspecModule`).

    ``source`` is what :func:`analyze` takes, e.g. a shipped model's name: ``build("resnet50")``.
    Keyword arguments other than the named ones override top-level spec parameters, e.g.
    ``build("specs/lenet.yaml", classes=100)``.  A model with more than ``max_params`` parameter
    and buffer elements together is refused before any weight is allocated (``None`` disables the
    guard; ``device="meta"`` never allocates and skips it).  See :func:`check_max_params`.
    ``archspec.build`` (:func:`archspec.zoo.build`) is this function plus ``weights=``, a checkpoint
    to load.  The weights start as the spec's ``init`` says (PyTorch's default where it says nothing);
    ``seed`` draws them from a generator seeded with it, so equal seeds give equal ``state_dict``s
    (the global random state is left as it was); ``None`` draws from the global generator.
    """
    entry = _analyze_cached(resolve_source(source), overrides, input_shape, tuple(map(os.fspath, import_roots)))
    graph = entry[0]
    check_max_params(graph, max_params, device)
    from .lower_torch import Lowering

    if entry[1] is None:
        entry[1] = Lowering(graph)
    lowering: Lowering = entry[1]
    return lowering.build(device=device, dtype=dtype, seed=seed)


def spec_path(source: SpecSource) -> str:
    """A display name for a source."""
    if isinstance(source, Graph):
        return source.path
    return str(Path(source)) if not (isinstance(source, str) and "\n" in source) else "<string>"
