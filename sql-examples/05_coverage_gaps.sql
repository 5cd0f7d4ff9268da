-- 05: Which time ranges hold data, and which are missing.
--
-- coverage(table [, start, end] [, schedule]), gaps(table [, start, end] [, schedule])
-- and last_covered_window(table, length [, end] [, schedule]) answer from the coverage
-- bitmaps (one bit per entity and one-minute bucket); they never read Parquet data.
-- Without start/end the window is the table's covered extent: from the first
-- covered bucket (2024-01-02 14:30) to the end of the last (2024-01-08 21:00).
-- The table's schedule, 'America/New_York; Mon-Fri 09:30-16:00', says which of those
-- buckets are expected: the 5 sessions of 390 minutes, 1950 buckets. Nights and the
-- weekend are not missing; they were never expected.

-- Per symbol over the whole extent, against the schedule. The gaps are the halts,
-- MSFT's missing Friday and the two sessions before AMZN and NVDA list.
SELECT symbol, window_start, window_end, expected_buckets, covered_buckets,
       missing_buckets, round(coverage_ratio, 4) AS ratio, gap_count,
       max_gap_buckets, covered_from, covered_until
FROM coverage('bars')
ORDER BY symbol;

-- The schedule argument overrides the table's for one query; 'always' expects every
-- bucket: 6 days + 390 minutes = 9030, nights and the weekend counted as missing.
SELECT symbol, expected_buckets, covered_buckets, round(coverage_ratio, 4) AS ratio, gap_count, max_gap_buckets
FROM coverage('bars', 'always')
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

-- Every missing run of MSFT: [gap_start, gap_end), end exclusive. A run never
-- spans a night: the missing Friday is one session of 390 minutes.
SELECT symbol, gap_start, gap_end, missing_buckets
FROM gaps('bars')
WHERE symbol = 'MSFT'
ORDER BY gap_start;

-- The halts: one symbol a day is halted for 45 minutes.
SELECT symbol, gap_start, gap_end, missing_buckets
FROM gaps('bars')
WHERE missing_buckets < 390
ORDER BY gap_start;

-- Without the schedule, the same symbol's gaps are the nights (1050 minutes, 21:00 to
-- 14:30) and the weekend (Thursday 21:00 to Monday 14:30 is 5370).
SELECT symbol, gap_start, gap_end, missing_buckets
FROM gaps('bars', 'always')
WHERE symbol = 'MSFT'
ORDER BY gap_start;

-- Gaps in one session window (2024-01-04, when all 6 symbols trade).
SELECT symbol, gap_start, gap_end, missing_buckets
FROM gaps('bars', '2024-01-04T14:30:00Z', '2024-01-04T21:00:00Z')
ORDER BY symbol, gap_start;

-- The latest 4 hours of scheduled minutes, all covered, per symbol. META's last
-- session has a halt at 16:30-17:15, so its window starts on Friday at 19:00 and
-- continues after the weekend, Monday 14:30-16:30: the weekend is not expected.
SELECT symbol, window_start, window_end
FROM last_covered_window('bars', '4h')
ORDER BY symbol;

-- The same question as of 2024-01-05 16:00 UTC, with an interval length: MSFT
-- has no Friday data, so its last full hour is Thursday's close.
SELECT symbol, window_start, window_end
FROM last_covered_window('bars', INTERVAL '1 hour', '2024-01-05T16:00:00Z')
ORDER BY symbol;

-- coverage_changes(table, from_version [, to_version]) answers "which buckets did this
-- load fill": version 6 appended the session of 2024-01-08 (META halted 16:30-17:15).
SELECT symbol, change, range_start, range_end, buckets
FROM coverage_changes('bars', 5, 6)
ORDER BY symbol, range_start;
