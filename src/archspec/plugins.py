"""Custom ops from plugins: installed packages (the ``archspec.ops`` entry point group) and local modules.

A package adds ops without patching archspec by declaring, in its ``pyproject.toml``::

    [project.entry-points."archspec.ops"]
    my_ops = "my_package.ops"            # a module whose import registers ops with @register_op
    swish2 = "my_package.ops:Swish2"     # or an Op subclass, registered when loaded
    more = "my_package.ops:register"     # or a function called with no arguments

Entry points are loaded once, lazily: the first time a spec names an op that is not registered
(:func:`find_op`, which validation uses), or when :func:`load_plugins` is called.  Each entry point
is loaded on its own: one that fails is skipped and remembered (:func:`plugin_failures`), so a
broken package never hides a working one; its failure shows as a note on an unknown-op error and
as a ``W-PLUGIN`` warning on a spec that uses plugin ops.

Code that is not a package is loaded by the user's explicit choice, never by a spec:
:func:`load_plugin` (``archspec.load_plugin("my_ops.py")``; the command line's ``--plugin``)
imports a ``.py`` file, a package folder or an importable module by name.  A spec file can only
use ops that are registered; it can never name code to run.

Ops that do not come from archspec itself are checked at every call: an exception other than
:class:`~archspec.ops.ShapeError` raised by one of their hooks, or a result of the wrong type,
becomes an ``E-PLUGIN`` diagnostic naming the op and its plugin (:func:`hook_failure`).  The guide
for plugin authors is ``docs/plugins.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import ArchspecError, Diagnostic, Note, Span
from .ops import OPS, Counts, Op, Shape, canonical_op_name, get_op, is_builtin, register_op

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginError",
    "PluginInfo",
    "checked_counts",
    "checked_label",
    "checked_shape",
    "find_op",
    "hook_failure",
    "load_plugin",
    "load_plugins",
    "loaded_plugins",
    "op_origin",
    "plugin_failures",
    "unknown_op_help",
]

#: The entry point group archspec reads custom ops from.
ENTRY_POINT_GROUP = "archspec.ops"

_lock = threading.RLock()  # a plugin may look ops up (find_op) while it is being loaded
_loaded: list[PluginInfo] | None = None  # entry points, once loaded
_failures: list[_Failure] = []  # entry points that failed to load (skipped)
_local: dict[str, PluginInfo] = {}  # load_plugin(): resolved path or module name → what it loaded
_origins: dict[str, str] = {}  # canonical op name → where it came from ("plugin 'demo' (pkg.ops)")
_module_origins: dict[str, str] = {}  # module name of a loaded plugin → its description


class PluginInfo:
    """One loaded plugin (an entry point or a local module) and the op names it added or replaced."""

    def __init__(self, name: str, value: str, ops: list[str], kind: str = "entry point") -> None:
        self.name = name
        self.value = value
        self.ops = ops
        self.kind = kind

    def __repr__(self) -> str:
        return f"PluginInfo({self.name!r}, {self.value!r}, ops={self.ops!r}, kind={self.kind!r})"


class PluginError(Exception):
    """A plugin hook returned something archspec cannot use (the message says what and why)."""


class _Failure:
    """An entry point that could not be loaded."""

    def __init__(self, name: str, value: str, error: str, span: Span | None) -> None:
        self.name = name
        self.value = value
        self.error = error
        self.span = span

    def message(self) -> str:
        return f"cannot load archspec plugin '{self.name}' ({self.value}): {self.error}"

    def hint(self) -> str:
        return f"fix or uninstall the package providing the '{ENTRY_POINT_GROUP}' entry point '{self.name}'"


# ------------------------------------------------------------------ where an error happened


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_one_line(str(exc))}" if str(exc) else type(exc).__name__


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return list(traceback.extract_tb(exc.__traceback__)) if exc.__traceback__ is not None else []


def _site(exc: BaseException, under: str | None = None) -> Span | None:
    """Where ``exc`` was raised: the innermost frame in ``under`` (a file or folder), else outside archspec.

    A ``SyntaxError`` is located at its own line and column.
    """
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return Span(exc.filename, exc.lineno, max(int(exc.offset or 1), 1))
    own = os.path.dirname(os.path.abspath(__file__))
    for frame in reversed(_frames(exc)):
        name = frame.filename
        if name.startswith("<") or not frame.lineno:
            continue
        absolute = os.path.abspath(name)
        if under is not None:
            if absolute == under or absolute.startswith(under.rstrip(os.sep) + os.sep):
                return Span(name, frame.lineno, 1)
        elif not absolute.startswith(own + os.sep) and "importlib" not in absolute:
            return Span(name, frame.lineno, 1)
    return None


def _op_dir(op: Op) -> str | None:
    """The folder of the file defining ``op``'s class (its plugin's code), if it has one."""
    module = sys.modules.get(type(op).__module__)
    path = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) if path else None


# ------------------------------------------------------------------ what registered an op


@contextlib.contextmanager
def _tracking(origin: str) -> Iterator[list[str]]:
    """Record the ops registered (added or replaced) inside the block; undo them if it raises."""
    before = dict(OPS)
    changed: list[str] = []
    try:
        yield changed
    except BaseException:
        for name in [n for n in OPS if before.get(n) is not OPS[n]]:
            if name in before:
                OPS[name] = before[name]
            else:
                del OPS[name]
        raise
    changed.extend(sorted(n for n in OPS if before.get(n) is not OPS[n]))
    for name in changed:
        _origins[name] = origin


def op_origin(op: Op) -> str:
    """Where an op comes from, for messages: ``plugin 'demo' (archspec_demo_plugin.ops)``, ``plugin file 'ops.py'``…"""
    name = canonical_op_name(op.name)
    if OPS.get(name) is op and name in _origins:
        return _origins[name]
    module = type(op).__module__
    for prefix, origin in _module_origins.items():
        if module == prefix or module.startswith(prefix + "."):
            return origin
    if is_builtin(op):
        return "archspec"
    return f"module '{module}'"


# ------------------------------------------------------------------ installed entry points


def _load_one(ep: EntryPoint) -> list[str]:
    origin = f"plugin '{ep.name}' ({ep.value})"
    _module_origins.setdefault(ep.value.partition(":")[0].strip(), origin)
    with _tracking(origin) as changed:
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, Op):
            if canonical_op_name(obj.name) not in OPS:
                register_op(obj)
        elif not isinstance(obj, ModuleType) and callable(obj):
            obj()
    return changed


def load_plugins(*, force: bool = False, strict: bool = False) -> list[PluginInfo]:
    """Load every ``archspec.ops`` entry point once (again with ``force``); return those that loaded.

    An entry point that fails to load is skipped and remembered (:func:`plugin_failures`); the
    others still load.  With ``strict``, failures raise :class:`ArchspecError` (``E-PLUGIN``,
    one diagnostic per broken entry point) after the others are loaded.
    """
    global _loaded
    with _lock:
        if _loaded is None or force:
            found = entry_points(group=ENTRY_POINT_GROUP)
            infos: list[PluginInfo] = []
            _loaded = infos  # set first: a plugin that looks up ops while loading does not recurse
            _failures.clear()
            for ep in sorted(found, key=lambda e: e.name):
                try:
                    infos.append(PluginInfo(ep.name, ep.value, _load_one(ep)))
                except Exception as exc:  # a broken plugin is skipped and reported, never a traceback
                    module_file = None
                    with contextlib.suppress(Exception):
                        spec = importlib.util.find_spec(ep.value.partition(":")[0].strip())
                        module_file = spec.origin if spec is not None else None
                    under = os.path.dirname(os.path.abspath(module_file)) if module_file else None
                    _failures.append(_Failure(ep.name, ep.value, _describe(exc), _site(exc, under)))
        if strict and _failures:
            raise ArchspecError([Diagnostic("E-PLUGIN", f.message(), f.span, f.hint()) for f in _failures])
        return list(_loaded)


def plugin_failures() -> list[Diagnostic]:
    """The installed entry points that failed to load, as ``W-PLUGIN`` warnings (empty before loading)."""
    with _lock:
        return [Diagnostic("W-PLUGIN", f.message() + "; its ops are unavailable", f.span, f.hint(), "warning")
                for f in _failures]


def loaded_plugins() -> list[PluginInfo]:
    """The plugins loaded so far: entry points (none before the first unknown op name), then local modules."""
    with _lock:
        return [*(_loaded or []), *_local.values()]


def find_op(name: str) -> Op | None:
    """The op registered under ``name``, loading the installed plugins first if it is not registered.

    Never raises for a broken plugin: it is skipped (see :func:`load_plugins`).
    """
    op = get_op(name)
    if op is None and load_plugins():
        op = get_op(name)
    return op


def unknown_op_help() -> tuple[str, tuple[Note, ...]]:
    """The end of an unknown-op hint (where ops come from) and notes naming plugins that failed to load."""
    text = ("(see 'Ops' in the README for the list; an op from a plugin needs the plugin loaded: --plugin FILE.py "
            f"or MODULE, archspec.load_plugin(), or an installed package's '{ENTRY_POINT_GROUP}' entry point)")
    with _lock:
        notes = tuple(Note(f"the installed plugin '{f.name}' ({f.value}) failed to load and was skipped: {f.error}",
                           f.span) for f in _failures)
    return text, notes


# ------------------------------------------------------------------ local modules, by the user's choice

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _plugin_error(message: str, span: Span | None, hint: str | None = None) -> ArchspecError:
    return ArchspecError([Diagnostic("E-PLUGIN", message, span, hint)])


def _is_path(text: str) -> bool:
    return (os.sep in text or (os.altsep is not None and os.altsep in text) or "/" in text
            or text.endswith(".py") or os.path.exists(text))


def load_plugin(target: str | os.PathLike[str]) -> PluginInfo:
    """Load a local plugin: a ``.py`` file, a package folder, or an importable module by name.

    Importing it must register its ops (``@register_op``).  ``target`` is a path when it is a
    ``PathLike``, names an existing file or folder, contains a slash or ends in ``.py``; otherwise
    it is a module name (imported with :func:`importlib.import_module`, from ``sys.path``).  A file
    is imported under a unique module name (``_archspec_plugin_<stem>_<hash>``), a folder as a
    package (its ``__init__.py``; relative imports work); loading the same target again does
    nothing.  Returns what it loaded.  Any problem — a missing file, a syntax error, an exception
    while importing — is an ``E-PLUGIN`` :class:`ArchspecError` located in the plugin's code, and
    leaves the op registry as it was.
    """
    text = os.fspath(target)
    if not isinstance(text, str):
        raise _plugin_error(f"a plugin is a path or a module name, got {text!r}", None)
    with _lock:
        if isinstance(target, os.PathLike) or _is_path(text):
            return _load_path(text)
        return _load_module(text)


def _load_path(text: str) -> PluginInfo:
    path = Path(text)
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise _plugin_error(f"plugin '{text}': no such file or folder", None,
                            "give the path of a .py file or a package folder, or the name of an importable module") from None
    key = str(resolved)
    if key in _local:
        return _local[key]
    if resolved.is_dir():
        init = resolved / "__init__.py"
        if not init.is_file():
            raise _plugin_error(f"plugin folder '{text}' is not a Python package (it has no __init__.py)", None,
                                "give the .py file that registers the ops, or add an __init__.py that imports them")
        location, search = init, [str(resolved)]
    elif resolved.is_file():
        location, search = resolved, None
    else:
        raise _plugin_error(f"plugin '{text}' is neither a file nor a folder", None)
    stem = re.sub(r"\W", "_", resolved.stem if search is None else resolved.name, flags=re.ASCII)
    mod_name = f"_archspec_plugin_{stem}_{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    loader = importlib.machinery.SourceFileLoader(mod_name, str(location))
    spec = importlib.util.spec_from_file_location(mod_name, str(location), loader=loader,
                                                  submodule_search_locations=search)
    if spec is None:  # pragma: no cover - a SourceFileLoader always gives a spec
        raise _plugin_error(f"plugin '{text}' cannot be imported", None)
    origin = f"plugin {'file' if search is None else 'package'} '{text}'"
    _module_origins[mod_name] = origin
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # classes defined there pickle, and inspect.getsource finds them
    try:
        with _tracking(origin) as changed:
            loader.exec_module(module)
    except Exception as exc:
        for name in [m for m in sys.modules if m == mod_name or m.startswith(mod_name + ".")]:
            del sys.modules[name]
        del _module_origins[mod_name]
        raise _plugin_error(f"cannot load plugin '{text}': {_describe(exc)}",
                            _site(exc, str(resolved if search else resolved.parent)),
                            "fix the plugin's code; importing it must register its ops (@register_op)") from None
    info = PluginInfo(text, key, _ops_of(mod_name, changed), "file" if search is None else "package")
    _local[key] = info
    return info


def _load_module(name: str) -> PluginInfo:
    if not _MODULE_NAME.fullmatch(name) or name.startswith("_archspec_plugin_"):
        raise _plugin_error(f"plugin {name!r} is not a module name or an existing path", None,
                            "give the path of a .py file or a package folder, or a dotted module name")
    key = "module:" + name
    if key in _local:
        return _local[key]
    origin = f"plugin module '{name}'"
    _module_origins[name] = origin
    try:
        with _tracking(origin) as changed:
            importlib.import_module(name)
    except Exception as exc:
        del _module_origins[name]
        if isinstance(exc, ModuleNotFoundError) and exc.name is not None and (name + ".").startswith(exc.name + "."):
            local = Path(name.replace(".", os.sep) + ".py")
            hint = (f"to load the file ./{local}, give its path: --plugin ./{local}" if local.is_file() else
                    "install the package that provides it, or give the path of a .py file or package folder")
            raise _plugin_error(f"plugin module '{name}' not found (no module named '{exc.name}')", None, hint) from None
        spec = None
        with contextlib.suppress(Exception):
            spec = importlib.util.find_spec(name.split(".")[0])
        under = None
        if spec is not None and spec.origin:
            under = os.path.dirname(os.path.abspath(spec.origin))
        raise _plugin_error(f"cannot load plugin module '{name}': {_describe(exc)}", _site(exc, under),
                            "fix the plugin's code; importing it must register its ops (@register_op)") from None
    info = PluginInfo(name, name, _ops_of(name, changed), "module")
    _local[key] = info
    return info


def _ops_of(module: str, changed: list[str]) -> list[str]:
    """Ops registered by a load, plus those of classes from the module (registered by an earlier import)."""
    mine = {n for n, op in OPS.items()
            if type(op).__module__ == module or type(op).__module__.startswith(module + ".")}
    for name in mine - set(changed):
        _origins.setdefault(name, _module_origins.get(module, f"module '{module}'"))
    return sorted(mine | set(changed))


# ------------------------------------------------------------------ checking what a plugin's hooks return


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def checked_shape(result: Any) -> Shape:
    """A plugin's ``infer`` result as a shape: a tuple of 1 (F), 2 (L, D tokens) or 3 (C, H, W) whole numbers;
    else :class:`PluginError`."""
    if isinstance(result, list):
        result = tuple(result)
    if (not isinstance(result, tuple) or len(result) not in (1, 2, 3)
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in result)):
        raise PluginError(f"returned {_short(result)}, not a shape (a tuple of 1, 2 or 3 whole numbers: (F,), (L, D) "
                          "tokens or (C, H, W))")
    return tuple(int(d) for d in result)


def checked_counts(result: Any) -> Counts:
    """A plugin's ``count`` result: a :class:`~archspec.ops.Counts` of whole numbers ≥ 0; else :class:`PluginError`."""
    if not isinstance(result, Counts):
        raise PluginError(f"returned {_short(result)}, not archspec.Counts(params=..., buffers=..., macs=...)")
    for field in ("params", "buffers", "macs", "int_buffers"):
        v = getattr(result, field)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise PluginError(f"returned Counts with {field}={_short(v)}: counts are whole numbers ≥ 0")
    if result.int_buffers > result.buffers:
        raise PluginError(f"returned Counts with int_buffers={result.int_buffers} > buffers={result.buffers}")
    return result


