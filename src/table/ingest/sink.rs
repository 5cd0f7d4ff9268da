//! Writing time-sorted rows as new segments while they arrive: each segment is encoded
//! (its columns side by side, see [`SegmentEncoder`]) and uploaded row group by row group
//! (multipart once it outgrows one part), its statistics and coverage are computed on
//! another thread, and a segment is closed at the first new timestamp after it reaches the
//! target size.
//!
//! Does I/O: uploads data files and coverage sidecars. Nothing is committed here; the
//! staged segments go to the commit loop, or are deleted by [`SegmentSink::abort`].

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::write_own;
use crate::coverage::{sidecar, Coverage, Overlap};
use crate::environment;
use crate::error::{Error, Result};
use crate::formats::parquet::stats::timestamps_as_nanos;
use crate::formats::parquet::{
    row_group_plan, segment_properties, SegmentEncoder, SegmentStats, StatsCollector, WriterOptions,
};
use crate::metadata::segment::MAX_LISTED_ENTITIES;
use crate::metadata::{SegmentId, SegmentMeta, TimeIndexSpec};
use crate::storage::{TableLocation, Upload};

/// Batches are written in slices of at most this many rows, so a segment can be closed
/// close to its target however large the batches are; a slice as long as a row group
/// keeps the encoder's tasks (a column of a row group each) many.
const SLICE_ROWS: usize = 128 * 1024;
/// Batches queued for the statistics thread.
const STATS_QUEUE: usize = 4;

/// Receives time-sorted batches (in the table schema) and stages them as segments.
pub(crate) struct SegmentSink {
    location: TableLocation,
    schema: SchemaRef,
    spec: TimeIndexSpec,
    options: WriterOptions,
    time_index: usize,
    open: Option<OpenSegment>,
    staged: Vec<SegmentMeta>,
    /// The open segment is full: close it at the next timestamp after `last_ts`.
    full: bool,
    /// The table's coverage when the append began: a closed segment that overlaps it
    /// stops the append early (the commit checks again against the latest version).
    fence: Arc<Coverage>,
    overlap: Option<Overlap>,
    /// The union of the closed segments' coverage (each segment's own is in its sidecar).
    coverage: Coverage,
    /// Rows still to come, when the input's size is known ([`SegmentSink::expect_rows`]).
    expected: Option<u64>,
}

/// What the sink staged.
pub(crate) struct Finished {
    pub(crate) segments: Vec<SegmentMeta>,
    pub(crate) coverage: Coverage,
    /// An overlap with the table found when a segment closed.
    pub(crate) overlap: Option<Overlap>,
}

struct OpenSegment {
    id: SegmentId,
    path: String,
    encoder: SegmentEncoder,
    upload: Upload,
    stats_queue: mpsc::Sender<RecordBatch>,
    stats: JoinHandle<Result<StatsCollector>>,
    rows: u64,
    /// The last time value written, in nanoseconds.
    last_ts: i64,
}

impl SegmentSink {
    pub(crate) fn new(
        location: TableLocation,
        schema: SchemaRef,
        spec: TimeIndexSpec,
        options: WriterOptions,
        fence: Arc<Coverage>,
    ) -> Result<Self> {
        let time_index = schema.index_of(&spec.time_column).map_err(|e| Error::invalid_input(e.to_string()))?;
        Ok(SegmentSink {
            location,
            schema,
            spec,
            options,
            time_index,
            open: None,
            staged: Vec::new(),
            full: false,
            fence,
            overlap: None,
            coverage: Coverage::new(),
            expected: None,
        })
    }

    /// Says how many rows are left to write, when the input's size is known: the
    /// segments they fill then end in a small row group of the newest rows
    /// ([`row_group_plan`]).
    pub(crate) fn expect_rows(&mut self, rows: u64) {
        self.expected = Some(rows);
    }

    /// The first overlap with the table's data found so far; writing on is pointless.
    pub(crate) fn overlap(&self) -> Option<&Overlap> {
        self.overlap.as_ref()
    }

