//! The SQL surface: what the physical plans show (file pruning by time, entity and
//! coverage, no sort for `ORDER BY ts LIMIT`, `COUNT/MIN/MAX` from metadata or statistics), `INSERT`,
//! `CREATE EXTERNAL TABLE`, a registered provider seeing later commits, and the plan
//! errors of bad table-function arguments.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::metadata::{EntityKey, EntityValue, SegmentMeta};
use timeseries_table_core::sample::{create_sample_table, MarketBars};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;

use crate::common::*;
use crate::reliability::faulty_store::{CallKind, FaultyStore};
use crate::sql_differential::{build, sessions, Sessions, SHAPES};

/// The indented physical plan of `sql`.
async fn physical_plan(ctx: &SessionContext, sql: &str) -> String {
    let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
    let text = displayable(plan.as_ref()).indent(true).to_string();
    text // bound first: the display borrows `plan`
}

/// The `EXPLAIN ANALYZE` text of `sql` (all plan lines joined).
async fn explain_analyze(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx.sql(&format!("EXPLAIN ANALYZE {sql}")).await.unwrap().collect().await.unwrap();
    pretty(&batches)
}

/// The value of counter `name` in an `EXPLAIN ANALYZE` text.
fn metric(text: &str, name: &str) -> usize {
    let pattern = format!("{name}=");
    let start = text.find(&pattern).unwrap_or_else(|| panic!("no metric {name} in:\n{text}")) + pattern.len();
    let digits: String = text[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// The scan line of a plan: DataFusion's `DataSourceExec` or our `SmallSegmentsExec`, which
/// shows the files as the scan it replaced would.
fn scan_line(plan: &str) -> &str {
    plan.lines()
        .find(|l| l.contains("DataSourceExec") || l.contains("SmallSegmentsExec"))
        .unwrap_or_else(|| panic!("no scan in:\n{plan}"))
}

/// `table` as `t` in two sessions of two partitions: ours (with the optimizer rules of
/// `register`) and a plain one, the reference for its answers and plans.
fn two_partition_sessions(table: &TimeSeriesTable) -> (SessionContext, SessionContext) {
    let config = datafusion::prelude::SessionConfig::new().with_target_partitions(2);
    let ours = SessionContext::new_with_config(config.clone());
    timeseries_table_core::datafusion::register(&ours);
    register_opened(&ours, "t", table.clone()).unwrap();
    let plain = SessionContext::new_with_config(config);
    register_opened(&plain, "t", table.clone()).unwrap();
    (ours, plain)
}

fn file_name(segment: &SegmentMeta) -> String {
    format!("{}.parquet", segment.id.0)
}

async fn count(ctx: &SessionContext, sql: &str) -> i64 {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let column = batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap();
    column.value(0)
}

/// A registered table in a fresh session.
async fn registered(table: &TimeSeriesTable) -> SessionContext {
    let ctx = session_context();
    register_opened(&ctx, "t", table.clone()).unwrap();
    ctx
}

// ---------------------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn selective_time_predicate_reads_only_the_matching_segment() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    for day in 0..4 {
        table.append(vec![minute_bars(&["A", "B"], T0 + day * DAY + 10 * HOUR, 60)]).await.unwrap();
    }
    let segments = table.segments();
    let ctx = registered(&table).await;
    let sql = "SELECT * FROM t WHERE ts >= '2024-01-03T10:15:00Z' AND ts < '2024-01-03T10:45:00Z'";

    let plan = physical_plan(&ctx, sql).await;
    let scan = scan_line(&plan);
    for (day, segment) in segments.iter().enumerate() {
        assert_eq!(scan.contains(&file_name(segment)), day == 2, "day {day} in:\n{plan}");
    }
    let analyzed = explain_analyze(&ctx, sql).await;
    assert_eq!(metric(&analyzed, "segments_total"), 4);
    assert_eq!(metric(&analyzed, "segments_pruned_by_time"), 3);
    assert_eq!(count(&ctx, &sql.replace('*', "count(*)")).await, 60);

    // A range that meets no segment needs no scan at all.
    let plan = physical_plan(&ctx, "SELECT * FROM t WHERE ts > '2024-02-01T00:00:00Z'").await;
    assert!(!plan.contains("DataSourceExec") && plan.contains("EmptyExec"), "{plan}");
}

/// Date filters written the usual ways (a cast to DATE, `date_trunc`, `date_bin`,
/// `to_date`; every comparison, `BETWEEN` and `IN`) prune exactly the segments of the plain
/// range they mean and count the same rows: in a full session, where they are rewritten
/// to that range, and with only the provider registered, where its own analysis prunes.
#[tokio::test]
async fn time_functions_prune_like_the_plain_range() {
    let (_dir, location) = temp_location();
    // One segment per trading day: 2024-01-02 to 01-05, 01-08 and 01-09.
    let table = create_sample_table(location, &MarketBars::new(3, 6), |_, _| {}).await.unwrap();
    let day = |d: u32| format!("ts >= '2024-01-{d:02}T00:00:00Z' AND ts < '2024-01-{:02}T00:00:00Z'", d + 1);
    let days_3_and_8 = format!("({}) OR ({})", day(3), day(8));
    let cases: Vec<(&str, String)> = vec![
        ("CAST(ts AS DATE) = DATE '2024-01-04'", day(4)),
        ("ts::date = '2024-01-04'", day(4)),
        ("to_date(ts) = DATE '2024-01-04'", day(4)),
        ("date_trunc('day', ts) = '2024-01-04T00:00:00Z'", day(4)),
        ("date_bin(INTERVAL '1 day', ts) = '2024-01-04T00:00:00Z'", day(4)),
        ("'2024-01-04' = ts::date", day(4)),
        (
            "date_trunc('hour', ts) = '2024-01-04T15:00:00Z'",
            "ts >= '2024-01-04T15:00:00Z' AND ts < '2024-01-04T16:00:00Z'".into(),
        ),
        ("CAST(ts AS DATE) < DATE '2024-01-04'", "ts < '2024-01-04T00:00:00Z'".into()),
        ("CAST(ts AS DATE) <= DATE '2024-01-04'", "ts < '2024-01-05T00:00:00Z'".into()),
        ("CAST(ts AS DATE) > DATE '2024-01-04'", "ts >= '2024-01-05T00:00:00Z'".into()),
        ("CAST(ts AS DATE) >= DATE '2024-01-04'", "ts >= '2024-01-04T00:00:00Z'".into()),
        // The first day at or after noon on the 4th starts on the 5th.
        ("date_trunc('day', ts) < '2024-01-04T12:00:00Z'", "ts < '2024-01-05T00:00:00Z'".into()),
        ("date_bin(INTERVAL '1 day', ts) >= '2024-01-08T00:00:00Z'", "ts >= '2024-01-08T00:00:00Z'".into()),
        (
            "CAST(ts AS DATE) BETWEEN DATE '2024-01-03' AND DATE '2024-01-04'",
            "ts >= '2024-01-03T00:00:00Z' AND ts < '2024-01-05T00:00:00Z'".into(),
        ),
        ("CAST(ts AS DATE) IN (DATE '2024-01-03', DATE '2024-01-08')", days_3_and_8.clone()),
        ("date_trunc('day', ts) IN ('2024-01-03T00:00:00Z', '2024-01-08T00:00:00Z')", days_3_and_8),
    ];
    let full = registered(&table).await;
    let provider_only = SessionContext::new();
    register_opened(&provider_only, "t", table.clone()).unwrap();
    for ctx in [&full, &provider_only] {
        for (through, plain) in &cases {
            let sql = |filter: &str| format!("SELECT count(*) FROM t WHERE {filter}");
            let (ours, reference) =
                (explain_analyze(ctx, &sql(through)).await, explain_analyze(ctx, &sql(plain)).await);
            let pruned = metric(&ours, "segments_pruned_by_time");
            assert_eq!(pruned, metric(&reference, "segments_pruned_by_time"), "{through}:\n{ours}");
            assert!(pruned > 0, "{through} prunes nothing");
            assert_eq!(count(ctx, &sql(through)).await, count(ctx, &sql(plain)).await, "{through}");
        }
    }
    // In the full session an exact form becomes the plain range in the plan itself.
    let plan = physical_plan(&full, "SELECT * FROM t WHERE CAST(ts AS DATE) = DATE '2024-01-04'").await;
    assert!(!plan.contains("CAST") && plan.contains("ts@0 >= 1704326400000"), "{plan}");
    // Where the filter stays a function, the Parquet reader is handed the range too.
    let plan =
        physical_plan(&provider_only, "SELECT * FROM t WHERE date_trunc('hour', ts) = '2024-01-04T15:00:00Z'").await;
    assert!(scan_line(&plan).contains("ts@0 >= 1704380400000 AND ts@0 <= 1704383999999"), "{plan}");
}

