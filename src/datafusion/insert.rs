//! `INSERT INTO`: a `DataSink` that streams the statement's rows into one append through
//! the table layer (same schema, order, memory, overlap and commit rules as the Rust API).
//! The append runs on a private copy of the shared handle, so scans never wait for it.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::{StreamExt, TryStreamExt};

use super::statement_snapshots::SharedTable;

/// Appends everything an `INSERT` produces, in one commit.
pub(crate) struct TimeSeriesSink {
    shared: Arc<SharedTable>,
    schema: SchemaRef,
}

impl TimeSeriesSink {
    pub(crate) fn new(shared: Arc<SharedTable>, schema: SchemaRef) -> Self {
        TimeSeriesSink { shared, schema }
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
        let mut data = data.map_err(crate::Error::from).peekable();
        // An INSERT of no rows (e.g. from an empty SELECT) commits nothing.
        while let Some(Ok(batch)) = std::pin::Pin::new(&mut data).peek().await {
            if batch.num_rows() > 0 {
                break;
            }
            data.next().await;
        }
        if std::pin::Pin::new(&mut data).peek().await.is_none() {
            return Ok(0);
        }
        let _turn = self.shared.writer_turn().await;
        let mut table = self.shared.handle();
        table.refresh().await?;
        let result = table.append_as(data, "insert").await?;
        self.shared.publish(table);
        Ok(result.rows)
    }
}
