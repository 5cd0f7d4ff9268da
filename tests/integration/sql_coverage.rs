//! `coverage()`, `gaps()` and `last_covered_window()` in SQL give the same answers as the
//! Rust API (`TimeSeriesTable::coverage/gaps/last_covered_window`) and as a brute-force
//! computation from the data itself (distinct one-minute bins per symbol, window functions
//! for the gaps), on the sample market bars: 6 symbols x 5 trading days with late listings,
//! a missing day and daily halts. Most tests judge every minute (the sample's schedule
//! removed); the schedule tests judge New York's sessions against a minute-by-minute model,
//! and `coverage_changes()` is checked against differences of coverage at two versions.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampNanosecondType};
use chrono::{DateTime, SecondsFormat};
use datafusion::prelude::SessionContext;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::metadata::{parse_timestamp, EntityKey, EntityValue, Timestamp};
use timeseries_table_core::sample::{create_sample_table, MarketBars};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{TimeRange, TimeSeriesTable};

use crate::common::{ns, row_count, uuid_like, MINUTE};

/// The sample table with every bucket expected (its schedule removed).
async fn fixture() -> (SessionContext, TimeSeriesTable) {
    let (ctx, mut table) = scheduled_fixture().await;
    table.set_schedule(None).await.unwrap();
    (ctx, table)
}

/// The sample table as built, with its New York schedule.
async fn scheduled_fixture() -> (SessionContext, TimeSeriesTable) {
    let location = TableLocation::memory(&uuid_like(), "bars").unwrap();
    let table = create_sample_table(location, &MarketBars::new(6, 5), |_, _| {}).await.unwrap();
    let ctx = session_context();
    register_opened(&ctx, "bars", table.clone()).unwrap();
    (ctx, table)
}

async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    batch.column(batch.schema().index_of(name).unwrap())
}

/// A timestamp column of any unit and zone as nanoseconds since the epoch.
fn nanos(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    let array = column(batch, name);
    let DataType::Timestamp(_, tz) = array.data_type() else { panic!("{name} is not a timestamp") };
    let cast = cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, tz.clone())).unwrap();
    cast.as_primitive::<TimestampNanosecondType>().iter().collect()
}

fn ints(batch: &RecordBatch, name: &str) -> Vec<i64> {
    column(batch, name).as_primitive::<Int64Type>().values().to_vec()
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
    let array = cast(column(batch, name), &DataType::Utf8).unwrap();
    array.as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect()
}

/// A literal of the fixture's exact time type, so UNIONs and comparisons need no coercion.
fn ts_literal(nanos: i64) -> String {
    let text = DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::AutoSi, true);
    format!("arrow_cast('{text}', 'Timestamp(Millisecond, Some(\"UTC\"))')")
}

/// One row of `coverage()`, timestamps in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
struct CoverageRow {
    symbol: String,
    window: (i64, i64),
    expected: i64,
    covered: i64,
    missing: i64,
    ratio: f64,
    gap_count: i64,
    max_gap: i64,
    covered_from: Option<i64>,
    covered_until: Option<i64>,
}

/// One missing run: symbol, `[start, end)`, buckets.
type GapRow = (String, i64, i64, i64);

fn coverage_rows(batches: &[RecordBatch]) -> Vec<CoverageRow> {
    let mut rows = Vec::new();
    for b in batches {
        let (symbol, start, end) = (strings(b, "symbol"), nanos(b, "window_start"), nanos(b, "window_end"));
        let (expected, covered, missing) =
            (ints(b, "expected_buckets"), ints(b, "covered_buckets"), ints(b, "missing_buckets"));
        let ratio = column(b, "coverage_ratio").as_primitive::<Float64Type>().values().to_vec();
        let (gap_count, max_gap) = (ints(b, "gap_count"), ints(b, "max_gap_buckets"));
        let (from, until) = (nanos(b, "covered_from"), nanos(b, "covered_until"));
        for i in 0..b.num_rows() {
            rows.push(CoverageRow {
                symbol: symbol[i].clone(),
                window: (start[i].unwrap(), end[i].unwrap()),
                expected: expected[i],
                covered: covered[i],
                missing: missing[i],
                ratio: ratio[i],
                gap_count: gap_count[i],
                max_gap: max_gap[i],
                covered_from: from[i],
                covered_until: until[i],
            });
        }
    }
    rows.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    rows
}

