//! `ORDER BY ts DESC LIMIT n` read newest first (and `ORDER BY ts LIMIT n` oldest first).
//! An optimizer rule ([`NewestFirst`]) gives the scan under such a top-n sort to
//! [`NewestFirstExec`], which reads the segments in order of their latest time (earliest,
//! ascending), a few at a time, and stops once no segment left can hold a row newer (older)
//! than the n-th it already has.
//!
//! DataFusion 55 opens every file of the scan before its top-n filter prunes them, and
//! under an ascending limit it opens the first file of every group, one group per chain
//! of segments that do not overlap; so its cost grew with the segment count. Read this
//! way, it is one segment when segments do not overlap in time, and as many as the first
//! rows are spread over when they do (BENCHMARKS.md, "How cost grows"). Does I/O when
//! executed (the segments' Parquet files, through DataFusion's scan).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Result, ScalarValue};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_optimizer::filter_pushdown::FilterPushdown;
use datafusion::physical_optimizer::pushdown_sort::PushdownSort;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::{sort_batch, SortExec};
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    collect, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};

use super::segment_files::SegmentFile;
use super::small_segments::{file_column, small_segments_scan};

/// The most segments read at once, after the first wave.
const MAX_WAVE: usize = 64;

/// The most segments the first wave reads: those that tie for the first bound, up to the
/// limit (see [`NewestFirstExec::newest`]).
const MAX_FIRST_WAVE: usize = 256;

/// New children, new plan properties.
const RECOMPUTE: ReplaceChildrenOptions = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);

/// The optimizer rule: a top-n sort whose first key is a column the scan reads from the
/// files, over a scan of our segments (through filters and repartitioning only), each
/// with exact bounds of that column and no nulls in it. The sort is DataFusion's top-n
/// `SortExec`, or, where the scan is already in the sort's order (ascending over sorted
/// segments), the ordered merge with a limit that stands for it, which opens every group.
/// Registered by [`super::register`].
#[derive(Debug, Default)]
pub struct NewestFirst;