#[tokio::test]
async fn entity_predicate_prunes_single_entity_segments() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    for symbol in ["A", "B", "C"] {
        table.append(vec![minute_bars(&[symbol], T0 + 10 * HOUR, 30)]).await.unwrap();
    }
    let by_symbol = |s: &str| {
        let key = EntityKey(vec![EntityValue::Str(s.into())]);
        table.segments().into_iter().find(|seg| seg.entities.as_ref().is_some_and(|e| e.contains(&key))).unwrap()
    };
    let (a, b, c) = (by_symbol("A"), by_symbol("B"), by_symbol("C"));
    let ctx = registered(&table).await;

    let sql = "SELECT * FROM t WHERE symbol = 'B'";
    let plan = physical_plan(&ctx, sql).await;
    let scan = scan_line(&plan);
    assert!(
        scan.contains(&file_name(&b)) && !scan.contains(&file_name(&a)) && !scan.contains(&file_name(&c)),
        "{plan}"
    );
    let analyzed = explain_analyze(&ctx, sql).await;
    assert_eq!(metric(&analyzed, "segments_pruned_by_entity"), 2);
    assert_eq!(metric(&analyzed, "segments_pruned_by_time"), 0);

    let sql = "SELECT count(*) FROM t WHERE symbol IN ('A', 'C') AND ts < '2024-01-01T10:10:00Z'";
    assert_eq!(metric(&explain_analyze(&ctx, sql).await, "segments_pruned_by_entity"), 1);
    assert_eq!(count(&ctx, sql).await, 20);

    // An OR across columns constrains no entity: nothing may be pruned by entity.
    let sql = "SELECT count(*) FROM t WHERE symbol = 'A' OR volume >= 0";
    assert_eq!(metric(&explain_analyze(&ctx, sql).await, "segments_pruned_by_entity"), 0);
    assert_eq!(count(&ctx, sql).await, 90);
}

/// Ten days of A and B (one segment of 60 rows a day), then three overlapping per-symbol
/// segments of 30 rows on each of the last two days: 16 segments.
async fn days_then_overlapping_segments() -> (tempfile::TempDir, TimeSeriesTable) {
    let (dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    for day in 0..10 {
        table.append(vec![minute_bars(&["A", "B"], T0 + day * DAY, 30)]).await.unwrap();
    }
    for day in 10..12 {
        for symbol in ["C", "D", "E"] {
            table.append(vec![minute_bars(&[symbol], T0 + day * DAY, 30)]).await.unwrap();
        }
    }
    (dir, table)
}

#[tokio::test]
async fn newest_rows_are_read_from_the_newest_segments_only() {
    let (_dir, table) = days_then_overlapping_segments().await;
    let ours = registered(&table).await;
    let plain = SessionContext::new();
    register_opened(&plain, "t", table.clone()).unwrap();

    // One segment is enough for the newest rows of a day held by one segment. (Filters
    // on other columns keep the scan listing every segment the entities allow; see
    // `a_sort_with_a_limit_lists_only_the_segments_that_can_hold_its_rows`.)
    let sql = "SELECT * FROM t WHERE volume >= 0 AND symbol IN ('A', 'B') ORDER BY ts DESC LIMIT 7";
    let analyzed = explain_analyze(&ours, sql).await;
    assert!(analyzed.contains("NewestFirstExec"), "{analyzed}");
    assert_eq!(metric(&analyzed, "segments_read"), 1, "{analyzed}");
    // Overlapping segments: the newest minute is in all three of the last day.
    let analyzed = explain_analyze(&ours, "SELECT * FROM t WHERE volume >= 0 ORDER BY ts DESC LIMIT 2").await;
    assert_eq!(metric(&analyzed, "segments_total"), 16, "{analyzed}");
    assert!(metric(&analyzed, "segments_read") <= 3, "{analyzed}");

    // Ascending limits read the oldest segments first.
    let analyzed = explain_analyze(&ours, "SELECT * FROM t WHERE volume >= 0 ORDER BY ts LIMIT 7").await;
    assert!(analyzed.contains("NewestFirstExec: oldest first"), "{analyzed}");
    assert_eq!(metric(&analyzed, "segments_read"), 1, "{analyzed}");
    let sql = "SELECT * FROM t WHERE volume >= 0 AND symbol IN ('C', 'D', 'E') ORDER BY ts LIMIT 2";
    let analyzed = explain_analyze(&ours, sql).await;
    assert_eq!(metric(&analyzed, "segments_total"), 6, "{analyzed}");
    assert!(metric(&analyzed, "segments_read") <= 3, "{analyzed}");

    // The same answers as a session without the rule, either way: sorts on time alone
    // where no two rows tie, ties broken by symbol either way, filters, offsets, a limit
    // past the table's size, a computed column under the time column's name.
    for sql in [
        "SELECT * FROM t ORDER BY ts DESC, symbol LIMIT 5",
        "SELECT ts, symbol FROM t ORDER BY ts DESC, symbol DESC LIMIT 40",
        "SELECT * FROM t WHERE symbol = 'B' ORDER BY ts DESC LIMIT 3",
        "SELECT * FROM t WHERE volume >= 0 AND symbol <> 'C' ORDER BY ts DESC, symbol LIMIT 61",
        "SELECT * FROM t ORDER BY ts DESC, symbol LIMIT 10 OFFSET 25",
        "SELECT * FROM t ORDER BY ts DESC, symbol LIMIT 100000",
        "SELECT symbol, count(*) FROM (SELECT * FROM t ORDER BY ts DESC, symbol LIMIT 95) GROUP BY symbol ORDER BY symbol",
        "SELECT * FROM t ORDER BY ts, symbol LIMIT 70",
        "SELECT * FROM t WHERE symbol IN ('C', 'D', 'E') ORDER BY ts, symbol DESC LIMIT 5",
        "SELECT ts, symbol FROM t WHERE ts >= '2024-01-10T00:10:00Z' ORDER BY ts, symbol LIMIT 45",
        "SELECT * FROM t ORDER BY ts, symbol LIMIT 10 OFFSET 55",
        // A computed column named like the time column is not what the segments' bounds
        // describe: DataFusion's plan reads it.
        "SELECT ts + INTERVAL '1 hour' AS ts, symbol FROM t ORDER BY ts DESC, symbol LIMIT 100",
        "SELECT ts - INTERVAL '1 hour' AS ts, symbol FROM t WHERE symbol <> 'A' ORDER BY ts, symbol LIMIT 50",
    ] {
        let expected = pretty(&plain.sql(sql).await.unwrap().collect().await.unwrap());
        let got = pretty(&ours.sql(sql).await.unwrap().collect().await.unwrap());
        assert_eq!(got, expected, "{sql}");
        let plan = physical_plan(&ours, sql).await;
        let computed = sql.contains("INTERVAL");
        let ascending = !sql.contains("ORDER BY ts DESC");
        assert_eq!(plan.contains("NewestFirstExec"), !computed, "{sql}:\n{plan}");
        assert_eq!(plan.contains("NewestFirstExec: oldest first"), ascending && !computed, "{sql}:\n{plan}");
    }
    // Unlimited sorts are DataFusion's.
    for sql in ["SELECT * FROM t ORDER BY ts", "SELECT * FROM t ORDER BY ts DESC"] {
        assert!(!physical_plan(&ours, sql).await.contains("NewestFirstExec"), "{sql}");
    }
}

#[tokio::test]
async fn a_sort_with_a_limit_lists_only_the_segments_that_can_hold_its_rows() {
    let (_dir, table) = days_then_overlapping_segments().await;
    let ours = registered(&table).await;
    // Without the rule that reads newest first (the same catalog otherwise), the scan's
    // own counters show the pruning.
    let state = ours.state();
    let rules = state.physical_optimizers().iter().filter(|rule| rule.name() != "newest_first").cloned().collect();
    let scan_only = SessionContext::new_with_state(
        datafusion::execution::SessionStateBuilder::new_from_existing(state)
            .with_physical_optimizer_rules(rules)
            .build(),
    );
    let plain = SessionContext::new();
    register_opened(&plain, "t", table.clone()).unwrap();

    // (query, segments left out of the 16): the last day's three hold the newest 2 and
    // 40 rows; the newest 95 reach into the day before (90 + 30 rows); the oldest 7 are
    // all in the first day, the oldest 65 in the first two. Renamed through an alias and
    // a subquery, the time column is still the time column.
    for (sql, pruned) in [
        ("SELECT * FROM t ORDER BY ts DESC, symbol LIMIT 2", 13),
        ("SELECT ts, symbol FROM t ORDER BY ts DESC, symbol LIMIT 40", 13),
        ("SELECT * FROM t ORDER BY ts DESC, symbol LIMIT 80 OFFSET 15", 10),
        ("SELECT * FROM t ORDER BY ts, symbol LIMIT 7", 15),
        ("SELECT ts AS at, symbol FROM t ORDER BY at, symbol DESC LIMIT 65", 14),
        ("SELECT * FROM (SELECT symbol, ts AS at FROM t) AS s ORDER BY s.at DESC, symbol LIMIT 4", 13),
        // A sort under the sort: its own limit decides.
        ("SELECT * FROM (SELECT * FROM t ORDER BY ts, symbol LIMIT 100) ORDER BY ts DESC, symbol LIMIT 3", 14),
        // More rows than the table holds: nothing is left out.
        ("SELECT * FROM t ORDER BY ts DESC, symbol LIMIT 1000", 0),
        // Filters on time ranges and entities say which rows match: the segments wholly
        // inside the range hold all theirs; one listing A among two holds at least one.
        // (Counted before entity pruning: E's segment of the last day but one is left
        // out by the limit, the last day's by its entity.)
        ("SELECT * FROM t WHERE ts < '2024-01-12T00:00:00Z' ORDER BY ts DESC, symbol LIMIT 2", 10),
        ("SELECT * FROM t WHERE symbol = 'A' ORDER BY ts DESC LIMIT 3", 7),
        (
            "SELECT * FROM t WHERE symbol IN ('C', 'D') AND ts >= '2024-01-11T00:00:00Z' \
             ORDER BY ts DESC, symbol LIMIT 40",
            3,
        ),
        // Any other filter, a limit or a computed column between the sort and the scan:
        // the segments' row counts and bounds no longer say where its rows are.
        ("SELECT * FROM t WHERE symbol <> 'E' ORDER BY ts DESC, symbol LIMIT 2", 0),
        ("SELECT * FROM t WHERE symbol = 'A' AND volume >= 0 ORDER BY ts DESC LIMIT 3", 0),
        ("SELECT * FROM (SELECT * FROM t LIMIT 1000) ORDER BY ts DESC, symbol LIMIT 3", 0),
        ("SELECT ts - INTERVAL '1 day' AS ts, symbol FROM t ORDER BY ts DESC, symbol LIMIT 3", 0),
        ("SELECT symbol, max(ts) AS ts FROM t GROUP BY symbol ORDER BY ts DESC, symbol LIMIT 1", 0),
    ] {
        let analyzed = explain_analyze(&scan_only, sql).await;
        assert_eq!(metric(&analyzed, "segments_pruned_by_limit"), pruned, "{sql}:\n{analyzed}");
        let expected = pretty(&plain.sql(sql).await.unwrap().collect().await.unwrap());
        assert_eq!(pretty(&scan_only.sql(sql).await.unwrap().collect().await.unwrap()), expected, "{sql}");
        assert_eq!(pretty(&ours.sql(sql).await.unwrap().collect().await.unwrap()), expected, "{sql}");
    }
}

#[tokio::test]
async fn overlapping_segments_are_read_by_the_session_partitions_unless_their_order_is_needed() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    // Eight symbols, each a segment a day: the eight segments of a day overlap, so reading
    // them in time order takes eight partitions.
    let symbols = ["A", "B", "C", "D", "E", "F", "G", "H"];
    for day in 0..2 {
        for symbol in symbols {
            table.append(vec![minute_bars(&[symbol], T0 + day * DAY, 90)]).await.unwrap();
        }
    }
    let (ours, plain) = two_partition_sessions(&table);

    // Nothing above needs the order: two partitions, no ordering claimed.
    for sql in [
        "SELECT symbol, count(*), sum(volume), min(ts), max(ts) FROM t GROUP BY symbol ORDER BY symbol",
        "SELECT count(*) FROM t WHERE price > 100.5",
        "SELECT symbol, ts, price - lag(price) OVER (PARTITION BY symbol ORDER BY ts) AS change FROM t \
         ORDER BY symbol, ts",
    ] {
        let plan = physical_plan(&ours, sql).await;
        assert!(scan_line(&plan).contains("file_groups={2 groups"), "{sql}:\n{plan}");
        assert!(!scan_line(&plan).contains("output_ordering"), "{sql}:\n{plan}");
        let expected = pretty(&plain.sql(sql).await.unwrap().collect().await.unwrap());
        assert!(scan_line(&physical_plan(&plain, sql).await).contains("file_groups={8 groups"));
        assert_eq!(pretty(&ours.sql(sql).await.unwrap().collect().await.unwrap()), expected, "{sql}");
    }
    // A merge on time needs it: the ordered groups stay, and nothing sorts (with a limit,
    // the plain session: ours reads oldest first instead).
    for (ctx, sql) in [
        (&ours, "SELECT * FROM t ORDER BY ts"),
        (&plain, "SELECT ts, symbol FROM t WHERE symbol <> 'C' ORDER BY ts LIMIT 20"),
    ] {
        let plan = physical_plan(ctx, sql).await;
        assert!(scan_line(&plan).contains("file_groups={8 groups"), "{sql}:\n{plan}");
        assert!(scan_line(&plan).contains("output_ordering"), "{sql}:\n{plan}");
        assert!(!plan.lines().any(|l| l.trim_start().starts_with("SortExec")), "{sql}:\n{plan}");
        let first_column = |text: String| -> Vec<String> {
            text.lines().map(|l| l.split('|').nth(1).unwrap_or("").trim().to_string()).collect()
        };
        let sorted = sql.replace("ORDER BY ts", "ORDER BY ts, symbol");
        assert_eq!(first_column(sql_ok(ctx, sql).await), first_column(sql_ok(&plain, &sorted).await), "{sql}");
    }
}

