"""The spec language's validators, run straight on ``pydantic_core``.

The Pydantic models in :mod:`archspec.models` define every spec field and op parameter.  Building
validators from them costs each process the import of Pydantic's model machinery and its schema
generation (about 60 ms, more than everything else ``archspec validate`` does).  So the models'
core schemas are compiled once, at development time, into :mod:`archspec._core_schemas` (plain
data; ``python scripts/gen_core_schemas.py`` rewrites it, and a test fails when it is stale), and
this module hands them to ``pydantic_core.SchemaValidator``.  Validation, its errors and their
messages are Pydantic's own; only the result type differs: a :class:`Record`, a frozen object with
the same attribute names as the model, instead of a ``BaseModel`` instance.

If the installed ``pydantic_core`` rejects the shipped schemas (another release reading them
differently), the Pydantic models validate instead and their instances are converted to records:
slower to start, same behaviour.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

from pydantic_core import PydanticKnownError, SchemaError, SchemaValidator

__all__ = ["Record", "field_names", "fields_at", "record", "required_fields", "validator"]

R = TypeVar("R", bound="Record")


class Record:
    """A validated model instance: attributes as declared by the model, frozen, compared by value.

    ``params.out``, ``doc.blocks`` etc. read as on the Pydantic model; :meth:`fields` gives the
    values as a dict and :meth:`replace` a copy with some values changed.
    """

    # pydantic_core's model validator fills these slots (and ``__dict__`` with the field values).
    __slots__ = ("__dict__", "__pydantic_extra__", "__pydantic_fields_set__", "__pydantic_private__")
    #: The model (class) name this record's schema was compiled from.
    schema_name: ClassVar[str] = ""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen; use .replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(vars(self).items())))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.schema_name, dict(vars(self))))

    def fields(self) -> dict[str, Any]:
        """The field values by name, in declaration order."""
        return dict(vars(self))

    def model_copy(self: R, *, update: dict[str, Any] | None = None) -> R:
        """:meth:`replace`, spelt as on a Pydantic model."""
        return self.replace(**(update or {}))

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """``(name, value)`` pairs, as iterating a Pydantic model gives (so ``dict(record)`` works)."""
        return iter(vars(self).items())

    def model_dump(self) -> dict[str, Any]:
        """The values as plain data, nested records included (as ``BaseModel.model_dump``)."""
        return {k: _dump(v) for k, v in vars(self).items()}

    def replace(self: R, **changes: Any) -> R:
        """A copy with ``changes`` applied (values are not re-validated)."""
        unknown = set(changes) - set(vars(self))
        if unknown:
            raise AttributeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        return _make(type(self), {**vars(self), **changes})


_CLASSES: dict[str, type[Record]] = {}
_VALIDATORS: dict[str, Any] = {}


def record(name: str) -> Any:
    """Class decorator: instances of model ``name`` validate into this :class:`Record` subclass."""

    def register(cls: type[R]) -> type[R]:
        cls.schema_name = name
        _CLASSES[name] = cls
        return cls

    return register


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.model_dump()
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _record_class(name: str) -> type[Record]:
    cls = _CLASSES.get(name)
    if cls is None:
        cls = _CLASSES[name] = type(name, (Record,), {"__slots__": (), "schema_name": name, "__module__": __name__})
    return cls


def _make(cls: type[R], values: dict[str, Any]) -> R:
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    return obj


def _rebuild(name: str, values: dict[str, Any]) -> Record:
    """Unpickling helper."""
    return _make(_record_class(name), values)


def _schemas() -> dict[str, Any]:
    from ._core_schemas import SCHEMAS

    return SCHEMAS


def _bound(kind: str, limit: int | float, value: Any) -> Any:
    """Pydantic's ``gt``/``ge``/``lt``/``le`` check on a union value, with the same error."""
    ok = {"gt": value > limit, "ge": value >= limit, "lt": value < limit, "le": value <= limit}[kind]
    if not ok:
        error = {"gt": "greater_than", "ge": "greater_than_equal", "lt": "less_than", "le": "less_than_equal"}[kind]
        raise PydanticKnownError(error, {kind: limit})
    return value


_PLACEHOLDERS: dict[str, Any] = {"@dict": dict, "@list": list}


def _resolve(schema: Any) -> Any:
    """Turn the plain data of :mod:`archspec._core_schemas` back into a core schema."""
    if isinstance(schema, dict):
        return {k: _resolve(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolve(v) for v in schema]
    if isinstance(schema, str) and schema.startswith("@"):
        if schema in _PLACEHOLDERS:
            return _PLACEHOLDERS[schema]
        if schema.startswith("@bound:"):
            _, kind, limit = schema.split(":")
            return functools.partial(_bound, kind, float(limit) if "." in limit or "e" in limit else int(limit))
        return _record_class(schema[1:])
    return schema


def validator(name: str) -> Any:
    """The validator of model ``name`` (e.g. ``"ConvParams"``), built on first use.

    It has ``validate_python(data)``, which returns a :class:`Record` or raises
    ``pydantic_core.ValidationError``.
    """
    found = _VALIDATORS.get(name)
    if found is None:
        try:
            found = SchemaValidator(_resolve(_schemas()[name]))
        except SchemaError:  # a pydantic-core that reads the shipped schema differently
            found = _ModelValidator(name)
        _VALIDATORS[name] = found
    return found


class _ModelValidator:
    """Fallback for a ``pydantic_core`` that rejects the shipped schemas: validate with the Pydantic
    model itself (same errors), then convert the instance to a :class:`Record`."""

    def __init__(self, name: str) -> None:
        from . import models

        self.model = getattr(models, name)

    def validate_python(self, data: Any) -> Any:
        return _to_record(self.model.model_validate(data))


def _to_record(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return _make(_record_class(type(value).__name__), {k: _to_record(v) for k, v in value})
    if isinstance(value, dict):
        return {k: _to_record(v) for k, v in value.items()}
    return value


def _unwrap(schema: dict[str, Any]) -> dict[str, Any]:
    while schema.get("type") in ("default", "nullable", "function-after"):
        schema = schema["schema"]
    return schema


def field_names(name: str) -> list[str]:
    """The fields of model ``name`` in declaration order."""
    return list(_schemas()[name]["schema"]["fields"])


def required_fields(name: str) -> list[str]:
    """The fields of model ``name`` that have no default."""
    fields = _schemas()[name]["schema"]["fields"]
    return [k for k, f in fields.items() if f["schema"]["type"] != "default"]


def fields_at(name: str, loc: tuple[Any, ...]) -> list[str]:
    """The fields of the model found at ``loc`` inside model ``name`` (``[]`` if none is there).

    ``fields_at("SpecDocument", ("blocks", "unit"))`` is the fields of ``BlockDef``.
    """
    schema: dict[str, Any] = _schemas()[name]
    for part in loc:
        schema = _unwrap(schema)
        kind = schema.get("type")
        if kind == "model":
            fields = schema["schema"]["fields"]
            if part not in fields:
                return []
            schema = fields[part]["schema"]
        elif kind == "dict":
            schema = schema["values_schema"]
        elif kind == "list":
            schema = schema["items_schema"]
        else:
            return []
    schema = _unwrap(schema)
    return list(schema["schema"]["fields"]) if schema.get("type") == "model" else []