fn gap_rows(batches: &[RecordBatch]) -> Vec<GapRow> {
    let mut rows = Vec::new();
    for b in batches {
        let (symbol, start, end, missing) =
            (strings(b, "symbol"), nanos(b, "gap_start"), nanos(b, "gap_end"), ints(b, "missing_buckets"));
        for i in 0..b.num_rows() {
            rows.push((symbol[i].clone(), start[i].unwrap(), end[i].unwrap(), missing[i]));
        }
    }
    rows.sort();
    rows
}

fn symbol_of(key: &EntityKey) -> String {
    match key.0.as_slice() {
        [EntityValue::Str(s)] => s.clone(),
        other => panic!("unexpected entity {other:?}"),
    }
}

/// The function arguments for an optional window: `'bars'` or `'bars', 'start', 'end'`.
fn args(window: Option<(&str, &str)>) -> String {
    match window {
        None => "'bars'".to_string(),
        Some((start, end)) => format!("'bars', '{start}', '{end}'"),
    }
}

const WINDOWS: [Option<(&str, &str)>; 6] = [
    None,
    // The first session: AMZN and NVDA not listed yet, AAPL halted.
    Some(("2024-01-02T14:30:00Z", "2024-01-02T21:00:00Z")),
    // Three calendar days including MSFT's missing Friday.
    Some(("2024-01-03T00:00:00Z", "2024-01-06T00:00:00Z")),
    // Not aligned to buckets: partial first and last minutes count as expected buckets.
    Some(("2024-01-04T16:45:30Z", "2024-01-04T17:20:10Z")),
    // Before any data.
    Some(("2023-12-01T00:00:00Z", "2023-12-02T00:00:00Z")),
    // Wider than the data on both sides.
    Some(("2024-01-01T00:00:00Z", "2024-01-10T00:00:00Z")),
];

/// The window in bucket-aligned nanoseconds `[start, end)` plus the window as reported.
async fn resolve(ctx: &SessionContext, window: Option<(&str, &str)>) -> ((i64, i64), (i64, i64)) {
    match window {
        Some((start, end)) => {
            let (s, e) = (parse_timestamp(start).unwrap(), parse_timestamp(end).unwrap());
            ((s.div_euclid(MINUTE) * MINUTE, (e + MINUTE - 1).div_euclid(MINUTE) * MINUTE), (s, e))
        }
        None => {
            // The covered extent, from the data: first bar's minute to the end of the last's.
            let b = query(ctx, "SELECT min(date_bin(INTERVAL '1 minute', ts)) AS s, max(date_bin(INTERVAL '1 minute', ts)) AS e FROM bars").await;
            let (s, e) = (nanos(&b[0], "s")[0].unwrap(), nanos(&b[0], "e")[0].unwrap() + MINUTE);
            ((s, e), (s, e))
        }
    }
}

/// Gaps from the data with window functions: holes between consecutive covered minutes,
/// before the first and after the last, and whole windows for symbols without data.
async fn brute_gaps(ctx: &SessionContext, (s, e): (i64, i64)) -> Vec<GapRow> {
    let (s, e) = (ts_literal(s), ts_literal(e));
    let sql = format!(
        "WITH b AS (SELECT DISTINCT symbol, date_bin(INTERVAL '1 minute', ts) AS bucket FROM bars WHERE ts >= {s} AND ts < {e}),
              runs AS (SELECT symbol, bucket, lead(bucket) OVER (PARTITION BY symbol ORDER BY bucket) AS next FROM b)
         SELECT symbol, bucket + INTERVAL '1 minute' AS gap_start, next AS gap_end FROM runs
          WHERE next > bucket + INTERVAL '1 minute'
         UNION ALL
         SELECT symbol, {s}, min(bucket) FROM b GROUP BY symbol HAVING min(bucket) > {s}
         UNION ALL
         SELECT symbol, max(bucket) + INTERVAL '1 minute', {e} FROM b GROUP BY symbol HAVING max(bucket) + INTERVAL '1 minute' < {e}
         UNION ALL
         SELECT DISTINCT symbol, {s}, {e} FROM bars WHERE symbol NOT IN (SELECT symbol FROM b)"
    );
    let mut rows = Vec::new();
    for b in query(ctx, &sql).await {
        let (symbol, start, end) = (strings(&b, "symbol"), nanos(&b, "gap_start"), nanos(&b, "gap_end"));
        for i in 0..b.num_rows() {
            let (start, end) = (start[i].unwrap(), end[i].unwrap());
            rows.push((symbol[i].clone(), start, end, (end - start) / MINUTE));
        }
    }
    rows.sort();
    rows
}

