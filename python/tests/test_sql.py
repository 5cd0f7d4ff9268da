"""The table and the table functions inside DataFusion's Python SessionContext, against
the answers of ``tsq sql`` (the Rust engine) on the same table."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from conftest import bars
from datafusion import SessionContext

import timeseries_table as tt

QUERIES = [
    "SELECT symbol, count(*) AS n, min(ts) AS first, max(ts) AS last, sum(volume) AS volume "
    "FROM bars GROUP BY symbol ORDER BY symbol",
    "SELECT ts, symbol, price FROM bars WHERE symbol = 'MSFT' "
    "AND ts >= '2024-01-03T14:40:00Z' AND ts < '2024-01-03T14:45:00Z' ORDER BY ts",
    "SELECT date_bin(INTERVAL '15 minutes', ts) AS bin, avg(price) AS price FROM bars "
    "WHERE ts >= '2024-01-02T00:00:00Z' AND ts < '2024-01-03T00:00:00Z' GROUP BY 1 ORDER BY 1",
    "SELECT * FROM bars ORDER BY ts DESC, symbol LIMIT 5",
]

FUNCTION_QUERIES = [
    "SELECT * FROM coverage('bars') ORDER BY symbol",
    "SELECT * FROM coverage('bars', '2024-01-02T14:00:00Z', '2024-01-02T16:00:00Z') ORDER BY symbol",
    "SELECT * FROM gaps('bars') ORDER BY symbol, gap_start",
    "SELECT * FROM gaps('bars', '2024-01-02T14:00:00Z', '2024-01-05T00:00:00Z') WHERE symbol = 'NVDA'",
    "SELECT segment_id, row_count, ts_min, ts_max FROM segments('bars') ORDER BY ts_min, segment_id",
    "SELECT version, operation, rows_added FROM history('bars') ORDER BY version",
    "SELECT count(*) AS n FROM snapshot('bars', 2)",
]


@pytest.fixture
def bars_table(new_table, tmp_path):
    """Three days of bars appended one day at a time; NVDA skips the second day."""
    table = new_table()
    table.append(bars(0))
    table.append(bars(1, symbols=["AAPL", "MSFT"]))
    table.append(bars(2))
    return table, str(tmp_path / "bars")


@pytest.fixture
def ctx(bars_table):
    table, _ = bars_table
    ctx = SessionContext()
    ctx.register_table("bars", table)
    tt.register_functions(ctx)
    return ctx


def tsq_rows(tsq, path: str, sql: str) -> list[dict]:
    return json.loads(tsq("sql", "-t", f"bars={path}", "--format", "json", sql))


def python_rows(ctx, sql: str) -> list[dict]:
    """Rows as ``tsq --format json`` writes them (arrow's JSON encoding)."""
    table = ctx.sql(sql).to_arrow_table()
    return json.loads(arrow_json(table))


def arrow_json(table: pa.Table) -> str:
    # Times as RFC 3339 text, as arrow-json writes them: compare values, not encodings.
    # Nulls are left out, as arrow-json does.
    rows = []
    for row in table.to_pylist():
        rows.append({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items() if v is not None})
    return json.dumps(rows)


def normalise(rows: list[dict]) -> list[dict]:
    """Times parsed into one representation, floats rounded: both sides print differently."""
    import datetime as dt

    out = []
    for row in rows:
        fixed = {}
        for key, value in row.items():
            if isinstance(value, str):
                try:
                    value = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    pass
            if isinstance(value, float):
                value = round(value, 9)
            fixed[key] = value
        out.append(fixed)
    return out


@pytest.mark.parametrize("sql", QUERIES + FUNCTION_QUERIES)
def test_sql_answers_equal_tsq_sql(ctx, bars_table, tsq, sql):
    _, path = bars_table
    ours = normalise(python_rows(ctx, sql))
    theirs = normalise(tsq_rows(tsq, path, sql))
    assert ours, "the query returned no rows; the comparison would prove nothing"
    assert ours == theirs


def test_table_methods_equal_the_sql_functions(ctx, bars_table):
    table, _ = bars_table
    assert table.coverage().to_pylist() == ctx.sql("SELECT * FROM coverage('bars')").to_arrow_table().to_pylist()
    gaps = ctx.sql("SELECT * FROM gaps('bars')").to_arrow_table()
    assert gaps.num_rows > 0
    assert table.gaps().to_pylist() == gaps.to_pylist()
    # On the second day only NVDA misses data: the whole hour.
    day = table.gaps("2024-01-03T14:30:00Z", "2024-01-03T15:30:00Z").to_pylist()
    assert [(g["symbol"], g["missing_buckets"]) for g in day] == [("NVDA", 60)]


def test_functions_take_a_path_instead_of_a_name(ctx, bars_table):
    _, path = bars_table
    by_path = ctx.sql(f"SELECT count(*) AS n FROM segments('{path}')").to_arrow_table()
    assert by_path.column("n").to_pylist() == [3]


def test_explain_analyze_shows_segment_pruning(ctx):
    plan = ctx.sql(
        "EXPLAIN ANALYZE SELECT count(*) FROM bars "
        "WHERE ts >= '2024-01-04T00:00:00Z' AND ts < '2024-01-05T00:00:00Z'"
    ).to_arrow_table()
    text = "\n".join(str(v) for v in plan.column("plan").to_pylist())
    assert "segments_total=3" in text, text
    assert "segments_pruned_by_time=2" in text, text


def test_filters_reach_the_provider(ctx):
    count = ctx.sql(
        "SELECT count(*) AS n FROM bars WHERE ts >= '2024-01-04T00:00:00Z' AND symbol = 'NVDA'"
    ).to_arrow_table()
    assert count.column("n").to_pylist() == [60]


def test_a_table_function_error_names_the_problem(ctx):
    with pytest.raises(Exception, match="unknown table 'nope' in coverage"):
        ctx.sql("SELECT * FROM coverage('nope')").collect()


def test_snapshot_reads_a_past_version(ctx):
    now = ctx.sql("SELECT count(*) AS n FROM bars").to_arrow_table().column("n").to_pylist()
    then = ctx.sql("SELECT count(*) AS n FROM snapshot('bars', 2)").to_arrow_table().column("n").to_pylist()
    assert (now, then) == ([480], [180])


def test_the_session_sees_later_appends(ctx, bars_table):
    table, _ = bars_table
    table.append(bars(3))
    assert ctx.sql("SELECT count(*) AS n FROM bars").to_arrow_table().column("n").to_pylist() == [660]


GAPFILL = (
    "SELECT symbol, date_bin_gapfill(INTERVAL '15 minutes', ts) AS bin, avg(price) AS price, "
    "locf(avg(price)) AS filled FROM bars "
    "WHERE ts >= '2024-01-03T14:00:00Z' AND ts < '2024-01-03T16:30:00Z' "
    "GROUP BY symbol, bin ORDER BY symbol, bin"
)


def test_the_package_engine_answers_like_tsq_sql(bars_table, tsq):
    table, path = bars_table
    for query in [GAPFILL, "SELECT count(*) AS n FROM bars WHERE CAST(ts AS DATE) = DATE '2024-01-03'"]:
        ours = normalise(json.loads(arrow_json(tt.sql(query, bars=table))))
        assert ours
        assert ours == normalise(tsq_rows(tsq, path, query))


def test_the_package_engine_prunes_through_date_functions(bars_table):
    table, _ = bars_table
    plan = tt.sql(
        "EXPLAIN ANALYZE SELECT count(*) FROM bars WHERE CAST(ts AS DATE) = DATE '2024-01-03'", bars=table
    )
    text = "\n".join(str(v) for v in plan.column("plan").to_pylist())
    assert "segments_pruned_by_time=2" in text, text