impl PhysicalOptimizerRule for NewestFirst {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let sort = node.downcast_ref::<SortExec>();
            let merge = node.downcast_ref::<SortPreservingMergeExec>();
            let found = match (sort, merge) {
                (Some(sort), _) => NewestFirstExec::try_new(sort.expr(), sort.fetch(), sort.input())?,
                (None, Some(merge)) => NewestFirstExec::try_new(merge.expr(), merge.fetch(), merge.input())?,
                (None, None) => None,
            };
            let Some(exec) = found else { return Ok(Transformed::no(node)) };
            // A sort keeps its place over the exec; a merge becomes the sort it stands for.
            let replaced = match merge {
                None => Arc::clone(&node).replace_children(vec![Arc::new(exec)], RECOMPUTE)?,
                Some(merge) => Arc::new(SortExec::new(merge.expr().clone(), Arc::new(exec)).with_fetch(merge.fetch())),
            };
            Ok(Transformed::new(replaced, true, TreeNodeRecursion::Jump))
        })
        .data()
    }

    fn name(&self) -> &str {
        "newest_first"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Reads the input of a top-n sort segment by segment in the sort's direction (see the
/// module docs). One output partition, at most `fetch` rows, in no particular order: the
/// sort above orders them.
#[derive(Debug, Clone)]
pub struct NewestFirstExec {
    /// The plan under the sort, ending in the scan: rebuilt over a few segments at a time.
    input: Arc<dyn ExecutionPlan>,
    /// The scan at the leaf of `input`, whose files are read.
    scan: Arc<dyn ExecutionPlan>,
    /// The segments in the order they are read: each one's bound (latest value of the
    /// sort column, or earliest when ascending) and its place (group, index) among the
    /// scan's file groups.
    order: Arc<Vec<(ScalarValue, usize, usize)>>,
    ordering: LexOrdering,
    fetch: usize,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl NewestFirstExec {
    /// Reads `input` for a sort by `ordering` keeping `fetch` rows, if the rule applies.
    fn try_new(ordering: &LexOrdering, fetch: Option<usize>, input: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        let Some(fetch) = fetch.filter(|&n| n > 0) else { return Ok(None) };
        let first = ordering.first();
        let descending = first.options.descending;
        let Some(column) = first.expr.downcast_ref::<Column>() else { return Ok(None) };
        // Down to the scan through operators that keep the schema and drop no row the scan
        // gives them unless a filter says so (counted before the limit either way).
        let mut node = input;
        let scan = loop {
            if node.downcast_ref::<DataSourceExec>().is_some() {
                break node;
            }
            let keeps_rows = node.downcast_ref::<FilterExec>().is_some_and(|f| f.projection().is_none())
                || node.downcast_ref::<RepartitionExec>().is_some();
            let children = node.children();
            if !keeps_rows || children.len() != 1 || node.schema() != children[0].schema() {
                return Ok(None);
            }
            node = children[0];
        };
        let Some(config) =
            scan.downcast_ref::<DataSourceExec>().and_then(|s| s.data_source().downcast_ref::<FileScanConfig>())
        else {
            return Ok(None);
        };
        let schema = scan.schema();
        if column.index() >= schema.fields().len() || schema.field(column.index()).name() != column.name() {
            return Ok(None);
        }
        // The segments' bounds describe the file column, not an expression the scan
        // computes under its name.
        let Some(stat_index) = file_column(config, column.index()) else { return Ok(None) };
        // The files stay in the scan; only their places are sorted, and a wave copies the
        // entries it reads (a table of 100,000 segments reads a few hundred at most).
        let mut order = Vec::new();
        for (g, group) in config.file_groups.iter().enumerate() {
            for (i, file) in group.files().iter().enumerate() {
                let stats = file.statistics.as_ref().and_then(|s| s.column_statistics.get(stat_index));
                let (Some(stats), Some(_)) = (stats, file.extension::<SegmentFile>()) else { return Ok(None) };
                // The bound a segment's first row in the sort's direction can reach.
                let bound = if descending { &stats.max_value } else { &stats.min_value };
                let (Precision::Exact(bound), Precision::Exact(0)) = (bound, &stats.null_count) else {
                    return Ok(None);
                };
                order.push((bound.clone(), g, i));
            }
        }
        if order.len() < 2 {
            return Ok(None);
        }
        order.sort_unstable_by(|a, b| {
            let ascending = a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal);
            if descending {
                ascending.reverse()
            } else {
                ascending
            }
        });
        let input = Arc::clone(input);
        // Rows come out in no order, from every partition at once; what filters made equal
        // or constant across partitions still holds (a sort on such columns is satisfied).
        let mut equivalences = input.properties().eq_properties.clone();
        equivalences.clear_orderings();
        equivalences.clear_per_partition_constants();
        let properties = Arc::new(PlanProperties::new(
            equivalences,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Some(NewestFirstExec {
            input,
            scan: Arc::clone(scan),
            order: Arc::new(order),
            ordering: ordering.clone(),
            fetch,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    /// Whether a segment whose bound (latest value, or earliest when ascending) is `bound`
    /// can be skipped when the `fetch`-th row so far has `threshold`: all its rows come
    /// after that row. With more sort keys, a row equal in the first could still come
    /// before it.
    fn skips(&self, bound: &ScalarValue, threshold: &ScalarValue) -> bool {
        let beyond = if self.ordering.first().options.descending { Ordering::Less } else { Ordering::Greater };
        match bound.partial_cmp(threshold) {
            Some(Ordering::Equal) => self.ordering.len() == 1,
            Some(order) => order == beyond,
            None => false,
        }
    }

    /// `input` with its scan reading only the `wave`'s files, each its own partition.
    /// Small segments are read whole; over large ones goes a top-n sort per partition,
    /// through DataFusion's sort pushdown as in its own plan: a descending scan reads each
    /// file's row groups last first, so the sort's running threshold prunes the rest; an
    /// ascending scan of sorted segments stops after `fetch` rows.
    fn plan_for(
        &self,
        wave: &[(ScalarValue, usize, usize)],
        options: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(scanned) =
            self.scan.downcast_ref::<DataSourceExec>().and_then(|s| s.data_source().downcast_ref::<FileScanConfig>())
        else {
            return internal_err!("NewestFirstExec: its scan is not a file scan");
        };
        let groups =
            wave.iter().map(|&(_, g, i)| FileGroup::new(vec![scanned.file_groups[g].files()[i].clone()])).collect();
        // Built from the scan's parts rather than from a copy of it, which would copy
        // every file entry of the table for each wave. A field a later DataFusion adds to
        // `FileScanConfig` is not carried over unless it is added here.
        let config = FileScanConfigBuilder::new(scanned.object_store_url.clone(), Arc::clone(&scanned.file_source))
            .with_file_groups(groups)
            .with_statistics(scanned.statistics())
            .with_output_ordering(scanned.output_ordering.clone())
            .with_file_compression_type(scanned.file_compression_type)
            .with_limit(scanned.limit)
            .with_preserve_order(scanned.preserve_order)
            .with_constraints(scanned.constraints.clone())
            .with_batch_size(scanned.batch_size)
            .with_expr_adapter(scanned.expr_adapter_factory.clone())
            .build();
        let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        // Small segments are read whole, with no top-n sort per segment: its threshold
        // would prune nothing inside a segment of one row group, and the wave's rows are
        // sorted together afterwards anyway.
        if let Some(small) = small_segments_scan(&scan) {
            return with_leaf(&self.input, small);
        }
        let input = with_leaf(&self.input, scan)?;
        let top: Arc<dyn ExecutionPlan> = Arc::new(
            SortExec::new(self.ordering.clone(), input).with_fetch(Some(self.fetch)).with_preserve_partitioning(true),
        );
        let top = PushdownSort::new().optimize(top, options)?;
        FilterPushdown::new_post_optimization().optimize(top, options)
    }

    async fn newest(&self, context: Arc<TaskContext>) -> Result<RecordBatch> {
        let schema = self.input.schema();
        let read = MetricBuilder::new(&self.metrics).global_counter("segments_read");
        MetricBuilder::new(&self.metrics).global_counter("segments_total").add(self.order.len());
        let mut best = RecordBatch::new_empty(Arc::clone(&schema));
        // The first wave takes every segment that reaches the first bound, up to `fetch`
        // (and its own limit): each holds a row at that bound, so fewer than `fetch` of
        // them can only end the read if one holds several such rows. On 500 overlapping
        // segments of one day, the newest 100 rows are one wave of 100 segments, where
        // doubling from one took seven waves and 127 segments.
        let tied = self.order.iter().take_while(|(bound, _, _)| *bound == self.order[0].0).count();
        let (mut next, mut wave) = (0, tied.min(self.fetch).clamp(1, MAX_FIRST_WAVE));
        while next < self.order.len() {
            if best.num_rows() >= self.fetch {
                let last = best.slice(self.fetch - 1, 1);
                let threshold =
                    ScalarValue::try_from_array(&self.ordering.first().expr.evaluate(&last)?.into_array(1)?, 0)?;
                if self.skips(&self.order[next].0, &threshold) {
                    break; // the files are in bound order: every later one is skipped too
                }
            }
            let end = (next + wave).min(self.order.len());
            let plan = self.plan_for(&self.order[next..end], context.session_config().options())?;
            let mut batches = collect(plan, Arc::clone(&context)).await?;
            read.add(end - next);
            batches.push(best);
            best = sort_batch(&concat_batches(&schema, &batches)?, &self.ordering, Some(self.fetch))?;
            next = end;
            wave = (wave * 2).min(MAX_WAVE);
        }
        Ok(best)
    }
}

/// `plan` (a chain of single-input operators, as the rule accepts) with its leaf, the
/// scan, replaced by `leaf`.
fn with_leaf(plan: &Arc<dyn ExecutionPlan>, leaf: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    match plan.children().as_slice() {
        [] => Ok(leaf),
        [child] => Arc::clone(plan).replace_children(vec![with_leaf(child, leaf)?], RECOMPUTE),
        _ => internal_err!("NewestFirstExec: the scan is not under single-input operators"),
    }
}

impl DisplayAs for NewestFirstExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let direction = if self.ordering.first().options.descending { "" } else { "oldest first, " };
        write!(f, "NewestFirstExec: {direction}segments={}, fetch={}, input=[", self.order.len(), self.fetch)?;
        let mut node = &self.input;
        loop {
            write!(f, "{}", node.name())?;
            match node.children().first() {
                Some(child) => {
                    write!(f, " <- ")?;
                    node = child;
                }
                None => break,
            }
        }
        write!(f, "]")
    }
}

impl ExecutionPlan for NewestFirstExec {
    leaf_exec_methods!("NewestFirstExec");

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("NewestFirstExec has one partition, not {partition}");
        }
        let this = self.clone();
        let schema: SchemaRef = self.input.schema();
        let batch = futures::stream::once(async move { this.newest(context).await });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batch)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
