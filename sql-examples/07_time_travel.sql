-- 07: Reading a past version.
--
-- Every commit is a version, and the files of older versions stay until vacuum
-- removes them. snapshot(table, version) reads one in FROM; snapshot(table, time)
-- reads the latest version committed at or before that time. `bars` is at
-- version 6: version 1 created it and each of the five trading days was one append.

-- The table as of version 3: the first two trading days.
SELECT count(*) AS row_count, min(ts) AS first_bar, max(ts) AS last_bar
FROM snapshot('bars', 3);

-- What the loads after version 3 added, in one query over two versions.
SELECT symbol, count(*) AS rows_added
FROM (SELECT * FROM bars EXCEPT SELECT * FROM snapshot('bars', 3))
GROUP BY symbol
ORDER BY symbol;

-- The same change from the coverage bitmaps alone: one bar per minute, so the
-- buckets added equal the rows added.
SELECT symbol, sum(buckets) AS buckets_added
FROM coverage_changes('bars', 3)
GROUP BY symbol
ORDER BY symbol;
