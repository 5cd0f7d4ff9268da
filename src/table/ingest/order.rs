//! The order segments store their rows in: by time, ties by the entity columns, nulls
//! last. Checking that rows arrive in it, and sorting rows in memory into it.
//!
//! Pure; no I/O.

use std::cmp::Ordering;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::buffer::ScalarBuffer;
use arrow::compute::{
    concat, concat_batches, lexsort_to_indices, take_record_batch, LexicographicalComparator, SortColumn, SortOptions,
};
use arrow::datatypes::SchemaRef;

use crate::error::{Error, Result};
use crate::metadata::TimeIndexSpec;

/// The columns that define the order, time first.
#[derive(Debug, Clone)]
pub(crate) struct SortKey {
    /// Column indices: the time column, then the entity columns.
    pub(crate) columns: Vec<usize>,
}

/// Ascending, nulls last, for every key column.
pub(crate) const ASCENDING: SortOptions = SortOptions { descending: false, nulls_first: false };

impl SortKey {
    pub(crate) fn new(schema: &SchemaRef, spec: &TimeIndexSpec) -> Result<Self> {
        let columns = std::iter::once(&spec.time_column)
            .chain(&spec.entity_columns)
            .map(|name| schema.index_of(name).map_err(|e| Error::invalid_input(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        Ok(SortKey { columns })
    }

    fn sort_columns(&self, arrays: impl IntoIterator<Item = ArrayRef>) -> Vec<SortColumn> {
        arrays.into_iter().map(|values| SortColumn { values, options: Some(ASCENDING) }).collect()
    }

    /// Sorts rows held in memory (freeing the input batches once they are gathered).
    pub(crate) fn sort(&self, schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<RecordBatch> {
        let all = concat_batches(schema, &batches)?;
        drop(batches);
        let columns = self.sort_columns(self.columns.iter().map(|&i| all.column(i).clone()));
        let order = lexsort_to_indices(&columns, None)?;
        Ok(take_record_batch(&all, &order)?)
    }
}

/// Follows a stream of batches and tells whether it is still in [`SortKey`] order.
pub(crate) struct OrderCheck {
    key: SortKey,
    /// The key columns of the last row seen.
    last: Option<Vec<ArrayRef>>,
}

impl OrderCheck {
    pub(crate) fn new(key: SortKey) -> Self {
        OrderCheck { key, last: None }
    }

    /// Whether `batch` continues the order of every batch before it.
    pub(crate) fn continues(&mut self, batch: &RecordBatch) -> Result<bool> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(true);
        }
        let keys: Vec<ArrayRef> = self.key.columns.iter().map(|&i| batch.column(i).clone()).collect();
        if let Some(last) = &self.last {
            let pair = last
                .iter()
                .zip(&keys)
                .map(|(previous, next)| concat(&[previous.as_ref(), next.slice(0, 1).as_ref()]))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if !self.in_order(&pair)? {
                return Ok(false);
            }
        }
        if !self.in_order(&keys)? {
            return Ok(false);
        }
        self.last = Some(keys.iter().map(|k| k.slice(rows - 1, 1)).collect());
        Ok(true)
    }

    /// Whether the rows of `keys` (time first) are in order: a pass over the raw time
    /// values, and the entity comparison only where two times are equal.
    fn in_order(&self, keys: &[ArrayRef]) -> Result<bool> {
        let times = keys[0].to_data();
        let values = ScalarBuffer::<i64>::new(times.buffers()[0].clone(), times.offset(), times.len());
        let mut ties = None;
        for i in 1..values.len() {
            match values[i - 1].cmp(&values[i]) {
                Ordering::Less => {}
                Ordering::Greater => return Ok(false),
                Ordering::Equal if keys.len() > 1 => {
                    if ties.is_none() {
                        ties = Some(LexicographicalComparator::try_new(
                            &self.key.sort_columns(keys[1..].iter().cloned()),
                        )?);
                    }
                    if ties.as_ref().expect("set above").compare(i - 1, i) == Ordering::Greater {
                        return Ok(false);
                    }
                }
                Ordering::Equal => {}
            }
        }
        Ok(true)
    }
}
