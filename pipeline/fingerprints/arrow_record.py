"""Records whose one field list is also their Arrow schema, so a column cannot be added in one place only.

Each field is annotated with its Arrow type (``repo_id: Annotated[str, pa.string()]``): Python types
alone cannot tell float32 from float64 lists or int32 from int64, and the store's Parquet layout must
stay as every existing store was written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import Field, fields
from typing import Any, ClassVar, Self, get_type_hints

import pyarrow as pa


class ArrowRecord:
    """Mixin for frozen dataclasses whose fields are all ``Annotated[type, arrow type]``."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @classmethod
    def arrow_schema(cls) -> pa.Schema:
        """The table's schema: one column per field, in field order."""
        hints = get_type_hints(cls, include_extras=True)
        return pa.schema([(f.name, _arrow_type(cls, f.name, hints[f.name])) for f in fields(cls)])

    def as_row(self) -> dict[str, Any]:
        """Plain dict for a Parquet writer (shallow: ``asdict`` deep-copies every list element)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        """The record of one stored row; columns the record does not know are ignored."""
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    @classmethod
    def as_arrow(cls, records: Sequence[ArrowRecord]) -> pa.Table:
        """Records of this kind as one table in the record's schema."""
        return pa.Table.from_pylist([r.as_row() for r in records], cls.arrow_schema())

    @classmethod
    def from_arrow(cls, table: pa.Table) -> list[Self]:
        """The records of every row of a table holding at least the record's columns."""
        return [cls.from_row(row) for row in table.to_pylist()]


def _arrow_type(cls: type, name: str, hint: Any) -> pa.DataType:
    """The Arrow type in a field's annotation; a field without one is a programming error."""
    for extra in getattr(hint, "__metadata__", ()):
        if isinstance(extra, pa.DataType):
            return extra
    raise TypeError(f"{cls.__name__}.{name} has no Arrow type in its annotation")
