//! Sorting input that did not arrive in time order, within the append's memory limit.
//!
//! Input that fits in a third of the limit is sorted in memory in one pass (the sort
//! copies it twice). Larger input, with the `sql` feature, goes through DataFusion's sort
//! on a runtime whose memory pool is the limit: sorted runs spilled to the system temp
//! directory and merged. Without the feature, larger input is refused.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::{Stream, StreamExt};

use super::order::SortKey;
use super::sink::SegmentSink;
use crate::error::Result;

/// Sorts `input` by `key` and writes it to `sink`, stopping early once the sink has found
/// an overlap with the table.
pub(crate) async fn sort_into<S>(
    input: S,
    schema: &SchemaRef,
    key: &SortKey,
    memory_limit: usize,
    sink: &mut SegmentSink,
) -> Result<()>
where
    S: Stream<Item = Result<RecordBatch>> + Send,
{
    let mut input = std::pin::pin!(input);
    let mut batches = Vec::new();
    let mut held = 0;
    while let Some(batch) = input.next().await {
        let batch = batch?;
        held += batch.get_array_memory_size();
        batches.push(batch);
        if held > memory_limit / 3 {
            #[cfg(feature = "sql")]
            {
                let rest = futures::stream::iter(batches.into_iter().map(Ok)).chain(input);
                return spilling::sort_into(rest, schema, key, memory_limit, sink).await;
            }
            #[cfg(not(feature = "sql"))]
            return Err(too_little_memory(memory_limit, "sorting beyond memory needs the `sql` feature"));
        }
    }
    if batches.is_empty() {
        return Ok(());
    }
    let sorted = key.sort(schema, batches)?;
    sink.expect_rows(sorted.num_rows() as u64);
    sink.write(&sorted).await
}

fn too_little_memory(memory_limit: usize, detail: impl std::fmt::Display) -> crate::Error {
    crate::Error::invalid_input(format!(
        "the input is not in time order and sorting it needs more memory than the limit of {} MiB ({detail}); \
         raise the memory limit (WriterOptions::with_memory_limit, tsq append --memory-limit)",
        memory_limit >> 20
    ))
}

/// DataFusion's external sort, for input beyond a third of the limit.
#[cfg(feature = "sql")]
mod spilling {
    use std::sync::{Arc, Mutex};

    use arrow::array::{Array, RecordBatch, UInt32Array};
    use arrow::compute::take_record_batch;
    use arrow::datatypes::SchemaRef;
    use datafusion::common::utils::memory::get_record_batch_memory_size;
    use datafusion::error::DataFusionError;
    use datafusion::execution::config::SessionConfig;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::execution::{SendableRecordBatchStream, TaskContext};
    use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
    use datafusion::physical_plan::expressions::Column;
    use datafusion::physical_plan::sorts::sort::SortExec;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
    use datafusion::physical_plan::ExecutionPlan;
    use futures::{Stream, StreamExt};
    use tokio::sync::mpsc;

    use super::super::order::{SortKey, ASCENDING};
    use super::super::sink::SegmentSink;
    use super::too_little_memory;
    use crate::error::{Error, Result};

    /// Batches queued between the input and the sort.
    const QUEUE: usize = 2;
    /// Rows per batch handed to the sort.
    const CHUNK_ROWS: usize = 8192;

    /// Rows `offset..offset + len` of `batch` as a batch the sort can account for: the
    /// sort's memory pool counts every buffer a batch keeps alive, so a small slice of a
    /// large batch would count as the whole of it (and a batch beyond the limit could not
    /// be taken at all). Such a slice is copied into buffers of its own.
    fn sort_chunk(batch: &RecordBatch, offset: usize, len: usize) -> Result<RecordBatch> {
        let chunk = batch.slice(offset, len);
        let used = chunk
            .columns()
            .iter()
            .map(|c| c.to_data().get_slice_memory_size())
            .sum::<std::result::Result<usize, _>>()?;
        if get_record_batch_memory_size(&chunk) <= 2 * used.max(1) {
            return Ok(chunk);
        }
        // `take` copies the rows into new buffers (a concat of one batch would not).
        let rows = UInt32Array::from_iter_values(0..len as u32);
        Ok(take_record_batch(&chunk, &rows)?)
    }