#[tokio::test]
async fn a_lone_large_segment_is_read_by_every_partition_in_time_order() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    // One segment of 600,000 random rows, one a second (five row groups, about 10 MiB).
    table.append(random_bars("A", 600_000)).await.unwrap();
    assert_eq!(table.segments().len(), 1);
    let (ours, _) = two_partition_sessions(&table);
    let one_partition =
        SessionContext::new_with_config(datafusion::prelude::SessionConfig::new().with_target_partitions(1));
    register_opened(&one_partition, "t", table.clone()).unwrap();

    // Cut into two byte ranges, one per partition, each row group read once (the counts
    // say so). Where the query needs the time order, read whole again and shared out
    // round-robin in order (merged, not sorted), unless a filter keeps one entity. Groups
    // of time buckets over this many rows are hashed instead, and the ranges stay cut,
    // unless an aggregate needs its own order.
    #[derive(PartialEq)]
    enum Read {
        Whole,
        Cut,
        CutAndHashed,
    }
    for (sql, read) in [
        ("SELECT count(price), sum(volume), min(ts), max(ts) FROM t WHERE price >= 0", Read::Cut),
        ("SELECT count(*), sum(volume) FROM t WHERE ts >= '2024-01-01T12:00:00Z'", Read::Cut),
        ("SELECT ts, price FROM t ORDER BY ts", Read::Whole),
        ("SELECT ts, price - lag(price) OVER (ORDER BY ts) FROM t ORDER BY ts", Read::Whole),
        // The answer's order is the aggregate's: its few rows sorted after hashing.
        (
            "SELECT date_bin(INTERVAL '1 hour', ts) AS h, count(*), max(price) FROM t GROUP BY 1 ORDER BY 1",
            Read::CutAndHashed,
        ),
        ("SELECT symbol, date_bin(INTERVAL '1 hour', ts) AS h, count(*) FROM t GROUP BY 1, 2 ORDER BY 1, 2", Read::CutAndHashed),
        (
            "SELECT symbol, date_bin(INTERVAL '1 hour', ts) AS h, first_value(price ORDER BY ts) FROM t GROUP BY 1, 2 ORDER BY 1, 2",
            Read::Whole,
        ),
        // One entity's rows: few go through the merge, so the ranges stay (and are hashed).
        (
            "SELECT date_bin(INTERVAL '1 hour', ts) AS h, count(*) FROM t WHERE symbol = 'A' GROUP BY 1 ORDER BY 1",
            Read::CutAndHashed,
        ),
        // A filter that keeps one entity, under an operator that needs the time order.
        ("SELECT ts, price FROM t WHERE symbol = 'A' ORDER BY ts", Read::Cut),
    ] {
        let plan = physical_plan(&ours, sql).await;
        let scan = scan_line(&plan);
        if read == Read::Whole {
            assert!(scan.contains("file_groups={1 group") && scan.contains("output_ordering=[ts"), "{sql}:\n{plan}");
            assert!(
                plan.contains("RoundRobinBatch(2), input_partitions=1, maintains_sort_order=true"),
                "{sql}:\n{plan}"
            );
        } else {
            assert!(scan.contains("file_groups={2 groups") && scan.contains(".parquet:0.."), "{sql}:\n{plan}");
        }
        // Hashed: no aggregate waits for its input's order, and the scan claims none.
        let hashed = !plan.contains("ordering_mode") && !scan.contains("output_ordering");
        assert_eq!(hashed, read == Read::CutAndHashed, "{sql}:\n{plan}");
        assert!(!plan.lines().any(|l| l.trim_start().starts_with("SortExec: expr=[ts")), "{sql}:\n{plan}");
        assert!(scan_line(&physical_plan(&one_partition, sql).await).contains("file_groups={1 group"));
        assert_eq!(sql_ok(&ours, sql).await, sql_ok(&one_partition, sql).await, "{sql}");
    }

    // Stays whole: a query of an hour (a part too small to share out), and a limit (read
    // newest first, the whole segment stops early).
    for sql in [
        "SELECT count(*), sum(volume) FROM t WHERE ts < '2024-01-01T01:00:00Z'",
        "SELECT * FROM t ORDER BY ts DESC LIMIT 5",
    ] {
        let plan = physical_plan(&ours, sql).await;
        assert!(!plan.contains(".parquet:0.."), "{sql}:\n{plan}");
        assert_eq!(sql_ok(&ours, sql).await, sql_ok(&one_partition, sql).await, "{sql}");
    }
}