/// Coverage from the data: distinct one-minute bins per symbol, plus the brute-force gaps.
async fn brute_coverage(ctx: &SessionContext, aligned: (i64, i64), reported: (i64, i64)) -> Vec<CoverageRow> {
    let (s, e) = (ts_literal(aligned.0), ts_literal(aligned.1));
    let sql = format!(
        "SELECT d.symbol, count(DISTINCT date_bin(INTERVAL '1 minute', b.ts)) AS covered,
                min(date_bin(INTERVAL '1 minute', b.ts)) AS first, max(date_bin(INTERVAL '1 minute', b.ts)) AS last
         FROM (SELECT DISTINCT symbol FROM bars) AS d
         LEFT JOIN (SELECT * FROM bars WHERE ts >= {s} AND ts < {e}) AS b ON b.symbol = d.symbol
         GROUP BY d.symbol"
    );
    let gaps = brute_gaps(ctx, aligned).await;
    let expected = (aligned.1 - aligned.0) / MINUTE;
    let mut rows = Vec::new();
    for b in query(ctx, &sql).await {
        let (symbol, covered, first, last) =
            (strings(&b, "symbol"), ints(&b, "covered"), nanos(&b, "first"), nanos(&b, "last"));
        for i in 0..b.num_rows() {
            let own: Vec<&GapRow> = gaps.iter().filter(|g| g.0 == symbol[i]).collect();
            rows.push(CoverageRow {
                symbol: symbol[i].clone(),
                window: reported,
                expected,
                covered: covered[i],
                missing: expected - covered[i],
                ratio: covered[i] as f64 / expected as f64,
                gap_count: own.len() as i64,
                max_gap: own.iter().map(|g| g.3).max().unwrap_or(0),
                covered_from: first[i],
                covered_until: last[i].map(|t| t + MINUTE),
            });
        }
    }
    rows.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    rows
}

fn rust_window(window: Option<(&str, &str)>) -> Option<TimeRange> {
    window.map(|(s, e)| TimeRange::parse(s, e).unwrap())
}

fn assert_coverage_eq(left: &[CoverageRow], right: &[CoverageRow], what: &str) {
    assert_eq!(left.len(), right.len(), "{what}: row counts\n{left:#?}\n{right:#?}");
    for (l, r) in left.iter().zip(right) {
        // Ratios are the same division; allow for a last-bit difference only.
        assert!((l.ratio - r.ratio).abs() < 1e-12, "{what}: ratio {l:?} vs {r:?}");
        assert_eq!(CoverageRow { ratio: 0.0, ..l.clone() }, CoverageRow { ratio: 0.0, ..r.clone() }, "{what}");
    }
}

