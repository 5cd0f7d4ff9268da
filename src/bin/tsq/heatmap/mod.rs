//! The coverage heatmap: entities (rows) × time (columns), each cell coloured by the
//! fraction of its buckets that hold data.
//!
//! Two steps, kept apart so the numbers can be tested without the picture:
//! [`heat_grid`] aggregates a table's coverage into at most `max_columns` columns of a
//! round duration (1m, 15m, 1h, 1d, ...), optionally collapsing stretches where no shown
//! entity has any data (nights, weekends) so the picture is spent on the data; with a
//! schedule, cells count scheduled buckets only, and a cell with none is "not scheduled"
//! (NaN), never "missing";
//! [`render_svg`] (in `svg.rs`) turns the grid into a handwritten SVG. Pure; no I/O.

mod svg;

use std::ops::Range;

use timeseries_table_core::coverage::{BucketGrid, BucketSet, Coverage};
use timeseries_table_core::metadata::TimeBucket;

pub use svg::render_svg;

/// How to aggregate.
#[derive(Debug, Clone, Copy)]
pub struct GridOptions {
    pub max_columns: usize,
    pub max_rows: usize,
    /// Drop columns in which no shown entity has data.
    pub collapse_idle: bool,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions { max_columns: 600, max_rows: 50, collapse_idle: true }
    }
}

/// One column of the grid: a time range and whether idle time was dropped before it.
#[derive(Debug, Clone, PartialEq)]
pub struct GridColumn {
    pub start: i64,
    pub end: i64,
    pub break_before: bool,
}

/// The aggregated picture, before drawing. Times in nanoseconds (UTC).
#[derive(Debug, Clone)]
pub struct HeatGrid {
    /// Shown entities, in key order.
    pub entities: Vec<String>,
    /// Share of the drawn buckets (the window less collapsed idle time) each shown
    /// entity covers.
    pub row_ratio: Vec<f64>,
    pub columns: Vec<GridColumn>,
    /// `cells[row][column]`: fraction of the column's (scheduled) buckets the entity
    /// covers; NaN when a schedule expects none of them.
    pub cells: Vec<Vec<f64>>,
    /// Duration of one (unclipped) column.
    pub column_nanos: i64,
    pub window: (i64, i64),
    pub total_entities: usize,
    /// Idle stretches dropped and their total duration.
    pub collapsed_periods: usize,
    pub collapsed_nanos: i64,
}

/// Round column durations, in seconds; a column is a whole number of buckets.
const NICE_SECONDS: [i64; 22] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172_800, 604_800,
    1_209_600, 2_419_200,
];

