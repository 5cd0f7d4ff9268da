"""What crossing into DataFusion's Python package costs, and what the provider buys there.

One table of minute bars (SYMBOLS symbols x DAYS days, one append per day), and the same
days as plain Parquet files. Each query runs REPEATS times after a warm-up; the medians
are printed as a markdown table:

- the package's own engine, in this process (``timeseries_table.sql``): no FFI;
- ``datafusion.SessionContext`` with the table registered through the FFI provider and the
  table functions through ``register_functions``;
- the same ``SessionContext`` over the plain Parquet files (``register_parquet``).

Run from the repository root after ``maturin develop`` (``--release`` for figures worth
quoting): ``.venv-test/bin/python python/benches/ffi_overhead.py``.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datafusion import SessionContext

import timeseries_table as tt

SYMBOLS, DAYS, MINUTES, REPEATS = 100, 20, 390, 15
START = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.timezone.utc)


def day(d: int) -> pa.Table:
    base = int((START + dt.timedelta(days=d)).timestamp() * 1000)
    n = SYMBOLS * MINUTES
    minute = pa.array([m for _ in range(SYMBOLS) for m in range(MINUTES)], pa.int64())
    ts = pc.add(pc.multiply(minute, 60_000), base).cast(pa.timestamp("ms", "UTC"))
    symbol = pa.array([f"S{s:03d}" for s in range(SYMBOLS) for _ in range(MINUTES)])
    price = pa.array([100.0 + s + d + m / 1000 for s in range(SYMBOLS) for m in range(MINUTES)])
    return pa.table({"ts": ts, "symbol": symbol, "price": price, "volume": pa.array(range(n), pa.int64())})


def median_ms(run) -> float:
    run()
    samples = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        run()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def main() -> None:
    root = Path(tempfile.mkdtemp())
    raw = root / "raw"
    raw.mkdir()
    table = tt.Table.create(str(root / "bars"), time_column="ts", bucket="1m", entity_columns=["symbol"])
    for d in range(DAYS):
        data = day(d)
        pq.write_table(data, raw / f"day{d:02d}.parquet")
        table.append(data)

    ours = SessionContext()
    ours.register_table("bars", table)
    tt.register_functions(ours)
    plain = SessionContext()
    plain.register_parquet("bars", str(raw))

    selective = (
        "SELECT avg(price) AS price, sum(volume) AS volume FROM bars WHERE symbol = 'S007' "
        "AND ts >= '2024-01-12T15:00:00Z' AND ts < '2024-01-12T16:00:00Z'"
    )
    coverage = "SELECT * FROM coverage('bars')"
    rows = [
        ("selective query: one symbol, one hour",
         median_ms(lambda: tt.sql(selective, bars=table)),
         median_ms(lambda: ours.sql(selective).collect()),
         median_ms(lambda: plain.sql(selective).collect())),
        ("coverage(), every symbol",
         median_ms(lambda: tt.sql(coverage, bars=table)),
         median_ms(lambda: ours.sql(coverage).collect()),
         None),
        ("table.coverage() (no SQL text)", median_ms(table.coverage), None, None),
    ]
    assert tt.sql(selective, bars=table).to_pylist() == ours.sql(selective).to_arrow_table().to_pylist()
    assert plain.sql(selective).to_arrow_table().to_pylist() == ours.sql(selective).to_arrow_table().to_pylist()

    print(f"{SYMBOLS} symbols x {DAYS} days x {MINUTES} minutes, {DAYS} segments; medians of {REPEATS} (ms)")
    print(f"python {sys.version.split()[0]}, pyarrow {pa.__version__}")
    print()
    print("| query | package engine (no FFI) | datafusion + provider (FFI) | datafusion + register_parquet |")
    print("|---|---:|---:|---:|")
    for name, *cells in rows:
        print(f"| {name} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
