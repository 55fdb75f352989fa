"""Custom ops from installed packages: the ``archspec.ops`` entry point group.

A package adds ops without patching archspec by declaring, in its ``pyproject.toml``::

    [project.entry-points."archspec.ops"]
    my_ops = "my_package.ops"            # a module whose import registers ops with @register_op
    swish2 = "my_package.ops:Swish2"     # or an Op subclass, registered when loaded
    more = "my_package.ops:register"     # or a function called with no arguments

Entry points are loaded once, lazily: the first time a spec names an op that is not built in (or
:func:`load_plugins` is called).  Only installed entry points are ever imported; a spec can never
name a module to import.  Code that is not a package can call :func:`archspec.ops.register_op`
directly before analysing a spec.
"""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from .errors import ArchspecError, Diagnostic
from .ops import OPS, Op, canonical_op_name, register_op

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "load_plugins", "loaded_plugins"]

#: The entry point group archspec reads custom ops from.
ENTRY_POINT_GROUP = "archspec.ops"

_lock = threading.Lock()
_loaded: list[PluginInfo] | None = None


class PluginInfo:
    """One loaded entry point and the op names it added."""

    def __init__(self, name: str, value: str, ops: list[str]) -> None:
        self.name = name
        self.value = value
        self.ops = ops

    def __repr__(self) -> str:
        return f"PluginInfo({self.name!r}, {self.value!r}, ops={self.ops!r})"


def _load_one(ep: EntryPoint) -> list[str]:
    before = set(OPS)
    try:
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, Op):
            if canonical_op_name(obj.name) not in OPS:
                register_op(obj)
        elif not isinstance(obj, ModuleType) and callable(obj):
            obj()
    except Exception as exc:  # a broken plugin is reported as a diagnostic, not a traceback
        raise ArchspecError([
            Diagnostic(
                "E-PLUGIN",
                f"cannot load archspec plugin '{ep.name}' ({ep.value}): {type(exc).__name__}: {exc}",
                hint=f"fix or uninstall the package providing the '{ENTRY_POINT_GROUP}' entry point '{ep.name}'",
            )
        ]) from exc
    return sorted(set(OPS) - before)


def load_plugins(*, force: bool = False) -> list[PluginInfo]:
    """Load every ``archspec.ops`` entry point once (again with ``force``); return what was loaded."""
    global _loaded
    with _lock:
        if _loaded is not None and not force:
            return list(_loaded)
        found = entry_points(group=ENTRY_POINT_GROUP)
        infos: list[PluginInfo] = []
        _loaded = infos  # set first: a plugin that looks up ops while loading does not recurse
        try:
            for ep in sorted(found, key=lambda e: e.name):
                infos.append(PluginInfo(ep.name, ep.value, _load_one(ep)))
        except ArchspecError:
            _loaded = None  # report the broken plugin again next time
            raise
        return list(infos)


def loaded_plugins() -> list[PluginInfo]:
    """The entry points loaded so far (empty before the first unknown op name)."""
    return list(_loaded or [])
