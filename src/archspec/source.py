"""Stage 1, *read*: YAML text → plain data that remembers where every value came from.

Only YAML's plain data types are accepted (safe loading; any tag that would construct a Python
object is an error).  Mappings become :class:`LocMap` and sequences :class:`LocSeq`: ordinary
``dict`` and ``list`` objects that also carry the :class:`~archspec.errors.Span` of themselves, of
each key and of each value, so every later stage can point at the exact line and column.

Resource guards: duplicate keys are errors; alias expansion ("billion laughs") is measured before
anything is built and refused past :data:`MAX_YAML_NODES`; nesting past :data:`MAX_DEPTH` is an error.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import ArchspecError, Diagnostic, Span

__all__ = ["MAX_DEPTH", "MAX_YAML_NODES", "LocMap", "LocSeq", "load_yaml_text", "read_file", "span_of"]

#: The largest number of YAML nodes a spec may expand to (counting every alias use in full).
MAX_YAML_NODES = 3_000_000
#: The deepest nesting of mappings and sequences a spec may have.
MAX_DEPTH = 100
#: Largest spec file accepted, in bytes.
MAX_FILE_BYTES = 64 * 1024 * 1024

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


class LocMap(dict[str, Any]):
    """A mapping read from YAML, with the span of itself, of each key and of each value."""

    __slots__ = ("key_spans", "span", "value_spans")

    def __init__(self, span: Span) -> None:
        super().__init__()
        self.span = span
        self.key_spans: dict[Any, Span] = {}
        self.value_spans: dict[Any, Span] = {}


class LocSeq(list[Any]):
    """A sequence read from YAML, with the span of itself and of each item."""

    __slots__ = ("item_spans", "span")

    def __init__(self, span: Span) -> None:
        super().__init__()
        self.span = span
        self.item_spans: list[Span] = []


def span_of(container: Any, key: Any = None, *, key_position: bool = False) -> Span | None:
    """The span of ``container[key]`` (or of its key), or of the container itself when key is None."""
    if key is None:
        return getattr(container, "span", None)
    if isinstance(container, LocMap):
        spans = container.key_spans if key_position else container.value_spans
        return spans.get(key, container.span)
    if isinstance(container, LocSeq) and isinstance(key, int) and 0 <= key < len(container.item_spans):
        return container.item_spans[key]
    return getattr(container, "span", None)


def _span(path: str, mark: Any) -> Span:
    return Span(path, mark.line + 1, mark.column + 1)


# The record_reads() collectors open in this thread/context, innermost last (a tuple: never mutated).
_reads: contextvars.ContextVar[tuple[list[tuple[str, bytes]], ...]] = contextvars.ContextVar("archspec_reads", default=())


def file_digest(raw: bytes) -> bytes:
    """The digest spec caches compare file contents by."""
    import hashlib  # not at import time: the static pipeline does not need it

    return hashlib.blake2b(raw, digest_size=20).digest()


@contextlib.contextmanager
def record_reads() -> Iterator[list[tuple[str, bytes]]]:
    """Collect ``(real path, digest)`` of every file :func:`read_file` reads inside the block.

    Collectors are per thread (and per asyncio task): concurrent analyses do not see each other's reads.
    """
    reads: list[tuple[str, bytes]] = []
    token = _reads.set((*_reads.get(), reads))
    try:
        yield reads
    finally:
        _reads.reset(token)


def read_file(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """Read and parse a spec file; return ``(data, display_path)``.

    Raises :class:`ArchspecError` for a missing, unreadable, binary, non-UTF-8 or malformed file.
    """
    display = str(path)
    p = Path(path)
    try:
        if p.is_dir():
            raise ArchspecError.single("E-IO", f"'{display}' is a directory, not a spec file", Span(display, 1, 1))
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ArchspecError.single(
                "E-IO", f"file is {size} bytes; specs are limited to {MAX_FILE_BYTES} bytes", Span(display, 1, 1)
            )
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ArchspecError.single("E-IO", f"no such file: '{display}'") from None
    except OSError as exc:
        raise ArchspecError.single("E-IO", f"cannot read '{display}': {exc.strerror or exc}") from None
    collectors = _reads.get()
    if collectors:
        entry = (os.path.realpath(p), file_digest(raw))
        for reads in collectors:
            reads.append(entry)
    return load_yaml_bytes(raw, display), display


def _position_of_offset(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    col = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, col


def load_yaml_bytes(raw: bytes, path: str) -> Any:
    """Decode bytes as UTF-8 (refusing binary content) and parse them with :func:`load_yaml_text`."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ArchspecError.single(
            "E-ENCODING", "file is UTF-16 encoded; specs are read as UTF-8", Span(path, 1, 1),
            hint="save the spec as UTF-8",
        )
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, col = _position_of_offset(raw, nul)
        raise ArchspecError.single(
            "E-ENCODING", "file contains a NUL byte; this looks like a binary file, not a YAML spec", Span(path, line, col)
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position_of_offset(raw, exc.start)
        raise ArchspecError.single(
            "E-ENCODING",
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            Span(path, line, col),
            hint="save the spec as UTF-8",
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return load_yaml_text(text, path)


def load_yaml_text(text: str, path: str = "<string>") -> Any:
    """Parse YAML text into :class:`LocMap`/:class:`LocSeq`/scalars with positions.

    An empty document returns ``None``.  Several documents in one file are an error.
    """
    loader = _Loader(text)
    try:
        try:
            _check_depth(text, path)
            node = loader.get_single_node()
        except RecursionError:
            raise ArchspecError.single(
                "E-LIMIT", f"YAML nesting is too deep (the limit is {MAX_DEPTH} levels)", Span(path, 1, 1)
            ) from None
        except yaml.composer.ComposerError as exc:
            if "expected a single document" in f"{exc.problem} {exc.context}":
                raise ArchspecError.single(
                    "E-YAML",
                    "a spec file holds one YAML document, found a second one",
                    _span(path, exc.problem_mark) if exc.problem_mark else Span(path, 1, 1),
                    hint="remove the '---' separator and everything after it, or split the file",
                ) from None
            raise _yaml_error(exc, path, text) from None
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, path, text) from None
        if node is None:
            return None
        return _Builder(loader, path).build(node)
    finally:
        loader.dispose()


def _check_depth(text: str, path: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` from the event stream, before anything is composed.

    The YAML composer recurses once per level (in C for the libyaml loader, where a deep enough
    ``[[[[...`` would crash the interpreter), so depth is measured on the flat event stream first.
    """
    scanner = _Loader(text)
    try:
        depth = 0
        while True:
            event = scanner.get_event()
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ArchspecError.single(
                        "E-LIMIT", f"YAML nesting is too deep (the limit is {MAX_DEPTH} levels)",
                        _span(path, event.start_mark),
                    )
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
            elif event is None or isinstance(event, yaml.StreamEndEvent):
                return
    finally:
        scanner.dispose()


def _char_at(text: str | None, mark: Any) -> str:
    """The character of ``text`` at a YAML mark ('' when unknown)."""
    if text is None or mark is None:
        return ""
    lines = text.split("\n")
    if not 0 <= mark.line < len(lines):
        return ""
    line = lines[mark.line]
    return line[mark.column] if 0 <= mark.column < len(line) else ""


def _yaml_error(exc: yaml.YAMLError, path: str, text: str | None = None) -> ArchspecError:
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    mark = problem_mark or context_mark
    span = _span(path, mark) if mark is not None else Span(path, 1, 1)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    hint = None
    if _char_at(text, problem_mark) == "\t" or "'\\t'" in problem:
        problem = "found a tab character where YAML expects spaces"
        hint = "YAML indentation must use spaces, not tabs"
    message = f"invalid YAML: {problem}"
    if context:
        if context_mark is not None and problem_mark is not None and (
            (context_mark.line, context_mark.column) != (problem_mark.line, problem_mark.column)
        ):
            context += f" started at line {context_mark.line + 1}, column {context_mark.column + 1}"
        message += f" ({context})"
    return ArchspecError.single("E-YAML", message, span, hint)


def _tag_error(tag: str, span: Span) -> ArchspecError:
    """A YAML tag that is not plain data (``!!python/object`` and friends, or a custom ``!tag``)."""
    shown = "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag
    return ArchspecError.single(
        "E-YAML-TAG",
        f"YAML tag '{shown}' is not allowed in a spec",
        span,
        hint="specs are plain data: strings, numbers, booleans, null, lists and mappings",
    )


class _Builder:
    """Turns a composed YAML node graph into located plain data, guarding size and depth."""

    def __init__(self, loader: Any, path: str) -> None:
        self.loader = loader
        self.path = path
        self.sizes: dict[int, int] = {}
        self.built: dict[int, Any] = {}

    def build(self, root: yaml.Node) -> Any:
        total = self._size(root, 0)
        if total > MAX_YAML_NODES:
            raise ArchspecError.single(
                "E-LIMIT",
                f"the spec expands to more than {MAX_YAML_NODES:,} YAML values once aliases are expanded",
                _span(self.path, root.start_mark),
                hint="this looks like an alias bomb ('billion laughs'); specs use blocks and 'repeat' instead",
            )
        return self._convert(root)

    def _size(self, node: yaml.Node, depth: int) -> int:
        """Expanded size of a node, counting every alias use in full (memoised: linear time)."""
        key = id(node)
        known = self.sizes.get(key)
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            raise ArchspecError.single(
                "E-LIMIT",
                f"YAML nesting is too deep (the limit is {MAX_DEPTH} levels)",
                _span(self.path, node.start_mark),
            )
        self.sizes[key] = MAX_YAML_NODES + 1  # a self-referencing alias counts as unbounded
        size = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                size += self._size(k, depth + 1) + self._size(v, depth + 1)
                if size > MAX_YAML_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                size += self._size(item, depth + 1)
                if size > MAX_YAML_NODES:
                    break
        self.sizes[key] = size
        return size

    def _convert(self, node: yaml.Node) -> Any:
        key = id(node)
        if key in self.built:
            return self.built[key]
        if isinstance(node, yaml.ScalarNode):
            # A plain string needs no constructor (the common case: a fast path for big specs);
            # a date such as 2024-05-01 stays text.
            if node.tag == "tag:yaml.org,2002:str" or node.tag == "tag:yaml.org,2002:timestamp":
                self.built[key] = node.value
                return node.value
            if node.tag not in _PLAIN_TAGS:
                raise _tag_error(node.tag, _span(self.path, node.start_mark))
            try:
                value = self.loader.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                raise _yaml_error(exc, self.path) from None
            self.built[key] = value
            return value
        span = _span(self.path, node.start_mark)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise _tag_error(node.tag, span)
            seq = LocSeq(span)
            self.built[key] = seq
            for item in node.value:
                seq.append(self._convert(item))
                seq.item_spans.append(_span(self.path, item.start_mark))
            return seq
        if isinstance(node, yaml.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise _tag_error(node.tag, span)
            mapping = LocMap(span)
            self.built[key] = mapping
            try:
                self.loader.flatten_mapping(node)  # YAML merge keys ('<<: *base')
            except yaml.YAMLError as exc:
                raise _yaml_error(exc, self.path) from None
            errors: list[Diagnostic] = []
            for knode, vnode in node.value:
                kspan = _span(self.path, knode.start_mark)
                if not isinstance(knode, yaml.ScalarNode):
                    errors.append(Diagnostic("E-YAML", "mapping keys must be plain scalars", kspan))
                    continue
                k = self._convert(knode)
                if isinstance(k, bool) or k is None or isinstance(k, float):
                    k = knode.value
                elif not isinstance(k, (str, int)):
                    k = str(k)
                if k in mapping:
                    first = mapping.key_spans[k]
                    errors.append(
                        Diagnostic(
                            "E-DUPLICATE-KEY",
                            f"duplicate key '{k}' (first defined at line {first.line})",
                            kspan,
                            hint="YAML would silently keep only the last one; remove or rename one of them",
                        )
                    )
                    continue
                mapping[k] = self._convert(vnode)
                mapping.key_spans[k] = kspan
                mapping.value_spans[k] = _span(self.path, vnode.start_mark)
            if errors:
                raise ArchspecError(errors)
            return mapping
        raise ArchspecError.single("E-YAML", "unsupported YAML node", span)  # pragma: no cover
