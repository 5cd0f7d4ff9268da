//! The Rust API's chronological scan. It runs through the DataFusion provider, so Rust
//! and SQL read a table the same way (pruning, ordering, bounded memory).
//!
//! Does I/O (Parquet reads through DataFusion).

use std::sync::Arc;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{col, lit, SessionContext};

use super::time_literal::time_scalar_ceil;
use super::TimeSeriesProvider;
use crate::error::Result;
use crate::table::{TimeRange, TimeSeriesTable};

impl TimeSeriesTable {
    /// Streams the rows with a timestamp in `range` (all rows when `None`) in
    /// chronological order, as of this handle's version (call [`Self::refresh`] first to
    /// read newer commits). Memory stays bounded: sorted segments are merged, not sorted.
    pub async fn scan(&self, range: Option<TimeRange>) -> Result<SendableRecordBatchStream> {
        let ctx = SessionContext::new();
        // A handle's scan reads the handle's own version (what `version()`, `segments()`
        // and `coverage()` describe), so the provider gets a copy that never catches up.
        let provider = TimeSeriesProvider::try_new(self.frozen())?;
        let time_column = self.spec().time_column.clone();
        let time_type = provider.time_type().clone();
        let mut frame = ctx.read_table(Arc::new(provider))?;
        if let Some(range) = range {
            // Rounding both bounds up keeps `[start, end)` exact for coarser units.
            let start = lit(time_scalar_ceil(range.start.as_nanos(), &time_type));
            let end = lit(time_scalar_ceil(range.end.as_nanos(), &time_type));
            frame = frame.filter(col(&time_column).gt_eq(start).and(col(&time_column).lt(end)))?;
        }
        let frame = frame.sort(vec![col(&time_column).sort(true, false)])?;
        Ok(frame.execute_stream().await?)
    }
}
