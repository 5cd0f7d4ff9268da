-- 06: Writing with INSERT.
--
-- Each INSERT statement is one append, through the same validation, overlap
-- check and optimistic commit as the Rust API. Rows may come in any order and
-- any number: they stream into segments sorted by time (about 4 M rows each,
-- all in one commit), sorted on disk when they exceed the memory limit.

CREATE EXTERNAL TABLE ex06_bars (
    ts TIMESTAMP NOT NULL,
    symbol VARCHAR NOT NULL,
    open DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    close DOUBLE NOT NULL,
    volume BIGINT NOT NULL
)
STORED AS TIMESERIES
LOCATION 'memory://examples/06_bars'
OPTIONS ('time_column' 'ts', 'bucket' '1m', 'entity_columns' 'symbol', 'timezone' 'UTC');

-- INSERT ... SELECT: AAPL's first session, 390 - 45 halted minutes = 345 rows.
INSERT INTO ex06_bars
SELECT * FROM bars
WHERE symbol = 'AAPL' AND ts < '2024-01-03T00:00:00Z';

-- The copy has AAPL's halt as its only gap.
SELECT symbol, gap_start, gap_end, missing_buckets FROM gaps('ex06_bars');

-- INSERT ... VALUES: backfill the first three halted minutes, out of order.
INSERT INTO ex06_bars VALUES
    ('2024-01-02T16:32:00Z', 'AAPL', 52.10, 52.18, 52.02, 52.12, 900),
    ('2024-01-02T16:30:00Z', 'AAPL', 52.03, 52.11, 51.98, 52.06, 1200),
    ('2024-01-02T16:31:00Z', 'AAPL', 52.06, 52.15, 52.01, 52.10, 700);

-- The gap now starts at 16:33 and is 42 minutes long.
SELECT symbol, gap_start, gap_end, missing_buckets FROM gaps('ex06_bars');

SELECT ts, symbol, open, close, volume
FROM ex06_bars
WHERE ts BETWEEN '2024-01-02T16:28:00Z' AND '2024-01-02T16:34:00Z'
ORDER BY ts;

-- A new symbol is a new entity: its buckets never collide with AAPL's.
INSERT INTO ex06_bars
SELECT ts, 'AAPL.X', open, high, low, close, volume
FROM bars
WHERE symbol = 'AAPL' AND ts >= '2024-01-02T14:30:00Z' AND ts < '2024-01-02T14:40:00Z';

SELECT symbol, count(*) AS rows, min(ts) AS first_bar, max(ts) AS last_bar
FROM ex06_bars
GROUP BY symbol
ORDER BY symbol;

-- One segment and one commit per INSERT.
SELECT version, operation, segments_added, rows_added
FROM history('ex06_bars')
ORDER BY version;

-- An INSERT that covers an already covered (symbol, minute), e.g. AAPL at
-- 2024-01-02T14:30:00Z again, fails with an "overlap" error naming the symbol,
-- the first overlapping minute and the segment it collides with; nothing is
-- committed. (Not run here: an example script stops at its first error.)
