-- 05: Which time ranges hold data, and which are missing.
--
-- coverage(table [, start, end]), gaps(table [, start, end]) and
-- last_covered_window(table, length [, end]) answer from the coverage bitmaps
-- (one bit per entity and one-minute bucket); they never read Parquet data.
-- Without start/end the window is the table's covered extent: from the first
-- covered bucket (2024-01-02 14:30) to the end of the last (2024-01-08 21:00),
-- 6 days + 390 minutes = 9030 one-minute buckets.

-- Per symbol over the whole extent. Gaps are the nights, the weekend, halts,
-- MSFT's missing Friday and the two days before AMZN and NVDA list.
SELECT symbol, window_start, window_end, expected_buckets, covered_buckets,
       missing_buckets, round(coverage_ratio, 4) AS ratio, gap_count,
       max_gap_buckets, covered_from, covered_until
FROM coverage('bars')
ORDER BY symbol;

-- The same numbers from the data itself: covered buckets are the distinct
-- minutes that hold a bar.
SELECT c.symbol, c.covered_buckets, d.minutes_with_data
FROM coverage('bars') AS c
JOIN (SELECT symbol, count(DISTINCT date_bin(INTERVAL '1 minute', ts)) AS minutes_with_data
      FROM bars GROUP BY symbol) AS d
  ON c.symbol = d.symbol
ORDER BY c.symbol;

-- An explicit window: the first trading session. AMZN and NVDA are not listed
-- yet (0 of 390 buckets); AAPL misses its 45-minute halt.
SELECT symbol, expected_buckets, covered_buckets, missing_buckets, gap_count, covered_from, covered_until
FROM coverage('bars', '2024-01-02T14:30:00Z', '2024-01-02T21:00:00Z')
ORDER BY symbol;

-- A WHERE on the entity column computes only that entity: MSFT on Friday 2024-01-05.
SELECT symbol, window_start, window_end, expected_buckets, covered_buckets, coverage_ratio
FROM coverage('bars', '2024-01-05T00:00:00Z', '2024-01-06T00:00:00Z')
WHERE symbol = 'MSFT';

-- Every missing run of MSFT: [gap_start, gap_end), end exclusive. Nights are
-- 1050 minutes (21:00 to 14:30); Thursday 21:00 to Monday 14:30 is 5370.
SELECT symbol, gap_start, gap_end, missing_buckets
FROM gaps('bars')
WHERE symbol = 'MSFT'
ORDER BY gap_start;

-- Gaps inside trading sessions only: the five halts, one per day.
SELECT symbol, gap_start, gap_end, missing_buckets
FROM gaps('bars')
WHERE missing_buckets < 390
ORDER BY gap_start;

-- Gaps in one session window (2024-01-04, when all 6 symbols trade).
SELECT symbol, gap_start, gap_end, missing_buckets
FROM gaps('bars', '2024-01-04T14:30:00Z', '2024-01-04T21:00:00Z')
ORDER BY symbol, gap_start;

-- The latest fully covered 4-hour window per symbol. META's last session has a
-- halt at 16:30-17:15, leaving 3h45m after it, so its window is on the Friday.
SELECT symbol, window_start, window_end
FROM last_covered_window('bars', '4h')
ORDER BY symbol;

-- The same question as of 2024-01-05 16:00 UTC, with an interval length: MSFT
-- has no Friday data, so its last full hour is Thursday's close.
SELECT symbol, window_start, window_end
FROM last_covered_window('bars', INTERVAL '1 hour', '2024-01-05T16:00:00Z')
ORDER BY symbol;