def checked_label(result: Any) -> str:
    """A plugin's ``label`` result: a string; else :class:`PluginError`."""
    if not isinstance(result, str):
        raise PluginError(f"returned {_short(result)}, not a string")
    return result


def hook_failure(op: Op, hook: str, exc: BaseException) -> tuple[str, str]:
    """``(message, hint)`` of the ``E-PLUGIN`` diagnostic for ``exc`` raised by ``op``'s ``hook``.

    ``hook`` is ``infer``, ``count``, ``label``, ``lower``, ``emit`` or ``params_model``.  The
    message names the op, its plugin (:func:`op_origin`), the hook and the exception, and where in
    the plugin's code it was raised.
    """
    what = "its parameter model (params_model)" if hook == "params_model" else f"{hook}()"
    origin = op_origin(op)
    if isinstance(exc, PluginError):
        return (f"op '{op.name}' from {origin}: {what} {exc}",
                "this is a bug in the plugin, not in the spec: see docs/plugins.md for what each hook returns")
    site = _site(exc, _op_dir(op))
    where = f" (raised at {site.path}:{site.line})" if site is not None else ""
    return (f"op '{op.name}' from {origin} failed in {what}: {_describe(exc)}{where}",
            "this is a bug in the plugin, not in the spec; a shape rule reports inputs it cannot take by raising "
            "archspec.ShapeError (see docs/plugins.md)")
