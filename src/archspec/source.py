"""Stage 1, *read*: YAML text → plain data that remembers where every value came from.

Only YAML's plain data types are accepted (safe loading; any tag that would construct a Python
object is an error).  Mappings become :class:`LocMap` and sequences :class:`LocSeq`: ordinary
``dict`` and ``list`` objects that also carry the :class:`~archspec.errors.Span` of themselves, of
each key and of each value, so every later stage can point at the exact line and column.

The document is built in one pass over the YAML parser's flat event stream (never PyYAML's recursive
composer), so every guard runs *before* the work it guards, whatever the PyYAML/libyaml version:

* input size: at most :data:`MAX_FILE_BYTES` are read, only from regular files (a FIFO or a device
  such as ``/dev/zero`` is refused before a byte is read);
* nesting: a collection opening past :data:`MAX_DEPTH` levels is an error at its position;
* size: every value counts, and an alias counts the *expanded* size of what it names, so an alias
  bomb stops at :data:`MAX_YAML_NODES` while memory stays bounded by the text;
* numbers: a numeric literal longer than :data:`MAX_NUMBER_CHARS` is refused before it is converted
  (Python's int-string conversion limit can never surface);
* duplicate keys and duplicate anchors are errors; recursive aliases are refused.

Scalars are resolved by the resolvers of ``_Loader`` (a subclass of PyYAML's safe loader): numbers as users write them (YAML 1.2's
core schema: ``1e-6`` is a float, ``0o10`` octal, ``1:30`` text), a leading-zero integer that YAML
versions read differently (``010``: octal 8 in YAML 1.1, 10 in YAML 1.2) is refused with a hint, dates
stay text.  YAML merge
keys (``<<: *base``) are supported with YAML 1.1's semantics: keys written in the mapping win over
merged ones, and a merged key keeps the position of its definition.  Line numbers count ``\\n``,
``\\r\\n`` and a lone ``\\r`` as line breaks, as editors do; U+0085, U+2028 and U+2029 (line breaks
to YAML) do not shift later positions.
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import math
import os
import re
import stat
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from .errors import ArchspecError, Diagnostic, Span

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NUMBER_CHARS",
    "MAX_YAML_NODES",
    "LocMap",
    "LocSeq",
    "load_yaml_bytes",
    "load_yaml_text",
    "read_file",
    "read_spec_bytes",
    "span_of",
]

#: The largest number of YAML values a spec may expand to (counting every alias use in full).
MAX_YAML_NODES = 3_000_000
#: The deepest nesting of mappings and sequences a spec may have.
MAX_DEPTH = 100
#: Largest spec accepted: bytes of a file, characters of YAML text.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Longest numeric literal accepted, in characters (2**53 has 16 digits).
MAX_NUMBER_CHARS = 100
#: Collected (non-fatal) reading errors reported at most per document.
_MAX_ERRORS = 50

_SAFE_BASE: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when available

_Y = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = _Y + "str", _Y + "int", _Y + "float", _Y + "bool", _Y + "null"
_MERGE, _TIMESTAMP, _SEQ, _MAP = _Y + "merge", _Y + "timestamp", _Y + "seq", _Y + "map"
#: Resolved for integers written with a leading zero (``010``): refused, since YAML versions disagree.
_LEADING_ZERO = "tag:archspec,2024:leading-zero-int"
_SCALAR_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})

_DIGITS = r"[0-9]+(?:_[0-9]+)*"
_EXP = r"[eE][-+]?[0-9]+"
_INT_RE = re.compile(
    r"[-+]?(?:0|[1-9][0-9]*(?:_[0-9]+)*"
    r"|0x[0-9a-fA-F]+(?:_[0-9a-fA-F]+)*|0o[0-7]+(?:_[0-7]+)*|0b[01]+(?:_[01]+)*)\Z"
)
_FLOAT_RE = re.compile(rf"[-+]?(?:{_DIGITS}\.(?:{_DIGITS})?(?:{_EXP})?|\.{_DIGITS}(?:{_EXP})?|{_DIGITS}{_EXP})\Z")
_SPECIAL_FLOAT_RE = re.compile(r"(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z")
_LEADING_ZERO_RE = re.compile(r"[-+]?0(?:_?[0-9])+\Z")
_BOOL_RE = re.compile(r"(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)\Z")
_NULL_RE = re.compile(r"(?:~|null|Null|NULL|)\Z")
_MERGE_RE = re.compile(r"<<\Z")
_BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_NUMBER_START = list("-+0123456789.")


class _Loader(_SAFE_BASE):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader (the libyaml one when available) with the spec language's scalar resolvers.

    Only the parser's event stream and these resolvers are used (see :func:`load_yaml_text`); PyYAML's
    constructors never run.  The resolvers read booleans and null as YAML 1.1 does, numbers as YAML
    1.2's core schema does (plus ``0b``/``0x``/``0o`` prefixes and ``_`` between digits), mark a
    leading-zero integer (refused when YAML 1.1 and 1.2 read it differently), and leave dates, ``1:30``
    and ``=`` as text.
    """

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}  # noqa: RUF012 - PyYAML's API


