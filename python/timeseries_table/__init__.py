"""Time-series tables in Python, queried with SQL in DataFusion's ``SessionContext``.

A table is Parquet segments, an append-only transaction log and per-entity coverage of
time buckets. ``Table`` creates, opens, appends to and reads a table; registered in a
``datafusion.SessionContext`` it is a table provider with time-range pruning, and
``register_functions`` adds the SQL table functions (``coverage``, ``gaps``, ...).
``sql`` runs a statement in the package's own engine instead, which also has the rules
and functions a foreign session cannot take (date-function pruning, gap filling).
"""

from __future__ import annotations

from typing import Any

from ._native import (
    FUNCTION_NAMES,
    AppendResult,
    CommitConflictError,
    CorruptTableError,
    InvalidInputError,
    OverlapError,
    QueryError,
    SchemaMismatchError,
    StorageError,
    Table,
    TableExistsError,
    TableFunction,
    TableNotFoundError,
    TimeseriesTableError,
    VersionNotFoundError,
    sql,
)

__all__ = [
    "FUNCTION_NAMES",
    "AppendResult",
    "CommitConflictError",
    "CorruptTableError",
    "InvalidInputError",
    "OverlapError",
    "QueryError",
    "SchemaMismatchError",
    "StorageError",
    "Table",
    "TableExistsError",
    "TableFunction",
    "TableNotFoundError",
    "TimeseriesTableError",
    "VersionNotFoundError",
    "register_functions",
    "sql",
]


def register_functions(ctx: Any) -> None:
    """Registers the table functions in a ``datafusion.SessionContext``.

    After this, ``ctx.sql("SELECT * FROM coverage('bars')")`` works for a table registered
    as ``bars`` (or a table path given instead of the name). The functions are
    ``coverage``, ``gaps``, ``last_covered_window``, ``coverage_changes``, ``segments``,
    ``history`` and ``snapshot``.
    """
    from datafusion import udtf

    for name in FUNCTION_NAMES:
        ctx.register_udtf(udtf(TableFunction(name), name))
