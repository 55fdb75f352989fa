"""Validating a spec file together with the files it imports: ``imports: [resnet_family.yaml]``.

A spec's top-level ``imports`` lists other spec files, each path relative to the importing file.
Every block those files define (their own, and those they import in turn) becomes usable in the
importing file exactly like a block it defines itself.  An imported file is either a whole spec
(its ``layers``/``graph`` are then ignored) or a *block library*: ``archspec: 1`` plus ``blocks``
(and optionally ``name``, ``description`` and its own ``imports``), with no ``input`` and no body.

Block names form one namespace: two different definitions of one name (one local and one
imported, or from two imported files) are an error at the import line; the same definition
reached along two paths (a diamond) is fine, and each file is read and validated once however
many paths reach it.  A missing or unreadable file, an import cycle and an import chain deeper
than :data:`MAX_IMPORT_DEPTH` are errors positioned at the ``imports`` entry that causes them.
Diagnostics inside an imported file point into that file and carry a note naming the import line.

Imports stay inside the project: an imported file must be a ``.yaml``/``.yml`` file inside the
directory tree of the spec being analysed (for YAML text, the working directory), after symlinks
are resolved, unless the caller names further directories (``import_roots``, ``--import-root``).
An entry ``archspec:PATH`` names a file of archspec's shipped specs (``archspec:imagenet/resnet_family.yaml``,
see :mod:`archspec.shipped`) and must stay inside them; a shipped file may import its neighbours.
A spec can therefore never make archspec read, or print from, a file elsewhere on the machine.

:func:`load_document` is the entry point: it uses :mod:`archspec.spec` to check each file, and
nothing in :mod:`archspec.spec` depends on this module.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ArchspecError, Diagnostic, Note, Span
from .models import SpecDocument
from .shipped import SHIPPED_SCHEME, shipped_import, shipped_root
from .source import LocMap, read_file, span_of
from .spec import check_bodies, check_document

__all__ = ["MAX_IMPORT_DEPTH", "ImportedBlocks", "load_document"]

#: The longest chain of files importing each other (a spec, what it imports, what that imports, ...).
MAX_IMPORT_DEPTH = 32
#: The file name endings an imported file may have.
SPEC_SUFFIXES = (".yaml", ".yml")


@dataclasses.dataclass
class ImportedBlocks:
    """The blocks visible through a file's ``imports``: definitions and located YAML, by name."""

    #: Block name → its :class:`~archspec.spec.BlockDef`.
    definitions: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Block name → its located YAML (spans point into the defining file).
    sources: dict[str, LocMap] = dataclasses.field(default_factory=dict)
    #: Block name → (file key of the defining file, position of the definition).
    origins: dict[str, tuple[str, Span | None]] = dataclasses.field(default_factory=dict)
    #: Block name → the top-level ``init`` of the defining file (see :meth:`SpecDocument.block_file_init`).
    file_inits: dict[str, tuple[Any, Any, Any]] = dataclasses.field(default_factory=dict)


def file_key(path: str) -> str:
    """The identity of a spec file for cycle and diamond detection (its resolved absolute path)."""
    return os.path.realpath(path)


@dataclasses.dataclass
class _Session:
    """One top-level validation: where imports may come from, and each file's result so far."""

    roots: tuple[str, ...]
    #: file key → the validated document, or the diagnostics it failed with.
    done: dict[str, SpecDocument | list[Diagnostic]] = dataclasses.field(default_factory=dict)


def load_document(
    data: Any, path: str, *, import_roots: Iterable[str | os.PathLike[str]] = ()
) -> SpecDocument:
    """Validate the spec ``data`` read from ``path`` together with every file it imports.

    Returns the document whose ``blocks`` hold every visible block, its own and imported ones.
    Imports may come from the directory tree of ``path`` (of the working directory for YAML text
    given as ``<...>``) and from the directories in ``import_roots``.  All independent problems are
    reported together in one :class:`ArchspecError`.
    """
    base = os.getcwd() if path.startswith("<") else os.path.dirname(os.path.abspath(path))
    roots = tuple(os.path.realpath(r) for r in (base, *import_roots))
    return _validate(data, path, (), _Session(roots))


def _validate(data: Any, path: str, imported_by: tuple[str, ...], session: _Session) -> SpecDocument:
    doc, errors = check_document(data, path, library_ok=bool(imported_by))
    imported, import_errors = _resolve(data, path, imported_by, session) if doc.imports else (ImportedBlocks(), [])
    if import_errors:  # the blocks of a failed import are unknown: checking uses of them would only cascade
        raise ArchspecError(sorted(_dedupe(errors + import_errors), key=Diagnostic.sort_key))
    visible = check_bodies(doc, data, imported.definitions, imported.sources, errors)
    # An imported file's top-level init is the default of its blocks (the spec's own covers the whole network).
    own = (doc.init, data.get("init"), span_of(data, "init")) if imported_by and doc.init is not None else None
    visible._file_inits = {**imported.file_inits, **(dict.fromkeys(doc.blocks, own) if own else {})}
    return visible


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[str, str, Span | None]] = set()
    out = []
    for d in diags:
        if (d.code, d.message, d.span) not in seen:
            seen.add((d.code, d.message, d.span))
            out.append(d)
    return out


