//! Compaction: merging small segments, and any unsorted ones, into time-sorted segments of
//! a target size. Rows and coverage stay the same; only the files change.
//!
//! Does I/O: reads the chosen segments and writes the merged ones through the ingest path.

use std::sync::Arc;

use super::segment_rows::read_segments;
use super::Rewrite;
use crate::error::{Error, Result};
use crate::metadata::SegmentMeta;
use crate::table::{Snapshot, TimeSeriesTable};
use crate::transaction_log::RowChange;

/// How a compaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CompactOptions {
    /// Rows per merged segment (default: the handle's
    /// [`WriterOptions::segment_rows`](crate::WriterOptions)). Segments with fewer than
    /// half as many rows are merged.
    pub target_rows: Option<u64>,
    /// Only report what would be merged; write nothing.
    pub dry_run: bool,
}

impl CompactOptions {
    /// The defaults: the handle's segment size, for real.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the rows per merged segment.
    pub fn with_target_rows(mut self, rows: u64) -> Self {
        self.target_rows = Some(rows);
        self
    }

    /// Sets whether to only report.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

/// What a compaction did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// The version it committed; `None` for a dry run or when there was nothing to do.
    pub version: Option<u64>,
    /// Rows per merged segment.
    pub target_rows: u64,
    /// Live segments before.
    pub segments_before: usize,
    /// Live segments after (for a dry run, the estimate).
    pub segments_after: usize,
    /// Segments merged (for a dry run, those that would be).
    pub segments_merged: usize,
    /// Segments written (for a dry run, the estimate).
    pub segments_written: usize,
    /// Rows rewritten.
    pub rows_rewritten: u64,
    /// Bytes of the merged segments.
    pub bytes_read: u64,
    /// Bytes of the segments written (0 for a dry run).
    pub bytes_written: u64,
    /// Commit attempts (more than one when other writers committed meanwhile).
    pub attempts: u32,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl CompactReport {
    /// Whether the table was (or would be) left as it was.
    pub fn nothing_to_do(&self) -> bool {
        self.segments_merged == 0
    }
}

/// The segments worth merging, by start time: every unsorted one and every one under half
/// the target; none when that is a single sorted segment.
fn plan(snapshot: &Snapshot, target_rows: u64) -> Vec<Arc<SegmentMeta>> {
    let small = target_rows / 2;
    let inputs: Vec<Arc<SegmentMeta>> =
        snapshot.segments().into_iter().filter(|s| !s.sorted || s.row_count < small.max(1)).collect();
    if inputs.len() == 1 && inputs[0].sorted {
        return Vec::new();
    }
    inputs
}

impl TimeSeriesTable {
    /// Merges small segments, and any unsorted ones, into time-sorted segments of
    /// `options.target_rows`, in one `compact` commit. Rows, coverage and query answers
    /// stay the same; the old files stay (for time travel) until [`Self::vacuum`] removes
    /// them after its retention.
    ///
    /// Plans on the latest version. Appends that land meanwhile are rebased over; when
    /// another rewrite removed one of the merged segments first, it plans again, and
    /// reports nothing to do if nothing is left to merge.
    #[tracing::instrument(skip_all, fields(location = %self.location()))]
    pub async fn compact(&mut self, options: CompactOptions) -> Result<CompactReport> {
        self.writable()?;
        let target_rows = options.target_rows.unwrap_or(self.writer.segment_rows);
        if target_rows == 0 {
            return Err(Error::invalid_input("the target rows per segment must be at least 1"));
        }
        let mut plans = 0;
        loop {
            plans += 1;
            self.refresh().await?;
            let snapshot = self.snapshot();
            let inputs = plan(&snapshot, target_rows);
            let rows: u64 = inputs.iter().map(|s| s.row_count).sum();
            let written_estimate = if inputs.is_empty() { 0 } else { rows.div_ceil(target_rows).max(1) as usize };
            let live = snapshot.state().segments.len();
            let mut report = CompactReport {
                version: None,
                target_rows,
                segments_before: live,
                segments_after: live - inputs.len() + written_estimate,
                segments_merged: inputs.len(),
                segments_written: written_estimate,
                rows_rewritten: rows,
                bytes_read: inputs.iter().map(|s| s.size_bytes).sum(),
                bytes_written: 0,
                attempts: 0,
                dry_run: options.dry_run,
            };
            let Some(schema) = snapshot.meta().schema.clone() else { return Ok(report) };
            if inputs.is_empty() || options.dry_run {
                return Ok(report);
            }
            let writer = self.writer.clone().with_segment_rows(target_rows);
            let input = read_segments(self.location().clone(), inputs.clone(), Arc::clone(&schema));
            let added = self.stage_rows(input, Arc::clone(&schema), &writer, false).await?;
            report.segments_written = added.segments.len();
            report.bytes_written = added.segments.iter().map(|s| s.size_bytes).sum();
            let rewrite = Rewrite {
                operation: "compact",
                removed: inputs,
                added,
                rows: RowChange::default(),
                new_data: None,
                same_rows: true,
                selected: None,
            };
            if let Some((version, attempts)) = self.commit_or_replan(&rewrite, plans).await? {
                report.version = Some(version);
                report.attempts = attempts;
                report.segments_after = self.snapshot().state().segments.len();
                return Ok(report);
            }
        }
    }
}