#[tokio::test]
async fn coverage_and_gaps_agree_with_the_rust_api_and_the_data() {
    let (ctx, table) = fixture().await;
    for window in WINDOWS {
        let what = format!("window {window:?}");
        let (aligned, reported) = resolve(&ctx, window).await;

        let sql_coverage = coverage_rows(&query(&ctx, &format!("SELECT * FROM coverage({})", args(window))).await);
        let api_coverage: Vec<CoverageRow> = table
            .coverage(rust_window(window), None)
            .await
            .unwrap()
            .into_iter()
            .map(|c| CoverageRow {
                symbol: symbol_of(&c.entity),
                window: (ns(c.window.start), ns(c.window.end)),
                expected: c.expected_buckets as i64,
                covered: c.covered_buckets as i64,
                missing: c.missing_buckets as i64,
                ratio: c.coverage_ratio,
                gap_count: c.gap_count as i64,
                max_gap: c.max_gap_buckets as i64,
                covered_from: c.covered_from.map(ns),
                covered_until: c.covered_until.map(ns),
            })
            .collect();
        let mut api_coverage = api_coverage;
        api_coverage.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        let brute = brute_coverage(&ctx, aligned, reported).await;
        assert_eq!(brute.len(), 6, "{what}: every symbol is reported");
        assert_coverage_eq(&sql_coverage, &api_coverage, &format!("{what}: SQL vs Rust API"));
        assert_coverage_eq(&sql_coverage, &brute, &format!("{what}: SQL vs data"));

        let sql_gaps = gap_rows(&query(&ctx, &format!("SELECT * FROM gaps({})", args(window))).await);
        let mut api_gaps: Vec<GapRow> = table
            .gaps(rust_window(window), None)
            .await
            .unwrap()
            .into_iter()
            .map(|g| (symbol_of(&g.entity), ns(g.start), ns(g.end), g.missing_buckets as i64))
            .collect();
        api_gaps.sort();
        assert_eq!(sql_gaps, api_gaps, "{what}: gaps, SQL vs Rust API");
        assert_eq!(sql_gaps, brute_gaps(&ctx, aligned).await, "{what}: gaps, SQL vs data");
        // Gaps and coverage tell the same story.
        for row in &sql_coverage {
            let own: Vec<&GapRow> = sql_gaps.iter().filter(|g| g.0 == row.symbol).collect();
            assert_eq!(own.iter().map(|g| g.3).sum::<i64>(), row.missing, "{what}: {}", row.symbol);
        }
    }
}

#[tokio::test]
async fn coverage_spot_checks_against_the_fixture_design() {
    // Independent of any computation: what the sample data is built to contain.
    let (ctx, _) = fixture().await;
    let batches = query(&ctx, "SELECT * FROM coverage('bars')").await;
    // Entity columns keep their type, timestamps come back in the time column's type.
    let schema = batches[0].schema();
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let types: Vec<(&str, &DataType)> = schema.fields().iter().map(|f| (f.name().as_str(), f.data_type())).collect();
    assert_eq!(
        types,
        vec![
            ("symbol", &DataType::Utf8),
            ("window_start", &ts),
            ("window_end", &ts),
            ("expected_buckets", &DataType::Int64),
            ("covered_buckets", &DataType::Int64),
            ("missing_buckets", &DataType::Int64),
            ("coverage_ratio", &DataType::Float64),
            ("gap_count", &DataType::Int64),
            ("max_gap_buckets", &DataType::Int64),
            ("covered_from", &ts),
            ("covered_until", &ts),
        ]
    );
    let rows = coverage_rows(&batches);
    let by_symbol: BTreeMap<&str, &CoverageRow> = rows.iter().map(|r| (r.symbol.as_str(), r)).collect();
    // Extent: 2024-01-02 14:30 to 2024-01-08 21:00 = 6 days + 390 minutes.
    assert!(rows.iter().all(|r| r.expected == 6 * 1440 + 390));
    // 390 bars a session; 45-minute halts; AMZN/NVDA from day 3; MSFT misses day 4.
    let covered: Vec<(&str, i64)> = by_symbol.iter().map(|(s, r)| (*s, r.covered)).collect();
    assert_eq!(
        covered,
        vec![("AAPL", 1905), ("AMZN", 1125), ("GOOG", 1905), ("META", 1905), ("MSFT", 1515), ("NVDA", 1170)]
    );
    // MSFT: Thursday close to Monday open is 4 days - 6.5 hours.
    assert_eq!(by_symbol["MSFT"].max_gap, 4 * 1440 - 390);
    assert_eq!(by_symbol["NVDA"].gap_count, 3);
}