for _tag, _regexp, _first in (
    (_BOOL, _BOOL_RE, list("yYnNtTfFoO")),
    (_NULL, _NULL_RE, ["~", "n", "N", ""]),
    (_MERGE, _MERGE_RE, ["<"]),
    (_LEADING_ZERO, _LEADING_ZERO_RE, list("-+0")),
    (_INT, _INT_RE, list("-+0123456789")),
    (_FLOAT, _FLOAT_RE, _NUMBER_START),
    (_FLOAT, _SPECIAL_FLOAT_RE, list("-+.")),
):
    _Loader.add_implicit_resolver(_tag, _regexp, _first)


def _resolve(value: str) -> str:
    """The tag of a plain (unquoted) scalar under :class:`_Loader`'s resolvers."""
    for tag, regexp in _Loader.yaml_implicit_resolvers.get(value[:1], ()):
        if regexp.match(value):
            return tag
    return _STR


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


# --------------------------------------------------------------------------------------------------
# Positions

_BREAK_RE = re.compile(r"\r\n|\r|\n")


class _Positions:
    """Turns parser marks into editor positions.

    YAML also breaks lines at U+0085, U+2028 and U+2029, which editors show inside a line; when the
    text holds one, positions are computed from the character offset instead of the parser's line.
    """

    __slots__ = ("path", "starts", "text")

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.text = text
        self.starts: list[int] | None = None
        if "\x85" in text or "\u2028" in text or "\u2029" in text:
            self.starts = [0, *(m.end() for m in _BREAK_RE.finditer(text))]

    def span(self, mark: Any) -> Span:
        if self.starts is None:
            return Span(self.path, mark.line + 1, mark.column + 1)
        return self.at(mark.index)

    def at(self, index: int) -> Span:
        """The editor position of character ``index``."""
        starts = self.starts
        if starts is None:
            starts = [0, *(m.end() for m in _BREAK_RE.finditer(self.text, 0, index))]
        index = min(max(index, 0), len(self.text))
        line = bisect.bisect_right(starts, index) - 1
        return Span(self.path, line + 1, index - starts[line] + 1)

    def char_at(self, mark: Any) -> str:
        index = getattr(mark, "index", -1)
        return self.text[index] if 0 <= index < len(self.text) else ""


