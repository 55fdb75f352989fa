"""State-dict key mappings between an archspec model and another implementation (e.g. torchvision).

An archspec model names its modules after the spec (``resnet.layer1.bottleneck1.residual_add1.conv1``);
a hand-written model names them after its attributes (``layer1.0.conv1``).  A *mapping file* says
how one becomes the other, as three steps applied to every module path of the analysed graph:

``number``
    Glob patterns (:func:`fnmatch.fnmatchcase`, ``*`` also crosses dots) of groups that the other
    implementation builds as ``nn.Sequential``: the child of a matching group is renamed to its
    position ``0, 1, 2, …`` among the group's children (parameterless children such as ``relu``
    count, as they do in ``nn.Sequential``; ``add``/``mul``/``concat`` merges do not).
``flatten``
    Patterns of groups whose leaf modules the other side numbers in one flat ``nn.Sequential``
    (VGG's ``features``): the rest of the path becomes the leaf's position among all leaves below.
``rename``
    ``[regex, replacement]`` pairs (Python :func:`re.sub` syntax, ``\\1`` for groups), applied in
    order to the numbered path, e.g. ``['\\.residual_add1\\.', '.']`` to drop a wrapper level.

Only module paths are mapped; a state-dict key is ``module path + '.' + tensor name``, and the tensor
names (``weight``, ``running_mean`` …) are the same on both sides.  The mapping must be one-to-one;
:meth:`KeyMapping.module_map` checks that.  Nothing here imports torch: state dicts are plain mappings.

Mapping files live next to the specs in ``mappings/`` and list the ``models`` they serve;
:func:`find_mapping` picks the one for a spec.  :func:`import_state_dict` is the one-call form::

    sd = archspec.mapping.import_state_dict("specs/imagenet/resnet50.yaml", torchvision_state_dict)
    model.load_state_dict(sd)
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from .errors import ArchspecError, Diagnostic, Span
from .ir import Graph
from .source import LocMap, read_file

__all__ = ["KeyMapping", "export_state_dict", "find_mapping", "import_state_dict", "map_key"]

T = TypeVar("T")

#: Ops that lower to plain function calls, not modules: they have no key and no position.
_FUNCTIONAL = {"add", "concat", "mul"}  # = archspec.lower_torch.FUNCTIONAL_OPS (not imported: that imports torch)


class KeyMapping(BaseModel):
    """A parsed mapping file (see the module docstring for the meaning of each field)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    version: int = Field(alias="archspec-mapping", description="Mapping format version; must be 1.")
    target: str = Field(description="The implementation the keys are mapped to, e.g. torchvision.models.resnet.")
    models: list[str] = Field(description="Spec names (the spec's `name`) this mapping serves.")
    number: list[str] = Field(default_factory=list, description="Groups built as nn.Sequential elsewhere.")
    flatten: list[str] = Field(default_factory=list, description="Groups whose leaves are one flat nn.Sequential.")
    rename: list[tuple[str, str]] = Field(default_factory=list, description="Ordered [regex, replacement] pairs.")
    _path: str = PrivateAttr("<mapping>")

    @property
    def path(self) -> str:
        """Where the mapping was read from (for diagnostics)."""
        return self._path

    @field_validator("version")
    @classmethod
    def _version_one(cls, v: int) -> int:
        if v != 1:
            raise ValueError(f"unsupported mapping version {v}; this archspec reads version 1")
        return v

    @field_validator("rename")
    @classmethod
    def _compiles(cls, rules: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for pattern, _ in rules:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return rules

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyMapping:
        """Read and validate a mapping file; problems are :class:`ArchspecError` diagnostics."""
        from .spec import pydantic_diagnostics

        data, display = read_file(path)
        if not isinstance(data, LocMap):
            raise ArchspecError.single("E-MAPPING", "a mapping file is a YAML mapping", Span(display, 1, 1))
        try:
            mapping = cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ArchspecError(pydantic_diagnostics(exc, data, model=cls)) from None
        mapping._path = display
        return mapping

    # ------------------------------------------------------------------ module paths
    def target_path(self, name: str, graph: Graph) -> str:
        """The other implementation's module path for archspec module ``name`` (a node of ``graph``)."""
        parts = name.split(".")
        out: list[str] = []
        for i, part in enumerate(parts):
            container = ".".join(parts[:i])
            if container and _matches(container, self.flatten):
                leaves = [n for n in graph.nodes.values()
                          if n.name.startswith(container + ".") and n.op not in _FUNCTIONAL]
                out.append(str(next(j for j, n in enumerate(leaves) if n.name == name)))
                break
            if container and _matches(container, self.number) and container in graph.groups:
                children = [c for c in graph.groups[container].children
                            if c in graph.groups or graph.nodes[c].op not in _FUNCTIONAL]
                out.append(str(children.index(".".join(parts[: i + 1]))))
            else:
                out.append(part)
        text = ".".join(out)
        for pattern, replacement in self.rename:
            text = re.sub(pattern, replacement, text)
        return text

    def module_map(self, graph: Graph) -> dict[str, str]:
        """Archspec module path → target module path, for every module with weights or buffers; one-to-one.

        (Parameterless modules such as ``relu`` have no state-dict keys, so they may share a name.)
        """
        result: dict[str, str] = {}
        seen: dict[str, str] = {}
        clashes: list[Diagnostic] = []
        for node in graph.nodes.values():
            if node.op in _FUNCTIONAL or not (node.counts.params or node.counts.buffers):
                continue
            target = self.target_path(node.name, graph)
            if target in seen:
                clashes.append(Diagnostic("E-MAPPING", f"'{seen[target]}' and '{node.name}' both map to '{target}'",
                                          Span(self.path, 1, 1), hint="a mapping must be one-to-one"))
            seen[target] = node.name
            result[node.name] = target
        if clashes:
            raise ArchspecError(clashes[:10])
        return result

    # ------------------------------------------------------------------ state dicts
    def to_archspec(self, state_dict: Mapping[str, T], graph: Graph) -> dict[str, T]:
        """Rename a target-named state dict to archspec's keys; unknown keys and unfed modules are errors."""
        forward = self.module_map(graph)
        return self._rename(state_dict, {t: s for s, t in forward.items()}, graph, to_archspec=True)

    def to_target(self, state_dict: Mapping[str, T], graph: Graph) -> dict[str, T]:
        """Rename an archspec state dict (``model.state_dict()``) to the target's keys."""
        return self._rename(state_dict, self.module_map(graph), graph, to_archspec=False)

    def _rename(self, state_dict: Mapping[str, T], table: dict[str, str], graph: Graph, *,
                to_archspec: bool) -> dict[str, T]:
        out: dict[str, T] = {}
        unknown: list[str] = []
        fed: set[str] = set()
        for key, tensor in state_dict.items():
            found = map_key(key, table)
            if found is None:
                unknown.append(key)
                continue
            new_key, module = found
            fed.add(table[module] if to_archspec else module)
            out[new_key] = tensor
        diags = []
        if unknown:
            side = self.target if to_archspec else graph.name
            diags.append(Diagnostic("E-MAPPING", f"{len(unknown)} key(s) of the {side} state dict have no counterpart: "
                                    + ", ".join(unknown[:8]) + (" …" if len(unknown) > 8 else ""),
                                    Span(self.path, 1, 1)))
        stateful = [n.name for n in graph.nodes.values() if n.counts.params or n.counts.buffers]
        missing = [n for n in stateful if n not in fed]
        if missing:
            diags.append(Diagnostic("E-MAPPING", f"{len(missing)} module(s) with weights receive nothing: "
                                    + ", ".join(missing[:8]) + (" …" if len(missing) > 8 else ""),
                                    Span(self.path, 1, 1), hint="is this the state dict of the same model?"))
        if diags:
            raise ArchspecError(diags)
        return out


def map_key(key: str, table: Mapping[str, str]) -> tuple[str, str] | None:
    """``(renamed key, module path)`` of a state-dict key under a module-path ``table``, or None.

    The key's module is the longest dotted prefix in ``table``: a node's module may hold submodules
    (``self_attention.out_proj.weight`` belongs to the ``self_attention`` node), and ``""`` is the root
    module, whose own tensors (torchvision ViT's ``class_token``) have keys without a dot.
    """
    module, _, rest = key.rpartition(".")
    while True:
        mapped = table.get(module)
        if mapped is not None:
            return (f"{mapped}.{rest}" if mapped else rest), module
        if not module:
            return None
        module, _, part = module.rpartition(".")
        rest = f"{part}.{rest}"
        if not module:  # only a key without a dot belongs to the root module
            return None


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def find_mapping(spec: str | os.PathLike[str], name: str) -> KeyMapping:
    """The mapping in ``mappings/`` beside ``spec`` whose ``models`` lists ``name`` (the spec's name)."""
    folder = Path(spec).parent / "mappings"
    candidates = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    for file in candidates:
        mapping = KeyMapping.load(file)
        if name in mapping.models:
            return mapping
    raise ArchspecError.single("E-MAPPING", f"no mapping file in '{folder}' lists model '{name}'",
                               Span(str(spec), 1, 1),
                               hint="add a mappings/<family>.yaml with 'models: [" + name + "]'")


def _prepare(spec: str | os.PathLike[str], mapping: KeyMapping | None, overrides: Mapping[str, Any]
             ) -> tuple[KeyMapping, Graph]:
    from .api import analyze
    from .shipped import resolve_source

    spec = resolve_source(spec)  # a shipped model's name, as for archspec.build
    graph = analyze(spec, overrides)
    return (mapping or find_mapping(spec, graph.name)), graph


def import_state_dict(spec: str | os.PathLike[str], state_dict: Mapping[str, T], *,
                      mapping: KeyMapping | None = None, **overrides: Any) -> dict[str, T]:
    """Rename another implementation's state dict so that it loads into ``archspec.build(spec)``.

    The mapping is found beside the spec (:func:`find_mapping`) unless given; ``overrides`` set
    top-level spec parameters, as for :func:`archspec.build`.
    """
    km, graph = _prepare(spec, mapping, overrides)
    return km.to_archspec(state_dict, graph)


def export_state_dict(spec: str | os.PathLike[str], state_dict: Mapping[str, T], *,
                      mapping: KeyMapping | None = None, **overrides: Any) -> dict[str, T]:
    """Rename an archspec model's state dict to the other implementation's keys."""
    km, graph = _prepare(spec, mapping, overrides)
    return km.to_target(state_dict, graph)