    /// Writes `batch`, whose rows follow the previous batch's in time order.
    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = SLICE_ROWS.min(batch.num_rows() - offset);
            self.write_slice(batch.slice(offset, len)).await?;
            offset += len;
        }
        Ok(())
    }

    async fn write_slice(&mut self, mut batch: RecordBatch) -> Result<()> {
        while batch.num_rows() > 0 {
            if let (true, Some(open)) = (self.full, &self.open) {
                // Close at a change of timestamp, so equal timestamps never span two
                // segments and the segments' time ranges do not overlap.
                let times = timestamps_as_nanos(batch.column(self.time_index), &self.spec.time_column)?;
                let Some(cut) = times.iter().position(|&t| t > open.last_ts) else {
                    return self.write_to_open(&batch).await;
                };
                if cut > 0 {
                    self.write_to_open(&batch.slice(0, cut)).await?;
                }
                self.close_segment().await?;
                batch = batch.slice(cut, batch.num_rows() - cut);
                continue;
            }
            // Up to the target, then (full) on to the next new timestamp.
            let written = self.open.as_ref().map_or(0, |open| open.rows);
            let room = usize::try_from(self.options.segment_rows.saturating_sub(written)).unwrap_or(usize::MAX).max(1);
            let take = room.min(batch.num_rows());
            self.write_to_open(&batch.slice(0, take)).await?;
            batch = batch.slice(take, batch.num_rows() - take);
        }
        Ok(())
    }

    async fn write_to_open(&mut self, batch: &RecordBatch) -> Result<()> {
        let last_row = batch.column(self.time_index).slice(batch.num_rows() - 1, 1);
        let last_ts = timestamps_as_nanos(&last_row, &self.spec.time_column)?[0];
        if self.open.is_none() {
            self.open = Some(self.start_segment()?);
        }
        let open = self.open.as_mut().expect("opened above");
        // Statistics run on their own thread while this one encodes.
        if open.stats_queue.send(batch.clone()).await.is_err() {
            // The statistics thread stopped: its error says why.
            let open = self.open.take().expect("open");
            return Err(open.abandon(&self.location).await.unwrap_or_else(|| Error::Task("statistics stopped".into())));
        }
        if let Err(source) = open.encoder.write(batch) {
            return Err(Error::parquet(self.location.describe(&open.path), source));
        }
        let encoded = open.encoder.take_bytes();
        if !encoded.is_empty() {
            open.upload.write(&encoded).await.map_err(|e| Error::storage(self.location.describe(&open.path), e))?;
        }
        open.rows += batch.num_rows() as u64;
        open.last_ts = last_ts;
        if let Some(expected) = &mut self.expected {
            *expected = expected.saturating_sub(batch.num_rows() as u64);
        }
        let bytes = (open.encoder.bytes_written() + open.encoder.in_progress_size()) as u64;
        self.full = open.rows >= self.options.segment_rows || bytes >= self.options.segment_bytes;
        Ok(())
    }

    fn start_segment(&self) -> Result<OpenSegment> {
        let id = SegmentId::random();
        let path = format!("data/{id}.parquet");
        let upload = self.location.upload(&path, self.options.upload_part_bytes);
        let properties = segment_properties(&self.schema, &self.spec, &self.options)?;
        let mut encoder = SegmentEncoder::try_new(Arc::clone(&self.schema), properties)
            .map_err(|source| Error::parquet(self.location.describe(&path), source))?;
        if let Some(rows) = self.expected {
            encoder.plan_row_groups(row_group_plan(rows.min(self.options.segment_rows), self.options.row_group_rows));
        }
        let (stats_queue, batches) = mpsc::channel::<RecordBatch>(STATS_QUEUE);
        let spec = self.spec.clone();
        let schema = Arc::clone(&self.schema);
        let stats = environment::spawn_fold(
            batches,
            move || StatsCollector::try_new(&spec, &schema),
            |collector, batch| collector.observe(&batch),
        );
        Ok(OpenSegment { id, path, encoder, upload, stats_queue, stats, rows: 0, last_ts: i64::MIN })
    }

    /// Closes the open segment, if any: the next batch starts a new one. Called where the
    /// time order restarts.
    pub(crate) async fn close_segment(&mut self) -> Result<()> {
        self.full = false;
        let Some(mut open) = self.open.take() else { return Ok(()) };
        drop(open.stats_queue);
        let finished = complete(&mut open.encoder, &mut open.upload, &self.location, &open.path).await;
        let stats = join_stats(open.stats).await;
        let size_bytes = open.encoder.bytes_written() as u64;
        if let Err(e) = finished {
            // An upload still open is aborted; one that completed before the error is
            // deleted (the name is this append's alone).
            open.upload.abort().await;
            let _ = self.location.delete(&open.path).await;
            return Err(e);
        }
        let stats = match stats {
            Ok(stats) => stats,
            Err(e) => {
                let _ = self.location.delete(&open.path).await;
                return Err(e);
            }
        };
        let staged = stage_files(&self.location, open.id, open.path, &stats, size_bytes).await?;
        if self.overlap.is_none() {
            self.overlap = self.fence.first_overlap(&stats.coverage);
        }
        self.coverage.union_with(&stats.coverage);
        self.staged.push(staged);
        Ok(())
    }

    /// Closes the last segment and hands over everything staged. On error nothing is
    /// left behind.
    pub(crate) async fn finish(mut self) -> Result<Finished> {
        if let Err(e) = self.close_segment().await {
            self.abort().await;
            return Err(e);
        }
        Ok(Finished { segments: std::mem::take(&mut self.staged), coverage: self.coverage, overlap: self.overlap })
    }

    /// Abandons the append: the open upload is aborted and staged files are deleted.
    pub(crate) async fn abort(mut self) {
        if let Some(open) = self.open.take() {
            open.abandon(&self.location).await;
        }
        for staged in self.staged.drain(..) {
            discard(&self.location, &staged).await;
        }
    }
}

