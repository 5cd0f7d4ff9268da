-- 02: Time-range queries.
--
-- Predicates on the time column (=, <, <=, >, >=, BETWEEN, IN, NOT, AND, OR) with
-- timestamp literals or strings prune whole segments from metadata before any
-- Parquet byte is read; the remaining files are read with row-group pruning.
-- Timestamp strings take an explicit offset ('Z' for UTC).

-- One hour of one day: 60 minutes x 4 listed symbols = 240 bars.
SELECT count(*) AS bars
FROM bars
WHERE ts >= '2024-01-03T15:00:00Z' AND ts < '2024-01-03T16:00:00Z';

-- Half-open ranges [start, end) compose without double counting: the same hour
-- as four quarters.
SELECT
    count(*) FILTER (WHERE ts < '2024-01-03T15:15:00Z') AS q1,
    count(*) FILTER (WHERE ts >= '2024-01-03T15:15:00Z' AND ts < '2024-01-03T15:30:00Z') AS q2,
    count(*) FILTER (WHERE ts >= '2024-01-03T15:30:00Z' AND ts < '2024-01-03T15:45:00Z') AS q3,
    count(*) FILTER (WHERE ts >= '2024-01-03T15:45:00Z') AS q4
FROM bars
WHERE ts >= '2024-01-03T15:00:00Z' AND ts < '2024-01-03T16:00:00Z';

-- BETWEEN is inclusive at both ends. MSFT is halted on 2024-01-03 from 16:30 to
-- 17:15, so only the five bars before the halt come back.
SELECT ts, symbol, close, volume
FROM bars
WHERE symbol = 'MSFT' AND ts BETWEEN '2024-01-03T16:25:00Z' AND '2024-01-03T16:35:00Z'
ORDER BY ts;

-- Any offset works: 09:30 in New York (UTC-5 in January) is the 14:30 UTC open.
-- The first five minutes of 2024-01-04, when all 6 symbols trade: 30 bars.
SELECT count(*) AS bars, count(DISTINCT symbol) AS symbols, min(ts) AS first_bar
FROM bars
WHERE ts >= '2024-01-04T09:30:00-05:00' AND ts < '2024-01-04T09:35:00-05:00';

-- Exact instants with IN, combined with an entity filter.
SELECT ts, symbol, open, close
FROM bars
WHERE ts IN ('2024-01-04T14:30:00Z', '2024-01-04T20:59:00Z') AND symbol IN ('AMZN', 'NVDA')
ORDER BY ts, symbol;

-- OR of two windows and NOT: bars of GOOG in the first and last minute of
-- 2024-01-05, except exactly 14:30.
SELECT ts, symbol, close
FROM bars
WHERE symbol = 'GOOG'
  AND (ts BETWEEN '2024-01-05T14:30:00Z' AND '2024-01-05T14:31:00Z'
       OR ts >= '2024-01-05T20:59:00Z' AND ts < '2024-01-06T00:00:00Z')
  AND NOT ts = '2024-01-05T14:30:00Z'
ORDER BY ts;

-- Bars per day for MSFT: 390 on a full day, 345 on the halt day, and no row at
-- all for 2024-01-05 (see 05_coverage_gaps.sql for finding such holes).
SELECT date_trunc('day', ts) AS day, count(*) AS bars
FROM bars
WHERE symbol = 'MSFT'
GROUP BY 1
ORDER BY 1;

-- The latest bars. `ORDER BY ts DESC LIMIT n` plans only the segments that can hold
-- the n rows (by their row counts and time ranges, when no filter is in between), reads
-- the newest first and stops once no segment left can hold a newer row (ascending: the
-- oldest first); a top-k sort orders the few rows read.
SELECT ts, symbol, close
FROM bars
ORDER BY ts DESC, symbol
LIMIT 3;
