"""Type stubs of the compiled extension; ``timeseries_table`` re-exports all of it."""

from __future__ import annotations

import datetime
import os
from typing import Any

import pyarrow

FUNCTION_NAMES: list[str]

_Time = str | datetime.datetime | datetime.date

def sql(query: str, **tables: Table) -> pyarrow.Table:
    """Runs one SQL statement in the package's own DataFusion, with ``tables`` registered
    under their keyword names: ``sql("SELECT * FROM gaps('bars')", bars=table)``.

    This is the engine of ``tsq sql``, with everything it has: pruning through date
    functions (``CAST(ts AS DATE) = d``), ``date_bin_gapfill`` with ``locf`` and
    ``interpolate``, the table functions, ``INSERT``, ``CREATE EXTERNAL TABLE``.
    """

class AppendResult:
    """What an append committed."""

    @property
    def version(self) -> int:
        """The version the append committed."""
    @property
    def rows(self) -> int:
        """Rows appended."""
    @property
    def segments(self) -> list[str]:
        """The new segments' ids."""
    @property
    def attempts(self) -> int:
        """Commit attempts (more than one when another writer committed first)."""

class Table:
    """A time-series table at a path or URL.

    Every method that reads or writes storage releases the GIL while it works.
    """

    @staticmethod
    def create(
        uri: str,
        *,
        time_column: str,
        bucket: str,
        entity_columns: list[str] | None = None,
        timezone: str | None = None,
        schedule: str | None = None,
        storage_options: dict[str, str] | None = None,
    ) -> Table:
        """Creates a table; the first append fixes its schema.

        ``bucket`` is the coverage granularity (``"1m"``, ``"1h"``, ``"1d"``);
        ``entity_columns`` name the series (``["symbol"]``); ``timezone`` makes day
        buckets local days; ``schedule`` is the expected schedule (e.g.
        ``"America/New_York; Mon-Fri 09:30-16:00"``). ``storage_options`` configure a cloud
        store (``{"aws.endpoint": ..., "aws.region": ...}``).
        Raises ``TableExistsError`` if a table is already there, ``InvalidInputError`` for a
        bad argument.
        """
    @staticmethod
    def open(
        uri: str,
        version: int | None = None,
        *,
        storage_options: dict[str, str] | None = None,
    ) -> Table:
        """Opens the latest version, or ``version`` (read-only: time travel).

        Raises ``TableNotFoundError`` when there is no table, ``VersionNotFoundError`` for a
        version that does not exist.
        """
    def append(self, data: Any | str | os.PathLike[str]) -> AppendResult:
        """Appends ``data`` in one commit.

        ``data`` is a ``pyarrow.Table`` or ``RecordBatchReader`` (read batch by batch,
        never collected), a polars or pandas DataFrame, any object with
        ``__arrow_c_stream__``, or the path of a Parquet, CSV or JSON file. Rows may come in
        any order. Raises ``OverlapError`` if an entity already has data in an appended
        bucket, ``SchemaMismatchError`` if the columns differ from the table's, and
        ``TypeError`` for anything else; the table is unchanged after any error.
        """
    def coverage(
        self, start: _Time | None = None, end: _Time | None = None, *, schedule: str | None = None
    ) -> pyarrow.Table:
        """Coverage per entity over ``[start, end)`` (default: the table's time range).

        Times without an offset are read in the table's time zone. ``schedule`` overrides
        the table's expected schedule (``"always"`` for every bucket).
        """
    def gaps(
        self, start: _Time | None = None, end: _Time | None = None, *, schedule: str | None = None
    ) -> pyarrow.Table:
        """Runs of missing buckets per entity over ``[start, end)``."""
    def segments(self) -> pyarrow.Table:
        """The live segments: id, path, rows, time range, size."""
    def history(self) -> pyarrow.Table:
        """One row per commit: version, time, operation, rows and segments changed."""
    @property
    def version(self) -> int:
        """The version this handle reads."""
    @property
    def schema(self) -> pyarrow.Schema | None:
        """The table's schema, or ``None`` before the first append."""
    @property
    def uri(self) -> str:
        """Where the table lives, as given to ``create`` or ``open``."""
    def refresh(self) -> bool:
        """Catches up with newer commits; ``True`` if there were any."""
    def __datafusion_table_provider__(self, session: Any) -> object:
        """The table provider capsule that ``datafusion.SessionContext.register_table`` takes."""

class TableFunction:
    """One SQL table function, exportable to ``datafusion`` (see ``register_functions``)."""

    def __init__(self, name: str) -> None: ...
    @property
    def name(self) -> str: ...
    def __datafusion_table_function__(self, session: Any) -> object: ...

class TimeseriesTableError(Exception):
    """Base class of every error the package raises."""

class TableNotFoundError(TimeseriesTableError): ...
class TableExistsError(TimeseriesTableError): ...
class VersionNotFoundError(TimeseriesTableError): ...
class InvalidInputError(TimeseriesTableError): ...
class SchemaMismatchError(InvalidInputError): ...
class OverlapError(InvalidInputError): ...
class CommitConflictError(TimeseriesTableError): ...
class StorageError(TimeseriesTableError): ...
class CorruptTableError(TimeseriesTableError): ...
class QueryError(TimeseriesTableError): ...