impl OpenSegment {
    /// Stops the statistics thread (returning its error, if it failed) and aborts the
    /// upload; the file is deleted in case a part of it landed.
    async fn abandon(mut self, location: &TableLocation) -> Option<Error> {
        drop(self.stats_queue);
        let stats = join_stats(self.stats).await;
        self.upload.abort().await;
        let _ = location.delete(&self.path).await;
        stats.err()
    }
}

/// Encodes the footer and completes the upload.
async fn complete(
    encoder: &mut SegmentEncoder,
    upload: &mut Upload,
    location: &TableLocation,
    path: &str,
) -> Result<()> {
    encoder.finish().map_err(|source| Error::parquet(location.describe(path), source))?;
    let rest = encoder.take_bytes();
    let uploaded = async {
        upload.write(&rest).await?;
        upload.finish().await
    };
    uploaded.await.map_err(|e| Error::storage(location.describe(path), e))
}

async fn join_stats(handle: JoinHandle<Result<StatsCollector>>) -> Result<SegmentStats> {
    let collector = handle.await.map_err(|e| Error::Task(format!("computing segment statistics failed: {e}")))??;
    Ok(collector.finish())
}

/// Writes the coverage sidecar of a data file already stored at `path` and describes the
/// pair as a segment to commit. On failure the data file is deleted too.
pub(crate) async fn stage_files(
    location: &TableLocation,
    id: SegmentId,
    path: String,
    stats: &SegmentStats,
    size_bytes: u64,
) -> Result<SegmentMeta> {
    let Some((ts_min, ts_max)) = stats.ts_range else {
        let _ = location.delete(&path).await;
        return Err(Error::invalid_input("the input has no rows; nothing to append"));
    };
    let coverage_path = format!("_coverage/segments/{id}.roar");
    let keys: Vec<_> = stats.coverage.entities().map(|(k, _)| k.clone()).collect();
    let entity_count = keys.len() as u64;
    let entities = (keys.len() <= MAX_LISTED_ENTITIES).then_some(keys);
    let sidecar_bytes = Bytes::from(sidecar::encode(&stats.coverage));
    if let Err(e) = write_own(location, &coverage_path, sidecar_bytes).await {
        let _ = location.delete(&path).await;
        return Err(e);
    }
    Ok(SegmentMeta {
        id,
        path,
        coverage_path,
        ts_min,
        ts_max,
        row_count: stats.row_count,
        size_bytes,
        // Written sorted, or adopted because its rows were already in time order.
        sorted: true,
        entity_count,
        entities,
        added_in_version: 0,
    })
}

/// Deletes a staged segment's files (it was never committed).
pub(crate) async fn discard(location: &TableLocation, segment: &SegmentMeta) {
    let _ = location.delete(&segment.path).await;
    let _ = location.delete(&segment.coverage_path).await;
}
