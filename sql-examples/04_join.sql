-- 04: Joining two time-series tables.
--
-- A second table, without entity columns (one implicit entity), holds the total
-- market volume per minute of 2024-01-04. It is filled from `bars` with
-- INSERT ... SELECT; then each symbol's bar is joined to its minute's total.

CREATE EXTERNAL TABLE ex04_market (
    ts TIMESTAMP NOT NULL,
    total_volume BIGINT NOT NULL,
    symbols BIGINT NOT NULL
)
STORED AS TIMESERIES
LOCATION 'memory://examples/04_market'
OPTIONS ('time_column' 'ts', 'bucket' '1m', 'timezone' 'UTC');

-- 390 minutes in the session, so 390 rows.
INSERT INTO ex04_market
SELECT ts, sum(volume), count(*)
FROM bars
WHERE ts >= '2024-01-04T00:00:00Z' AND ts < '2024-01-05T00:00:00Z'
GROUP BY ts;

-- All 6 symbols trade in 345 minutes; AMZN is halted for 45 (16:30-17:15).
SELECT symbols, count(*) AS minutes
FROM ex04_market
GROUP BY symbols
ORDER BY symbols;

-- Each symbol's share of the minute's volume, for the opening two minutes.
SELECT b.ts, b.symbol, b.volume, m.total_volume,
       round(100.0 * b.volume / m.total_volume, 2) AS pct_of_market
FROM bars AS b
JOIN ex04_market AS m ON b.ts = m.ts
WHERE b.ts < '2024-01-04T14:32:00Z'
ORDER BY b.ts, b.symbol;

-- The join key is the time: the halt minute 16:30 has five symbols, none AMZN.
SELECT b.ts, count(*) AS symbols, m.symbols AS market_symbols,
       sum(b.volume) = m.total_volume AS volumes_agree
FROM bars AS b
JOIN ex04_market AS m ON b.ts = m.ts
WHERE b.ts IN ('2024-01-04T16:29:00Z', '2024-01-04T16:30:00Z', '2024-01-04T17:15:00Z')
GROUP BY b.ts, m.symbols, m.total_volume
ORDER BY b.ts;

-- A join with an ordinary in-memory table: daily volume per sector on 2024-01-04.
CREATE TABLE ex04_sectors (symbol VARCHAR, sector VARCHAR) AS VALUES
    ('AAPL', 'Technology'), ('MSFT', 'Technology'), ('GOOG', 'Communication'),
    ('META', 'Communication'), ('AMZN', 'Consumer'), ('NVDA', 'Technology');

SELECT s.sector, count(DISTINCT b.symbol) AS symbols, sum(b.volume) AS volume
FROM bars AS b
JOIN ex04_sectors AS s ON b.symbol = s.symbol
WHERE b.ts >= '2024-01-04T00:00:00Z' AND b.ts < '2024-01-05T00:00:00Z'
GROUP BY s.sector
ORDER BY s.sector;

-- The joined totals add up to the market table's total.
SELECT (SELECT sum(total_volume) FROM ex04_market) AS market_volume,
       (SELECT sum(volume) FROM bars
        WHERE ts >= '2024-01-04T00:00:00Z' AND ts < '2024-01-05T00:00:00Z') AS bars_volume;
