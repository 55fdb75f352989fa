"""The shipped specs: where they are, and the names of the models among them (no torch, no analysis).

archspec ships the repository's ``specs/`` folder (the wheel carries it as the data-only package
``archspec._specs``; a source checkout reads ``specs/`` itself, see :func:`specs_root`).  Every spec
in it that describes a network (block libraries and ``mappings/`` are not models) has a name:

* its **qualified name** is its path under ``specs/`` without ``.yaml``: ``lenet``,
  ``imagenet/resnet50``;
* its **name** is the file's stem (``resnet50``) when no other shipped spec has that stem at a
  shallower folder level.  Where stems clash, the shallower spec keeps the bare name: the seed
  networks at the top of ``specs/`` own ``googlenet``, ``resnet18``, ``alexnet`` and ``vgg11``, and
  the ImageNet versions are ``imagenet/googlenet``, ``imagenet/resnet18``, … (two specs with one stem
  at the same depth are both known only by their qualified names).

:func:`resolve_source` turns a name given to :func:`archspec.analyze`, :func:`archspec.build` or
the command line into the shipped file: an existing path always wins, YAML text (a string with a
newline) and path objects are never looked up, and an unknown name is an ``E-IO`` error with "did
you mean".  :func:`shipped_import` resolves an ``imports`` entry ``archspec:PATH`` (used by
:mod:`archspec.imports`), which can only ever name a file inside the shipped specs.
:mod:`archspec.zoo` builds the catalogue, weights loading and ``archspec.build`` on top of this.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ArchspecError, did_you_mean
from .source import read_file

__all__ = [
    "SHIPPED_SCHEME",
    "ShippedModel",
    "list_models",
    "model_path",
    "resolve_source",
    "shipped_import",
    "shipped_models",
    "shipped_root",
    "specs_root",
]

#: The prefix of an ``imports`` entry that names a file in the shipped specs:
#: ``imports: [archspec:imagenet/resnet_family.yaml]``.
SHIPPED_SCHEME = "archspec:"
_SUFFIXES = (".yaml", ".yml")
#: Folders of the specs tree that hold no specs (key mappings; hidden folders are skipped too).
_NOT_SPECS = {"mappings", "__pycache__"}
#: What a model name looks like: no leading dot (so never ``..``), ``/`` only between parts.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.+-]*)*")


def specs_root() -> Path | None:
    """The folder of the shipped specs, or None when this installation has none.

    An installed wheel has them in the package (``archspec/_specs``); a source checkout (and an
    editable install of one) uses the repository's top-level ``specs/`` folder.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "_specs", here.parent.parent / "specs"):
        if candidate.is_dir():
            return candidate
    return None


# --------------------------------------------------------------------------------------------------
# Names


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str  # the name list_models shows: the stem, or the qualified name where stems clash
    qualified: str  # path under the specs root without the suffix, '/'-separated
    path: Path


