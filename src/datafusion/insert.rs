//! `INSERT INTO`: a `DataSink` that appends the statement's rows as one segment through
//! the table layer (same schema, overlap and commit rules as the Rust API).

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::TryStreamExt;
use tokio::sync::Mutex;

use crate::table::TimeSeriesTable;

/// Appends everything an `INSERT` produces as one segment.
pub struct TimeSeriesSink {
    table: Arc<Mutex<TimeSeriesTable>>,
    schema: SchemaRef,
}

impl TimeSeriesSink {
    pub fn new(table: Arc<Mutex<TimeSeriesTable>>, schema: SchemaRef) -> Self {
        TimeSeriesSink { table, schema }
    }
}

impl fmt::Debug for TimeSeriesSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TimeSeriesSink")
    }
}

impl DisplayAs for TimeSeriesSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("TimeSeriesSink")
    }
}

#[async_trait]
impl DataSink for TimeSeriesSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(&self, data: SendableRecordBatchStream, _context: &Arc<TaskContext>) -> DfResult<u64> {
        let batches: Vec<_> = data.try_collect().await?;
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(0);
        }
        let mut table = self.table.lock().await;
        table.refresh().await?;
        let result = table.append_as(batches, "insert").await?;
        Ok(result.rows)
    }
}