/// A daily segment (two equal row groups and a tail) is read by both partitions once the
/// session knows its row groups: cut where the second group starts.
#[tokio::test]
async fn a_segment_read_before_is_cut_between_its_row_groups() {
    let (dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    // 200,000 random rows, one a second (about 3 MiB): groups of 97,952, 97,952 and 4,096.
    table.append(random_bars("A", 200_000)).await.unwrap();
    let file = std::fs::File::open(dir.path().join("table").join(&table.segments()[0].path)).unwrap();
    let footer = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    let groups = parquet::file::reader::FileReader::metadata(&footer).row_groups().to_vec();
    assert_eq!(groups.iter().map(|g| g.num_rows()).collect::<Vec<_>>(), [97_952, 97_952, 4_096]);
    let second = groups[1].column(0).dictionary_page_offset().unwrap_or_else(|| groups[1].column(0).data_page_offset());
    let (ours, _) = two_partition_sessions(&table);
    let one_partition =
        SessionContext::new_with_config(datafusion::prelude::SessionConfig::new().with_target_partitions(1));
    register_opened(&one_partition, "t", table.clone()).unwrap();

    let sql = "SELECT count(*), sum(volume), max(price), min(ts) FROM t WHERE price >= 0";
    // Unread, the segment is too small to cut by bytes alone (under four default groups).
    assert!(scan_line(&physical_plan(&ours, sql).await).contains("file_groups={1 group"));
    let answer = sql_ok(&one_partition, sql).await;
    assert_eq!(sql_ok(&ours, sql).await, answer);
    // Read once, its footer is in the session's cache: two ranges, split at the group.
    let plan = physical_plan(&ours, sql).await;
    let scan = scan_line(&plan);
    assert!(scan.contains("file_groups={2 groups") && scan.contains(&format!(".parquet:0..{second}]")), "{plan}");
    assert_eq!(sql_ok(&ours, sql).await, answer);
    let ordered = "SELECT ts, price FROM t WHERE ts >= '2024-01-01T20:00:00Z' ORDER BY ts";
    assert_eq!(sql_ok(&ours, ordered).await, sql_ok(&one_partition, ordered).await);

    // The first hours are in the first group alone: nothing to share out.
    let early = "SELECT count(*), max(price) FROM t WHERE ts < '2024-01-01T10:00:00Z'";
    let plan = physical_plan(&ours, early).await;
    assert!(!plan.contains(".parquet:0.."), "{plan}");
    assert_eq!(sql_ok(&ours, early).await, sql_ok(&one_partition, early).await);
}

/// Five segments on two partitions are two and a half each once the session knows their
/// row groups, not two and three: the middle one is cut between its groups, and each
/// partition still reads in time order.
#[tokio::test]
async fn a_few_segments_are_shared_evenly_between_partitions() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    // 140,000 random rows a segment, one a second, two days apart: groups of 67,952,
    // 67,952 and 4,096, about 2 MiB.
    for day in 0..5 {
        let shifted = random_bars("A", 140_000).into_iter().map(|batch| {
            let ts = batch.column(0).as_any().downcast_ref::<arrow::array::TimestampNanosecondArray>().unwrap();
            let ts =
                arrow::array::TimestampNanosecondArray::from_iter_values(ts.values().iter().map(|t| t + 2 * day * DAY));
            let mut columns = batch.columns().to_vec();
            columns[0] = Arc::new(ts);
            arrow::array::RecordBatch::try_new(batch.schema(), columns).unwrap()
        });
        table.append(shifted.collect()).await.unwrap();
    }
    assert_eq!(table.segments().len(), 5);
    let (ours, _) = two_partition_sessions(&table);
    let one_partition =
        SessionContext::new_with_config(datafusion::prelude::SessionConfig::new().with_target_partitions(1));
    register_opened(&one_partition, "t", table.clone()).unwrap();

    let sql = "SELECT count(*), sum(volume), max(price) FROM t WHERE price >= 0";
    let answer = sql_ok(&one_partition, sql).await;
    // Before a read: two whole segments against three.
    let scan = scan_line(&physical_plan(&ours, sql).await).to_string();
    assert!(scan.contains("file_groups={2 groups") && !scan.contains(".parquet:"), "{scan}");
    assert_eq!(sql_ok(&ours, sql).await, answer);
    // After: the third segment in two ranges, one at the end of each group.
    let plan = physical_plan(&ours, sql).await;
    let scan = scan_line(&plan);
    assert_eq!(scan.matches(".parquet:").count(), 2, "{plan}");
    assert_eq!(sql_ok(&ours, sql).await, answer);
    // A query that needs the time order keeps it without a sort.
    let sql = "SELECT ts, price FROM t WHERE price >= 0 ORDER BY ts";
    let plan = physical_plan(&ours, sql).await;
    assert!(scan_line(&plan).contains("output_ordering=[ts"), "{sql}:\n{plan}");
    assert!(!plan.lines().any(|l| l.trim_start().starts_with("SortExec: expr=[ts")), "{sql}:\n{plan}");
    assert_eq!(sql_ok(&ours, sql).await, sql_ok(&one_partition, sql).await, "{sql}");
    // Time buckets of these few rows are hashed, and the buckets sorted after.
    let sql = "SELECT date_bin(INTERVAL '6 hours', ts) AS b, count(*), max(price) FROM t GROUP BY 1 ORDER BY 1";
    let plan = physical_plan(&ours, sql).await;
    assert!(!scan_line(&plan).contains("output_ordering") && !plan.contains("ordering_mode"), "{sql}:\n{plan}");
    assert!(plan.lines().any(|l| l.trim_start().starts_with("SortExec: expr=[date_bin")), "{sql}:\n{plan}");
    assert_eq!(sql_ok(&ours, sql).await, sql_ok(&one_partition, sql).await, "{sql}");
}

/// A filter that keeps one entity of a few rows runs inside the Parquet scan (the other
/// columns decoded only where it matched); over many rows, or without an entity filter,
/// the filter stays above the scan.
#[tokio::test]
async fn an_entity_filter_over_few_rows_runs_inside_the_parquet_scan() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    // 200 symbols over a day: one segment of 288,000 rows.
    let symbols: Vec<String> = (0..200).map(|i| format!("S{i:03}")).collect();
    let symbols: Vec<&str> = symbols.iter().map(String::as_str).collect();
    table.append(vec![minute_bars(&symbols, T0, 24 * 60)]).await.unwrap();
    let (ours, _) = two_partition_sessions(&table);
    let pruned_inside = |plan: &str| {
        let scan = plan.lines().find(|l| l.contains("DataSourceExec")).unwrap_or_default().to_string();
        !scan.contains("pushdown_rows_pruned=0,") && scan.contains("pushdown_rows_pruned=")
    };
    for (sql, rows, inside) in [
        // An hour of one symbol: 12,000 rows asked for, 60 kept.
        ("SELECT ts, price FROM t WHERE symbol = 'S007' AND ts >= '2024-01-01T10:00:00Z' AND ts < '2024-01-01T11:00:00Z' ORDER BY ts", 60, true),
        // The whole day of one symbol: 288,000 rows asked for.
        ("SELECT ts, price FROM t WHERE symbol = 'S007' ORDER BY ts", 1440, false),
        // An hour of every symbol.
        ("SELECT ts, price FROM t WHERE ts >= '2024-01-01T10:00:00Z' AND ts < '2024-01-01T11:00:00Z' ORDER BY ts", 12_000, false),
    ] {
        let plan = explain_analyze(&ours, sql).await;
        assert_eq!(pruned_inside(&plan), inside, "{sql}:\n{plan}");
        let batches = ours.sql(sql).await.unwrap().collect().await.unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), rows, "{sql}");
    }
    // The same rows, in order, as without the filter in the scan.
    let inside = sql_ok(&ours, "SELECT ts, symbol, price FROM t WHERE symbol IN ('S007', 'S150') AND ts >= '2024-01-01T10:00:00Z' AND ts < '2024-01-01T10:30:00Z' ORDER BY ts, symbol").await;
    // (A function of the column is no entity filter the provider can see.)
    let above = sql_ok(&ours, "SELECT ts, symbol, price FROM t WHERE upper(symbol) IN ('S007', 'S150') AND ts >= '2024-01-01T10:00:00Z' AND ts < '2024-01-01T10:30:00Z' ORDER BY ts, symbol").await;
    assert_eq!(inside, above);
    assert_eq!(inside.lines().count(), 60 + 4, "{inside}");
}