def _spec_files(root: Path) -> list[tuple[str, Path]]:
    """``(qualified name, path)`` of every ``.yaml``/``.yml`` file under ``root`` except key mappings."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_SPECS and not d.startswith("."))
        for file in sorted(files):
            stem, suffix = os.path.splitext(file)
            if suffix not in _SUFFIXES or file.startswith("."):
                continue
            rel = Path(folder, stem).relative_to(root).as_posix()
            if rel not in found or suffix == ".yaml":  # x.yaml wins over an x.yml beside it
                found[rel] = Path(folder, file)
    return sorted(found.items())


def _entries(root: Path) -> list[_Entry]:
    files = _spec_files(root)
    by_stem: dict[str, list[str]] = {}
    for qualified, _ in files:
        by_stem.setdefault(qualified.rsplit("/", 1)[-1], []).append(qualified)
    out = []
    for qualified, path in files:
        stem = qualified.rsplit("/", 1)[-1]
        depths = [q.count("/") for q in by_stem[stem]]
        owns_stem = qualified.count("/") == min(depths) and depths.count(min(depths)) == 1
        out.append(_Entry(stem if owns_stem else qualified, qualified, path))
    return out


def _no_specs() -> ArchspecError:
    return ArchspecError.single("E-IO", "this installation of archspec has no shipped specs",
                                hint="reinstall archspec from its wheel or a source checkout")


def model_path(name: str) -> Path:
    """The shipped spec file of a model name (``resnet50``) or qualified name (``imagenet/resnet18``).

    Raises :class:`ArchspecError` (``E-IO``) for an unknown name, with "did you mean" when one is close.
    """
    root = specs_root()
    if root is None:
        raise _no_specs()
    entries = _entries(root)
    for e in entries:
        if name in (e.name, e.qualified):
            return e.path
    same_stem = sorted(e.qualified for e in entries if e.qualified.rsplit("/", 1)[-1] == name)
    if same_stem:  # two shipped specs share the stem at one depth: only the qualified names work
        raise ArchspecError.single("E-IO", f"'{name}' names several shipped specs: {', '.join(same_stem)}",
                                   hint="give the qualified name")
    names = [e.name for e in entries] + [e.qualified for e in entries]
    close = did_you_mean(name, names)
    raise ArchspecError.single(
        "E-IO", f"no such file or shipped model: '{name}'",
        hint=(f"{close} " if close else "") + "'archspec list' shows the shipped models; a spec file is read by its path",
    )


def resolve_source(source: Any) -> Any:
    """The spec to read for ``source``: a shipped spec's path for a model name, else ``source`` unchanged.

    Only a ``str`` that is no existing path (file, folder or link) and looks like a name is looked
    up; YAML text (a string with a newline), path objects and :class:`~archspec.ir.Graph` objects
    pass through.  A missing ``NAME.yaml`` whose stem is a shipped model is an ``E-IO`` error with a
    hint naming the model.
    """
    if not isinstance(source, str) or "\n" in source or not source or os.path.lexists(source):
        return source
    base, suffix = os.path.splitext(source)
    if not _NAME.fullmatch(source if suffix not in _SUFFIXES else base):
        return source
    if suffix in _SUFFIXES:  # a spec file that does not exist: say so, and name the model it may have meant
        root = specs_root()
        if root is not None and any(base in (e.name, e.qualified) for e in _entries(root)):
            raise ArchspecError.single("E-IO", f"no such file: '{source}'",
                                       hint=f"the shipped model '{base}' is named without '{suffix}'")
        return source
    return str(model_path(source))


# --------------------------------------------------------------------------------------------------
# Listing


def _is_model(path: Path) -> tuple[bool, list[str]]:
    """Whether a spec file describes a network (not a block library), and its ``imports``."""
    try:
        data, _ = read_file(path)
    except ArchspecError:
        return True, []  # listed, so that analysing it reports the problem
    if not isinstance(data, Mapping) or "archspec-mapping" in data:
        return False, []
    imports = data.get("imports")
    imports = [i for i in imports if isinstance(i, str)] if isinstance(imports, list) else []
    return "input" in data and ("layers" in data or "graph" in data), imports


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name.lower())]


def _matches(entry: _Entry, patterns: Sequence[str]) -> bool:
    keys = {entry.name.lower(), entry.qualified.lower(), entry.qualified.rsplit("/", 1)[-1].lower()}
    return any(fnmatch.fnmatchcase(k, p.lower()) for p in patterns for k in keys)


def _patterns(pattern: str | Iterable[str]) -> list[str]:
    return [pattern] if isinstance(pattern, str) else list(pattern) or ["*"]


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    """A shipped spec that describes a network."""

    #: What :func:`list_models` shows: the file's stem, or the qualified name where stems clash.
    name: str
    #: The path under the specs folder without the suffix, '/'-separated (``imagenet/resnet50``).
    qualified: str
    path: Path
    #: The spec's ``imports`` entries, as written.
    imports: tuple[str, ...]


def shipped_models(pattern: str | Iterable[str] = "*") -> list[ShippedModel]:
    """The shipped models matching ``pattern`` (see :func:`list_models`), sorted naturally by name."""
    root = specs_root()
    if root is None:
        return []
    patterns = _patterns(pattern)
    out = []
    for entry in _entries(root):
        if not _matches(entry, patterns):
            continue
        is_model, imports = _is_model(entry.path)
        if is_model:
            out.append(ShippedModel(entry.name, entry.qualified, entry.path, tuple(imports)))
    return sorted(out, key=lambda m: _natural(m.name))


def list_models(pattern: str | Iterable[str] = "*") -> list[str]:
    """The names of the shipped models, sorted naturally (``resnet18`` before ``resnet101``).

    ``pattern`` is a shell-style pattern (``"resnet*"``, ``"imagenet/*"``; case-insensitive), or
    several, as in ``timm.list_models``; a model matches when its name, its qualified name or its
    file's stem matches.  Static: nothing is analysed and torch is not imported.
    """
    return [m.name for m in shipped_models(pattern)]


# --------------------------------------------------------------------------------------------------
# Imports of shipped files


def shipped_import(entry: str) -> tuple[str, str] | str:
    """Where an ``imports`` entry ``archspec:REL`` points: ``(file, shipped root)``, or a reason it cannot.

    ``REL`` is a path under the shipped specs root; the file must stay inside that root (the caller
    checks the resolved path against the returned root).
    """
    rel = entry[len(SHIPPED_SCHEME):]
    root = specs_root()
    if root is None:
        return "this installation of archspec has no shipped specs"
    if not rel.strip() or os.path.isabs(rel):
        return "give a path under the shipped specs, e.g. 'archspec:imagenet/resnet_family.yaml'"
    return os.path.normpath(os.path.join(root, rel)), os.path.realpath(root)


def shipped_root() -> str | None:
    """The resolved path of the shipped specs folder (None when there is none)."""
    root = specs_root()
    return os.path.realpath(root) if root is not None else None
