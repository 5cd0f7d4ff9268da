"""Creating, appending from pyarrow, polars and pandas, reading metadata, time travel."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SYMBOLS, bars, sorted_rows
from datafusion import SessionContext

import timeseries_table as tt


def read_all(table: tt.Table) -> pa.Table:
    """Every row of ``table`` through DataFusion's Python SessionContext."""
    ctx = SessionContext()
    ctx.register_table("t", table)
    return ctx.sql("SELECT * FROM t ORDER BY symbol, ts").to_arrow_table()


def test_create_append_and_read_back_from_pyarrow(new_table):
    table = new_table()
    assert table.version == 1
    assert table.schema is None
    data = pa.concat_tables([bars(0), bars(1)])
    result = table.append(data)
    assert (result.version, result.rows, result.attempts) == (2, data.num_rows, 1)
    assert len(result.segments) >= 1
    assert table.version == 2
    schema = table.schema
    assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in data.schema]
    # The time and entity columns are declared non-null by the table.
    assert [f.nullable for f in schema] == [False, False, True, True]
    assert sorted_rows(read_all(table), ["symbol", "ts"]) == sorted_rows(data, ["symbol", "ts"])


def test_a_record_batch_reader_is_streamed(new_table):
    table = new_table()
    data = pa.concat_tables([bars(d) for d in range(3)])
    pulled = []

    def batches():
        for batch in data.to_batches(max_chunksize=100):
            pulled.append(batch.num_rows)
            yield batch

    reader = pa.RecordBatchReader.from_batches(data.schema, batches())
    result = table.append(reader)
    assert result.rows == data.num_rows
    assert len(pulled) == len(data.to_batches(max_chunksize=100)) > 1
    assert read_all(table).num_rows == data.num_rows


def test_round_trip_from_polars(new_table):
    pl = pytest.importorskip("polars")
    data = bars(0)
    frame = pl.from_arrow(data)
    table = new_table()
    table.append(frame)
    back = pl.from_arrow(read_all(table))
    assert back.sort(["symbol", "ts"]).equals(frame.sort(["symbol", "ts"]))


def test_round_trip_from_pandas(new_table):
    pd = pytest.importorskip("pandas")
    frame = bars(0).to_pandas()
    assert str(frame["ts"].dtype).startswith("datetime64")
    table = new_table()
    table.append(frame)
    back = read_all(table).to_pandas().sort_values(["symbol", "ts"]).reset_index(drop=True)
    expected = frame.sort_values(["symbol", "ts"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
    assert back["ts"].tolist() == expected["ts"].tolist()


def test_append_files_by_path(new_table, tmp_path):
    pq.write_table(bars(0), tmp_path / "day0.parquet")
    pq.write_table(bars(1), tmp_path / "day1.parquet")
    table = new_table()
    assert table.append(tmp_path / "day0.parquet").rows == bars(0).num_rows
    assert table.append(str(tmp_path / "day1.parquet")).rows == bars(1).num_rows
    assert read_all(table).num_rows == 2 * bars(0).num_rows


def test_coverage_gaps_segments_history(new_table):
    table = new_table()
    table.append(bars(0, minutes=30))
    # NVDA misses minutes 10..19 of its second half hour.
    later = bars(0, minutes=60).filter(pa.compute.greater_equal(pa.compute.field("ts"), pa.scalar(
        dt.datetime(2024, 1, 2, 15, 0, tzinfo=dt.timezone.utc), pa.timestamp("ms", "UTC"))))
    mask = pa.compute.invert(
        pa.compute.and_(
            pa.compute.equal(later["symbol"], "NVDA"),
            pa.compute.and_(
                pa.compute.greater_equal(later["ts"], pa.scalar(dt.datetime(2024, 1, 2, 15, 10, tzinfo=dt.timezone.utc), pa.timestamp("ms", "UTC"))),
                pa.compute.less(later["ts"], pa.scalar(dt.datetime(2024, 1, 2, 15, 20, tzinfo=dt.timezone.utc), pa.timestamp("ms", "UTC"))),
            ),
        )
    )
    table.append(later.filter(mask))

    coverage = {r["symbol"]: r for r in table.coverage().to_pylist()}
    assert set(coverage) == set(SYMBOLS)
    assert coverage["AAPL"]["missing_buckets"] == 0
    assert coverage["NVDA"]["missing_buckets"] == 10
    assert coverage["NVDA"]["covered_buckets"] == 50

    gaps = table.gaps().to_pylist()
    assert [(g["symbol"], g["gap_start"], g["missing_buckets"]) for g in gaps] == [
        ("NVDA", dt.datetime(2024, 1, 2, 15, 10, tzinfo=dt.timezone.utc), 10)
    ]
    window = table.gaps("2024-01-02T15:00:00Z", dt.datetime(2024, 1, 2, 15, 15, tzinfo=dt.timezone.utc))
    assert window.column("missing_buckets").to_pylist() == [5]

    assert sorted(table.segments().column("row_count").to_pylist()) == [80, 90]
    history = table.history()
    assert history.column("version").to_pylist() == [1, 2, 3]


def test_time_travel(new_table, tmp_path):
    table = new_table()
    table.append(bars(0))
    table.append(bars(1))
    old = tt.Table.open(str(tmp_path / "bars"), version=2)
    assert old.version == 2
    assert read_all(old).num_rows == bars(0).num_rows
    assert read_all(tt.Table.open(str(tmp_path / "bars"))).num_rows == 2 * bars(0).num_rows
    with pytest.raises(tt.InvalidInputError, match="read-only"):
        old.append(bars(2))
    with pytest.raises(tt.VersionNotFoundError, match="version 9 does not exist"):
        tt.Table.open(str(tmp_path / "bars"), version=9)


def test_refresh_sees_another_handles_commit(new_table, tmp_path):
    table = new_table()
    table.append(bars(0))
    other = tt.Table.open(str(tmp_path / "bars"))
    table.append(bars(1))
    assert other.version == 2
    assert other.refresh() is True
    assert other.version == 3
    assert other.refresh() is False


def test_repr_and_uri(new_table, tmp_path):
    table = new_table()
    assert table.uri == str(tmp_path / "bars")
    assert repr(table) == f"Table('{tmp_path / 'bars'}', version=1)"


def test_blocking_work_releases_the_gil(new_table):
    """A Python thread keeps running while an append and a read work in Rust."""
    import threading
    import time

    table = new_table()
    symbols = [f"S{i:03d}" for i in range(100)]
    data = pa.concat_tables([bars(d, symbols=symbols, minutes=390) for d in range(3)])
    ticks = 0
    stop = threading.Event()

    def tick():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        before = ticks
        started = time.perf_counter()
        table.append(data)
        table.coverage()
        elapsed = time.perf_counter() - started
        during = ticks - before
    finally:
        stop.set()
        ticker.join()
    # Holding the GIL through the call would leave the ticker at zero for its whole length.
    assert elapsed > 0.02, "the work was too short to tell"
    assert during >= 5, f"the ticker ran {during} times in {elapsed:.3f} s"