#[tokio::test]
async fn entity_filters_on_the_functions_select_those_entities() {
    let (ctx, table) = fixture().await;
    for window in [WINDOWS[0], WINDOWS[2]] {
        let all = coverage_rows(&query(&ctx, &format!("SELECT * FROM coverage({})", args(window))).await);
        let all_gaps = gap_rows(&query(&ctx, &format!("SELECT * FROM gaps({})", args(window))).await);
        for symbol in ["AAPL", "AMZN", "GOOG", "META", "MSFT", "NVDA"] {
            let one = coverage_rows(
                &query(&ctx, &format!("SELECT * FROM coverage({}) WHERE symbol = '{symbol}'", args(window))).await,
            );
            let expected: Vec<CoverageRow> = all.iter().filter(|r| r.symbol == symbol).cloned().collect();
            assert_coverage_eq(&one, &expected, &format!("{window:?} {symbol}"));
            let gaps = gap_rows(
                &query(&ctx, &format!("SELECT * FROM gaps({}) WHERE symbol = '{symbol}'", args(window))).await,
            );
            let expected: Vec<GapRow> = all_gaps.iter().filter(|g| g.0 == symbol).cloned().collect();
            assert_eq!(gaps, expected, "{window:?} {symbol}");
        }
        let two = coverage_rows(
            &query(&ctx, &format!("SELECT * FROM coverage({}) WHERE symbol IN ('NVDA', 'MSFT')", args(window))).await,
        );
        assert_eq!(two.iter().map(|r| r.symbol.as_str()).collect::<Vec<_>>(), vec!["MSFT", "NVDA"]);
        let none = query(&ctx, &format!("SELECT * FROM coverage({}) WHERE symbol = 'NOPE'", args(window))).await;
        assert_eq!(none.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
        // A non-entity filter is applied after the computation, not mistaken for one.
        let halted =
            gap_rows(&query(&ctx, &format!("SELECT * FROM gaps({}) WHERE missing_buckets = 45", args(window))).await);
        assert_eq!(halted, all_gaps.iter().filter(|g| g.3 == 45).cloned().collect::<Vec<_>>());
    }
    // The Rust API's entity selection gives the same row.
    let msft = EntityKey(vec![EntityValue::Str("MSFT".into())]);
    let api = table.coverage(None, Some(&[msft])).await.unwrap();
    assert_eq!(api.len(), 1);
    let sql = coverage_rows(&query(&ctx, "SELECT * FROM coverage('bars') WHERE symbol = 'MSFT'").await);
    assert_eq!((sql[0].covered, sql[0].gap_count), (api[0].covered_buckets as i64, api[0].gap_count as i64));
}

/// Covered minute ids per symbol, from the data.
async fn covered_minutes(ctx: &SessionContext) -> BTreeMap<String, BTreeSet<i64>> {
    let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for b in query(ctx, "SELECT DISTINCT symbol, date_bin(INTERVAL '1 minute', ts) AS bucket FROM bars").await {
        let (symbol, bucket) = (strings(&b, "symbol"), nanos(&b, "bucket"));
        for i in 0..b.num_rows() {
            out.entry(symbol[i].clone()).or_default().insert(bucket[i].unwrap() / MINUTE);
        }
    }
    out
}

/// The latest run of `length` consecutive covered minutes ending at or before `end_id`.
fn brute_last_window(minutes: &BTreeSet<i64>, length: i64, end_id: i64) -> Option<(i64, i64)> {
    let mut run_end = None;
    let mut run_len = 0;
    for &m in minutes.range(..end_id).rev() {
        match run_end {
            Some(_) if m + 1 + run_len == run_end.unwrap() => run_len += 1,
            _ => {
                run_end = Some(m + 1);
                run_len = 1;
            }
        }
        if run_len == length {
            let end = run_end.unwrap();
            return Some(((end - length) * MINUTE, end * MINUTE));
        }
    }
    None
}

#[tokio::test]
async fn last_covered_window_agrees_with_the_rust_api_and_the_data() {
    let (ctx, table) = fixture().await;
    let minutes = covered_minutes(&ctx).await;
    let extent_end = minutes.values().filter_map(|s| s.last()).max().unwrap() + 1;
    let cases: [(&str, i64, Option<&str>); 6] = [
        ("'2h'", 120, None),
        ("'4h'", 240, None),
        ("INTERVAL '1 hour'", 60, Some("2024-01-05T16:00:00Z")),
        ("'30m'", 30, Some("2024-01-03T00:00:00Z")),
        ("'45m'", 45, Some("2024-01-02T17:00:00Z")),
        // Longer than any session: nobody has one.
        ("'7h'", 420, None),
    ];
    for (length_sql, length, end) in cases {
        let what = format!("{length_sql} {end:?}");
        let sql = match end {
            None => format!("SELECT * FROM last_covered_window('bars', {length_sql})"),
            Some(end) => format!("SELECT * FROM last_covered_window('bars', {length_sql}, '{end}')"),
        };
        let mut from_sql = Vec::new();
        for b in query(&ctx, &sql).await {
            let (symbol, start, stop) = (strings(&b, "symbol"), nanos(&b, "window_start"), nanos(&b, "window_end"));
            for i in 0..b.num_rows() {
                from_sql.push((symbol[i].clone(), start[i].unwrap(), stop[i].unwrap()));
            }
        }
        from_sql.sort();
        let end_nanos = end.map(|e| parse_timestamp(e).unwrap());
        let mut from_api: Vec<(String, i64, i64)> = table
            .last_covered_window(crate::common::minutes(length as u64), end_nanos.map(Timestamp::from_nanos), None)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, r)| (symbol_of(&k), ns(r.start), ns(r.end)))
            .collect();
        from_api.sort();
        assert_eq!(from_sql, from_api, "{what}: SQL vs Rust API");
        let end_id = end_nanos.map_or(extent_end, |e| e.div_euclid(MINUTE));
        let brute: Vec<(String, i64, i64)> = minutes
            .iter()
            .filter_map(|(s, m)| brute_last_window(m, length, end_id).map(|(a, b)| (s.clone(), a, b)))
            .collect();
        assert_eq!(from_sql, brute, "{what}: SQL vs data");
        if length == 420 {
            assert!(from_sql.is_empty());
        } else {
            assert!(!from_sql.is_empty(), "{what}");
        }
    }
}

