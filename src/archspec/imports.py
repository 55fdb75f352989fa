"""Block imports between spec files: ``imports: [resnet_family.yaml]``.

A spec's top-level ``imports`` lists other spec files, each path relative to the importing file.
Every block those files define (their own, and those they import in turn) becomes usable in the
importing file exactly like a block it defines itself.  An imported file is either a whole spec
(its ``layers``/``graph`` are then ignored) or a *block library*: ``archspec: 1`` plus ``blocks``
(and optionally ``name``, ``description`` and its own ``imports``), with no ``input`` and no body.

Block names form one namespace: two different definitions of one name (one local and one
imported, or from two imported files) are an error at the import line; the same definition
reached along two paths (a diamond) is fine.  A missing or unreadable file and an import cycle
are errors positioned at the ``imports`` entry that causes them.  Diagnostics inside an imported
file point into that file and carry a note naming the import line.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from .errors import ArchspecError, Diagnostic, Note, Span
from .source import LocMap, read_file, span_of

__all__ = ["ImportedBlocks", "resolve_imports"]


@dataclasses.dataclass
class ImportedBlocks:
    """The blocks visible through a file's ``imports``: definitions and located YAML, by name."""

    #: Block name → its :class:`~archspec.spec.BlockDef`.
    definitions: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Block name → its located YAML (spans point into the defining file).
    sources: dict[str, LocMap] = dataclasses.field(default_factory=dict)
    #: Block name → (file key of the defining file, position of the definition).
    origins: dict[str, tuple[str, Span | None]] = dataclasses.field(default_factory=dict)


def file_key(path: str) -> str:
    """The identity of a spec file for cycle and diamond detection (its resolved absolute path)."""
    return os.path.realpath(path)


def resolve_imports(data: LocMap, path: str, imported_by: tuple[str, ...]) -> tuple[ImportedBlocks, list[Diagnostic]]:
    """Read, validate and collect every block reachable through ``data['imports']``.

    ``path`` is the importing file's display path (imports resolve relative to its directory; a
    spec given as text resolves them against the working directory).  ``imported_by`` holds the
    :func:`file_key` of every file above this one in the import chain.  Returns the visible
    blocks and the diagnostics found (the caller raises them together with its own).
    """
    from .spec import validate_document  # spec.py imports this module lazily: no import cycle

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
        target = os.path.normpath(base / rel)
        key = file_key(target)
        if key in chain:
            names = [_short(k, base) for k in chain[chain.index(key):]] + [_short(key, base)]
            diags.append(Diagnostic(
                "E-IMPORT-CYCLE", "import cycle: " + " → ".join(names), span,
                hint="a file cannot import itself, directly or through other files; move the shared blocks "
                "into a library file that both import",
            ))
            continue
        if not os.path.isfile(target):
            what = "is a directory" if os.path.isdir(target) else "does not exist"
            diags.append(Diagnostic(
                "E-IMPORT", f"cannot import '{rel}': '{target}' {what}", span,
                hint="import paths are relative to the importing file's directory",
            ))
            continue
        note = Note(f"in '{target}', imported here", span)
        try:
            lib_data, lib_path = read_file(target)
            lib_doc = validate_document(lib_data, lib_path, imported_by=chain)
        except ArchspecError as exc:
            diags.extend(dataclasses.replace(d, notes=(*d.notes, note)) for d in exc.diagnostics)
            continue
        for name, definition in lib_doc.blocks.items():
            source = lib_doc.block_source(name)
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
    return out, diags


def _short(key: str, base: Path) -> str:
    """A file key as written relative to ``base`` (the folder of the file that closes a cycle)."""
    if key.startswith("<"):
        return key
    try:
        return os.path.relpath(key, os.path.realpath(base))
    except ValueError:  # pragma: no cover - different drive on Windows
        return key
