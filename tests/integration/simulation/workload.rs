//! What the simulated actors do, drawn from the seed, and the model those operations mean:
//! rows as (time, symbol, volume), changed one committed operation at a time.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::Rng;
use crate::common::{MINUTE, T0};

/// Timestamps lie on a 20-second grid, three per one-minute bucket.
pub const STEP: i64 = MINUTE / 3;
/// The writers' symbols; `Z` holds the base table's rows, `F` the final writer's.
pub const SYMBOLS: [&str; 3] = ["A", "B", "C"];
/// Minutes the writers' data spans.
pub const SPAN_MINUTES: i64 = 40;

/// One row: nanoseconds, symbol, volume (unique per writer operation).
pub type Row = (i64, String, i64);

/// Rows selected by a time range `[from, to)` and an optional symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    pub from: i64,
    pub to: i64,
    pub symbol: Option<&'static str>,
}

impl Selection {
    pub fn holds(&self, row: &Row) -> bool {
        self.from <= row.0 && row.0 < self.to && self.symbol.is_none_or(|s| s == row.1)
    }

    /// The same condition in SQL.
    pub fn sql(&self) -> String {
        let at = |n: i64| timeseries_table_core::Timestamp::from_nanos(n).to_string();
        let mut condition = format!("ts >= '{}' AND ts < '{}'", at(self.from), at(self.to));
        if let Some(symbol) = self.symbol {
            condition.push_str(&format!(" AND symbol = '{symbol}'"));
        }
        condition
    }
}

/// One operation of an actor.
#[derive(Debug, Clone)]
pub enum Op {
    /// `append` of the rows (possibly out of order, possibly overlapping what is there).
    Append(Vec<Row>),
    /// `delete`, through Rust or SQL.
    Delete {
        selection: Selection,
        sql: bool,
    },
    /// `update` of the volume (`volume + add`).
    Update {
        selection: Selection,
        add: i64,
    },
    /// `replace` of whole minutes with the rows (inside them).
    Replace {
        selection: Selection,
        rows: Vec<Row>,
    },
    Compact {
        target_rows: u64,
    },
    AddColumn(String),
    /// `vacuum` with this retention.
    Vacuum {
        retention_secs: u64,
    },
    /// A reader: pins the latest version, reads it, waits, reads it again.
    Read {
        pause_ms: u64,
    },
}

