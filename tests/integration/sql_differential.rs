//! Differential test of the provider: the same Parquet files queried through
//! `TimeSeriesProvider` (which prunes segments by time, entity and coverage and declares
//! an ordering and statistics) and through DataFusion's own `ListingTable` over the table's
//! `data/` folder (which does none of that). Any pruning, ordering or statistics mistake
//! shows up as a different answer.
//!
//! Table shapes: every timestamp unit (s, ms, us, ns), naive and zoned (UTC, a fixed
//! offset, a DST zone), with and without entity columns, 1m/5m/1h buckets, segments that
//! overlap in time for different entities, segments with holes (min/max overlap a query
//! whose buckets they do not cover) and an unsorted segment. Time predicates come plain
//! and through the date functions people wrap the column in (`CAST(ts AS DATE)`,
//! `date_trunc`, `date_bin`, `to_date`). Queries come from a seeded
//! LCG, so every run asks the same questions.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::TimeUnit;
use arrow::util::display::array_value_to_string;
use chrono::{DateTime, FixedOffset, SecondsFormat};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::displayable;
use datafusion::prelude::{SessionConfig, SessionContext};
use timeseries_table_core::datafusion::{register_opened, session_context, SmallSegments};
use timeseries_table_core::metadata::{TableMeta, TimeIndexSpec};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::TimeSeriesTable;

use crate::common::{bars, HOUR, MINUTE, T0};

const SECOND: i64 = 1_000_000_000;
/// 09:00 UTC on 2024-01-01: all sample data is within a few hours of it.
const B: i64 = T0 + 9 * HOUR;

/// One table layout to compare on.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub name: &'static str,
    pub unit: TimeUnit,
    pub tz: Option<&'static str>,
    pub entity: bool,
    pub bucket: &'static str,
    /// One segment is adopted unsorted (no time ordering can be declared); otherwise all
    /// segments are sorted and the provider declares an ordering.
    pub unsorted: bool,
}

pub const SHAPES: [Shape; 6] = [
    Shape { name: "s_naive_entity_1m", unit: TimeUnit::Second, tz: None, entity: true, bucket: "1m", unsorted: false },
    Shape {
        name: "ms_utc_entity_5m",
        unit: TimeUnit::Millisecond,
        tz: Some("UTC"),
        entity: true,
        bucket: "5m",
        unsorted: true,
    },
    Shape {
        name: "us_offset_entity_1m",
        unit: TimeUnit::Microsecond,
        tz: Some("+02:00"),
        entity: true,
        bucket: "1m",
        unsorted: false,
    },
    Shape {
        name: "ns_naive_entity_1m",
        unit: TimeUnit::Nanosecond,
        tz: None,
        entity: true,
        bucket: "1m",
        unsorted: true,
    },
    Shape {
        name: "ns_naive_plain_1m",
        unit: TimeUnit::Nanosecond,
        tz: None,
        entity: false,
        bucket: "1m",
        unsorted: false,
    },
    Shape {
        name: "ms_newyork_plain_1h",
        unit: TimeUnit::Millisecond,
        tz: Some("America/New_York"),
        entity: false,
        bucket: "1h",
        unsorted: true,
    },
];

