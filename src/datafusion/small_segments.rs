//! `SmallSegments`: a scan of small segments read with one request and one decode per
//! segment, without DataFusion's work per file.
//!
//! DataFusion's Parquet scan prepares each file as if it were large: about forty metrics,
//! the file's Arrow schema decoded twice, pruning predicates built and evaluated for its
//! row groups, a bloom filter step, a projection plan. That is about 0.3 ms per file,
//! more than decoding a segment of a few hundred rows; 500 symbol-day segments of one day
//! spend most of their time there. A small segment is usually one row group (the writer's
//! groups are 131,072 rows), so there is little to prune in it, and this rule hands such
//! scans to [`SmallSegmentsExec`]: it fetches each file whole, decodes the wanted columns
//! batch by batch and lines them up with the table's schema. Filters stay where the
//! planner put them (the provider's pushdown is inexact), so answers are the same. The
//! exec reads files (I/O when executed); the rule does none.

use std::fmt;
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Result, Statistics};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::make_cooperative;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream, StatisticsArgs,
};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::segment_files::SegmentFile;
use crate::metadata::schema::conform_column;

/// The largest segment read whole (inclusive).
const SMALL_BYTES: u64 = 1 << 20;

/// Files fetched ahead of the ones being decoded, shared out among the partitions (each
/// fetches at least the file it reads next): an ordered scan of hundreds of partitions,
/// of which a merge may want one file each, fetches no more than it reads.
const READ_AHEAD: usize = 16;

/// The file column that output column `output` of `config`'s scan reads unchanged, or
/// `None` when the scan computes it (`ts + INTERVAL '1 hour' AS ts`) or it is not in the
/// files (a virtual column, which only DataFusion's reader makes).
pub(crate) fn file_column(config: &FileScanConfig, output: usize) -> Option<usize> {
    let column = match config.file_source.projection() {
        None => output,
        Some(projection) => projection.iter().nth(output)?.expr.downcast_ref::<Column>()?.index(),
    };
    (column < config.file_schema().fields().len()).then_some(column)
}

/// The optimizer rule (see the module docs). Registered by [`super::register`], last.
#[derive(Debug, Default)]
pub struct SmallSegments;