#[tokio::test]
async fn many_small_segments_are_read_whole_with_the_same_answers() {
    on_every_backend(|location| async move {
        let mut table = new_table(location, "1m").await;
        // Forty symbols, a segment each per day, over two days; then a column is added and a
        // third day written with it: 120 small segments, 80 of them without the new column.
        let symbols: Vec<String> = (0..40).map(|i| format!("S{i:02}")).collect();
        for day in 0..2 {
            for symbol in &symbols {
                table.append(vec![minute_bars(&[symbol.as_str()], T0 + day * DAY, 30)]).await.unwrap();
            }
        }
        table
            .add_columns(vec![arrow::datatypes::Field::new("note", arrow::datatypes::DataType::Utf8, true)])
            .await
            .unwrap();
        for (i, symbol) in symbols.iter().enumerate() {
            let base = minute_bars(&[symbol.as_str()], T0 + 2 * DAY, 30);
            let note =
                arrow::array::StringArray::from_iter((0..30).map(|m| (m % 3 == i % 3).then(|| format!("n{}", m % 4))));
            let mut columns = base.columns().to_vec();
            columns.push(Arc::new(note));
            table
                .append(vec![arrow::array::RecordBatch::try_new(table.schema().unwrap(), columns).unwrap()])
                .await
                .unwrap();
        }
        let (ours, plain) = two_partition_sessions(&table);

        for (sql, segments) in [
            ("SELECT symbol, count(*), sum(volume), min(ts), max(ts), count(note) FROM t GROUP BY symbol ORDER BY symbol", Some(120)),
            ("SELECT note, count(*), sum(price) FROM t GROUP BY note ORDER BY note", Some(120)),
            ("SELECT symbol, note, price FROM t WHERE ts >= '2024-01-03T00:10:00Z' AND price > 100.5 ORDER BY symbol, price", Some(40)),
            // Read in time order, as far as the merge above needs.
            ("SELECT ts, symbol, note FROM t WHERE symbol <> 'S07' ORDER BY ts, symbol LIMIT 50", None),
            ("SELECT * FROM t ORDER BY ts DESC, symbol LIMIT 45", None),
        ] {
            let plan = physical_plan(&ours, sql).await;
            assert!(plan.contains("SmallSegmentsExec") || plan.contains("NewestFirstExec"), "{sql}:\n{plan}");
            assert!(!physical_plan(&plain, sql).await.contains("SmallSegmentsExec"));
            let expected = pretty(&plain.sql(sql).await.unwrap().collect().await.unwrap());
            assert_eq!(pretty(&ours.sql(sql).await.unwrap().collect().await.unwrap()), expected, "{sql}");
            if let Some(segments) = segments {
                assert_eq!(metric(&explain_analyze(&ours, sql).await, "segments_read"), segments, "{sql}");
            }
        }
        // The newest rows are read newest segment first, in waves of small-segment reads: the
        // 40 of the last day hold them, and the reading stops before the first day.
        let analyzed = explain_analyze(&ours, "SELECT * FROM t ORDER BY ts DESC, symbol LIMIT 45").await;
        assert!(analyzed.contains("NewestFirstExec"), "{analyzed}");
        let read = metric(&analyzed, "segments_read");
        assert!((40..120).contains(&read), "{analyzed}");
        // A limit without an order stops reading early.
        let limited = ours.sql("SELECT * FROM t LIMIT 7").await.unwrap().collect().await.unwrap();
        assert_eq!(row_count(&limited), 7);
        // With Parquet filter pushdown on, the scan itself filters: DataFusion's scan stays.
        let config = datafusion::prelude::SessionConfig::new()
            .set_bool("datafusion.execution.parquet.pushdown_filters", true);
        let pushdown = SessionContext::new_with_config(config);
        timeseries_table_core::datafusion::register(&pushdown);
        register_opened(&pushdown, "t", table.clone()).unwrap();
        let few = "SELECT count(*) FROM t WHERE symbol IN ('S01', 'S02') AND price > 0";
        assert!(scan_line(&physical_plan(&pushdown, few).await).contains("DataSourceExec"));
        assert_eq!(count(&pushdown, few).await, 180);
        assert!(scan_line(&physical_plan(&ours, few).await).contains("SmallSegmentsExec: segments=6"));
        assert_eq!(count(&ours, few).await, 180);
    })
    .await;
}

#[tokio::test]
async fn segment_footers_are_read_once_per_session() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    for day in 0..3 {
        table.append(vec![minute_bars(&["A", "B"], T0 + day * DAY, 60)]).await.unwrap();
    }
    // DataFusion's own scan of our segments, the one segments over 1 MiB get (our sessions
    // read small segments whole, footer included): a session without our rules.
    let ctx = SessionContext::new();
    register_opened(&ctx, "t", table.clone()).unwrap();
    let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
    assert_eq!(cache.len(), 0);
    let sql = "SELECT count(*) FROM t WHERE ts >= '2024-01-02T00:00:00Z'";
    assert_eq!(count(&ctx, sql).await, 240);
    // The two segments read are in the session's metadata cache, each once.
    assert_eq!(cache.len(), 2);
    let analyzed = explain_analyze(&ctx, sql).await;
    assert_eq!(cache.len(), 2, "{analyzed}");
    assert_eq!(count(&ctx, sql).await, 240);
    assert_eq!(count(&ctx, "SELECT count(*) FROM t WHERE volume >= 0").await, 360);
    assert_eq!(cache.len(), 3);
}

#[tokio::test]
async fn coverage_prunes_a_segment_whose_buckets_miss_the_range() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    // Segment X: A at 09:00-09:05 and 11:00-11:05 only; its min/max span 10:00.
    let mut holes = minute_bars(&["A"], T0 + 9 * HOUR, 5);
    holes = arrow::compute::concat_batches(&holes.schema(), &[holes.clone(), minute_bars(&["A"], T0 + 11 * HOUR, 5)])
        .unwrap();
    table.append(vec![holes]).await.unwrap();
    // Segment Y: B at 10:00-10:30.
    table.append(vec![minute_bars(&["B"], T0 + 10 * HOUR, 30)]).await.unwrap();
    let segments = table.segments();
    let (x, y) = (&segments[0], &segments[1]);
    assert!(x.ts_min < T0 + 10 * HOUR && x.ts_max > T0 + 10 * HOUR + 30 * MINUTE);
    let ctx = registered(&table).await;

    let sql = "SELECT * FROM t WHERE ts >= '2024-01-01T10:00:00Z' AND ts < '2024-01-01T10:30:00Z'";
    let plan = physical_plan(&ctx, sql).await;
    let scan = scan_line(&plan);
    assert!(scan.contains(&file_name(y)) && !scan.contains(&file_name(x)), "{plan}");
    let analyzed = explain_analyze(&ctx, sql).await;
    assert_eq!(metric(&analyzed, "segments_pruned_by_time"), 0);
    assert_eq!(metric(&analyzed, "segments_pruned_by_coverage"), 1);
    assert_eq!(count(&ctx, &sql.replace('*', "count(*)")).await, 30);

    // With an entity: X has A but no A bucket in range, Y has no A at all.
    let plan = physical_plan(&ctx, &format!("{sql} AND symbol = 'A'")).await;
    assert!(!plan.contains("DataSourceExec"), "{plan}");
    // A range that touches X's covered buckets keeps it.
    let sql = "SELECT count(*) FROM t WHERE ts >= '2024-01-01T10:00:00Z' AND ts <= '2024-01-01T11:00:00Z'";
    assert_eq!(metric(&explain_analyze(&ctx, sql).await, "segments_pruned_by_coverage"), 0);
    assert_eq!(count(&ctx, sql).await, 31);
}

#[tokio::test]
async fn coverage_is_read_only_for_segments_the_range_cuts() {
    let store = FaultyStore::new(Arc::new(object_store::memory::InMemory::new()));
    let mut table = new_table(store.location("t"), "1m").await;
    // Four days of A and B, a segment a day.
    for day in 0..4 {
        table.append(vec![minute_bars(&["A", "B"], T0 + day * DAY, 30)]).await.unwrap();
    }
    let ctx = registered(&table).await;
    let sidecars_read = |store: &FaultyStore| {
        store.calls().iter().filter(|c| c.kind == CallKind::Get && c.path.contains("_coverage/segments/")).count()
    };
    store.reset();
    // Days 1-3 lie wholly inside the range, and hold an A and a B row: each has a matching
    // row whatever its coverage says, so none is read.
    for (sql, rows) in [
        ("SELECT count(*) FROM t WHERE ts >= '2024-01-02T00:00:00Z'", 180),
        ("SELECT count(*) FROM t WHERE ts >= '2024-01-02T00:00:00Z' AND symbol = 'A'", 90),
        ("SELECT count(*) FROM t WHERE symbol IN ('B', 'C')", 120),
    ] {
        assert_eq!(count(&ctx, sql).await, rows, "{sql}");
    }
    assert_eq!(sidecars_read(&store), 0, "{:?}", store.calls());
    // A range that cuts day 1 needs its coverage (and only its).
    let sql = "SELECT count(*) FROM t WHERE ts >= '2024-01-02T00:10:00Z'";
    assert_eq!(count(&ctx, sql).await, 160);
    assert_eq!(sidecars_read(&store), 1, "{:?}", store.calls());
}

#[tokio::test]
async fn order_by_time_with_limit_needs_no_full_sort() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    // Days in reverse order of appending, plus segments overlapping in time for other
    // entities, so the files are neither appended nor stored in time order.
    for day in (0..3).rev() {
        table.append(vec![minute_bars(&["A"], T0 + day * DAY, 120)]).await.unwrap();
        table.append(vec![minute_bars(&["B", "C"], T0 + day * DAY + 30 * MINUTE, 60)]).await.unwrap();
    }
    let ours = registered(&table).await;
    // DataFusion's plan, an ordered merge of the scan's groups, is what a session without
    // our physical rules runs; ours reads the oldest segments first and sorts what it read.
    let plain = SessionContext::new();
    register_opened(&plain, "t", table.clone()).unwrap();
    // (The last query filters on a column it does not return: the rule does not look
    // through the projection, and DataFusion's plan runs in both sessions.)
    for (query, limit, oldest_first) in [
        ("SELECT * FROM t", 40, true),
        ("SELECT ts, symbol FROM t WHERE ts >= '2024-01-02T00:45:00Z'", 7, true),
        ("SELECT ts FROM t WHERE symbol = 'B'", 3, false),
    ] {
        let sql = format!("{query} ORDER BY ts LIMIT {limit}");
        let plan = physical_plan(&plain, &sql).await;
        assert!(!plan.lines().any(|l| l.trim_start().starts_with("SortExec")), "{sql}:\n{plan}");
        let plan = physical_plan(&ours, &sql).await;
        assert_eq!(plan.contains("NewestFirstExec: oldest first"), oldest_first, "{sql}:\n{plan}");
        // The same timestamps as a full sort (`symbol` only breaks ties there). With
        // segments interleaved in time this catches partitions read out of order (DataFusion
        // 55 moves files between partitions at run time unless the scan forbids it).
        let first_column = |text: String| -> Vec<String> {
            text.lines().map(|l| l.split('|').nth(1).unwrap_or("").trim().to_string()).collect()
        };
        let sorted = first_column(sql_ok(&plain, &format!("{query} ORDER BY ts, symbol LIMIT {limit}")).await);
        assert_eq!(first_column(sql_ok(&plain, &sql).await), sorted, "{sql}");
        assert_eq!(first_column(sql_ok(&ours, &sql).await), sorted, "{sql}");
    }
    let rows = sql_ok(&ours, "SELECT ts, symbol FROM t ORDER BY ts LIMIT 3").await;
    assert!(
        rows.contains("2024-01-01T00:00:00") && rows.contains("2024-01-01T00:02:00") && !rows.contains("2024-01-02"),
        "{rows}"
    );
}

