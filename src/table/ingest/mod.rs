//! Ingest: turning input of any size and any order into time-sorted segments, staged in
//! storage and ready for one commit, while holding at most the memory limit.
//!
//! Input is checked batch by batch against the table schema and followed for time order.
//! The first part of the memory limit holds it while its order is unknown: input that ends
//! there, in order, is written as it is; input that outgrows it, in order, streams into
//! segments from then on. Input out of order is sorted ([`sort`]), spilling to disk beyond
//! the limit. Segments are written by [`sink::SegmentSink`].
//!
//! Does I/O: writes the staged files, and deletes them again when the append fails.

mod files;
mod order;
mod sink;
mod sort;

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::{stream, Stream, StreamExt};

pub use files::{InputFormat, Reencoded};

use self::order::{OrderCheck, SortKey};
use self::sink::SegmentSink;
use super::TimeSeriesTable;
use crate::coverage::Coverage;
use crate::error::{Error, Result};
use crate::formats::parquet::WriterOptions;
use crate::metadata::schema::{check_append_schema, conform_batch};
use crate::metadata::SegmentMeta;
use crate::storage::{PutOutcome, TableLocation};

/// Input that may be held while its order is still unknown: this share of the limit (the
/// rest is for sorting it, should it turn out unsorted).
const UNKNOWN_ORDER_SHARE: usize = 4;

/// Everything one append wrote: committed together or not at all.
pub(crate) struct Staged {
    /// The schema the segments were written with (the table's, or the one the first
    /// append establishes).
    pub(crate) schema: SchemaRef,
    /// Segments whose files are written but not yet committed.
    pub(crate) segments: Vec<SegmentMeta>,
    /// The union of the segments' coverage.
    pub(crate) coverage: Arc<Coverage>,
}

impl Staged {
    /// Nothing staged, for rewrites that add no segment.
    pub(crate) fn empty(schema: SchemaRef) -> Self {
        Staged { schema, segments: Vec::new(), coverage: Arc::new(Coverage::new()) }
    }

    pub(crate) fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.row_count).sum()
    }

    /// Deletes every staged file.
    pub(crate) async fn discard(&self, location: &TableLocation) {
        for segment in &self.segments {
            sink::discard(location, segment).await;
        }
    }
}

impl TimeSeriesTable {
    /// Writes `input` as time-sorted segments of the target size. Nothing is committed;
    /// on error every file written is deleted again.
    pub(crate) async fn stage_stream<S>(&self, input: S) -> Result<Staged>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        let mut input = std::pin::pin!(input);
        let first = loop {
            match input.next().await {
                None => return Err(Error::invalid_input("the input has no rows; nothing to append")),
                Some(batch) => {
                    let batch = batch?;
                    if batch.num_rows() > 0 {
                        break batch;
                    }
                }
            }
        };
        let schema = self.schema_for(&first.schema(), |i| first.column(i).null_count() == 0)?;
        let options = self.writer_options().clone();
        self.stage_rows(stream::iter([Ok(first)]).chain(input), schema, &options, true).await
    }

    /// Writes `input` as time-sorted segments in `schema` with `options`. `fenced`: stop
    /// early when the rows meet the table's coverage (an append; a rewrite's rows are
    /// already in the table). Input without rows stages nothing.
    pub(crate) async fn stage_rows<S>(
        &self,
        input: S,
        schema: SchemaRef,
        options: &WriterOptions,
        fenced: bool,
    ) -> Result<Staged>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        let snapshot = self.snapshot();
        let fence = if fenced { snapshot.table_coverage().await? } else { Arc::new(Coverage::new()) };
        let key = SortKey::new(&schema, self.spec())?;
        let mut sink = SegmentSink::new(
            self.location().clone(),
            Arc::clone(&schema),
            self.spec().clone(),
            options.clone(),
            fence,
        )?;
        let rows_read = self.rows_read.clone();
        let conformed = input.map(|item| {
            let batch = conform(&schema, &item?)?;
            if let Some(counter) = &rows_read {
                counter.fetch_add(batch.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(batch)
        });

        if let Err(e) = route(conformed, &schema, &key, options, &mut sink).await {
            sink.abort().await;
            return Err(e);
        }
        let finished = sink.finish().await?;
        let staged = Staged { schema, segments: finished.segments, coverage: Arc::new(finished.coverage) };
        if let Some(overlap) = finished.overlap {
            staged.discard(self.location()).await;
            return Err(self.overlap_error(&snapshot, overlap).await);
        }
        Ok(staged)
    }
}

/// Checks one batch against the table schema and converts equivalent types.
fn conform(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
    let null_free: Vec<bool> = batch.columns().iter().map(|c| c.null_count() == 0).collect();
    check_append_schema(schema, &batch.schema(), &null_free)?;
    conform_batch(batch, schema)
}

/// Sends in-order input to the sink as it comes, and the rest through the sort.
async fn route<S>(
    input: S,
    schema: &SchemaRef,
    key: &SortKey,
    options: &WriterOptions,
    sink: &mut SegmentSink,
) -> Result<()>
where
    S: Stream<Item = Result<RecordBatch>> + Send,
{
    let mut input = std::pin::pin!(input);
    let mut order = OrderCheck::new(key.clone());
    let mut held = Vec::new();
    let mut held_bytes = 0;
    let mut streaming = false;
    while let Some(batch) = input.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if !order.continues(&batch)? {
            // Segments already written stay (they are in order); what is held, this batch
            // and the rest are sorted into new ones.
            sink.close_segment().await?;
            let rest = stream::iter(held.into_iter().map(Ok)).chain(stream::iter([Ok(batch)])).chain(input);
            return sort::sort_into(rest, schema, key, options.memory_limit, sink).await;
        }
        if streaming {
            sink.write(&batch).await?;
            if sink.overlap().is_some() {
                return Ok(());
            }
            continue;
        }
        held_bytes += batch.get_array_memory_size();
        held.push(batch);
        if held_bytes >= options.memory_limit / UNKNOWN_ORDER_SHARE {
            streaming = true;
            for batch in held.drain(..) {
                sink.write(&batch).await?;
            }
        }
    }
    if !streaming {
        // All input was held: its size is known.
        sink.expect_rows(held.iter().map(|batch| batch.num_rows() as u64).sum());
    }
    for batch in held {
        sink.write(&batch).await?;
    }
    Ok(())
}

/// Creates a file that must not exist yet (fresh random names make a clash a bug).
async fn write_new(location: &TableLocation, path: &str, bytes: Bytes) -> Result<()> {
    match location.put_if_absent(path, bytes).await {
        Ok(PutOutcome::Created) => Ok(()),
        Ok(PutOutcome::AlreadyExists) => Err(Error::storage(
            location.describe(path),
            object_store::Error::AlreadyExists { path: path.to_string(), source: "refusing to overwrite".into() },
        )),
        Err(e) => Err(location.write_error(path, e)),
    }
}

/// [`write_new`], removing the file again if the write failed: a write whose response
/// was lost may have landed, and the (fresh, random) name is this append's alone.
pub(crate) async fn write_own(location: &TableLocation, path: &str, bytes: Bytes) -> Result<()> {
    let result = write_new(location, path, bytes).await;
    if let Err(Error::Storage { source, .. }) = &result {
        if !matches!(source, object_store::Error::AlreadyExists { .. }) {
            let _ = location.delete(path).await;
        }
    }
    result
}
