"""Shared data and helpers: minute bars as pyarrow tables, a new table per test, and the
``tsq`` binary of the same build (``TSQ_BIN``, set by ``scripts/test``)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

import timeseries_table as tt

START = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.timezone.utc)
SYMBOLS = ["AAPL", "MSFT", "NVDA"]


def bars(day: int = 0, symbols: list[str] = SYMBOLS, minutes: int = 60, unit: str = "ms") -> pa.Table:
    """``minutes`` one-minute bars per symbol on day ``day`` (from 2024-01-02 14:30 UTC),
    with a price that depends on the symbol, day and minute."""
    base = START + dt.timedelta(days=day)
    ts, symbol, price, volume = [], [], [], []
    for i, name in enumerate(symbols):
        for m in range(minutes):
            ts.append(base + dt.timedelta(minutes=m))
            symbol.append(name)
            price.append(100.0 * (i + 1) + day + m / 100)
            volume.append(1000 * (i + 1) + m)
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp(unit, "UTC")),
            "symbol": pa.array(symbol, pa.string()),
            "price": pa.array(price, pa.float64()),
            "volume": pa.array(volume, pa.int64()),
        }
    )


@pytest.fixture
def new_table(tmp_path: Path):
    """Creates tables under the test's temporary folder: ``new_table(name="bars")``."""

    def create(name: str = "bars", **options) -> tt.Table:
        options.setdefault("time_column", "ts")
        options.setdefault("bucket", "1m")
        options.setdefault("entity_columns", ["symbol"])
        return tt.Table.create(str(tmp_path / name), **options)

    return create


@pytest.fixture
def tsq():
    """Runs ``tsq`` with arguments and returns its stdout; skips when ``TSQ_BIN`` is unset."""
    binary = os.environ.get("TSQ_BIN") or shutil.which("tsq")
    if not binary:
        pytest.skip("skipped: set TSQ_BIN to the tsq binary (scripts/test does) to compare with tsq sql")

    def run(*args: str) -> str:
        done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


def sorted_rows(table: pa.Table, keys: list[str]) -> list[dict]:
    """The rows of ``table`` as dicts, sorted by ``keys``."""
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()