#[tokio::test]
async fn count_min_max_come_from_metadata_for_every_unit_and_zone() {
    for shape in &SHAPES {
        let (dir, table) = build(shape).await;
        let Sessions { ours, reference } = sessions(&dir, &table).await;
        // Without the optimizer rule (a plain session): from the scan's exact statistics.
        let plain = SessionContext::new();
        register_opened(&plain, "ts_table", table.clone()).unwrap();
        for sql in [
            "SELECT count(*) AS n, min(ts) AS first, max(ts) AS last FROM ts_table",
            "SELECT max(ts) AS last, count(ts) AS n, count(1) AS ones FROM ts_table",
            "SELECT min(ts) AS first FROM ts_table",
        ] {
            let listing = sql_ok(&reference, &sql.replace("ts_table", "listing")).await;
            // Our session answers from segment metadata: no file is listed.
            let plan = physical_plan(&ours, sql).await;
            assert!(
                plan.contains("partition_sizes=[1]") && !plan.contains("file_groups"),
                "{} {sql}:\n{plan}",
                shape.name
            );
            assert_eq!(sql_ok(&ours, sql).await, listing, "{} {sql}", shape.name);

            let plan = physical_plan(&plain, sql).await;
            assert!(plan.contains("PlaceholderRowExec") && !plan.contains("DataSourceExec"), "{}:\n{plan}", shape.name);
            assert_eq!(sql_ok(&plain, sql).await, listing, "{} {sql}", shape.name);
        }
    }
}

/// Beside aggregates only the files can answer, the totals still come from metadata: the
/// scan reads the other aggregates' columns, not the time column.
#[tokio::test]
async fn totals_beside_other_aggregates_come_from_metadata_and_the_rest_from_the_files() {
    for shape in &SHAPES {
        let (dir, table) = build(shape).await;
        let Sessions { ours, reference } = sessions(&dir, &table).await;
        for sql in [
            "SELECT count(*) AS n, min(ts) AS first, max(ts) AS last, avg(price) AS mean FROM ts_table",
            "SELECT sum(volume) AS v, max(ts) AS last, count(price) AS priced, count(1) AS n FROM ts_table",
            "SELECT max(price) AS top, min(ts) AS first, min(symbol) AS s FROM ts_table",
        ] {
            let listing = sql_ok(&reference, &sql.replace("ts_table", "listing")).await;
            let plan = physical_plan(&ours, sql).await;
            let scan = plan.lines().find(|l| l.contains("file_groups=")).unwrap_or_default();
            assert!(
                plan.contains("partition_sizes=[1]") && !scan.is_empty() && !scan.contains("projection=[ts"),
                "{} {sql}:\n{plan}",
                shape.name
            );
            assert_eq!(sql_ok(&ours, sql).await, listing, "{} {sql}", shape.name);
        }
    }
}

#[tokio::test]
async fn aggregates_metadata_cannot_answer_read_the_files() {
    let (_dir, location) = temp_location();
    let mut table = new_table(location, "1m").await;
    table.append(vec![minute_bars(&["A", "B"], T0, 60)]).await.unwrap();
    table.append(vec![minute_bars(&["A"], T0 + DAY, 30)]).await.unwrap();
    let ctx = registered(&table).await;
    for (sql, expected) in [
        ("SELECT count(*) FROM t WHERE ts >= '2024-01-02T00:10:00Z'", 20),
        ("SELECT count(*) FROM t WHERE symbol = 'B'", 60),
        ("SELECT count(DISTINCT ts) FROM t", 90),
        ("SELECT count(symbol) FROM (SELECT symbol FROM t LIMIT 7)", 7),
        ("SELECT count(*) FROM (SELECT symbol FROM t GROUP BY symbol)", 2),
    ] {
        let plan = physical_plan(&ctx, sql).await;
        assert!(plan.contains("file_groups"), "{sql}:\n{plan}");
        assert_eq!(count(&ctx, sql).await, expected, "{sql}");
    }
    // The rule's answer for the whole table, and for an empty one.
    assert_eq!(count(&ctx, "SELECT count(*) FROM t").await, 150);
    let empty = TimeSeriesTable::create(memory_location(), table.meta().clone()).await.unwrap();
    let ctx = registered(&empty).await;
    let answer = sql_ok(&ctx, "SELECT count(*) AS n, min(ts) AS first FROM t").await;
    assert!(answer.contains("| 0 |       |"), "{answer}");
    let answer = sql_ok(&ctx, "SELECT count(*) AS n, avg(price) AS mean, max(ts) AS last FROM t").await;
    assert!(answer.contains("| 0 |      |      |"), "{answer}");
}

// ---------------------------------------------------------------------------------------
// INSERT and CREATE EXTERNAL TABLE
// ---------------------------------------------------------------------------------------

fn memory_url() -> String {
    format!("memory://{}/table", uuid_like())
}

fn create_sql(name: &str, url: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE {name} (ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL, price DOUBLE, volume BIGINT) \
         STORED AS TIMESERIES LOCATION '{url}' \
         OPTIONS ('time_column' 'ts', 'bucket' '1m', 'entity_columns' 'symbol', 'timezone' 'UTC')"
    )
}

#[tokio::test]
async fn insert_values_and_select_round_trip() {
    let url = memory_url();
    let ctx = session_context();
    sql_ok(&ctx, &create_sql("t", &url)).await;
    let inserted = sql_ok(
        &ctx,
        "INSERT INTO t VALUES ('2024-01-01T10:01:30Z', 'B', 2.5, 20), ('2024-01-01T10:00:00Z', 'A', 1.5, 10), \
         ('2024-01-01T10:00:59.999Z', 'B', NULL, 30)",
    )
    .await;
    assert!(inserted.contains("| 3     |"), "{inserted}");
    let rows = sql_ok(&ctx, "SELECT * FROM t ORDER BY ts").await;
    let expected = "\
+--------------------------+--------+-------+--------+
| ts                       | symbol | price | volume |
+--------------------------+--------+-------+--------+
| 2024-01-01T10:00:00Z     | A      | 1.5   | 10     |
| 2024-01-01T10:00:59.999Z | B      |       | 30     |
| 2024-01-01T10:01:30Z     | B      | 2.5   | 20     |
+--------------------------+--------+-------+--------+";
    assert_eq!(rows, expected);

    // INSERT ... SELECT from the table itself, one hour later: one more segment.
    let inserted =
        sql_ok(&ctx, "INSERT INTO t SELECT ts + INTERVAL '1 hour', symbol, price * 2, volume + 1 FROM t").await;
    assert!(inserted.contains("| 3     |"), "{inserted}");
    assert_eq!(count(&ctx, "SELECT count(*) FROM t").await, 6);
    assert_eq!(count(&ctx, "SELECT sum(volume) FROM t WHERE ts >= '2024-01-01T11:00:00Z'").await, 63);
    let history =
        sql_ok(&ctx, "SELECT version, operation, segments_added, rows_added FROM history('t') ORDER BY version").await;
    assert!(history.contains("| 2       | insert    | 1              | 3          |"), "{history}");
    assert!(history.contains("| 3       | insert    | 1              | 3          |"), "{history}");

    // The commits are real: a fresh handle sees both segments.
    let reopened = TimeSeriesTable::open(TableLocation::parse(&url).unwrap()).await.unwrap();
    assert_eq!((reopened.version(), reopened.segments().len()), (3, 2));
    // Segments are written sorted even when the INSERT's rows are not.
    assert!(reopened.segments().iter().all(|s| s.sorted));
}