/// Minute ids of the sample's sessions (09:30-16:00 New York = 14:30-21:00 UTC in January)
/// from 2024-01-02 to 2024-01-08, found minute by minute through chrono-tz.
fn scheduled_minutes() -> BTreeSet<i64> {
    use chrono::{Datelike, TimeZone, Timelike, Weekday};
    let zone: arrow::array::timezone::Tz = "America/New_York".parse().unwrap();
    let first = parse_timestamp("2024-01-02T00:00:00Z").unwrap() / MINUTE;
    let last = parse_timestamp("2024-01-09T00:00:00Z").unwrap() / MINUTE;
    (first..last)
        .filter(|m| {
            let local = zone.timestamp_opt(m * 60, 0).unwrap();
            let minute = local.hour() * 60 + local.minute();
            !matches!(local.weekday(), Weekday::Sat | Weekday::Sun) && (570..960).contains(&minute)
        })
        .collect()
}

#[tokio::test]
async fn a_schedule_counts_only_session_minutes_and_splits_gaps_at_sessions() {
    let (ctx, table) = scheduled_fixture().await;
    let scheduled = scheduled_minutes();
    assert_eq!(scheduled.len(), 5 * 390);
    let covered = covered_minutes(&ctx).await;
    let rows = coverage_rows(&query(&ctx, "SELECT * FROM coverage('bars')").await);
    assert_eq!(rows.len(), 6);
    for row in &rows {
        let minutes = &covered[&row.symbol];
        let hit = minutes.intersection(&scheduled).count() as i64;
        assert_eq!((row.expected, row.covered), (5 * 390, hit), "{}", row.symbol);
        assert_eq!(row.missing, row.expected - row.covered);
    }
    // Every gap is missing scheduled minutes inside one session: never a night.
    let gaps = gap_rows(&query(&ctx, "SELECT * FROM gaps('bars')").await);
    for (symbol, start, end, missing) in &gaps {
        let ids: BTreeSet<i64> = (start / MINUTE..end / MINUTE).collect();
        assert!(ids.is_subset(&scheduled), "{symbol} {start}..{end} leaves the sessions");
        assert!(ids.iter().all(|m| !covered[symbol].contains(m)));
        assert_eq!(*missing, ids.len() as i64);
        assert!(*missing <= 390);
    }
    for row in &rows {
        let missing: i64 = gaps.iter().filter(|g| g.0 == row.symbol).map(|g| g.3).sum();
        assert_eq!(missing, row.missing, "{}", row.symbol);
    }
    // MSFT's missing Friday is one gap of a whole session, not 1050 + 390 + ... minutes.
    let msft: Vec<_> = gaps.iter().filter(|g| g.0 == "MSFT").map(|g| (g.1, g.2, g.3)).collect();
    let friday = (ns("2024-01-05T14:30:00Z".parse().unwrap()), ns("2024-01-05T21:00:00Z".parse().unwrap()), 390);
    assert!(msft.contains(&friday), "{msft:?}");
    // The Rust API agrees.
    let rust = table.coverage(None, None).await.unwrap();
    assert_eq!(rust.iter().map(|c| c.expected_buckets).sum::<u64>(), 6 * 5 * 390);
    assert_eq!(table.gaps(None, None).await.unwrap().len(), gaps.len());

    // A window of scheduled buckets reaches back over the weekend: META's halt is on
    // Monday 16:30-17:15 UTC, so its last 4 covered session hours start on Friday.
    let windows = query(
        &ctx,
        "SELECT symbol, window_start, window_end FROM last_covered_window('bars', '4h') WHERE symbol = 'META'",
    )
    .await;
    let (start, end) = (nanos(&windows[0], "window_start")[0].unwrap(), nanos(&windows[0], "window_end")[0].unwrap());
    assert_eq!(end, ns("2024-01-08T16:30:00Z".parse().unwrap()));
    assert_eq!(start, ns("2024-01-05T19:00:00Z".parse().unwrap()), "2h on Friday + 2h on Monday");
}

