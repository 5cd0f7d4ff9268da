-- 03: Rolling one-minute bars up to 15-minute bars with date_bin.
--
-- date_bin(INTERVAL '15 minutes', ts) maps each timestamp to the start of its
-- 15-minute bin (bins aligned to 1970-01-01 UTC, so to :00, :15, :30, :45).

-- 15-minute OHLCV bars for AAPL's first trading hour. Each bin holds 15 bars.
SELECT
    date_bin(INTERVAL '15 minutes', ts) AS bin,
    first_value(open ORDER BY ts) AS open,
    max(high) AS high,
    min(low) AS low,
    last_value(close ORDER BY ts) AS close,
    sum(volume) AS volume,
    count(*) AS bars
FROM bars
WHERE symbol = 'AAPL' AND ts >= '2024-01-02T14:30:00Z' AND ts < '2024-01-02T15:30:00Z'
GROUP BY 1
ORDER BY 1;

-- Around AAPL's halt on 2024-01-02 (16:30-17:15 UTC): the bins 16:30, 16:45 and
-- 17:00 have no bars, so they are simply absent from a GROUP BY.
SELECT date_bin(INTERVAL '15 minutes', ts) AS bin, count(*) AS bars, sum(volume) AS volume
FROM bars
WHERE symbol = 'AAPL' AND ts >= '2024-01-02T16:00:00Z' AND ts < '2024-01-02T17:30:00Z'
GROUP BY 1
ORDER BY 1;

-- 15-minute bins with data per symbol. A full session has 390 / 15 = 26 bins and
-- a 45-minute halt removes 3: AAPL, GOOG, META 5 * 26 - 3 = 127; MSFT
-- 4 * 26 - 3 = 101; AMZN 3 * 26 - 3 = 75; NVDA 3 * 26 = 78.
SELECT symbol, count(DISTINCT date_bin(INTERVAL '15 minutes', ts)) AS bins
FROM bars
GROUP BY symbol
ORDER BY symbol;

-- Daily volume per symbol for the first two days (AMZN and NVDA are not listed yet).
SELECT date_trunc('day', ts) AS day, symbol, sum(volume) AS volume, count(*) AS bars
FROM bars
WHERE ts < '2024-01-04T00:00:00Z'
GROUP BY 1, 2
ORDER BY 1, 2;