#[tokio::test]
async fn overlapping_insert_is_rejected_and_leaves_the_table_unchanged() {
    let url = memory_url();
    let ctx = session_context();
    sql_ok(&ctx, &create_sql("t", &url)).await;
    sql_ok(&ctx, "INSERT INTO t VALUES ('2024-01-01T10:00:00Z', 'A', 1.0, 1), ('2024-01-01T10:05:00Z', 'A', 1.0, 1)")
        .await;
    let before = sql_ok(&ctx, "SELECT * FROM t ORDER BY ts, symbol").await;

    for sql in [
        // Same instant.
        "INSERT INTO t VALUES ('2024-01-01T10:00:00Z', 'A', 9.0, 9)",
        // Another instant in an already covered minute, next to rows that would be new.
        "INSERT INTO t VALUES ('2024-01-01T09:59:00Z', 'A', 9.0, 9), ('2024-01-01T10:05:30Z', 'A', 9.0, 9), ('2024-01-01T10:00:00Z', 'B', 9.0, 9)",
        // INSERT ... SELECT of the table's own rows.
        "INSERT INTO t SELECT * FROM t",
    ] {
        let err = sql_err(&ctx, sql).await;
        assert!(err.contains("overlap") && err.contains("A") && err.contains("nothing was committed"), "{sql}: {err}");
        assert!(err.contains("2024-01-01T10:0"), "names the first overlapping bucket: {err}");
        assert_eq!(sql_ok(&ctx, "SELECT * FROM t ORDER BY ts, symbol").await, before, "{sql}");
        assert_eq!(count(&ctx, "SELECT max(version) FROM history('t')").await, 2, "{sql}");
    }
    let reopened = TimeSeriesTable::open(TableLocation::parse(&url).unwrap()).await.unwrap();
    assert_eq!((reopened.version(), reopened.segments().len()), (2, 1));

    // A later disjoint insert still works.
    sql_ok(&ctx, "INSERT INTO t VALUES ('2024-01-01T10:00:00Z', 'B', 2.0, 2)").await;
    assert_eq!(count(&ctx, "SELECT count(*) FROM t").await, 3);

    let err = sql_err(&ctx, "INSERT OVERWRITE t SELECT * FROM t").await;
    assert!(err.contains("not supported") && err.contains("INSERT INTO"), "{err}");
}

#[tokio::test]
async fn create_external_table_takes_a_schedule() {
    let url = memory_url();
    let ctx = session_context();
    let create = format!(
        "CREATE EXTERNAL TABLE s (ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL) STORED AS TIMESERIES \
         LOCATION '{url}' OPTIONS ('time_column' 'ts', 'bucket' '1h', 'entity_columns' 'symbol', \
         'schedule' 'UTC; Mon-Fri 09:00-17:00')"
    );
    sql_ok(&ctx, &create).await;
    // Tuesday 2024-01-02 and Monday 2024-01-08, 09:00-11:00 each.
    sql_ok(
        &ctx,
        "INSERT INTO s VALUES ('2024-01-02T09:00:00Z', 'A'), ('2024-01-02T10:00:00Z', 'A'), \
         ('2024-01-08T09:00:00Z', 'A'), ('2024-01-08T10:00:00Z', 'A')",
    )
    .await;
    let table = TimeSeriesTable::open(TableLocation::parse(&url).unwrap()).await.unwrap();
    assert_eq!(table.meta().schedule.as_ref().map(|s| s.to_string()).as_deref(), Some("UTC; Mon-Fri 09:00-17:00"));
    // From Tuesday 09:00 to Monday 11:00: 8 + 8 + 8 + 8 + 2 scheduled hours, 4 covered.
    let coverage = sql_ok(&ctx, "SELECT expected_buckets, covered_buckets, gap_count FROM coverage('s')").await;
    assert!(coverage.contains("| 34               | 4               | 4         |"), "{coverage}");
    // Opening with the same schedule is accepted; a different one is refused.
    let open = |schedule: &str| {
        format!("CREATE EXTERNAL TABLE o STORED AS TIMESERIES LOCATION '{url}' OPTIONS ('schedule' '{schedule}')")
    };
    sql_ok(&session_context(), &open("utc; mon-fri 09:00-17:00")).await;
    let err = sql_err(&session_context(), &open("UTC; Mon-Fri 08:00-17:00")).await;
    assert!(err.contains("has the schedule 'UTC; Mon-Fri 09:00-17:00'") && err.contains("set-schedule"), "{err}");
    let err = sql_err(&session_context(), &open("Mon-Fri 9:00-17:00")).await;
    assert!(err.contains("invalid schedule") && err.contains("9:00-17:00"), "{err}");
}

#[tokio::test]
async fn create_external_table_creates_then_opens() {
    let url = memory_url();
    let ctx = session_context();
    sql_ok(&ctx, &create_sql("created", &url)).await;
    sql_ok(&ctx, "INSERT INTO created VALUES ('2024-01-01T10:00:00Z', 'A', 1.0, 1)").await;
    let created = TimeSeriesTable::open(TableLocation::parse(&url).unwrap()).await.unwrap();
    assert_eq!(created.spec().entity_columns, vec!["symbol".to_string()]);
    assert_eq!(created.spec().bucket.to_string(), "1m");

    // Another session opens it without a column list; OPTIONS that match are accepted.
    let other = session_context();
    sql_ok(&other, &format!("CREATE EXTERNAL TABLE opened STORED AS TIMESERIES LOCATION '{url}'")).await;
    sql_ok(
        &other,
        &format!(
            "CREATE EXTERNAL TABLE opened_again STORED AS TIMESERIES LOCATION '{url}' \
             OPTIONS ('time_column' 'ts', 'bucket' '1m', 'entity_columns' 'symbol', 'timezone' 'UTC')"
        ),
    )
    .await;
    let describe = sql_ok(&other, "DESCRIBE opened").await;
    for line in [
        "| ts          | Timestamp(ns, \"UTC\") | NO",
        "| symbol      | Utf8                 | NO",
        "| price       | Float64              | YES",
    ] {
        assert!(describe.contains(line), "{line} in\n{describe}");
    }
    assert_eq!(sql_ok(&other, "SELECT * FROM opened").await, sql_ok(&ctx, "SELECT * FROM created").await);

    // Opening with a different spec, creating over an existing table, opening nothing.
    let err = sql_err(
        &other,
        &format!(
            "CREATE EXTERNAL TABLE x STORED AS TIMESERIES LOCATION '{url}' OPTIONS ('time_column' 'ts', 'bucket' '5m')"
        ),
    )
    .await;
    assert!(err.contains("different specification"), "{err}");
    let err = sql_err(&other, &create_sql("x", &url)).await;
    assert!(err.contains("already exists"), "{err}");
    let err =
        sql_err(&other, &format!("CREATE EXTERNAL TABLE x STORED AS TIMESERIES LOCATION '{}'", memory_url())).await;
    assert!(err.contains("no table at"), "{err}");
    // None of it touched the table.
    assert_eq!(TimeSeriesTable::open(TableLocation::parse(&url).unwrap()).await.unwrap().version(), 2);
}

#[tokio::test]
async fn bad_create_options_are_rejected_and_create_nothing() {
    let columns = "(ts TIMESTAMP NOT NULL, symbol VARCHAR NOT NULL, price DOUBLE)";
    let cases: [(&str, &str, &str); 9] = [
        (columns, "'time_column' 'ts', 'bucket' '1m', 'bucket_size' '5m'", "unknown option 'bucket_size'"),
        (columns, "'time_column' 'ts', 'bucket' '7x'", "invalid bucket '7x'"),
        (columns, "'time_column' 'ts', 'bucket' '0m'", "invalid bucket '0m'"),
        (columns, "'bucket' '1m'", "time_column"),
        (columns, "'time_column' 'ts'", "bucket"),
        (columns, "'time_column' 'time', 'bucket' '1m'", "'time' is missing"),
        ("(ts BIGINT NOT NULL, symbol VARCHAR NOT NULL)", "'time_column' 'ts', 'bucket' '1m'", "expected a Timestamp"),
        (columns, "'time_column' 'ts', 'bucket' '1m', 'entity_columns' 'price'", "entity column 'price'"),
        (columns, "'time_column' 'ts', 'bucket' '1m', 'timezone' 'Mars/Olympus_Mons'", "unknown time zone"),
    ];
    let ctx = session_context();
    for (columns, options, message) in cases {
        let url = memory_url();
        let sql =
            format!("CREATE EXTERNAL TABLE bad {columns} STORED AS TIMESERIES LOCATION '{url}' OPTIONS ({options})");
        let err = sql_err(&ctx, &sql).await;
        assert!(err.contains(message), "{options}: expected {message:?} in {err}");
        let opened = TimeSeriesTable::open(TableLocation::parse(&url).unwrap()).await;
        assert!(opened.is_err(), "{options}: a table was created");
    }
    // A bad option is rejected when opening too.
    let url = memory_url();
    sql_ok(&ctx, &create_sql("good", &url)).await;
    let err = sql_err(
        &ctx,
        &format!("CREATE EXTERNAL TABLE again STORED AS TIMESERIES LOCATION '{url}' OPTIONS ('colour' 'red')"),
    )
    .await;
    assert!(err.contains("unknown option 'colour'"), "{err}");
}

#[tokio::test]
async fn registered_provider_sees_commits_made_through_another_handle() {
    let location = memory_location();
    let mut writer = new_table(location.clone(), "1m").await;
    writer.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
    let ctx = registered(&TimeSeriesTable::open(location.clone()).await.unwrap()).await;
    assert_eq!(count(&ctx, "SELECT count(*) FROM t").await, 10);
    assert_eq!(count(&ctx, "SELECT count(*) FROM segments('t')").await, 1);

    // A second, independent handle commits; the registered provider is not told.
    let mut other = TimeSeriesTable::open(location).await.unwrap();
    other.append(vec![minute_bars(&["A", "B"], T0 + HOUR, 5)]).await.unwrap();
    assert_eq!(count(&ctx, "SELECT count(*) FROM t").await, 20);
    assert_eq!(count(&ctx, "SELECT count(*) FROM t WHERE symbol = 'B'").await, 5);
    assert_eq!(count(&ctx, "SELECT count(*) FROM segments('t')").await, 2);
    assert_eq!(count(&ctx, "SELECT covered_buckets FROM coverage('t') WHERE symbol = 'A'").await, 15);
    assert_eq!(count(&ctx, "SELECT max(version) FROM history('t')").await, 3);
    // Statistics follow too (answered without a scan).
    let stats = sql_ok(&ctx, "SELECT count(*), max(ts) FROM t").await;
    assert!(stats.contains("| 20       | 2024-01-01T01:04:00 |"), "{stats}");
}

