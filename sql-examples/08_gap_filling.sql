-- 08: Filling gaps.
--
-- date_bin_gapfill(stride, ts) in GROUP BY emits every bin of the time range that the
-- WHERE clause gives, for each series (each combination of the other GROUP BY keys
-- with rows in the range), also the bins where the series has no rows. In an inserted
-- bin the aggregates are NULL unless wrapped: locf(agg) carries the series' last
-- non-null value forward, interpolate(agg) is linear between the non-null values on
-- either side (NULL beyond them). The WHERE clause must bound ts on both sides, plainly
-- or through a date function.

-- AAPL's trading halt on 2024-01-02 (16:30-17:15 UTC), at 15-minute bins.
SELECT symbol,
       date_bin_gapfill(INTERVAL '15 minutes', ts) AS bin,
       count(close) AS bars,
       round(avg(close), 2) AS avg_close,
       round(locf(avg(close)), 2) AS carried,
       round(interpolate(avg(close)), 2) AS interpolated
FROM bars
WHERE symbol = 'AAPL' AND ts >= '2024-01-02T16:00:00Z' AND ts < '2024-01-02T17:45:00Z'
GROUP BY symbol, bin
ORDER BY bin;

-- Daily closes of two symbols; MSFT has no bars on Friday 2024-01-05. Every calendar
-- day is a bin, so the weekend is invented too.
SELECT symbol,
       date_bin_gapfill(INTERVAL '1 day', ts) AS day,
       count(close) AS bars,
       locf(last_value(close ORDER BY ts)) AS close
FROM bars
WHERE symbol IN ('AAPL', 'MSFT') AND CAST(ts AS DATE) BETWEEN DATE '2024-01-04' AND DATE '2024-01-08'
GROUP BY symbol, day
ORDER BY symbol, day;

-- date_bin_gapfill_scheduled inserts only bins that meet a session of the table's
-- schedule (America/New_York; Mon-Fri 09:30-16:00): MSFT's missing Friday is still
-- filled, the weekend is not. A schedule can also be given as a third argument.
SELECT symbol,
       date_bin_gapfill_scheduled(INTERVAL '1 day', ts) AS day,
       count(close) AS bars,
       locf(last_value(close ORDER BY ts)) AS close
FROM bars
WHERE symbol IN ('AAPL', 'MSFT') AND CAST(ts AS DATE) BETWEEN DATE '2024-01-04' AND DATE '2024-01-08'
GROUP BY symbol, day
ORDER BY symbol, day;