#[tokio::test]
async fn a_schedule_argument_overrides_the_tables_for_one_query() {
    let (ctx, _table) = scheduled_fixture().await;
    let (unscheduled, _) = fixture().await;
    let always = coverage_rows(&query(&ctx, "SELECT * FROM coverage('bars', 'always')").await);
    let plain = coverage_rows(&query(&unscheduled, "SELECT * FROM coverage('bars')").await);
    assert_coverage_eq(&always, &plain, "'always' vs no schedule");
    // The same sessions written in UTC give the same answers as the table's.
    let table_s = coverage_rows(&query(&ctx, "SELECT * FROM coverage('bars')").await);
    let utc = "'UTC; Mon-Fri 14:30-21:00'";
    let given = coverage_rows(&query(&ctx, &format!("SELECT * FROM coverage('bars', {utc})")).await);
    assert_coverage_eq(&given, &table_s, "UTC sessions vs the table's New York schedule");
    let windowed = format!(
        "SELECT * FROM gaps('bars', '2024-01-05T00:00:00Z', '2024-01-06T00:00:00Z', {utc}) WHERE symbol = 'MSFT'"
    );
    assert_eq!(row_count(&query(&ctx, &windowed).await), 1, "one session missing, one gap");
    // A schedule on the unscheduled table works the same way.
    let on_plain = coverage_rows(&query(&unscheduled, &format!("SELECT * FROM coverage('bars', {utc})")).await);
    assert_coverage_eq(&on_plain, &table_s, "a schedule argument on a table without one");
    for (sql, expected) in [
        ("SELECT * FROM coverage('bars', 'Mon-Fry 09:30-16:00')", "unknown day"),
        ("SELECT * FROM coverage('bars', 'Mars/Olympus; Mon-Fri 09:30-16:00')", "unknown time zone 'Mars/Olympus'"),
        ("SELECT * FROM gaps('bars', 'Mon-Fri 09:30-16:00; closed 2024-01-06')", "Saturday"),
        ("SELECT * FROM coverage('bars', 'Mon-Fri 16:00-09:30')", "overnight"),
        ("SELECT * FROM coverage('bars', 42)", "schedule argument"),
    ] {
        let err = ctx.sql(sql).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(expected), "{sql}: expected {expected:?} in {err:?}");
    }
}