#[tokio::test]
async fn table_functions_take_a_path_or_url_as_well_as_a_name() {
    let (dir, location) = temp_location();
    let mut local = new_table(location, "1m").await;
    local.append(vec![minute_bars(&["A", "B"], T0, 10)]).await.unwrap();
    let url = memory_url();
    let mut remote = new_table(TableLocation::parse(&url).unwrap(), "1m").await;
    remote.append(vec![minute_bars(&["C"], T0, 5)]).await.unwrap();

    // Nothing registered: the argument is opened as a table root.
    let ctx = session_context();
    let path = dir.path().join("table").display().to_string();
    assert_eq!(count(&ctx, &format!("SELECT sum(covered_buckets) FROM coverage('{path}')")).await, 20);
    assert_eq!(count(&ctx, &format!("SELECT count(*) FROM segments('{url}')")).await, 1);
    assert_eq!(count(&ctx, &format!("SELECT max(version) FROM history('{url}')")).await, 2);
}

// ---------------------------------------------------------------------------------------
// Table-function arguments
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_table_function_arguments_are_plan_errors() {
    let mut table = new_table(memory_location(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 10)]).await.unwrap();
    let ctx = registered(&table).await;
    let plain = MemTable::try_new(bars_schema(arrow::datatypes::TimeUnit::Nanosecond, None), vec![vec![]]).unwrap();
    ctx.register_table("plain", Arc::new(plain)).unwrap();

    let cases = [
        // Unknown or unsuitable tables.
        ("SELECT * FROM coverage('no_such_table')", "unknown table 'no_such_table'"),
        ("SELECT * FROM gaps('/no/such/dir')", "unknown table '/no/such/dir'"),
        ("SELECT * FROM segments('plain')", "not a time-series table"),
        ("SELECT * FROM history(42)", "must be a table name or a path"),
        // Arity.
        ("SELECT * FROM coverage()", "coverage takes 1 to 4 argument(s), got 0"),
        ("SELECT * FROM gaps('t', '2024-01-01T00:00:00Z')", "needs both start and end"),
        ("SELECT * FROM coverage('t', '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', 'always', 'x')", "got 5"),
        ("SELECT * FROM coverage('t', '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', 'x')", "unknown time zone 'x'"),
        ("SELECT * FROM segments('t', 1)", "segments takes 1 argument(s), got 2"),
        ("SELECT * FROM history()", "history takes 1 argument(s), got 0"),
        ("SELECT * FROM last_covered_window('t')", "last_covered_window takes 2 to 4 argument(s), got 1"),
        // Non-literal and non-timestamp arguments.
        ("SELECT * FROM gaps('t', ts, '2024-01-02T00:00:00Z')", "start argument of gaps must be a timestamp"),
        (
            "SELECT * FROM coverage('t', '2024-01-01T00:00:00Z', random())",
            "end argument of coverage must be a timestamp",
        ),
        ("SELECT * FROM gaps('t', 'yesterday', 'today')", "start argument of gaps must be a timestamp"),
        (
            "SELECT * FROM last_covered_window('t', '1h', 'noon')",
            "end argument of last_covered_window must be a timestamp",
        ),
        // Empty or reversed ranges.
        (
            "SELECT * FROM gaps('t', '2024-01-02T00:00:00Z', '2024-01-01T00:00:00Z')",
            "start 2024-01-02T00:00:00Z must be before end",
        ),
        ("SELECT * FROM coverage('t', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')", "invalid time range"),
        // Window lengths.
        ("SELECT * FROM last_covered_window('t', '7x')", "bad window length '7x'"),
        ("SELECT * FROM last_covered_window('t', '0m')", "bad window length '0m'"),
        ("SELECT * FROM last_covered_window('t', '90s')", "positive multiple of the table's bucket 1m"),
        ("SELECT * FROM last_covered_window('t', INTERVAL '1 month')", "interval without months"),
        ("SELECT * FROM last_covered_window('t', 42)", "length argument must be an interval"),
    ];
    for (sql, message) in cases {
        let err = match ctx.sql(sql).await {
            Ok(_) => panic!("{sql} should fail at planning"),
            Err(e) => e.to_string(),
        };
        assert!(err.starts_with("Error during planning"), "{sql}: not a plan error: {err}");
        assert!(err.contains(message), "{sql}: expected {message:?} in {err}");
    }
    // Usage is shown for argument mistakes.
    let err = ctx.sql("SELECT * FROM gaps('t', 1, 2)").await.unwrap_err().to_string();
    assert!(err.contains("usage: gaps(table [, start, end] [, schedule])"), "{err}");
}

#[tokio::test]
async fn time_travel_in_sql_by_version_and_commit_time() {
    let url = memory_url();
    let location = TableLocation::parse(&url).unwrap();
    let mut table = new_table(location.clone(), "1m").await;
    // Versions 2, 3, 4: 10, 20 and 30 minutes of AAPL, a few milliseconds apart so that
    // each commit has its own commit time.
    for (i, start) in [T0, T0 + HOUR, T0 + 2 * HOUR].into_iter().enumerate() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        table.append(vec![minute_bars(&["AAPL"], start, 10 * (i as i64 + 1))]).await.unwrap();
    }
    let ctx = session_context();
    register_opened(&ctx, "t", table.clone()).unwrap();
    let count = |sql: &str| {
        let ctx = ctx.clone();
        let sql = sql.to_string();
        async move { sql_ok(&ctx, &sql).await }
    };
    assert!(count("SELECT count(*) AS n FROM snapshot('t', 2)").await.contains("| 10 |"));
    assert!(count("SELECT count(*) AS n FROM snapshot('t', 3)").await.contains("| 30 |"));
    // One query compares two versions: what version 4 added.
    let added = count("SELECT count(*) AS n FROM (SELECT * FROM t EXCEPT SELECT * FROM snapshot('t', 3))").await;
    assert!(added.contains("| 30 |"), "{added}");
    // After a rewrite, older versions still read their rows.
    sql_ok(&ctx, "DELETE FROM t WHERE ts < '2024-01-01T02:00:00Z'").await;
    assert!(count("SELECT count(*) AS n FROM t").await.contains("| 30 |"));
    assert!(count("SELECT count(*) AS n FROM snapshot('t', 4)").await.contains("| 60 |"));

    // By commit time: version 3's own commit time opens version 3.
    let history = table.history().await.unwrap();
    let v3 = history.iter().find(|c| c.version == 3).unwrap().committed_at;
    let at = format!("SELECT count(*) AS n FROM snapshot('t', '{v3}')");
    assert!(count(&at).await.contains("| 30 |"), "{v3}");

    // CREATE EXTERNAL TABLE at a version or a time: read-only, and the table functions read
    // that version too.
    let other = session_context();
    sql_ok(&other, &format!("CREATE EXTERNAL TABLE old STORED AS TIMESERIES LOCATION '{url}' OPTIONS ('version' '2')"))
        .await;
    assert!(sql_ok(&other, "SELECT count(*) AS n FROM old").await.contains("| 10 |"));
    let covered = sql_ok(&other, "SELECT covered_buckets FROM coverage('old')").await;
    assert!(covered.contains("| 10              |"), "{covered}");
    let create = format!("CREATE EXTERNAL TABLE at3 STORED AS TIMESERIES LOCATION '{url}' OPTIONS ('as_of' '{v3}')");
    sql_ok(&other, &create).await;
    assert!(sql_ok(&other, "SELECT count(*) AS n FROM at3").await.contains("| 30 |"));
    let err = sql_err(&other, "INSERT INTO old VALUES ('2024-01-05T00:00:00Z', 'X', 1.0, 1)").await;
    assert!(err.contains("opened at version 2 (time travel) and is read-only"), "{err}");

    // Bad input: one sentence each.
    for (sql, expected) in [
        ("SELECT * FROM snapshot('t', 99)", "version 99 does not exist"),
        ("SELECT * FROM snapshot('t', '1999-01-01T00:00:00Z')", "did not exist at 1999-01-01T00:00:00Z"),
        ("SELECT * FROM snapshot('t', 0)", "must be 1 or more"),
        ("SELECT * FROM snapshot('t')", "snapshot takes 2 argument(s), got 1"),
        ("SELECT * FROM snapshot('nowhere', 1)", "unknown table 'nowhere'"),
    ] {
        let err = sql_err(&ctx, sql).await;
        assert!(err.contains(expected), "{sql}: expected {expected:?} in {err}");
    }
    let both = format!(
        "CREATE EXTERNAL TABLE x STORED AS TIMESERIES LOCATION '{url}' OPTIONS ('version' '2', 'as_of' '{v3}')"
    );
    assert!(sql_err(&other, &both).await.contains("not both"));
    let create_at = create_sql("y", &memory_url()).replace("'timezone' 'UTC'", "'timezone' 'UTC', 'version' '1'");
    assert!(sql_err(&other, &create_at).await.contains("cannot create one"));
}
