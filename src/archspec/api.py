"""The Python API: read → validate → expand/infer (:func:`analyze`), and → PyTorch (:func:`build`).

:func:`analyze` never imports torch; :func:`build` does, through :mod:`archspec.lower_torch`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ArchspecError, Diagnostic, Span
from .expand import expand
from .ir import Graph
from .ops import Shape
from .source import LocMap, file_digest, load_yaml_text, read_file, record_reads
from .spec import validate_document

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["DEFAULT_MAX_PARAMS", "analyze", "build", "clear_cache", "read_spec"]

#: ``build`` refuses to allocate a model with more parameters than this unless told otherwise.
DEFAULT_MAX_PARAMS = 2_000_000_000

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


def _analyze_cached(source: SpecSource, overrides: Mapping[str, Any] | None, input_shape: Shape | None) -> list[Any]:
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
        return [analyze(source, overrides, input_shape=input_shape), None, []]
    try:
        digest = _digest(source)
        where = os.path.abspath(source)
    except (OSError, TypeError, ValueError):
        return [analyze(source, overrides, input_shape=input_shape), None, []]  # reports the problem
    # The absolute path finds the file (a relative path means another file after a chdir); the path
    # as given is what the graph's positions show.
    rest = (os.fspath(source), repr(sorted((overrides or {}).items())),
            None if input_shape is None else tuple(input_shape))
    with _cache_lock:
        entry = _graph_cache.get((where, digest, *rest))
        if entry is not None:
            _graph_cache.move_to_end((where, digest, *rest))
    if entry is not None and all(_same_file(p, d) for p, d in entry[2]):
        return entry
    with record_reads() as reads:
        graph = analyze(source, overrides, input_shape=input_shape)
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
    with open(path, "rb") as f:
        return file_digest(f.read())


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
) -> Graph:
    """Validate a spec and infer every node's shape, parameters and MACs, without importing torch.

    ``source`` is a path, YAML text (a string with a newline), or an already analysed
    :class:`~archspec.ir.Graph` (returned as is).  ``overrides`` set top-level parameters;
    ``input_shape`` replaces the spec's ``input``.  Raises :class:`ArchspecError` on any problem.
    """
    if isinstance(source, Graph):
        return source
    with _gc_paused():
        data, path = read_spec(source)
        doc = validate_document(data, path)
        return expand(doc, data, path, overrides, input_shape)


def build(
    source: SpecSource,
    *,
    input_shape: Shape | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    max_params: int | None = DEFAULT_MAX_PARAMS,
    **overrides: Any,
) -> torch.nn.Module:
    """Compile a spec to a ``torch.nn.Module`` (see :class:`archspec.lower_torch.ArchspecModule`).

    Keyword arguments other than the named ones override top-level spec parameters, e.g.
    ``build("specs/lenet.yaml", classes=100)``.  A model with more than ``max_params`` parameters
    is refused before any weight is allocated (``None`` disables the guard; ``device="meta"``
    never allocates and skips it).
    """
    entry = _analyze_cached(source, overrides, input_shape)
    graph = entry[0]
    total = graph.total.params
    if max_params is not None and str(device) != "meta" and total > max_params:
        biggest = max(graph.nodes.values(), key=lambda n: n.counts.params, default=None)
        where = (f"; the largest layer is '{biggest.name}' with {biggest.counts.params:,}"
                 if biggest is not None and biggest.counts.params else "")
        raise ArchspecError([
            Diagnostic(
                "E-TOO-LARGE",
                f"the model has {total:,} parameters, more than the limit of {max_params:,}{where}",
                (biggest.span if biggest is not None and biggest.counts.params else None) or Span(graph.path, 1, 1),
                hint="check for a typo in a width; raise the limit with --max-params (max_params=) if intended, "
                "or inspect it with 'archspec build --json' which allocates nothing",
            )
        ])
    from .lower_torch import Lowering

    if entry[1] is None:
        entry[1] = Lowering(graph)
    lowering: Lowering = entry[1]
    return lowering.build(device=device, dtype=dtype)


def spec_path(source: SpecSource) -> str:
    """A display name for a source."""
    if isinstance(source, Graph):
        return source.path
    return str(Path(source)) if not (isinstance(source, str) and "\n" in source) else "<string>"