/// Per symbol, the covered minute ids of the table at `version`.
async fn minutes_at(table: &TimeSeriesTable, version: u64) -> BTreeMap<String, BTreeSet<i64>> {
    let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    if version == 0 {
        return out;
    }
    let old = TimeSeriesTable::open_at(table.location().clone(), version).await.unwrap();
    for (key, set) in old.snapshot().table_coverage().await.unwrap().entities() {
        out.insert(symbol_of(key), set.iter().collect());
    }
    out
}

#[tokio::test]
async fn coverage_changes_are_the_difference_of_coverage_at_two_versions() {
    let (ctx, mut table) = scheduled_fixture().await;
    // Version 7: a delete removes MSFT's first hour; 8: the schedule changes (no coverage).
    let hour = "'2024-01-02T14:30:00Z' AND ts < '2024-01-02T15:30:00Z'";
    query(&ctx, &format!("DELETE FROM bars WHERE symbol = 'MSFT' AND ts >= {hour}")).await;
    table.refresh().await.unwrap();
    table.set_schedule(None).await.unwrap();
    table.refresh().await.unwrap();
    assert_eq!(table.version(), 8);
    for (from, to) in [(0, 1), (0, 3), (2, 6), (1, 8), (6, 7), (7, 8), (5, 5)] {
        let (before, after) = (minutes_at(&table, from).await, minutes_at(&table, to).await);
        let mut added: BTreeSet<(String, i64)> = BTreeSet::new();
        let mut removed: BTreeSet<(String, i64)> = BTreeSet::new();
        for symbol in before.keys().chain(after.keys()) {
            let (b, a) =
                (before.get(symbol).cloned().unwrap_or_default(), after.get(symbol).cloned().unwrap_or_default());
            added.extend(a.difference(&b).map(|m| (symbol.clone(), *m)));
            removed.extend(b.difference(&a).map(|m| (symbol.clone(), *m)));
        }
        let sql = format!("SELECT * FROM coverage_changes('bars', {from}, {to})");
        let (mut got_added, mut got_removed) = (BTreeSet::new(), BTreeSet::new());
        let mut runs = 0;
        for b in query(&ctx, &sql).await {
            let (symbol, change) = (strings(&b, "symbol"), strings(&b, "change"));
            let (start, end, buckets) = (nanos(&b, "range_start"), nanos(&b, "range_end"), ints(&b, "buckets"));
            for i in 0..b.num_rows() {
                runs += 1;
                let ids = start[i].unwrap() / MINUTE..end[i].unwrap() / MINUTE;
                assert_eq!(ids.end - ids.start, buckets[i]);
                let target = if change[i] == "added" { &mut got_added } else { &mut got_removed };
                target.extend(ids.map(|m| (symbol[i].clone(), m)));
            }
        }
        assert_eq!(got_added, added, "{sql}: added");
        assert_eq!(got_removed, removed, "{sql}: removed");
        assert!(runs > 0 || (added.is_empty() && removed.is_empty()));
        if (from, to) == (6, 7) {
            assert_eq!((added.len(), removed.len()), (0, 60), "the delete removed MSFT's first hour");
        }
    }
    // The default end is the statement's version; the Rust API and the SQL agree.
    let sql = query(&ctx, "SELECT count(*) AS n FROM coverage_changes('bars', 2)").await;
    let rust = table.coverage_changes(2, None).await.unwrap();
    assert_eq!(ints(&sql[0], "n")[0] as usize, rust.len());
    for (sql, expected) in [
        ("SELECT * FROM coverage_changes('bars', 5, 3)", "from_version 5 is after to_version 3"),
        ("SELECT * FROM coverage_changes('bars', 2, 99)", "version 99 does not exist"),
        ("SELECT * FROM coverage_changes('bars', -1)", "version number"),
        ("SELECT * FROM coverage_changes('bars')", "takes 2 to 3 argument(s)"),
    ] {
        let err = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.err().map(|e| e.to_string()).unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(expected), "{sql}: expected {expected:?} in {err:?}");
    }
}
