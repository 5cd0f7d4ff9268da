-- 01: Looking at a table, creating one, and opening it again.
--
-- Every example runs against `bars`: one-minute market bars for 6 symbols over the
-- 5 trading days 2024-01-02 .. 2024-01-08, 14:30-21:00 UTC (390 bars a day), with
-- deliberate holes: AMZN and NVDA list on 2024-01-04, MSFT has no data on
-- 2024-01-05, and one symbol a day is halted for 45 minutes (16:30-17:15 UTC).
-- `tsq demo` builds it and registers it; from Rust:
--   let table = TimeSeriesTable::open(TableLocation::parse("/path/to/bars")?).await?;
--   let ctx = timeseries_table_core::datafusion::session_context();
--   register_opened(&ctx, "bars", table)?;

-- Columns: `ts` is the time column, `symbol` the entity column.
DESCRIBE bars;

-- The first bars in time. Only 4 symbols trade on the first day.
SELECT ts, symbol, open, high, low, close, volume
FROM bars
ORDER BY ts, symbol
LIMIT 6;

-- One row per symbol. A full day is 390 bars; a halt removes 45:
-- AAPL, GOOG, META: 5 * 390 - 45 = 1905; MSFT: 4 * 390 - 45 = 1515;
-- AMZN: 3 * 390 - 45 = 1125; NVDA: 3 * 390 = 1170. Total 9525.
SELECT symbol, count(*) AS bars, min(ts) AS first_bar, max(ts) AS last_bar
FROM bars
GROUP BY symbol
ORDER BY symbol;

-- The table is made of immutable Parquet segments, here one per trading day
-- (the sample loader appended one day at a time). Segment ids, paths and sizes
-- are left out because they differ from run to run.
SELECT ts_min, ts_max, row_count, entity_count, added_in_version, sorted
FROM segments('bars')
ORDER BY ts_min;

-- Every commit in the transaction log (`committed_at` left out: it is wall-clock time).
SELECT version, operation, segments_added, segments_removed, rows_added
FROM history('bars')
ORDER BY version;

-- Creating a table: a column list plus OPTIONS. `time_column` and `bucket` are
-- required; `entity_columns` (comma-separated) and `timezone` are optional.
-- How this registration's INSERTs write can be set too, when creating or
-- opening: 'segment_rows', 'memory_limit' (e.g. '512MiB'), 'row_group_rows'
-- and 'compression' ('snappy', 'zstd', 'zstd(9)' or 'none').
-- SQL TIMESTAMP columns carry no zone, so 'timezone' 'UTC' is what makes `ts` a
-- UTC timestamp (printed with a trailing Z).
-- The location can be a local directory, file://, s3://, gs://, az:// or, as
-- here, a process-local memory:// store.
CREATE EXTERNAL TABLE ex01_trades (
    ts TIMESTAMP NOT NULL,
    symbol VARCHAR NOT NULL,
    price DOUBLE NOT NULL,
    size BIGINT NOT NULL
)
STORED AS TIMESERIES
LOCATION 'memory://examples/01_trades'
OPTIONS ('time_column' 'ts', 'bucket' '1m', 'entity_columns' 'symbol', 'timezone' 'UTC');

INSERT INTO ex01_trades VALUES
    ('2024-01-02T14:30:05Z', 'AAPL', 185.25, 100),
    ('2024-01-02T14:30:41Z', 'MSFT', 370.50, 20),
    ('2024-01-02T14:31:12Z', 'AAPL', 185.40, 300);

-- Opening an existing table: no column list and no OPTIONS; the schema and the
-- time index come from the table's own log. Here the same location under a
-- second name.
CREATE EXTERNAL TABLE ex01_trades_reopened
STORED AS TIMESERIES
LOCATION 'memory://examples/01_trades';

SELECT * FROM ex01_trades_reopened ORDER BY ts;

-- Three trades fall into two one-minute buckets for AAPL and one for MSFT.
SELECT symbol, covered_buckets, covered_from, covered_until
FROM coverage('ex01_trades_reopened')
ORDER BY symbol;
