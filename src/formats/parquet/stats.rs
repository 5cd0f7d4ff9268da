//! What a segment is, learned on the way through its rows: time extent, row count,
//! sortedness, entities and per-entity bucket coverage.
//!
//! Pure; no I/O. Used both while encoding new segments and while inspecting existing
//! Parquet files, so the two paths cannot disagree.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow::row::{RowConverter, SortField};

use crate::coverage::{BucketCursor, BucketGrid, BucketSet, Coverage};
use crate::error::{Error, Result};
use crate::metadata::entity::EntityReader;
use crate::metadata::time::{nanos_per_unit, to_nanos};
use crate::metadata::{EntityKey, TimeIndexSpec};

/// Facts about one segment's rows.
#[derive(Debug, Clone)]
pub struct SegmentStats {
    /// Number of rows.
    pub row_count: u64,
    /// Inclusive extent in nanoseconds; `None` for no rows.
    pub ts_range: Option<(i64, i64)>,
    /// Whether the rows, in the order seen, are in non-decreasing time order.
    pub sorted: bool,
    /// Per entity, the buckets its rows fall in.
    pub coverage: Coverage,
}

/// Accumulates [`SegmentStats`] over batches.
pub struct StatsCollector {
    spec: TimeIndexSpec,
    buckets: BucketCursor,
    time_index: usize,
    entity_indices: Vec<usize>,
    /// Turns entity columns into comparable byte rows so each row's entity is found
    /// without building a key per row.
    converter: Option<RowConverter>,
    entities: EntityTable,
    row_count: u64,
    ts_range: Option<(i64, i64)>,
    last_ts: Option<i64>,
    sorted: bool,
}

impl StatsCollector {
    /// A collector for batches whose schema is `schema` (validated against `spec`).
    pub fn try_new(spec: &TimeIndexSpec, schema: &Schema) -> Result<Self> {
        spec.validate_schema(schema)?;
        let index_of = |name: &str| schema.index_of(name).map_err(|e| Error::invalid_input(e.to_string()));
        let time_index = index_of(&spec.time_column)?;
        let entity_indices = spec.entity_columns.iter().map(|c| index_of(c)).collect::<Result<Vec<_>>>()?;
        let converter = if entity_indices.is_empty() {
            None
        } else {
            let fields = entity_indices.iter().map(|&i| SortField::new(schema.field(i).data_type().clone())).collect();
            Some(RowConverter::new(fields)?)
        };
        Ok(StatsCollector {
            spec: spec.clone(),
            buckets: BucketCursor::new(BucketGrid::of(spec)),
            time_index,
            entity_indices,
            converter,
            entities: EntityTable::default(),
            row_count: 0,
            ts_range: None,
            last_ts: None,
            sorted: true,
        })
    }

    /// Folds one batch in.
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        let times = timestamps_as_nanos(batch.column(self.time_index), &self.spec.time_column)?;
        let entity_columns: Vec<(&str, &ArrayRef)> = self
            .entity_indices
            .iter()
            .zip(&self.spec.entity_columns)
            .map(|(&i, name)| (name.as_str(), batch.column(i)))
            .collect();
        let reader = EntityReader::try_new(entity_columns)?;
        let rows = match &self.converter {
            Some(converter) => {
                let arrays: Vec<ArrayRef> = self.entity_indices.iter().map(|&i| batch.column(i).clone()).collect();
                Some(converter.convert_columns(&arrays)?)
            }
            None => None,
        };
        for (row, ts) in times.into_iter().enumerate() {
            let ordinal = match &rows {
                None => self.entities.ordinal_of(&[], EntityKey::implicit),
                Some(rows) => self.entities.ordinal_of(rows.row(row).as_ref(), || reader.key(row)),
            };
            let id = self.buckets.id_of(ts);
            let (_, set, last) = &mut self.entities.rows[ordinal];
            // Rows of one entity mostly repeat the bucket they are in; skip the bitmap then.
            if *last != id {
                set.insert_ascending(id);
                *last = id;
            }
            if let Some(prev) = self.last_ts {
                self.sorted &= prev <= ts;
            }
            self.last_ts = Some(ts);
            self.ts_range = Some(match self.ts_range {
                Some((lo, hi)) => (lo.min(ts), hi.max(ts)),
                None => (ts, ts),
            });
        }
        self.row_count += batch.num_rows() as u64;
        Ok(())
    }

    /// Whether the rows observed so far are in non-decreasing time order.
    pub fn sorted(&self) -> bool {
        self.sorted
    }

    /// The statistics of every batch observed.
    pub fn finish(self) -> SegmentStats {
        let mut coverage = Coverage::new();
        for (key, mut set, _) in self.entities.rows {
            set.optimize();
            coverage.insert_set(key, set);
        }
        SegmentStats { row_count: self.row_count, ts_range: self.ts_range, sorted: self.sorted, coverage }
    }
}

/// Entities seen so far, found by their row-encoded bytes.
#[derive(Default)]
struct EntityTable {
    ordinals: HashMap<Box<[u8]>, usize, BuildHasherDefault<EntityHasher>>,
    /// Key, covered buckets, last bucket inserted.
    rows: Vec<(EntityKey, BucketSet, i64)>,
}

impl EntityTable {
    fn ordinal_of(&mut self, row: &[u8], key: impl FnOnce() -> EntityKey) -> usize {
        if let Some(&ordinal) = self.ordinals.get(row) {
            return ordinal;
        }
        let ordinal = self.rows.len();
        self.rows.push((key(), BucketSet::new(), i64::MIN));
        self.ordinals.insert(row.into(), ordinal);
        ordinal
    }
}

/// Hashes row-encoded entity keys with one multiply-and-rotate step per 8 bytes: several
/// times faster than the default SipHash on keys this short, and looked up once per row.
/// Not keyed: entity values are the table's own data, not a remote party's.
#[derive(Default)]
struct EntityHasher(u64);

impl Hasher for EntityHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The values of a timestamp column in nanoseconds; nulls and out-of-range values are errors.
pub fn timestamps_as_nanos(array: &ArrayRef, column: &str) -> Result<Vec<i64>> {
    if array.null_count() > 0 {
        return Err(Error::invalid_input(format!(
            "the time column '{column}' has {} null value(s); every row needs a timestamp",
            array.null_count()
        )));
    }
    let (values, unit): (&[i64], TimeUnit) = match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            (array.as_primitive::<TimestampSecondType>().values(), TimeUnit::Second)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            (array.as_primitive::<TimestampMillisecondType>().values(), TimeUnit::Millisecond)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            (array.as_primitive::<TimestampMicrosecondType>().values(), TimeUnit::Microsecond)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            (array.as_primitive::<TimestampNanosecondType>().values(), TimeUnit::Nanosecond)
        }
        other => {
            return Err(Error::invalid_input(format!(
                "the time column '{column}' has type {other}, expected a Timestamp"
            )))
        }
    };
    if nanos_per_unit(unit) == 1 {
        return Ok(values.to_vec());
    }
    values.iter().map(|&v| to_nanos(v, unit)).collect()
}
