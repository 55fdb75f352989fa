"""Diagnostics: the one error type every stage raises, and how it prints.

Every problem with a spec becomes a :class:`Diagnostic` that points at a YAML position
(``path:line:col``).  A stage collects as many independent diagnostics as it can and raises one
:class:`ArchspecError` carrying all of them, the way a compiler reports several errors per run.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "ArchspecError",
    "Diagnostic",
    "Note",
    "Span",
    "did_you_mean",
]


@dataclass(frozen=True, slots=True)
class Span:
    """A position in a source file: 1-based line and column."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Note:
    """A secondary position attached to a diagnostic (e.g. the block instance that expanded it)."""

    message: str
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a spec.

    ``code`` is a stable short identifier (``E-SHAPE``, ``E-YAML`` …) that tests and tools can match;
    ``message`` is the human sentence; ``hint`` says how to fix it where that helps; ``notes`` add
    context such as "in block 'residual' instantiated at …".
    """

    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"
    notes: tuple[Note, ...] = field(default_factory=tuple)

    def format(self) -> str:
        """Render as ``path:line:col: error: message [code]`` plus hint and note lines."""
        where = f"{self.span}: " if self.span else ""
        lines = [f"{where}{self.severity}: {self.message} [{self.code}]"]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        for note in self.notes:
            nwhere = f"{note.span}: " if note.span else ""
            lines.append(f"{nwhere}note: {note.message}")
        return "\n".join(lines)

    def sort_key(self) -> tuple[str, int, int]:
        """Order diagnostics by file position (unpositioned ones first)."""
        if self.span is None:
            return ("", 0, 0)
        return (self.span.path, self.span.line, self.span.column)


class ArchspecError(Exception):
    """Raised by every stage for problems in the user's spec; carries one or more diagnostics."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__(self.format())

    @classmethod
    def single(
        cls,
        code: str,
        message: str,
        span: Span | None = None,
        hint: str | None = None,
    ) -> ArchspecError:
        """Shorthand for an error with one diagnostic."""
        return cls([Diagnostic(code, message, span, hint)])

    @property
    def errors(self) -> list[Diagnostic]:
        """The diagnostics of severity ``error``."""
        return [d for d in self.diagnostics if d.severity == "error"]

    def format(self) -> str:
        """All diagnostics, one block each, separated by newlines."""
        return "\n".join(d.format() for d in self.diagnostics)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """Return ``"did you mean 'x'?"`` for the closest candidate, or None when nothing is close."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