impl PhysicalOptimizerRule for SmallSegments {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| match small_segments_scan(&node) {
            Some(exec) => Ok(Transformed::new(exec, true, TreeNodeRecursion::Continue)),
            None => Ok(Transformed::no(node)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "small_segments"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` as a [`SmallSegmentsExec`], when it is a Parquet scan of our segments, each at
/// most [`SMALL_BYTES`], projecting plain columns, with filters left to the operators above.
pub(super) fn small_segments_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let (config, parquet) = plan.downcast_ref::<DataSourceExec>()?.downcast_to_file_source::<ParquetSource>()?;
    // With pushdown the scan itself drops rows the filter above no longer sees: FilterPushdown
    // copies the session's `pushdown_filters` into the source with the filter it pushes.
    if parquet.table_parquet_options().global.pushdown_filters || !config.table_partition_cols().is_empty() {
        return None;
    }
    let small = |file: &PartitionedFile| {
        file.extension::<SegmentFile>().is_some()
            && file.range.is_none()
            && file.partition_values.is_empty()
            && file.object_meta.size <= SMALL_BYTES
    };
    if !config.file_groups.iter().flat_map(|group| group.files()).all(small) {
        return None;
    }
    let table = Arc::clone(config.file_schema());
    let schema = plan.schema();
    let columns: Vec<usize> = (0..schema.fields().len()).map(|i| file_column(config, i)).collect::<Option<_>>()?;
    if columns.iter().zip(schema.fields()).any(|(&c, f)| table.field(c).data_type() != f.data_type()) {
        return None;
    }
    Some(Arc::new(SmallSegmentsExec {
        scan: Arc::clone(plan),
        columns: columns.into_iter().map(|c| table.field(c).name().clone()).collect(),
        properties: Arc::clone(plan.properties()),
        metrics: parquet.metrics().clone(),
    }))
}

/// Reads each group of small segments one file after another, every file with one request
/// (see the module docs). Its files, store, limit, partitions, order and statistics are
/// those of the scan it replaces, which it keeps.
#[derive(Debug)]
pub struct SmallSegmentsExec {
    /// The replaced `DataSourceExec` (checked by [`small_segments_scan`]).
    scan: Arc<dyn ExecutionPlan>,
    /// The output's columns, by name in the table (and in every segment that has them).
    columns: Arc<[String]>,
    properties: Arc<PlanProperties>,
    /// The replaced scan's metrics, with the provider's segment counts in them.
    metrics: ExecutionPlanMetricsSet,
}

impl SmallSegmentsExec {
    /// The replaced scan's configuration.
    fn config(&self) -> Result<&FileScanConfig> {
        match self.scan.downcast_ref::<DataSourceExec>().and_then(|s| s.data_source().downcast_ref::<FileScanConfig>())
        {
            Some(config) => Ok(config),
            None => internal_err!("SmallSegmentsExec replaces a scan of files"),
        }
    }
}

impl DisplayAs for SmallSegmentsExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let Ok(config) = self.config() else { return write!(f, "SmallSegmentsExec") };
        let segments: usize = config.file_groups.iter().map(FileGroup::len).sum();
        // Then what the replaced scan would show: its files, projection, order and limit
        // (a predicate there only ever pruned; the filter above applies it).
        write!(f, "SmallSegmentsExec: segments={segments}, ")?;
        config.fmt_as(t, f)
    }
}

impl ExecutionPlan for SmallSegmentsExec {
    leaf_exec_methods!("SmallSegmentsExec");

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let config = self.config()?;
        let Some(files) = config.file_groups.get(partition) else {
            return internal_err!("SmallSegmentsExec has {} partitions, not {partition}", config.file_groups.len());
        };
        let store = context.runtime_env().object_store(&config.object_store_url)?;
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let decode_time = baseline.elapsed_compute().clone();
        let read = MetricBuilder::new(&self.metrics).counter("segments_read", partition);
        let batch_size = context.session_config().batch_size();
        let (columns, schema) = (Arc::clone(&self.columns), self.schema());
        // Under a limit the first file may be all that is wanted.
        let ahead = if config.limit.is_some() { 1 } else { (READ_AHEAD / config.file_groups.len()).max(1) };
        let batches = futures::stream::iter(files.files().to_vec())
            .map(move |file| {
                let store = Arc::clone(&store);
                async move {
                    let bytes = store.get(&file.object_meta.location).await?.bytes().await?;
                    Ok::<_, DataFusionError>((file.object_meta.location, bytes))
                }
            })
            .buffered(ahead)
            .map(move |fetched| {
                let (path, bytes) = fetched?;
                read.add(1);
                let segment = SegmentBatches::new(path, bytes, &columns, &schema, batch_size, decode_time.clone())?;
                Ok::<_, DataFusionError>(futures::stream::iter(segment))
            })
            .try_flatten()
            .boxed();
        // Stops at the limit before asking for more, so no file past it is decoded.
        let limited = futures::stream::unfold(
            (batches, config.limit.unwrap_or(usize::MAX), baseline),
            |(mut batches, left, baseline)| async move {
                let next = if left == 0 { None } else { batches.next().await };
                match next {
                    None => {
                        baseline.done();
                        None
                    }
                    Some(Err(e)) => Some((Err(e), (batches, 0, baseline))),
                    Some(Ok(batch)) => {
                        let batch = if batch.num_rows() > left { batch.slice(0, left) } else { batch };
                        baseline.record_output(batch.num_rows());
                        let left = left - batch.num_rows();
                        Some((Ok(batch), (batches, left, baseline)))
                    }
                }
            },
        );
        Ok(make_cooperative(Box::pin(RecordBatchStreamAdapter::new(self.schema(), limited))))
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        self.scan.statistics_from_inputs(input_stats, args)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The batches of one fetched segment, decoded as they are asked for, their columns lined
/// up with the output schema: taken by name, converted where the file stores another type,
/// nulls where the segment predates a column.
struct SegmentBatches {
    path: Path,
    reader: ParquetRecordBatchReader,
    /// For each output column, its place in the decoded batches, if the file has it.
    in_batch: Vec<Option<usize>>,
    schema: SchemaRef,
    decode_time: Time,
}

impl SegmentBatches {
    fn new(
        path: Path,
        bytes: Bytes,
        columns: &[String],
        schema: &SchemaRef,
        batch_size: usize,
        decode_time: Time,
    ) -> Result<Self> {
        let timer = decode_time.timer();
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| in_segment(&path, e.into()))?;
        // The decoded batches hold the file's columns that are wanted, in file order.
        let positions: Vec<Option<usize>> = columns.iter().map(|name| builder.schema().index_of(name).ok()).collect();
        let mut roots: Vec<usize> = positions.iter().flatten().copied().collect();
        roots.sort_unstable();
        roots.dedup();
        let in_batch = positions.iter().map(|p| p.and_then(|p| roots.binary_search(&p).ok())).collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(batch_size)
            .build()
            .map_err(|e| in_segment(&path, e.into()))?;
        drop(timer);
        Ok(SegmentBatches { path, reader, in_batch, schema: Arc::clone(schema), decode_time })
    }

    fn conform(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let columns = self
            .in_batch
            .iter()
            .zip(self.schema.fields())
            .map(|(place, field)| conform_column(place.map(|i| batch.column(i)), field, rows))
            .collect::<crate::error::Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)?)
    }
}

impl Iterator for SegmentBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Result<RecordBatch>> {
        let _timer = self.decode_time.timer();
        let batch = self.reader.next()?;
        Some(
            batch
                .map_err(DataFusionError::from)
                .and_then(|batch| self.conform(batch))
                .map_err(|e| in_segment(&self.path, e)),
        )
    }
}

/// `error` saying which segment it was reading.
fn in_segment(path: &Path, error: DataFusionError) -> DataFusionError {
    error.context(format!("reading segment {path}"))
}