def _line_col_of_offset(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of a byte offset (``\\n``, ``\\r\\n`` and a lone ``\\r`` break lines)."""
    head = data[:offset]
    breaks = list(re.finditer(rb"\r\n|\r|\n", head))
    start = breaks[-1].end() if breaks else 0
    return len(breaks) + 1, offset - start + 1


# --------------------------------------------------------------------------------------------------
# Reading files

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


_O_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_spec_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a spec file, read with every input guard.

    Only a regular file is read (a FIFO, a device such as ``/dev/zero`` or a socket is refused
    without reading, and without blocking on a FIFO that has no writer), and never more than
    :data:`MAX_FILE_BYTES` + 1 bytes, even from a file that grows or misreports its size.
    Raises :class:`ArchspecError` (``E-IO``) otherwise.
    """
    try:
        fspath = os.fspath(path)
    except TypeError:
        raise ArchspecError.single("E-IO", f"a spec path is a string or a path, got {type(path).__name__}") from None
    display = os.fsdecode(fspath)
    where = Span(display, 1, 1)
    try:
        fd = os.open(fspath, _O_FLAGS)
    except FileNotFoundError:
        raise ArchspecError.single("E-IO", f"no such file: '{display}'") from None
    except IsADirectoryError:
        raise ArchspecError.single("E-IO", f"'{display}' is a directory, not a spec file", where) from None
    except ValueError:  # an embedded NUL byte
        raise ArchspecError.single("E-IO", f"invalid file name {display!r}: it contains a NUL byte") from None
    except OSError as exc:
        raise ArchspecError.single("E-IO", f"cannot read '{display}': {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ArchspecError.single("E-IO", f"'{display}' is a directory, not a spec file", where)
        if not stat.S_ISREG(st.st_mode):
            raise ArchspecError.single(
                "E-IO", f"'{display}' is {_file_kind(st.st_mode)}, not a spec file; specs are read from regular files",
                where, hint="save the spec to a file first",
            )
        if st.st_size > MAX_FILE_BYTES:
            raise ArchspecError.single(
                "E-IO", f"file is {st.st_size:,} bytes; specs are limited to {MAX_FILE_BYTES:,} bytes", where
            )
        chunks: list[bytes] = []
        left = MAX_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise ArchspecError.single(
                "E-IO", f"file is more than {MAX_FILE_BYTES:,} bytes; specs are limited to {MAX_FILE_BYTES:,} bytes", where
            )
        return b"".join(chunks)
    except OSError as exc:
        raise ArchspecError.single("E-IO", f"cannot read '{display}': {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_file(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """Read and parse a spec file; return ``(data, display_path)``.

    Raises :class:`ArchspecError` for a missing, unreadable, non-regular, too large, binary,
    non-UTF-8 or malformed file (see :func:`read_spec_bytes` and :func:`load_yaml_text`).
    """
    raw = read_spec_bytes(path)
    display = os.fsdecode(os.fspath(path))
    collectors = _reads.get()
    if collectors:
        entry = (os.path.realpath(path), file_digest(raw))
        for reads in collectors:
            reads.append(entry)
    return load_yaml_bytes(raw, display), display


def load_yaml_bytes(raw: bytes, path: str) -> Any:
    """Decode bytes as UTF-8 (refusing binary content) and parse them with :func:`load_yaml_text`."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ArchspecError.single(
            "E-ENCODING", "file is UTF-16 encoded; specs are read as UTF-8", Span(path, 1, 1),
            hint="save the spec as UTF-8",
        )
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, col = _line_col_of_offset(raw, nul)
        raise ArchspecError.single(
            "E-ENCODING", "file contains a NUL byte; this looks like a binary file, not a YAML spec", Span(path, line, col)
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col_of_offset(raw, exc.start)
        raise ArchspecError.single(
            "E-ENCODING",
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            Span(path, line, col),
            hint="save the spec as UTF-8",
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return load_yaml_text(text, path)


# --------------------------------------------------------------------------------------------------
# Parsing


def _depth_error(span: Span) -> ArchspecError:
    return ArchspecError.single("E-LIMIT", f"YAML nesting is too deep (the limit is {MAX_DEPTH} levels)", span)


def load_yaml_text(text: str, path: str = "<string>") -> Any:
    """Parse YAML text into :class:`LocMap`/:class:`LocSeq`/scalars with positions.

    An empty document returns ``None``.  Several documents in one text are an error.  Every guard
    of this module applies (size, nesting, expanded values, number length, tags, duplicate keys);
    problems raise :class:`ArchspecError`.
    """
    if not isinstance(text, str):
        raise ArchspecError.single("E-IO", f"YAML text must be a string, got {type(text).__name__}")
    if len(text) > MAX_FILE_BYTES:
        raise ArchspecError.single(
            "E-LIMIT", f"the spec text is {len(text):,} characters; specs are limited to {MAX_FILE_BYTES:,}", Span(path, 1, 1)
        )
    positions = _Positions(text, path)
    try:
        return _load(text, positions)
    except UnicodeEncodeError as exc:  # a lone surrogate in a str given to the API
        raise ArchspecError.single(
            "E-ENCODING", f"the text contains an unpaired surrogate character (U+{ord(text[exc.start]):04X})",
            positions.at(exc.start),
        ) from None
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in f"{getattr(exc, 'problem', '')}":
            # libyaml ≥ 0.2.6 (PyYAML ≥ 6.0.4) stops very deep flow nesting in its scanner, ahead of the
            # events this reader counts.  Find the level past MAX_DEPTH as older versions do, with the
            # pure-Python parser (which has no such limit), so every version gives the same E-LIMIT.
            _find_deep_nesting(text, positions)
            mark = getattr(exc, "problem_mark", None)
            raise _depth_error(positions.span(mark) if mark is not None else Span(path, 1, 1)) from None
        raise _yaml_error(exc, positions) from None


def _find_deep_nesting(text: str, positions: _Positions) -> None:
    """Raise E-LIMIT at the first collection nested deeper than MAX_DEPTH (or a YAML error before it)."""
    parser = yaml.SafeLoader(text)
    try:
        depth = 0
        while True:
            event = parser.get_event()
            if isinstance(event, (SequenceStartEvent, MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _depth_error(positions.span(event.start_mark))
            elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
                depth -= 1
            elif event is None or isinstance(event, StreamEndEvent):
                return
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, positions) from None
    finally:
        parser.dispose()


def _load(text: str, positions: _Positions) -> Any:
    loader = _Loader(text)
    try:
        return _Reader(loader, positions).read()
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError, positions: _Positions) -> ArchspecError:
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    mark = problem_mark or context_mark
    span = positions.span(mark) if mark is not None else Span(positions.path, 1, 1)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    hint = None
    if positions.char_at(problem_mark) == "\t" or "'\\t'" in problem:
        problem = "found a tab character where YAML expects spaces"
        hint = "YAML indentation must use spaces, not tabs"
    if hint is None and positions.starts is not None:
        odd = min(i for i in (positions.text.find(c) for c in "\x85\u2028\u2029") if i >= 0)
        where = positions.at(odd)
        hint = (f"line {where.line}, column {where.column} holds U+{ord(positions.text[odd]):04X}, which YAML reads as a "
                "line break although editors show none: remove it, or quote the string that holds it")
    message = f"invalid YAML: {problem}"
    if context:
        if context_mark is not None and problem_mark is not None:
            where, other = positions.span(context_mark), positions.span(problem_mark)
            if (where.line, where.column) != (other.line, other.column):
                context += f" started at line {where.line}, column {where.column}"
        message += f" ({context})"
    return ArchspecError.single("E-YAML", message, span, hint)


def _tag_error(tag: str, span: Span) -> Diagnostic:
    """A YAML tag that is not plain data (``!!python/object`` and friends, or a custom ``!tag``)."""
    shown = "!!" + tag[len(_Y):] if tag.startswith(_Y) else tag
    return Diagnostic(
        "E-YAML-TAG",
        f"YAML tag '{shown}' is not allowed in a spec",
        span,
        hint="specs are plain data: strings, numbers, booleans, null, lists and mappings",
    )


_NO_KEY = object()  # a mapping frame waits for a key
_BAD_KEY = object()  # the value that follows is dropped (its key was refused)
_MERGE_KEY = object()  # the value that follows is merged ('<<')
_MISSING = object()


class _Frame:
    """An open collection while the event stream is read."""

    __slots__ = ("anchor", "key", "key_span", "merge_span", "merged", "obj", "start")

    def __init__(self, obj: LocMap | LocSeq, anchor: str | None, start: int) -> None:
        self.obj = obj
        self.anchor = anchor
        self.start = start  # values counted before this collection
        self.key: Any = _NO_KEY
        self.key_span: Span | None = None
        self.merged: set[Any] | None = None  # keys that came from '<<' (explicit keys override them)
        self.merge_span: Span | None = None  # where the mapping's '<<' key is


class _Reader:
    """Builds located plain data from a parser's event stream, with every guard counted as it goes."""

    def __init__(self, loader: Any, positions: _Positions) -> None:
        self.loader = loader
        self.positions = positions
        self.path = positions.path
        self.count = 0  # values so far, every alias use counted in full
        self.aliases_used = False
        # anchor → (value, expanded size, raw text of a scalar or None); None while its collection is open
        self.anchors: dict[str, tuple[Any, int, str | None] | None] = {}
        self.anchor_spans: dict[str, Span] = {}
        self.errors: list[Diagnostic] = []

    # -------------------------------------------------------------- errors
    def _error(self, diag: Diagnostic) -> None:
        self.errors.append(diag)
        if len(self.errors) >= _MAX_ERRORS:
            raise ArchspecError(self.errors)

    def _count(self, n: int, mark: Any) -> None:
        self.count += n
        if self.count > MAX_YAML_NODES:
            if self.aliases_used:
                hint = "this looks like an alias bomb ('billion laughs'); specs use blocks and 'repeat' instead"
            else:
                hint = "no real network needs this many values; use blocks and 'repeat'"
            raise ArchspecError.single(
                "E-LIMIT",
                f"the spec expands to more than {MAX_YAML_NODES:,} YAML values once aliases are expanded",
                self.positions.span(mark), hint=hint,
            )

    # -------------------------------------------------------------- the document
    def read(self) -> Any:
        get_event = self.loader.get_event
        get_event()  # StreamStartEvent
        event = get_event()
        if event is None or isinstance(event, StreamEndEvent):
            return None  # empty, or only comments
        root = self._document()
        get_event()  # DocumentEndEvent
        event = get_event()
        if event is not None and not isinstance(event, StreamEndEvent):
            self.errors.append(Diagnostic(
                "E-YAML", "a spec file holds one YAML document, found a second one", self.positions.span(event.start_mark),
                hint="remove the '---' separator and everything after it, or split the file",
            ))
        if self.errors:
            raise ArchspecError(self.errors)
        return root

    def _document(self) -> Any:
        """The document's root value; a loop over events with an explicit stack (no recursion)."""
        get_event = self.loader.get_event
        span_of_mark = self.positions.span
        stack: list[_Frame] = []
        while True:
            event = get_event()
            kind = type(event)
            raw: str | None = None
            merge = False
            if kind is ScalarEvent:
                self._count(1, event.start_mark)
                top = stack[-1] if stack else None
                as_key = top is not None and top.key is _NO_KEY and isinstance(top.obj, LocMap)
                item_span = span_of_mark(event.start_mark)
                value, raw, merge = self._scalar(event, item_span, as_key)
                if event.anchor is not None:
                    self._define_anchor(event.anchor, item_span)
                    self.anchors[event.anchor] = (value, 1, raw)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if len(stack) >= MAX_DEPTH:
                    raise _depth_error(span_of_mark(event.start_mark))
                self._count(1, event.start_mark)
                item_span = span_of_mark(event.start_mark)
                is_map = kind is MappingStartEvent
                tag = event.tag
                if tag is not None and tag != "!" and tag != (_MAP if is_map else _SEQ):
                    self._error(_tag_error(tag, item_span))
                if event.anchor is not None:
                    self._define_anchor(event.anchor, item_span)
                    self.anchors[event.anchor] = None  # open: an alias to it now would be recursive
                stack.append(_Frame(LocMap(item_span) if is_map else LocSeq(item_span), event.anchor, self.count - 1))
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                value = frame.obj
                item_span = value.span
                if frame.key is not _NO_KEY:  # pragma: no cover - the parser always pairs keys and values
                    raise ArchspecError.single("E-YAML", "mapping key without a value", item_span)
                if frame.anchor is not None:
                    self.anchors[frame.anchor] = (value, self.count - frame.start, None)
            elif kind is AliasEvent:
                item_span = span_of_mark(event.start_mark)
                entry = self.anchors.get(event.anchor, _MISSING)
                if entry is _MISSING:
                    raise ArchspecError.single("E-YAML", f"alias '*{event.anchor}' names no anchor defined before it",
                                               item_span, hint=f"define '&{event.anchor}' before using '*{event.anchor}'")
                if entry is None:
                    raise ArchspecError.single(
                        "E-YAML", f"alias '*{event.anchor}' is inside the collection it names (a recursive structure)",
                        item_span, hint="spec data is a tree: an anchored list or mapping cannot contain itself",
                    )
                value, size, raw = entry  # type: ignore[misc]
                self.aliases_used = True
                self._count(size, event.start_mark)
            else:  # pragma: no cover - the parser only emits node events inside a document
                raise ArchspecError.single("E-YAML", "unexpected YAML event", span_of_mark(event.start_mark))

            if not stack:
                return value
            top = stack[-1]
            obj = top.obj
            if isinstance(obj, LocSeq):
                obj.append(value)
                obj.item_spans.append(item_span)
            elif top.key is _NO_KEY:
                self._take_key(top, value, raw, merge, item_span)
            else:
                self._take_value(top, value, item_span)

    def _define_anchor(self, name: str, span: Span) -> None:
        first = self.anchor_spans.get(name)
        if first is not None:
            raise ArchspecError.single(
                "E-YAML", f"anchor '&{name}' is defined twice (first at line {first.line})", span,
                hint="give each anchor its own name",
            )
        self.anchor_spans[name] = span

    # -------------------------------------------------------------- mappings
    def _take_key(self, frame: _Frame, value: Any, raw: str | None, merge: bool, span: Span) -> None:
        mapping: LocMap = frame.obj  # type: ignore[assignment]
        frame.key_span = span
        if raw is None:  # a list or mapping (or an alias to one) used as a key
            self._error(Diagnostic("E-YAML", "mapping keys must be plain scalars", span))
            frame.key = _BAD_KEY
            return
        if merge:
            if frame.merge_span is not None:
                self._duplicate("<<", frame.merge_span, span)
                frame.key = _BAD_KEY
                return
            frame.merge_span = span
            frame.key = _MERGE_KEY
            return
        key = raw if (value is None or isinstance(value, (bool, float))) else value
        if key in mapping and (frame.merged is None or key not in frame.merged):
            self._duplicate(key, mapping.key_spans[key], span)
            frame.key = _BAD_KEY
            return
        frame.key = key

    def _duplicate(self, key: Any, first: Span, span: Span) -> None:
        self._error(Diagnostic(
            "E-DUPLICATE-KEY",
            f"duplicate key '{key}' (first defined at line {first.line})",
            span,
            hint="YAML would silently keep only the last one; remove or rename one of them",
        ))

    def _take_value(self, frame: _Frame, value: Any, span: Span) -> None:
        mapping: LocMap = frame.obj  # type: ignore[assignment]
        key = frame.key
        frame.key = _NO_KEY
        if key is _BAD_KEY:
            return
        if key is _MERGE_KEY:
            self._merge(frame, value, span)
            return
        mapping[key] = value
        mapping.key_spans[key] = frame.key_span  # type: ignore[assignment]
        mapping.value_spans[key] = span
        if frame.merged is not None:
            frame.merged.discard(key)  # an explicit key overrides a merged one

    def _merge(self, frame: _Frame, value: Any, span: Span) -> None:
        """YAML 1.1 merge (``<<: *base`` or ``<<: [*a, *b]``): keys not written in the mapping are copied.

        Keys written in the mapping win wherever they appear; among several merged mappings the
        first one wins.  A merged key keeps the position of its definition.
        """
        mapping: LocMap = frame.obj  # type: ignore[assignment]
        sources = [value] if isinstance(value, LocMap) else value if isinstance(value, LocSeq) else None
        if sources is None or not all(isinstance(s, LocMap) for s in sources):
            self._error(Diagnostic(
                "E-YAML", "a merge key '<<' takes a mapping or a list of mappings", span,
                hint="write '<<: *name' where '&name' anchors a mapping, or '<<: [*a, *b]'",
            ))
            return
        merged = frame.merged if frame.merged is not None else set()
        frame.merged = merged
        for source in sources:
            for key, item in source.items():
                if key in mapping:  # written in the mapping, or merged from an earlier source
                    continue
                mapping[key] = item
                mapping.key_spans[key] = source.key_spans.get(key, source.span)
                mapping.value_spans[key] = source.value_spans.get(key, source.span)
                merged.add(key)

    # -------------------------------------------------------------- scalars
    def _scalar(self, event: Any, span: Span, as_key: bool) -> tuple[Any, str, bool]:
        """``(value, raw text, is a merge key)`` of a scalar event."""
        text: str = event.value
        tag = event.tag
        if tag is None:
            if not event.implicit[0]:
                return text, text, False  # quoted or block scalar: always text
            tag = _resolve(text)
            if tag == _STR:
                return text, text, False
        elif tag == "!":
            return text, text, False  # the non-specific tag: text
        elif tag not in _SCALAR_TAGS:
            self._error(_tag_error(tag, span))
            return None, text, False
        if tag == _MERGE:
            return text, text, as_key  # '<<' is a merge key only in key position
        if tag == _STR or tag == _TIMESTAMP:  # dates stay text
            return text, text, False
        if tag == _NULL:
            if _NULL_RE.match(text):
                return None, text, False
            return self._bad_scalar(text, "null", span)
        if tag == _BOOL:
            flag = _BOOLS.get(text.lower())
            if flag is None:
                return self._bad_scalar(text, "a boolean", span)
            return flag, text, False
        if len(text) > MAX_NUMBER_CHARS:
            raise ArchspecError.single(
                "E-LIMIT",
                f"number is {len(text):,} characters long; numbers are limited to {MAX_NUMBER_CHARS} characters",
                span, hint="no real layer needs a number this long; quote it if it is text",
            )
        if tag == _LEADING_ZERO:
            if as_key:
                return text, text, False
            return self._leading_zero(text, span)
        if tag == _INT:
            if not _INT_RE.match(text):
                return self._bad_scalar(text, "an integer", span)
            return int(text, 0), text, False
        # _FLOAT
        if _SPECIAL_FLOAT_RE.match(text):
            return float(text.replace(".", "")), text, False  # float() reads inf/Inf/INF and nan/NaN/NAN
        if _FLOAT_RE.match(text):
            number = float(text)
        elif _INT_RE.match(text):
            number = float(int(text, 0))
        else:
            return self._bad_scalar(text, "a number", span)
        if math.isinf(number):
            raise ArchspecError.single(
                "E-LIMIT", f"number '{text}' is too large (it would be infinite)", span,
                hint="write .inf if infinity is meant",
            )
        return number, text, False

    def _bad_scalar(self, text: str, what: str, span: Span) -> tuple[Any, str, bool]:
        self._error(Diagnostic("E-YAML", f"'{text}' is not {what}, but it is tagged as one", span))
        return None, text, False

    def _leading_zero(self, text: str, span: Span) -> tuple[Any, str, bool]:
        digits = text.replace("_", "")
        decimal = int(digits, 10)
        octal = int(digits, 8) if re.fullmatch(r"[-+]?[0-7]+", digits) else None
        if octal == decimal:  # 00, 07: the same number in YAML 1.1 and 1.2
            return decimal, text, False
        yaml11 = f"octal ({octal})" if octal is not None else "text"
        self._error(Diagnostic(
            "E-YAML",
            f"number '{text}' has a leading zero: YAML 1.1 reads it as {yaml11}, YAML 1.2 as {decimal}",
            span,
            hint=f"write {decimal} for the decimal number, 0o… for an octal one, or quote it ('{text}') for text",
        ))
        return None, text, False
