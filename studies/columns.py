"""Column types of sweepdoc's tables: what a Python value becomes in the database and back.

Each stores a plain SQL type (TIMESTAMP, TEXT, VARCHAR), so migrations spell them as such
(``studies/migrations/env.py``) and changing how values are read needs no migration.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import DateTime, Dialect, String, Text
from sqlalchemy.types import TypeDecorator

__all__ = ["LosslessJSON", "LosslessModel", "StrEnumColumn", "UTCDateTime"]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no time zones: values are stored as naive UTC (so string comparison orders
    them correctly) and come back with ``tzinfo=UTC`` attached.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use studies.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _lossless_dumps(value: Any) -> str:
    # Python's NaN/Infinity tokens: not standard JSON, but json.loads reads them back.
    return json.dumps(value, allow_nan=True)


class LosslessJSON(TypeDecorator[Any]):
    """JSON text in which NaN and ±inf survive (Python's ``NaN``/``Infinity`` tokens).

    A REAL column would not do: SQLite turns NaN into NULL, and PostgreSQL's JSON types
    reject NaN. The API serves these values as ``null`` (``trainer.finite_or_none``).
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else _lossless_dumps(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


ModelT = TypeVar("ModelT", bound=BaseModel)


class LosslessModel(TypeDecorator[ModelT], Generic[ModelT]):
    """A pydantic model stored as ``LosslessJSON`` text: rows read back as the model.

    Unset fields are left out of the text, so a row written before a field existed (a
    dict with some of the model's keys) reads back as the model with that field's default.
    """

    impl = Text
    cache_ok = True

    def __init__(self, model: type[ModelT]) -> None:
        super().__init__()
        self.model = model

    def process_bind_param(self, value: ModelT | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, self.model):
            raise TypeError(f"expected a {self.model.__name__}, got {type(value).__name__}")
        return _lossless_dumps(value.model_dump(mode="python", exclude_none=True))

    def process_result_value(self, value: str | None, dialect: Dialect) -> ModelT | None:
        return None if value is None else self.model.model_validate(json.loads(value))


EnumT = TypeVar("EnumT", bound=StrEnum)


class StrEnumColumn(TypeDecorator[EnumT], Generic[EnumT]):
    """A ``StrEnum`` stored as its string value in a plain VARCHAR (no database enum type, so
    adding a member needs no migration); rows read back as the enum, and a value outside it
    is refused on write."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[EnumT], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: EnumT | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> EnumT | None:
        return None if value is None else self.enum(value)
