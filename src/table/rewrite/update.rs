//! Updating rows in place: the segments holding selected rows are rewritten with new
//! values in the assigned columns. The time and entity columns cannot be assigned, so
//! every row keeps its bucket and the coverage does not change.
//!
//! Does I/O: reads candidate segments (twice when some rows match: once to count, once
//! to rewrite) and writes their replacements through the ingest path.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast_with_options, CastOptions};
use futures::StreamExt;

use super::delete::RowSelector;
use super::segment_rows::read_segments;
use super::{Rewrite, Selected};
use crate::error::{Error, Result};
use crate::table::ingest::Staged;
use crate::table::TimeSeriesTable;
use crate::transaction_log::RowChange;

/// Computes a column's new values for every row of a batch (in the table schema); only
/// the selected rows take them.
pub type ColumnValues = Arc<dyn Fn(&RecordBatch) -> Result<ArrayRef> + Send + Sync>;

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct UpdateReport {
    /// The version it committed; `None` when no row matched.
    pub version: Option<u64>,
    /// Rows given new values.
    pub rows_updated: u64,
    /// Segments read to find the selected rows.
    pub segments_read: usize,
    /// Segments rewritten with the new values.
    pub segments_rewritten: usize,
    /// Commit attempts.
    pub attempts: u32,
}

impl TimeSeriesTable {
    /// Sets `assignments` (column name, new values) on the rows `selector` selects, in one
    /// `update` commit. The time column and the entity columns cannot be assigned (delete
    /// and append instead); a NOT NULL column refuses nulls. Conflicts are handled as for
    /// [`Self::delete`].
    #[tracing::instrument(skip_all, fields(location = %self.location()))]
    pub async fn update(
        &mut self,
        selector: &RowSelector,
        assignments: &[(String, ColumnValues)],
    ) -> Result<UpdateReport> {
        self.writable()?;
        for plans in 1.. {
            self.refresh().await?;
            let snapshot = self.snapshot();
            let Some(schema) = snapshot.meta().schema.clone() else { return Ok(UpdateReport::default()) };
            let spec = snapshot.spec();
            let mut columns = Vec::with_capacity(assignments.len());
            for (name, values) in assignments {
                let index = schema
                    .index_of(name)
                    .map_err(|_| Error::invalid_input(format!("the table has no column '{name}' to update")))?;
                if *name == spec.time_column || spec.entity_columns.contains(name) {
                    return Err(Error::invalid_input(format!(
                        "column '{name}' is the time column or an entity column, which UPDATE cannot change (it decides the row's bucket): delete the rows and append them instead"
                    )));
                }
                columns.push((index, Arc::clone(values)));
            }
            if columns.is_empty() {
                return Err(Error::invalid_input("an UPDATE needs at least one column to set"));
            }

            let selection = snapshot.select_segments(&selector.times, &selector.entities).await?;
            let mut report = UpdateReport::default();
            let mut touched = Vec::new();
            for segment in selection.segments {
                report.segments_read += 1;
                let matched = selector.count_in(&snapshot, &segment, &schema).await?;
                if matched > 0 {
                    report.rows_updated += matched;
                    touched.push(segment);
                }
            }
            if touched.is_empty() {
                return Ok(report);
            }
            report.segments_rewritten = touched.len();
            let updated_rows =
                read_segments(self.location().clone(), touched.clone(), Arc::clone(&schema)).map(|batch| {
                    let batch = batch?;
                    let mask = selector.mask(&batch, &snapshot)?;
                    assign(&batch, &mask, &columns)
                });
            let options = self.writer_options().clone();
            let added: Staged = self.stage_rows(updated_rows, Arc::clone(&schema), &options, false).await?;
            let rewrite = Rewrite {
                operation: "update",
                removed: touched,
                added,
                rows: RowChange::default(),
                new_data: None,
                same_rows: true,
                selected: Some(Selected::planned_on(&snapshot, selector)),
            };
            if let Some((version, attempts)) = self.commit_or_replan(&rewrite, plans).await? {
                report.version = Some(version);
                report.attempts = attempts;
                return Ok(report);
            }
        }
        unreachable!("the loop returns")
    }
}

/// `batch` with the selected rows of each assigned column replaced by the new values,
/// cast to the column's type.
fn assign(batch: &RecordBatch, mask: &BooleanArray, columns: &[(usize, ColumnValues)]) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut arrays = batch.columns().to_vec();
    let strict = CastOptions { safe: false, ..Default::default() };
    for (index, values) in columns {
        let field = schema.field(*index);
        let new = values(batch)?;
        let new = cast_with_options(&new, field.data_type(), &strict).map_err(|e| {
            Error::invalid_input(format!(
                "the new values of column '{}' are not {}: {e}",
                field.name(),
                field.data_type()
            ))
        })?;
        let merged = zip(mask, &new, &arrays[*index])?;
        if !field.is_nullable() && merged.null_count() > 0 {
            return Err(Error::invalid_input(format!(
                "column '{}' is NOT NULL, but the update sets it to null",
                field.name()
            )));
        }
        arrays[*index] = merged;
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}