impl Op {
    /// The commit operation name it writes, if it commits.
    pub fn commit_name(&self) -> Option<&'static str> {
        Some(match self {
            Op::Append(_) => "append",
            Op::Delete { .. } => "delete",
            Op::Update { .. } => "update",
            Op::Replace { .. } => "replace",
            Op::Compact { .. } => "compact",
            Op::AddColumn(_) => "add_columns",
            Op::Vacuum { .. } | Op::Read { .. } => return None,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let minute = |n: i64| (n - T0) as f64 / MINUTE as f64;
        let sel = |s: &Selection| format!("[{:.2}m, {:.2}m) {}", minute(s.from), minute(s.to), s.symbol.unwrap_or("*"));
        match self {
            Op::Append(rows) => {
                let first = rows.iter().map(|r| r.0).min().unwrap_or(0);
                let last = rows.iter().map(|r| r.0).max().unwrap_or(0);
                let symbols: BTreeSet<&str> = rows.iter().map(|r| r.1.as_str()).collect();
                write!(f, "append {} rows {symbols:?} {:.2}m..{:.2}m", rows.len(), minute(first), minute(last))
            }
            Op::Delete { selection, sql } => write!(f, "delete{} {}", if *sql { " (SQL)" } else { "" }, sel(selection)),
            Op::Update { selection, add } => write!(f, "update volume+{add} {}", sel(selection)),
            Op::Replace { selection, rows } => write!(f, "replace {} with {} rows", sel(selection), rows.len()),
            Op::Compact { target_rows } => write!(f, "compact to {target_rows} rows"),
            Op::AddColumn(name) => write!(f, "add column {name}"),
            Op::Vacuum { retention_secs } => write!(f, "vacuum retention {retention_secs}s"),
            Op::Read { pause_ms } => write!(f, "read, pause {pause_ms}ms, read again"),
        }
    }
}

/// The operations of every actor: writers first, then readers. `id` numbers operations
/// over all actors (volumes derive from it, so every row is traceable to its writer).
pub fn draw(rng: &mut Rng, writers: usize, readers: usize, ops_per_actor: usize) -> Vec<Vec<(usize, Op)>> {
    let mut id = 0;
    let mut actors = Vec::new();
    for _ in 0..writers {
        let mut ops = Vec::new();
        for _ in 0..1 + rng.below(ops_per_actor as u64) as usize {
            id += 1;
            ops.push((id, writer_op(rng, id)));
        }
        actors.push(ops);
    }
    for _ in 0..readers {
        let mut ops = Vec::new();
        for _ in 0..1 + rng.below(3) as usize {
            id += 1;
            ops.push((id, Op::Read { pause_ms: rng.below(3000) }));
        }
        actors.push(ops);
    }
    actors
}

fn writer_op(rng: &mut Rng, id: usize) -> Op {
    let symbol = |rng: &mut Rng| SYMBOLS[rng.below(SYMBOLS.len() as u64) as usize];
    match rng.below(100) {
        0..=39 => {
            let start = rng.below(SPAN_MINUTES as u64) as i64;
            let minutes = 1 + rng.below(5) as i64;
            let symbols: Vec<&str> = (0..1 + rng.below(2)).map(|_| symbol(rng)).collect();
            let mut rows = minute_rows(rng, id, &symbols, start, minutes);
            if rng.below(3) == 0 {
                rows.reverse();
            }
            Op::Append(rows)
        }
        40..=54 => Op::Delete { selection: selection(rng, false), sql: rng.below(3) == 0 },
        55..=64 => Op::Update { selection: selection(rng, false), add: id as i64 * 1_000_000 },
        65..=74 => {
            let selection = selection(rng, true);
            let symbols: Vec<&str> = match selection.symbol {
                Some(s) => vec![s],
                None => SYMBOLS.to_vec(),
            };
            let start = (selection.from - T0) / MINUTE;
            let minutes = (selection.to - selection.from) / MINUTE;
            let rows = minute_rows(rng, id, &symbols, start, minutes);
            Op::Replace { selection, rows }
        }
        75..=86 => Op::Compact { target_rows: [4, 50, 1000][rng.below(3) as usize] },
        87..=92 => Op::AddColumn(format!("c{id}")),
        _ => Op::Vacuum { retention_secs: 60 },
    }
}

/// A time range over the writers' span (whole minutes when `aligned`) and maybe a symbol.
fn selection(rng: &mut Rng, aligned: bool) -> Selection {
    let unit = if aligned { MINUTE } else { STEP };
    let units = SPAN_MINUTES * MINUTE / unit;
    let from = rng.below(units as u64) as i64;
    let len = 1 + rng.below((8 * MINUTE / unit) as u64) as i64;
    let symbol = (rng.below(3) != 0).then(|| SYMBOLS[rng.below(SYMBOLS.len() as u64) as usize]);
    Selection { from: T0 + from * unit, to: T0 + (from + len) * unit, symbol }
}

/// Some of the grid points of `minutes` minutes from `start`, for each symbol.
fn minute_rows(rng: &mut Rng, id: usize, symbols: &[&str], start: i64, minutes: i64) -> Vec<Row> {
    let mut rows = Vec::new();
    for symbol in symbols.iter().collect::<BTreeSet<_>>() {
        for step in start * 3..(start + minutes) * 3 {
            if rng.below(4) != 0 {
                let volume = id as i64 * 1000 + rows.len() as i64;
                rows.push((T0 + step * STEP, symbol.to_string(), volume));
            }
        }
    }
    if rows.is_empty() {
        rows.push((T0 + start * MINUTE, symbols[0].to_string(), id as i64 * 1000));
    }
    rows
}

/// The rows as a batch of `schema` (added columns null).
pub fn batch(schema: &SchemaRef, rows: &[Row]) -> RecordBatch {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
        Arc::new(StringArray::from(rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
    ];
    for field in schema.fields().iter().skip(3) {
        columns.push(new_null_array(field.data_type(), rows.len()));
    }
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
}

/// The table's columns before any is added.
pub fn base_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("volume", DataType::Int64, true),
    ]))
}

/// The table as the committed operations make it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// Sorted.
    pub rows: Vec<Row>,
    /// Columns added so far.
    pub added_columns: Vec<String>,
}

impl Model {
    pub fn covered(&self) -> BTreeSet<(String, i64)> {
        self.rows.iter().map(|r| (r.1.clone(), r.0.div_euclid(MINUTE))).collect()
    }

    /// The model after `op` committed on top of it, with the rows it reports (appended,
    /// deleted, updated, or for a replace the rows of the range removed); an error when
    /// `op` could not have committed here.
    pub fn after(&self, op: &Op) -> Result<(Model, u64), String> {
        let mut next = self.clone();
        let changed = match op {
            Op::Append(rows) => {
                let covered = self.covered();
                if let Some(r) = rows.iter().find(|r| covered.contains(&(r.1.clone(), r.0.div_euclid(MINUTE)))) {
                    return Err(format!("it overlaps: {} at {} is covered", r.1, r.0));
                }
                next.rows.extend(rows.iter().cloned());
                rows.len() as u64
            }
            Op::Delete { selection, .. } => {
                next.rows.retain(|r| !selection.holds(r));
                (self.rows.len() - next.rows.len()) as u64
            }
            Op::Update { selection, add } => {
                let mut changed = 0;
                for row in next.rows.iter_mut().filter(|r| selection.holds(r)) {
                    row.2 += add;
                    changed += 1;
                }
                changed
            }
            Op::Replace { selection, rows } => {
                next.rows.retain(|r| !selection.holds(r));
                let removed = (self.rows.len() - next.rows.len()) as u64;
                let covered = next.covered();
                if rows.iter().any(|r| covered.contains(&(r.1.clone(), r.0.div_euclid(MINUTE)))) {
                    return Err("its rows overlap what stays".into());
                }
                next.rows.extend(rows.iter().cloned());
                removed
            }
            Op::Compact { .. } => 0,
            Op::AddColumn(name) => {
                next.added_columns.push(name.clone());
                0
            }
            Op::Vacuum { .. } | Op::Read { .. } => return Err("it does not commit".into()),
        };
        if changed == 0 && matches!(op, Op::Delete { .. } | Op::Update { .. }) {
            return Err("no row matches, so it commits nothing".into());
        }
        next.rows.sort();
        Ok((next, changed))
    }
}
