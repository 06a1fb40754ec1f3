"""What an Arrow table must be to become an Iceberg table: each column's type, normalised without loss.

An engine's ``floe_read_arrow`` answers in its client's Arrow types; Iceberg (format 2, as
pyiceberg writes it) has fewer: 32- and 64-bit signed integers, ``decimal(p ≤ 38, s)``, dates,
microsecond timestamps with and without zone, strings, booleans, floats, binaries, times, and
lists, structs and maps of them. :func:`for_iceberg` casts what has an exact Iceberg equivalent
(a ``uint32`` to ``long``, nanoseconds that are whole microseconds to microseconds, any zone to
UTC, a dictionary to its values…) and fails, naming the column and both types, for what has
none or would change a value: a type survives the trip or the run says why it cannot.

Pure over pyarrow (imported by the bridge only, never by ``import floe``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow
import pyarrow.compute

from floe.errors import FloeError, Problem

UTC = "UTC"
MAX_DECIMAL_PRECISION = 38


class TypeLoss(FloeError):
    """A column whose type cannot cross into the catalog without changing its values."""

    def __init__(self, column: str, arrow_type: str, iceberg_type: str, why: str, fix: str) -> None:
        self.column = column
        super().__init__(
            [
                Problem(
                    f"column {column!r}: {arrow_type} cannot become Iceberg {iceberg_type}: {why}",
                    fix=fix,
                )
            ]
        )


def for_iceberg(table: pyarrow.Table, where: str) -> pyarrow.Table:
    """``table`` with every column in a type Iceberg stores exactly, values unchanged.

    :param where: what the table is (``model 'customers' of compute 'pg'``), for the messages.
    :raises TypeLoss: a column has no Iceberg type, or casting it would change a value.
    """
    columns = []
    fields = []
    for index, field in enumerate(table.schema):
        converted = _column(table.column(index), field.type, field.name, where)
        columns.append(converted)
        fields.append(pyarrow.field(field.name, converted.type, nullable=True))
    return pyarrow.Table.from_arrays(columns, schema=pyarrow.schema(fields))


def target_type(arrow_type: pyarrow.DataType) -> pyarrow.DataType | None:
    """The Arrow type a column of ``arrow_type`` is written to Iceberg as; ``None``: it has none.

    The decision of :func:`for_iceberg`, without the values (which decide whether a narrowing
    cast, such as nanoseconds to microseconds, loses anything).
    """
    t = arrow_type
    if pyarrow.types.is_dictionary(t):
        return target_type(t.value_type)
    if pyarrow.types.is_boolean(t) or pyarrow.types.is_float32(t) or pyarrow.types.is_float64(t):
        return t
    if pyarrow.types.is_float16(t):
        return pyarrow.float32()
    if pyarrow.types.is_integer(t):
        signed = pyarrow.types.is_signed_integer(t)
        if t.bit_width < 32 or (signed and t.bit_width == 32):
            return pyarrow.int32()
        return pyarrow.int64()  # uint32 widens; int64 stays; uint64 narrows (checked on the values)
    if pyarrow.types.is_decimal(t):
        return pyarrow.decimal128(t.precision, t.scale) if t.precision <= MAX_DECIMAL_PRECISION else None
    if pyarrow.types.is_string(t) or pyarrow.types.is_large_string(t) or pyarrow.types.is_string_view(t):
        return pyarrow.string()
    if pyarrow.types.is_binary(t) or pyarrow.types.is_large_binary(t) or pyarrow.types.is_binary_view(t):
        return pyarrow.binary()
    if pyarrow.types.is_fixed_size_binary(t):
        return t
    if pyarrow.types.is_date(t):
        return pyarrow.date32()
    if pyarrow.types.is_time(t):
        return pyarrow.time64("us")
    if pyarrow.types.is_timestamp(t):
        return pyarrow.timestamp("us", tz=UTC if t.tz is not None else None)
    if pyarrow.types.is_list(t) or pyarrow.types.is_large_list(t):
        item = target_type(t.value_type)
        return None if item is None else pyarrow.list_(item)
    if pyarrow.types.is_struct(t):
        children = [(t.field(i).name, target_type(t.field(i).type)) for i in range(t.num_fields)]
        if any(c is None for _, c in children):
            return None
        return pyarrow.struct([pyarrow.field(name, child) for name, child in children])
    if pyarrow.types.is_map(t):
        key, item = target_type(t.key_type), target_type(t.item_type)
        return None if key is None or item is None else pyarrow.map_(key, item)
    return None


def _column(values: pyarrow.ChunkedArray, arrow_type: pyarrow.DataType, name: str, where: str) -> Any:
    target = target_type(arrow_type)
    if target is None:
        raise TypeLoss(
            name,
            _named(arrow_type),
            _iceberg_name(arrow_type),
            _why_none(arrow_type),
            f"cast the column in the model of {where} to an integer, decimal(p ≤ 38, s), date, "
            "timestamp, string or boolean",
        )
    if values.type == target:
        return values
    try:
        return pyarrow.compute.cast(values, target, safe=True)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError) as exc:
        raise TypeLoss(
            name,
            _named(arrow_type),
            _iceberg_name(target),
            _why_lossy(arrow_type, exc),
            f"round or cast the column in the model of {where} so that it fits {_iceberg_name(target)}",
        ) from None


def _named(t: pyarrow.DataType) -> str:
    return f"Arrow {t}"


def _iceberg_name(t: pyarrow.DataType) -> str:
    """Iceberg's name for the type a column is written as (or the nearest it has)."""
    names: list[tuple[Callable[[Any], bool], Callable[[Any], str]]] = [
        (pyarrow.types.is_boolean, lambda _: "boolean"),
        (pyarrow.types.is_float32, lambda _: "float"),
        (pyarrow.types.is_float64, lambda _: "double"),
        (
            lambda x: (
                pyarrow.types.is_integer(x) and x.bit_width <= 32 and pyarrow.types.is_signed_integer(x)
            ),
            lambda _: "int",
        ),
        (pyarrow.types.is_integer, lambda _: "long"),
        (
            pyarrow.types.is_decimal,
            lambda x: f"decimal({min(x.precision, MAX_DECIMAL_PRECISION)}, {x.scale})",
        ),
        (pyarrow.types.is_date, lambda _: "date"),
        (pyarrow.types.is_timestamp, lambda x: "timestamptz" if x.tz is not None else "timestamp"),
        (pyarrow.types.is_time, lambda _: "time"),
    ]
    for test, name in names:
        if test(t):
            return name(t)
    if pyarrow.types.is_string(t) or pyarrow.types.is_large_string(t):
        return "string"
    return "(no type)"


def _why_none(t: pyarrow.DataType) -> str:
    if pyarrow.types.is_null(t):
        return "every value is NULL and the engine says no type"
    if pyarrow.types.is_decimal(t):
        return f"Iceberg decimals have at most {MAX_DECIMAL_PRECISION} digits"
    if isinstance(t, pyarrow.ExtensionType):
        return f"the engine's client gives it as an opaque {t.extension_name!r} value"
    return "Iceberg has no such type"


def _why_lossy(t: pyarrow.DataType, exc: BaseException) -> str:
    if pyarrow.types.is_timestamp(t) or pyarrow.types.is_time(t):
        return "a value has a fraction of a microsecond, and Iceberg stores microseconds"
    if pyarrow.types.is_integer(t):
        return "a value does not fit in 64 signed bits"
    return str(exc).splitlines()[0]