def _inside(key: str, roots: tuple[str, ...]) -> bool:
    return any(key == root or key.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _resolve(
    data: LocMap, path: str, imported_by: tuple[str, ...], session: _Session
) -> tuple[ImportedBlocks, list[Diagnostic]]:
    """Read, validate and collect every block reachable through ``data['imports']``.

    ``imported_by`` holds the :func:`file_key` of every file above this one in the import chain.
    Returns the visible blocks and the diagnostics found (the caller raises them with its own).
    """
    out = ImportedBlocks()
    diags: list[Diagnostic] = []
    entries = data.get("imports")
    if not entries:
        return out, diags
    base = Path(path).parent if not path.startswith("<") else Path()
    here = file_key(path) if not path.startswith("<") else path
    chain = (*imported_by, here)
    for index, rel in enumerate(entries):
        span = span_of(entries, index)
        if "\0" in rel or not rel.strip():
            diags.append(Diagnostic("E-IMPORT", f"cannot import {rel!r}: not a file name", span))
            continue
        roots = session.roots
        if rel.startswith(SHIPPED_SCHEME):  # a shipped library, wherever archspec is installed; nothing else
            shipped = shipped_import(rel)
            if isinstance(shipped, str):
                diags.append(Diagnostic("E-IMPORT", f"cannot import '{rel}': {shipped}", span))
                continue
            target, root = shipped
            roots = (root,)
        else:
            target = os.path.normpath(base / rel)
            shipped = shipped_root()
            if shipped is not None and _inside(here, (shipped,)):
                roots = (*roots, shipped)  # a shipped library imports its neighbours
        key = file_key(target)
        if key in chain:
            names = [_short(k, base) for k in chain[chain.index(key):]] + [_short(key, base)]
            diags.append(Diagnostic(
                "E-IMPORT-CYCLE", "import cycle: " + " → ".join(names), span,
                hint="a file cannot import itself, directly or through other files; move the shared blocks "
                "into a library file that both import",
            ))
            continue
        if len(chain) >= MAX_IMPORT_DEPTH:
            diags.append(Diagnostic(
                "E-LIMIT", f"imports nest deeper than {MAX_IMPORT_DEPTH} files", span,
                hint="import the library directly from the file that uses it",
            ))
            continue
        if not _inside(key, roots) and rel.startswith(SHIPPED_SCHEME):
            diags.append(Diagnostic("E-IMPORT", f"cannot import '{rel}': it is outside archspec's shipped specs", span,
                                    hint="'archspec:PATH' names a file under the shipped specs folder"))
            continue
        if not _inside(key, roots):
            diags.append(Diagnostic(
                "E-IMPORT", f"cannot import '{rel}': it is outside the spec's directory tree", span,
                hint="imports are confined to the folder of the spec being built and its subfolders; "
                "to allow another folder, pass it with --import-root DIR (import_roots= in Python)",
            ))
            continue
        if not key.endswith(SPEC_SUFFIXES):
            diags.append(Diagnostic(
                "E-IMPORT", f"cannot import '{rel}': an imported file must be a spec ending in .yaml or .yml", span,
            ))
            continue
        if not os.path.isfile(target):
            what = "is a directory" if os.path.isdir(target) else (
                "does not exist" if not os.path.exists(target) else "is not a regular file")
            diags.append(Diagnostic(
                "E-IMPORT", f"cannot import '{rel}': '{target}' {what}", span,
                hint="'archspec:PATH' is relative to the shipped specs folder ('archspec list' shows the models)"
                if rel.startswith(SHIPPED_SCHEME) else "import paths are relative to the importing file's directory",
            ))
            continue
        note = Note(f"in '{target}', imported here", span)
        result = session.done.get(key)
        if result is None:
            try:
                lib_data, lib_path = read_file(target)
                result = _validate(lib_data, lib_path, chain, session)
            except ArchspecError as exc:
                result = list(exc.diagnostics)
            session.done[key] = result
        if isinstance(result, list):
            diags.extend(dataclasses.replace(d, notes=(*d.notes, note)) for d in result)
            continue
        for name, definition in result.blocks.items():
            source = result.block_source(name)
            where = span_of(source)
            defining_file = file_key(where.path) if where else key
            known = out.origins.get(name)
            if known is not None and known[0] != defining_file:  # the same file twice is a diamond, not a clash
                diags.append(Diagnostic(
                    "E-IMPORT-CLASH",
                    f"block '{name}' from '{rel}' clashes with another block of that name"
                    + (f" defined at {known[1]}" if known[1] else ""),
                    span, hint="rename one of the blocks; imported block names share one namespace",
                ))
                continue
            out.definitions[name] = definition
            out.sources[name] = source
            out.origins[name] = (defining_file, where)
            file_init = result.block_file_init(name)
            if file_init is not None:
                out.file_inits[name] = file_init
    return out, diags


def _short(key: str, base: Path) -> str:
    """A file key as written relative to ``base`` (the folder of the file that closes a cycle)."""
    if key.startswith("<"):
        return key
    try:
        return os.path.relpath(key, os.path.realpath(base))
    except ValueError:  # pragma: no cover - different drive on Windows
        return key