    /// The input, handed to the sort plan once.
    struct Handoff {
        schema: SchemaRef,
        batches: Mutex<Option<mpsc::Receiver<std::result::Result<RecordBatch, DataFusionError>>>>,
    }

    impl std::fmt::Debug for Handoff {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("append input")
        }
    }

    impl PartitionStream for Handoff {
        fn schema(&self) -> &SchemaRef {
            &self.schema
        }

        fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
            let receiver = self.batches.lock().ok().and_then(|mut r| r.take());
            let batches = futures::stream::unfold(receiver, |receiver| async move {
                let mut receiver = receiver?;
                let next = receiver.recv().await?;
                Some((next, Some(receiver)))
            });
            Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), batches))
        }
    }

    pub(super) async fn sort_into<S>(
        input: S,
        schema: &SchemaRef,
        key: &SortKey,
        memory_limit: usize,
        sink: &mut SegmentSink,
    ) -> Result<()>
    where
        S: Stream<Item = Result<RecordBatch>> + Send,
    {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let handoff = Arc::new(Handoff { schema: Arc::clone(schema), batches: Mutex::new(Some(receiver)) });
        let source = StreamingTableExec::try_new(Arc::clone(schema), vec![handoff], None, vec![], false, None)?;
        let ordering = LexOrdering::new(
            key.columns
                .iter()
                .map(|&i| PhysicalSortExpr::new(Arc::new(Column::new(schema.field(i).name(), i)), ASCENDING)),
        )
        .ok_or_else(|| Error::invalid_input("the table has no sort key"))?;
        let plan = SortExec::new(ordering, Arc::new(source));
        let runtime = RuntimeEnvBuilder::new().with_memory_limit(memory_limit, 1.0).build_arc()?;
        // The merge of spilled runs reserves memory up front (10 MiB by default in
        // DataFusion); scale it to the limit so that small limits still sort.
        let config = SessionConfig::new().with_sort_spill_reservation_bytes((memory_limit / 8).min(10 << 20));
        let task = Arc::new(TaskContext::default().with_session_config(config).with_runtime(runtime));
        let mut sorted = plan.execute(0, task)?;

        // The input is fed to the sort while its output is drained, in this one task, so the
        // input needs no 'static lifetime.
        let feed = async move {
            let mut input = std::pin::pin!(input);
            while let Some(item) = input.next().await {
                match item {
                    Ok(batch) => {
                        // One chunk at a time, copied just before it is handed over.
                        for offset in (0..batch.num_rows()).step_by(CHUNK_ROWS) {
                            let chunk = sort_chunk(&batch, offset, CHUNK_ROWS.min(batch.num_rows() - offset))?;
                            if sender.send(Ok(chunk)).await.is_err() {
                                return Ok(()); // the sort stopped; its error is reported
                            }
                        }
                    }
                    Err(e) => {
                        let _ = sender.send(Err(DataFusionError::External("the append input failed".into()))).await;
                        return Err(e);
                    }
                }
            }
            Ok(())
        };
        let drain = async move {
            while let Some(batch) = sorted.next().await {
                let batch = batch.map_err(|e| sort_error(e, memory_limit))?;
                sink.write(&batch).await?;
                if sink.overlap().is_some() {
                    break;
                }
            }
            Ok::<_, Error>(())
        };
        // Whichever ends first: a failed input is reported at once; a drain that ends
        // first (the sort failed, or an overlap stopped it) drops the feed, which does
        // not then wait for more input.
        match futures::future::select(std::pin::pin!(feed), std::pin::pin!(drain)).await {
            futures::future::Either::Left((fed, drain)) => {
                fed?;
                drain.await
            }
            futures::future::Either::Right((drained, _feed)) => drained,
        }
    }

    fn sort_error(error: DataFusionError, memory_limit: usize) -> Error {
        match error.find_root() {
            DataFusionError::ResourcesExhausted(detail) => too_little_memory(memory_limit, detail),
            _ => Error::from(error),
        }
    }
}