/// Aggregates `coverage` over the bucket ids `window` into a grid; with `expected` (the
/// scheduled buckets), only those count.
pub fn heat_grid(
    coverage: &Coverage,
    grid: &BucketGrid,
    window: Range<i64>,
    expected: Option<&BucketSet>,
    options: GridOptions,
) -> anyhow::Result<HeatGrid> {
    let bucket = &grid.bucket();
    let len = (window.end - window.start).max(0);
    // Buckets that count in a range, and those of them an entity covers.
    let expected_in = |r: Range<i64>| expected.map_or((r.end - r.start).max(0) as u64, |e| e.count_in(r));
    let covered_in = |set: &BucketSet, r: Range<i64>| match expected {
        Some(e) => set.intersection(e).count_in(r),
        None => set.count_in(r),
    };
    let ratio_of = |covered: u64, of: u64| if of > 0 { covered as f64 / of as f64 } else { 0.0 };
    let mut selected: Vec<(String, BucketSet, f64)> = coverage
        .entities()
        .map(|(key, set)| {
            let set = match expected {
                Some(e) => set.intersection(e),
                None => set.clone(),
            };
            let ratio = ratio_of(set.count_in(window.clone()), expected_in(window.clone()));
            (key.to_string(), set, ratio)
        })
        .collect();
    let total_entities = selected.len();
    if selected.len() > options.max_rows {
        // Show the entities with the least coverage: they are the ones worth looking at.
        selected.sort_by(|a, b| a.2.total_cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        selected.truncate(options.max_rows);
    }
    selected.sort_by(|a, b| a.0.cmp(&b.0));

    // Columns with data or with scheduled buckets are drawn; the rest is idle.
    let mut union = expected.cloned().unwrap_or_default();
    for (_, set, _) in &selected {
        union.union_with(set);
    }
    let mut per_column = 1;
    let mut ids = Vec::new();
    if len > 0 {
        for k in column_widths(bucket) {
            per_column = k;
            ids = column_ids(&union, window.clone(), k, options.collapse_idle);
            if ids.len() <= options.max_columns.max(1) {
                break;
            }
        }
    }

    let mut columns = Vec::with_capacity(ids.len());
    let mut ranges = Vec::with_capacity(ids.len());
    let mut shown_buckets = 0;
    for (i, &c) in ids.iter().enumerate() {
        let range = (c * per_column).max(window.start)..((c + 1) * per_column).min(window.end);
        shown_buckets += range.end - range.start;
        columns.push(GridColumn {
            start: grid.bucket_start(range.start)?,
            end: grid.bucket_start(range.end)?,
            break_before: i > 0 && ids[i - 1] + 1 != c,
        });
        ranges.push(range);
    }
    let shown_expected: u64 = ranges.iter().map(|r| expected_in(r.clone())).sum();
    let row_ratio = selected
        .iter()
        .map(|(_, set, _)| ratio_of(ranges.iter().map(|r| set.count_in(r.clone())).sum(), shown_expected))
        .collect();
    let cells = selected
        .iter()
        .map(|(_, set, _)| {
            ranges
                .iter()
                .map(|r| match expected_in(r.clone()) {
                    0 => f64::NAN,
                    of => covered_in(set, r.clone()) as f64 / of as f64,
                })
                .collect()
        })
        .collect();
    let leading = ranges.first().is_some_and(|r| r.start > window.start);
    let trailing = ranges.last().is_some_and(|r| r.end < window.end);
    let breaks = columns.iter().filter(|c| c.break_before).count();
    Ok(HeatGrid {
        entities: selected.iter().map(|s| s.0.clone()).collect(),
        row_ratio,
        columns,
        cells,
        column_nanos: per_column * bucket.nanos(),
        window: (grid.bucket_start(window.start)?, grid.bucket_start(window.end.max(window.start))?),
        total_entities,
        collapsed_periods: breaks + leading as usize + trailing as usize,
        collapsed_nanos: (len - shown_buckets) * bucket.nanos(),
    })
}

/// Candidate column widths in buckets, smallest first: round durations, then doubling.
fn column_widths(bucket: &TimeBucket) -> impl Iterator<Item = i64> {
    let b = bucket.seconds().max(1);
    let nice: Vec<i64> =
        std::iter::once(1).chain(NICE_SECONDS.iter().filter(|&&d| d > b && d % b == 0).map(|d| d / b)).collect();
    let last = *nice.last().unwrap_or(&1);
    nice.into_iter().chain((1..40).map(move |i| last.saturating_mul(1 << i)))
}

/// Ids (`bucket.div_euclid(k)`) of the columns to draw, ascending.
fn column_ids(union: &BucketSet, window: Range<i64>, k: i64, collapse_idle: bool) -> Vec<i64> {
    if !collapse_idle {
        return (window.start.div_euclid(k)..=(window.end - 1).div_euclid(k)).collect();
    }
    let mut ids: Vec<i64> = Vec::new();
    for run in union.runs_in(window) {
        let first = run.start.div_euclid(k);
        let from = match ids.last() {
            Some(&last) if last >= first => last + 1,
            _ => first,
        };
        ids.extend(from..=(run.end - 1).div_euclid(k));
    }
    ids
}

/// Fill of a cell no schedule expects anything in: white, unlike grey "nothing".
pub const NOT_SCHEDULED: &str = "#ffffff";

/// Colour of a fraction: light grey for nothing, then pale to dark blue; white (not
/// scheduled) for NaN.
pub fn colour(fraction: f64) -> String {
    if fraction.is_nan() {
        return NOT_SCHEDULED.to_string();
    }
    const STOPS: [(f64, [u8; 3]); 5] = [
        (0.0, [0xd4, 0xe4, 0xf4]),
        (0.25, [0x9e, 0xc8, 0xe3]),
        (0.5, [0x52, 0x9d, 0xcc]),
        (0.75, [0x21, 0x71, 0xb5]),
        (1.0, [0x08, 0x30, 0x6b]),
    ];
    if fraction <= 0.0 {
        return "#e9e9ec".to_string();
    }
    let f = fraction.min(1.0);
    let i = STOPS.iter().rposition(|s| s.0 <= f).unwrap_or(0).min(STOPS.len() - 2);
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let t = (f - a.0) / (b.0 - a.0);
    let mix = |j: usize| (a.1[j] as f64 + (b.1[j] as f64 - a.1[j] as f64) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(0), mix(1), mix(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use timeseries_table_core::metadata::{EntityKey, EntityValue};

    fn key(s: &str) -> EntityKey {
        EntityKey(vec![EntityValue::Str(s.into())])
    }

    #[test]
    fn cells_are_fractions_of_buckets_and_idle_time_is_collapsed() {
        let bucket: TimeBucket = "1m".parse().unwrap();
        let mut coverage = Coverage::new();
        let mut a = BucketSet::new();
        a.insert_range(0..60); // first hour full
        a.insert_range(600..630); // half of an hour, 10h later
        let mut b = BucketSet::new();
        b.insert_range(0..15);
        coverage.insert_set(key("A"), a);
        coverage.insert_set(key("B"), b);
        let options = GridOptions { max_columns: 2, ..GridOptions::default() };
        let grid = heat_grid(&coverage, &BucketGrid::utc(bucket), 0..660, None, options).unwrap();
        assert_eq!(grid.column_nanos, 3_600_000_000_000, "the smallest round width giving <= 2 columns");
        assert_eq!(grid.entities, vec!["A", "B"]);
        assert_eq!(grid.columns.len(), 2);
        assert!(grid.columns[1].break_before);
        assert_eq!(grid.cells[0], vec![1.0, 0.5]);
        assert_eq!(grid.cells[1], vec![0.25, 0.0]);
        assert_eq!(grid.row_ratio, vec![0.75, 0.125], "shares of the drawn (not collapsed) time");
        assert_eq!(grid.collapsed_periods, 1);
        assert_eq!(grid.collapsed_nanos, 540 * 60_000_000_000);

        let linear = heat_grid(
            &coverage,
            &BucketGrid::utc(bucket),
            0..660,
            None,
            GridOptions { collapse_idle: false, max_columns: 20, ..options },
        )
        .unwrap();
        assert_eq!(linear.columns.len(), 11);
        assert_eq!(linear.collapsed_periods, 0);
    }

    #[test]
    fn many_entities_keep_the_least_covered() {
        let bucket: TimeBucket = "1h".parse().unwrap();
        let mut coverage = Coverage::new();
        for i in 0..10i64 {
            let mut set = BucketSet::new();
            set.insert_range(0..(i + 1));
            coverage.insert_set(key(&format!("E{i}")), set);
        }
        let options = GridOptions { max_rows: 3, ..GridOptions::default() };
        let grid = heat_grid(&coverage, &BucketGrid::utc(bucket), 0..10, None, options).unwrap();
        assert_eq!(grid.entities, vec!["E0", "E1", "E2"]);
        assert_eq!(grid.total_entities, 10);
        let svg = render_svg(&grid, "t <x>");
        assert!(svg.contains("t &lt;x&gt;") && svg.contains("least covered"));
    }

    #[test]
    fn unscheduled_time_is_not_missing() {
        let bucket: TimeBucket = "1h".parse().unwrap();
        let mut coverage = Coverage::new();
        // Scheduled: hours 9..17 of two days; A has all of day 1 and half of day 2.
        let expected: BucketSet = (9..17).chain(33..41).collect();
        coverage.insert_set(key("A"), (9..17).chain(33..37).collect());
        let options = GridOptions { max_columns: 48, collapse_idle: false, ..GridOptions::default() };
        let grid = heat_grid(&coverage, &BucketGrid::utc(bucket), 0..48, Some(&expected), options).unwrap();
        assert_eq!(grid.columns.len(), 48);
        let row = &grid.cells[0];
        assert!(row[3].is_nan() && row[20].is_nan(), "the night is not scheduled");
        assert_eq!((row[9], row[33], row[40]), (1.0, 1.0, 0.0));
        assert_eq!(grid.row_ratio, vec![0.75], "12 of 16 scheduled hours");
        let svg = render_svg(&grid, "t");
        assert!(svg.contains(NOT_SCHEDULED) && svg.contains("not scheduled"));
        // Collapsing keeps the scheduled hours with no data, and drops the nights.
        let collapsed = GridOptions { max_columns: 48, ..GridOptions::default() };
        let grid = heat_grid(&coverage, &BucketGrid::utc(bucket), 0..48, Some(&expected), collapsed).unwrap();
        assert_eq!(grid.columns.len(), 16);
    }

    #[test]
    fn colours_run_from_grey_to_dark_blue() {
        assert_eq!(colour(0.0), "#e9e9ec");
        assert_eq!(colour(1.0), "#08306b");
        assert_ne!(colour(0.6), colour(0.7));
    }
}