fn unit_nanos(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => SECOND,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// `(symbol, ts)` every `step` in `[from, to)`.
fn every(symbols: &[&'static str], from: i64, to: i64, step: i64) -> Vec<(&'static str, i64)> {
    let mut rows = Vec::new();
    let mut t = from;
    while t < to {
        for s in symbols {
            rows.push((*s, t));
        }
        t += step;
    }
    rows
}

/// The segments of a shape, as rows, plus whether each is shuffled. Rows are
/// unique per (symbol, ts), and per ts in tables without entities, so `ORDER BY ts, symbol`
/// is a total order. No two segments cover the same (entity, bucket) in any bucket size used.
pub fn segments(shape: &Shape) -> Vec<(Vec<(&'static str, i64)>, bool)> {
    let u = unit_nanos(shape.unit);
    if shape.entity {
        let mut seg1 = every(&["A", "B"], B, B + HOUR, 20 * SECOND);
        seg1.push(("A", B + 30 * MINUTE - u)); // just before a bucket boundary
        let seg2 = every(&["C"], B + 30 * MINUTE, B + 90 * MINUTE, 30 * SECOND);
        // Holes: data at 11:00 and 13:00 only, with nothing in between.
        let mut seg3 = every(&["A"], B + 2 * HOUR, B + 2 * HOUR + 5 * MINUTE, 15 * SECOND);
        seg3.extend(every(&["A"], B + 4 * HOUR, B + 4 * HOUR + 5 * MINUTE, 15 * SECOND));
        seg3.push(("A", B + 4 * HOUR + 5 * MINUTE - u));
        let mut seg4 = every(&["B", "C"], B + 90 * MINUTE + 7 * SECOND, B + 150 * MINUTE, MINUTE);
        seg4.push(("B", B + 100 * MINUTE));
        seg4.push(("C", B + 100 * MINUTE - u));
        // Unsorted: D every 7 minutes over five hours, written in reverse order.
        let mut seg5 = every(&["D"], B, B + 5 * HOUR, 7 * MINUTE);
        seg5.reverse();
        seg5.swap(3, 10);
        vec![(seg1, false), (seg2, false), (seg3, false), (seg4, false), (seg5, true)]
    } else {
        let alternate = |rows: Vec<(&'static str, i64)>| -> Vec<(&'static str, i64)> {
            rows.into_iter().enumerate().map(|(i, (_, t))| (if i % 2 == 0 { "A" } else { "B" }, t)).collect()
        };
        // Segment 1 covers 09:00-10:00 and 11:00-12:00; segment 2 fills 10:00-11:00, so
        // their min/max overlap while their buckets do not (even with 1h buckets).
        let mut seg1 = every(&["A"], B, B + HOUR, 20 * SECOND);
        seg1.extend(every(&["A"], B + 2 * HOUR, B + 3 * HOUR, 20 * SECOND));
        let mut seg2 = every(&["A"], B + HOUR, B + 2 * HOUR, 20 * SECOND);
        seg2.push(("A", B + 2 * HOUR - u));
        let seg3 = vec![("A", B + 4 * HOUR), ("A", B + 4 * HOUR + u), ("A", B + 4 * HOUR + SECOND)];
        let mut seg4 = every(&["A"], B + 5 * HOUR, B + 6 * HOUR, 45 * SECOND);
        seg4.reverse();
        vec![(alternate(seg1), false), (alternate(seg2), false), (alternate(seg3), false), (alternate(seg4), true)]
    }
}

/// Builds the shape's table in a temporary directory.
pub async fn build(shape: &Shape) -> (tempfile::TempDir, TimeSeriesTable) {
    let dir = tempfile::tempdir().unwrap();
    let location = TableLocation::local(dir.path().join("table")).unwrap();
    let mut spec = TimeIndexSpec::new("ts", shape.bucket.parse().unwrap());
    if shape.entity {
        spec = spec.with_entity_columns(["symbol"]);
    }
    let mut table = TimeSeriesTable::create(location, TableMeta::try_new(spec).unwrap()).await.unwrap();
    for (rows, unsorted) in segments(shape) {
        let batch = bars(shape.unit, shape.tz, &rows);
        if unsorted && shape.unsorted {
            crate::common::commit_unsorted_segment(&mut table, &batch).await;
        } else {
            table.append(vec![batch]).await.unwrap();
        }
    }
    assert_eq!(table.segments().iter().any(|s| !s.sorted), shape.unsorted, "{}", shape.name);
    (dir, table)
}

/// The two sides of the comparison: `ts_table` (our provider, in a session as users get
/// it) and `listing` (DataFusion's `ListingTable` over the same Parquet files).
pub struct Sessions {
    pub ours: SessionContext,
    pub reference: SessionContext,
}

/// The reference runs in its own session with file work stealing off: `ListingTable` infers
/// the time order from the files' Parquet `sorting_columns`, and DataFusion 55.2 then lets
/// sibling partitions steal files under `ORDER BY ts LIMIT n`, returning wrong rows (seen
/// here on segments whose time ranges interleave). It also collects no file statistics:
/// from them DataFusion 55.2's filter statistics derive, through `CAST(ts AS DATE) > d
/// AND ...`, that `ts` holds a single value, and drop the sort of `ORDER BY ts`. Our
/// provider must get both right with the default settings.
pub async fn sessions(dir: &tempfile::TempDir, table: &TimeSeriesTable) -> Sessions {
    let ours = session_context();
    register_opened(&ours, "ts_table", table.clone()).unwrap();
    let config = SessionConfig::new()
        .set_bool("datafusion.execution.enable_file_stream_work_stealing", false)
        .set_bool("datafusion.execution.collect_statistics", false);
    let reference = SessionContext::new_with_config(config);
    let data = format!("{}/", dir.path().join("table").join("data").display());
    let listing = ListingTableConfig::new(ListingTableUrl::parse(&data).unwrap())
        .with_listing_options(ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet"))
        .with_schema(table.schema().unwrap());
    reference.register_table("listing", Arc::new(ListingTable::try_new(listing).unwrap())).unwrap();
    Sessions { ours, reference }
}

/// A tiny deterministic generator (Knuth's MMIX LCG); the high bits are the good ones.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

struct QueryGen {
    rng: Lcg,
    /// Interesting instants (ns): segment bounds and bucket boundaries, ± one unit.
    instants: Vec<i64>,
    symbols: Vec<&'static str>,
}

fn utc(nanos: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

impl QueryGen {
    fn new(shape: &Shape, table: &TimeSeriesTable, seed: u64) -> Self {
        let u = unit_nanos(shape.unit);
        let mut base: Vec<i64> = table.segments().iter().flat_map(|s| [s.ts_min, s.ts_max]).collect();
        for minutes in [-60, 0, 5, 10, 29, 30, 45, 60, 90, 100, 120, 125, 150, 180, 240, 245, 300, 360, 600] {
            base.push(B + minutes * MINUTE);
        }
        base.push(B + 30 * MINUTE - u);
        base.push(B + 4 * HOUR + SECOND);
        let mut instants = Vec::new();
        for t in base {
            instants.extend([t, t - u, t + u, t + 1, t - 1, t + SECOND, t - SECOND, t + 20 * SECOND]);
        }
        instants.sort_unstable();
        instants.dedup();
        let symbols = if shape.entity { vec!["A", "B", "C", "D", "Z"] } else { vec!["A", "B", "Z"] };
        QueryGen { rng: Lcg::new(seed), instants, symbols }
    }

    /// A timestamp literal in one of the forms users write.
    fn literal(&mut self) -> String {
        let t = *self.rng.pick(&self.instants);
        let z = utc(t).to_rfc3339_opts(SecondsFormat::AutoSi, true);
        match self.rng.below(7) {
            0 | 1 => format!("'{z}'"),
            2 => {
                let offset = FixedOffset::east_opt(2 * 3600).unwrap();
                format!("'{}'", utc(t).with_timezone(&offset).to_rfc3339_opts(SecondsFormat::AutoSi, true))
            }
            3 => format!("TIMESTAMP '{}'", utc(t).naive_utc().format("%Y-%m-%d %H:%M:%S%.f")),
            4 => format!("CAST('{z}' AS TIMESTAMP)"),
            5 => format!("arrow_cast('{z}', 'Timestamp(Millisecond, Some(\"UTC\"))')"),
            _ => format!("to_timestamp_micros('{z}')"),
        }
    }

    fn column(&mut self) -> &'static str {
        if self.rng.chance(12) {
            "CAST(ts AS TIMESTAMP)"
        } else {
            "ts"
        }
    }

    fn time_atom(&mut self) -> String {
        let ops = ["=", "<", "<=", ">", ">=", "<>"];
        match self.rng.below(14) {
            10..=13 => self.function_atom(),
            0..=3 => {
                let (c, op, l) = (self.column(), *self.rng.pick(&ops), self.literal());
                format!("{c} {op} {l}")
            }
            4 => {
                let (l, op, c) = (self.literal(), *self.rng.pick(&ops), self.column());
                format!("{l} {op} {c}")
            }
            5 | 6 => {
                let (c, lo, hi) = (self.column(), self.literal(), self.literal());
                let not = if self.rng.chance(20) { "NOT " } else { "" };
                format!("{c} {not}BETWEEN {lo} AND {hi}")
            }
            7 => {
                let c = self.column();
                let items: Vec<String> = (0..1 + self.rng.below(4)).map(|_| self.literal()).collect();
                let not = if self.rng.chance(25) { "NOT " } else { "" };
                format!("{c} {not}IN ({})", items.join(", "))
            }
            _ => {
                // A range, the most common real query.
                let (a, b) = (self.literal(), self.literal());
                format!("ts >= {a} AND ts < {b}")
            }
        }
    }

    /// A monotonic function of the time column, as people write date filters, compared
    /// with a value of its own type: `=`, `<`, `<=`, `>`, `>=`, `BETWEEN` or `IN`.
    fn function_atom(&mut self) -> String {
        let ops = ["=", "<", "<=", ">", ">=", "<>"];
        let (function, value): (String, fn(&mut QueryGen) -> String) = match self.rng.below(7) {
            0 => ("CAST(ts AS DATE)".into(), |g| format!("DATE '{}'", g.rng.pick(&DAYS))),
            1 => ("ts::date".into(), |g| format!("'{}'", g.rng.pick(&DAYS))),
            2 => ("to_date(ts)".into(), |g| format!("DATE '{}'", g.rng.pick(&DAYS))),
            3 => {
                let unit = *self.rng.pick(&["minute", "hour", "day"]);
                (format!("date_trunc('{unit}', ts)"), QueryGen::literal)
            }
            4 => {
                let stride = *self.rng.pick(&["15 minutes", "1 hour", "7 minutes"]);
                (format!("date_bin(INTERVAL '{stride}', ts)"), QueryGen::literal)
            }
            5 => ("date_bin(INTERVAL '30 minutes', ts, TIMESTAMP '2024-01-01T00:05:00Z')".into(), QueryGen::literal),
            _ => ("CAST(date_trunc('hour', ts) AS DATE)".into(), |g| format!("DATE '{}'", g.rng.pick(&DAYS))),
        };
        let function = format!("{{f:{function}}}");
        match self.rng.below(6) {
            0 => {
                let (lo, hi) = (value(self), value(self));
                format!("{function} BETWEEN {lo} AND {hi}")
            }
            1 => {
                let items: Vec<String> = (0..1 + self.rng.below(3)).map(|_| value(self)).collect();
                format!("{function} IN ({})", items.join(", "))
            }
            2 => {
                let (v, op) = (value(self), *self.rng.pick(&ops));
                format!("{v} {op} {function}")
            }
            _ => {
                let (op, v) = (*self.rng.pick(&ops), value(self));
                format!("{function} {op} {v}")
            }
        }
    }

    fn other_atom(&mut self) -> String {
        match self.rng.below(5) {
            0 => format!("symbol = '{}'", self.rng.pick(&self.symbols)),
            1 => {
                let (a, b) = (*self.rng.pick(&self.symbols), *self.rng.pick(&self.symbols));
                format!("symbol IN ('{a}', '{b}')")
            }
            2 => format!("symbol <> '{}'", self.rng.pick(&self.symbols)),
            3 => format!("volume > {}", self.rng.below(1000)),
            _ => format!("price < {}", 100 + self.rng.below(100)),
        }
    }

    fn predicate(&mut self, depth: usize) -> String {
        if depth == 0 || self.rng.chance(35) {
            return if self.rng.chance(70) { self.time_atom() } else { self.other_atom() };
        }
        match self.rng.below(5) {
            0 => format!("NOT ({})", self.predicate(depth - 1)),
            1 => format!("({}) OR ({})", self.predicate(depth - 1), self.predicate(depth - 1)),
            _ => format!("({}) AND ({})", self.predicate(depth - 1), self.predicate(depth - 1)),
        }
    }

    /// A query over the table named `{t}`; `true` when its row order is defined.
    fn query(&mut self) -> (String, bool) {
        let p = self.predicate(2);
        let n = 1 + self.rng.below(25);
        match self.rng.below(11) {
            0 | 1 => (format!("SELECT * FROM {{t}} WHERE {p}"), false),
            2 => (format!("SELECT count(*), min(ts), max(ts), sum(volume), max(price) FROM {{t}} WHERE {p}"), false),
            3 => (format!("SELECT symbol, count(*), min(ts), max(ts) FROM {{t}} WHERE {p} GROUP BY symbol"), false),
            4 | 5 => (format!("SELECT ts, symbol, price FROM {{t}} WHERE {p} ORDER BY ts, symbol LIMIT {n}"), true),
            6 => (format!("SELECT ts, symbol, volume FROM {{t}} WHERE {p} ORDER BY ts DESC, symbol LIMIT {n}"), true),
            7 => (
                format!("SELECT date_bin(INTERVAL '15 minutes', ts) AS b, count(*), sum(volume) FROM {{t}} WHERE {p} GROUP BY b"),
                false,
            ),
            8 => (format!("SELECT * FROM {{t}} WHERE {p} ORDER BY ts, symbol LIMIT {n} OFFSET 3"), true),
            // Ordered by time alone: answered from the declared file order, without a sort.
            // Only `ts` is selected so ties cannot make the answer ambiguous.
            9 => (format!("SELECT ts FROM {{t}} WHERE {p} ORDER BY ts LIMIT {}", n * 4), true),
            _ => (format!("SELECT ts FROM {{t}} ORDER BY ts LIMIT {} OFFSET {n}", n * 8), true),
        }
    }
}

/// Rows as strings (column values joined by `|`) and the column types.
fn rows(batches: &[RecordBatch]) -> (Vec<String>, Vec<String>) {
    let mut out = Vec::new();
    let mut types = Vec::new();
    for batch in batches {
        types = batch.schema().fields().iter().map(|f| f.data_type().to_string()).collect();
        for row in 0..batch.num_rows() {
            let values: Vec<String> =
                batch.columns().iter().map(|c| array_value_to_string(c.as_ref() as &dyn Array, row).unwrap()).collect();
            out.push(values.join("|"));
        }
    }
    (out, types)
}

async fn run(ctx: &SessionContext, sql: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let frame = ctx.sql(sql).await.map_err(|e| e.to_string())?;
    let batches = frame.collect().await.map_err(|e| e.to_string())?;
    Ok(rows(&batches))
}

/// Outcome counts of one shape's run.
#[derive(Debug, Default)]
struct Tally {
    queries: usize,
    both_failed: usize,
    nonempty: usize,
    /// Queries for which the provider read fewer files than the table has.
    pruned: usize,
    /// Queries with a time predicate through a function, and how many of them pruned.
    through_functions: usize,
    pruned_through_functions: usize,
    failures: Vec<String>,
}

/// How many Parquet files the provider's plan for `sql` reads (0 when it reads none).
async fn files_read(ctx: &SessionContext, sql: &str) -> Option<usize> {
    // `SmallSegmentsExec` lists the files of the scan it replaced, as the scan does.
    let text = plan_text(ctx, sql).await?;
    let scans = text.lines().filter(|l| l.contains("DataSourceExec") || l.contains("SmallSegmentsExec"));
    Some(scans.map(|l| l.matches(".parquet").count()).sum())
}

/// The indented physical plan of `sql`, if it plans.
async fn plan_text(ctx: &SessionContext, sql: &str) -> Option<String> {
    let plan = ctx.sql(sql).await.ok()?.create_physical_plan().await.ok()?;
    let text = displayable(plan.as_ref()).indent(true).to_string();
    Some(text) // bound first: the display borrows `plan`
}

/// `ctx`'s session without the [`SmallSegments`] rule: DataFusion's own Parquet scan reads
/// the segments, as it does segments over 1 MiB.
fn without_small_segments(ctx: &SessionContext) -> SessionContext {
    let state = ctx.state();
    let rules =
        state.physical_optimizers().iter().filter(|rule| rule.name() != SmallSegments.name()).cloned().collect();
    SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state).with_physical_optimizer_rules(rules).build(),
    )
}

/// `{f:EXPR}` in a template is a function of the time column. The reference hides it from
/// DataFusion 55.2's planner behind a volatile `CASE`: from `CAST(ts AS DATE) = d` the
/// planner concludes that `ts` is constant and drops the sort of `ORDER BY ts` (our
/// provider's session rewrites the filter to a plain range first, so it never sees this).
fn instantiate(template: &str, table: &str, hide_functions: bool) -> String {
    let mut sql = template.replace("{t}", table);
    while let Some(start) = sql.find("{f:") {
        // Function texts hold no braces.
        let end = start + sql[start..].find('}').expect("a closed {f:...}");
        let function = sql[start + 3..end].to_string();
        let replacement =
            if hide_functions { format!("(CASE WHEN random() >= 0 THEN {function} END)") } else { function };
        sql.replace_range(start..=end, &replacement);
    }
    sql
}

async fn compare(sessions: &Sessions, template: &str, ordered: bool, segments: usize, tally: &mut Tally) {
    let ours_sql = instantiate(template, "ts_table", false);
    let listing_sql = instantiate(template, "listing", true);
    tally.queries += 1;
    let through_functions =
        ["::date", "AS DATE)", "date_trunc(", "date_bin(", "to_date("].iter().any(|f| template.contains(f));
    tally.through_functions += usize::from(through_functions);
    if files_read(&sessions.ours, &ours_sql).await.is_some_and(|n| n < segments) {
        tally.pruned += 1;
        tally.pruned_through_functions += usize::from(through_functions);
    }
    match (run(&sessions.ours, &ours_sql).await, run(&sessions.reference, &listing_sql).await) {
        (Ok((mut ours, ours_types)), Ok((mut theirs, their_types))) => {
            if !ordered {
                ours.sort();
                theirs.sort();
            }
            if !ours.is_empty() {
                tally.nonempty += 1;
            }
            if ours != theirs || (!ours.is_empty() && ours_types != their_types) {
                // Show the rows around the first difference.
                let at = ours.iter().zip(&theirs).position(|(a, b)| a != b).unwrap_or(ours.len().min(theirs.len()));
                let window =
                    |rows: &[String]| rows.iter().skip(at.saturating_sub(2)).take(6).cloned().collect::<Vec<_>>();
                tally.failures.push(format!(
                    "{ours_sql}\n  first difference at row {at}\n  provider ({} rows, {ours_types:?}): {:?}\n  listing  ({} rows, {their_types:?}): {:?}",
                    ours.len(),
                    window(&ours),
                    theirs.len(),
                    window(&theirs)
                ));
            }
        }
        (Err(_), Err(_)) => tally.both_failed += 1,
        (ours, theirs) => tally.failures.push(format!(
            "{ours_sql}\n  provider: {:?}\n  listing:  {:?}",
            ours.map(|r| r.0.len()),
            theirs.map(|r| r.0.len())
        )),
    }
}

/// Fixed queries every shape answers, before the random ones.
const FIXED: [&str; 11] = [
    "SELECT count(*), min(ts), max(ts) FROM {t}",
    "SELECT ts FROM {t} ORDER BY ts LIMIT 300",
    "SELECT ts FROM {t} WHERE ts >= '2024-01-01T09:45:00Z' ORDER BY ts LIMIT 100",
    "SELECT ts, symbol FROM {t} WHERE symbol IN ('A', 'C') AND ts < '2024-01-01T11:00:00Z' ORDER BY ts, symbol",
    "SELECT * FROM {t} ORDER BY ts, symbol LIMIT 10",
    "SELECT * FROM {t} ORDER BY ts DESC, symbol LIMIT 10",
    "SELECT * FROM {t} WHERE ts >= '2024-01-01T10:00:00Z' AND ts < '2024-01-01T10:30:00Z' ORDER BY ts, symbol",
    "SELECT * FROM {t} WHERE ts >= '2024-01-01T12:00:00Z' AND ts < '2024-01-01T12:30:00Z' ORDER BY ts, symbol",
    "SELECT count(*) FROM {t} WHERE symbol = 'A' AND ts BETWEEN '2024-01-01T09:00:00Z' AND '2024-01-01T13:00:00Z'",
    "SELECT count(*) FROM {t} WHERE ts = '2024-01-01T13:00:00Z' OR ts = '2024-01-01T09:29:59Z'",
    "SELECT symbol, max(ts) FROM {t} WHERE NOT (ts < '2024-01-01T11:00:00Z') GROUP BY symbol ORDER BY symbol",
];

/// Days around the data (all of it is on 2024-01-01 in every zone used).
const DAYS: [&str; 3] = ["2023-12-31", "2024-01-01", "2024-01-02"];

const RANDOM_QUERIES_PER_SHAPE: usize = 110;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_answers_like_a_listing_table() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut total = 0;
    // Each shape twice: with the default session, whose scans of these small segments are
    // `SmallSegmentsExec`'s, and without that rule, as segments over 1 MiB are read.
    for (i, shape, datafusion_scan) in
        SHAPES.iter().enumerate().flat_map(|(i, shape)| [(i, shape, false), (i, shape, true)])
    {
        let (dir, table) = build(shape).await;
        let mut sessions = sessions(&dir, &table).await;
        if datafusion_scan {
            sessions.ours = without_small_segments(&sessions.ours);
        }
        let text = plan_text(&sessions.ours, "SELECT * FROM ts_table").await.unwrap();
        if datafusion_scan {
            assert!(text.contains("DataSourceExec") && !text.contains("SmallSegmentsExec"), "{text}");
        } else {
            assert!(text.contains("SmallSegmentsExec"), "{text}");
        }
        let name = format!("{}{}", shape.name, if datafusion_scan { " (DataFusion's scan)" } else { "" });
        let segments = table.segments().len();
        let mut tally = Tally::default();
        for template in FIXED {
            compare(&sessions, template, template.contains("ORDER BY"), segments, &mut tally).await;
        }
        let mut queries = QueryGen::new(shape, &table, 0x5eed + i as u64);
        for _ in 0..RANDOM_QUERIES_PER_SHAPE {
            let (template, ordered) = queries.query();
            compare(&sessions, &template, ordered, segments, &mut tally).await;
        }
        total += tally.queries;
        report.push(format!(
            "{}: {} queries, {} with rows, {} read fewer files than the table has ({} of {} through a time function), {} failed on both sides",
            name, tally.queries, tally.nonempty, tally.pruned, tally.pruned_through_functions, tally.through_functions, tally.both_failed
        ));
        // The provider must actually prune, or this test compares two full scans.
        assert!(tally.pruned * 5 > tally.queries, "{}: too few queries prune anything", name);
        assert!(
            tally.pruned_through_functions * 5 > tally.through_functions,
            "{}: time functions prune too rarely",
            name
        );
        // Queries that fail on both sides test nothing; keep them rare.
        assert!(tally.both_failed * 10 < tally.queries, "{}: too many queries fail on both sides", name);
        assert!(tally.nonempty * 2 > tally.queries, "{}: too many queries return nothing", name);
        failures.extend(tally.failures.into_iter().map(|f| format!("[{}] {f}", name)));
    }
    println!("{total} differential queries\n{}", report.join("\n"));
    assert!(failures.is_empty(), "{} of {total} queries differ:\n{}", failures.len(), failures.join("\n\n"));
}
