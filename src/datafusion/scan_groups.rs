//! `ScanGroups`: a scan of overlapping segments read by as many partitions as the session
//! has, when no operator above needs the segments' time order.
//!
//! The provider groups segments so that each group reads in time order (see
//! `ordered_groups`): overlapping segments need a group each, so 500 symbol-day segments
//! of one day become 500 partitions, each with its own stream, metrics and partial
//! aggregate. That is what a merge on time needs, and pure cost to an aggregate, a filter
//! or an unordered limit. After the planner has decided who needs which order, this rule
//! deals such a scan's segments out to the session's partitions and drops the ordering
//! claim. The other way round, a segment cut into ranges for the cores under an operator
//! that does need the order is read whole again, its batches shared out round-robin,
//! unless a filter below that operator keeps one value of a column (one entity). An
//! aggregate only prefers its input in order (groups that start with a time bucket): over
//! few enough rows it hashes them instead, and the ranges stay cut; where a parent needs
//! the aggregate's output in order, its output is sorted. No I/O.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::Result;
use datafusion::common::Statistics;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::OrderingRequirements;
use datafusion::physical_expr::{split_conjunction, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateInputMode};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, Partitioning, StatisticsArgs, StatisticsContext,
};

use super::segment_files::SegmentFile;

/// The most input rows an aggregate hashes instead of reading them in time order: at
/// worst as many groups, each a few hundred bytes. Beyond it the ordered aggregate emits
/// its groups as their time buckets end and holds few.
const MAX_HASHED_ROWS: usize = 1 << 21;

/// New children, new plan properties.
const RECOMPUTE: ReplaceChildrenOptions = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);

/// The optimizer rule (see the module docs). Registered by [`super::register`].
#[derive(Debug, Default)]
pub struct ScanGroups;

impl PhysicalOptimizerRule for ScanGroups {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        // The plan's own output order may be what the query asked for.
        let above = Above { order_needed: true, selective: false, hashed: false };
        regroup(plan, above, config.execution.target_partitions.max(1))
    }

    fn name(&self) -> &str {
        "scan_groups"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// What the operators above a plan ask of its order.
#[derive(Debug, Clone, Copy)]
struct Above {
    /// Some operator needs the plan's time order: it requires one, or keeps it for a
    /// parent that needs it.
    order_needed: bool,
    /// Between the plan and the nearest operator that requires its order, a filter keeps
    /// only the rows of a column equal to a value (one entity of many).
    selective: bool,
    /// An aggregate above hashes the rows instead of taking them in time order, so a
    /// claim of order would only make it choose the ordered way again.
    hashed: bool,
}

/// `plan` with its scans regrouped where nothing needs their order, and aggregates of few
/// enough rows hashing instead of reading in order.
fn regroup(plan: Arc<dyn ExecutionPlan>, above: Above, partitions: usize) -> Result<Arc<dyn ExecutionPlan>> {
    if !above.order_needed {
        if let Some(scan) = unordered(&plan, partitions, above.hashed) {
            return Ok(scan);
        }
    } else if !above.selective {
        // Under a selective filter the merge carries few rows, and the ranges' cores
        // decode side by side without waiting for it.
        if let Some(scan) = rejoined(&plan) {
            return Ok(scan);
        }
    }
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan);
    }
    let required = plan.required_input_ordering();
    let maintained = plan.maintains_input_order();
    let filters_one_value = plan.downcast_ref::<FilterExec>().is_some_and(|filter| keeps_one_value(filter.predicate()));
    let mut changed = false;
    // A hashing aggregate whose output order a parent needs: sorted again above it.
    let mut sort_again = false;
    let mut new_children = Vec::with_capacity(children.len());
    for (i, child) in children.into_iter().enumerate() {
        let (requires, hashes) = match required.get(i) {
            Some(Some(OrderingRequirements::Hard(_))) => (true, false),
            Some(Some(OrderingRequirements::Soft(_))) => {
                let hashes = hashes_instead(&plan);
                (!hashes, hashes)
            }
            _ => (false, false),
        };
        let passes_order = above.order_needed && maintained.get(i).copied().unwrap_or(true);
        sort_again |= hashes && passes_order;
        let order_needed = requires || (passes_order && !hashes);
        let child_above = Above {
            order_needed,
            selective: filters_one_value || (above.selective && !requires),
            hashed: !order_needed && (hashes || (above.hashed && !requires)),
        };
        let new_child = regroup(Arc::clone(child), child_above, partitions)?;
        changed |= !Arc::ptr_eq(&new_child, child);
        new_children.push(new_child);
    }
    if !changed {
        return Ok(plan);
    }
    let ordering = plan.output_ordering().cloned();
    let rebuilt = plan.replace_children(new_children, RECOMPUTE)?;
    match ordering {
        // The aggregated rows are few next to the rows read (at most as many): sorting them
        // costs less than reading in order.
        Some(ordering) if sort_again && rebuilt.output_ordering() != Some(&ordering) => {
            Ok(Arc::new(SortExec::new(ordering, rebuilt).with_preserve_partitioning(true)))
        }
        _ => Ok(rebuilt),
    }
}

/// Whether `plan` is an aggregate that only prefers its input's time order and is better
/// off hashing it: few enough rows, and no aggregate that asks for its own order
/// (`array_agg(x ORDER BY ts)`). Hashing keeps a cut segment's ranges side by side on the
/// cores, where the ordered aggregate waits for them one after the other.
fn hashes_instead(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let Some(aggregate) = plan.downcast_ref::<AggregateExec>() else { return false };
    if aggregate.aggr_expr().iter().any(|e| !e.order_bys().is_empty()) {
        return false;
    }
    raw_rows(aggregate).is_some_and(|rows| rows <= MAX_HASHED_ROWS)
}

/// How many rows an aggregate stage stands for: its input's, or for a stage that merges
/// partial results, the input of the partial stage below it, as far as known.
fn raw_rows(aggregate: &AggregateExec) -> Option<usize> {
    let mut input = Arc::clone(aggregate.input());
    if aggregate.mode().input_mode() == AggregateInputMode::Partial {
        // Through the repartition or coalesce between the two stages.
        loop {
            if let Some(partial) = input.downcast_ref::<AggregateExec>() {
                return raw_rows(partial);
            }
            let [child] = input.children()[..] else { return None };
            input = Arc::clone(child);
        }
    }
    let statistics = StatisticsContext::new().compute(input.as_ref(), &StatisticsArgs::new()).ok()?;
    statistics.num_rows.get_value().copied()
}

/// Whether `predicate` keeps only rows whose column equals a value (`symbol = 'A' AND ...`).
fn keeps_one_value(predicate: &Arc<dyn PhysicalExpr>) -> bool {
    split_conjunction(predicate).into_iter().any(|conjunct| {
        conjunct.downcast_ref::<BinaryExpr>().is_some_and(|eq| {
            let (left, right) = (eq.left(), eq.right());
            *eq.op() == Operator::Eq
                && ((left.downcast_ref::<Column>().is_some() && right.downcast_ref::<Literal>().is_some())
                    || (left.downcast_ref::<Literal>().is_some() && right.downcast_ref::<Column>().is_some()))
        })
    })
}

/// `plan` as an unordered scan over `partitions` groups, when it is a scan of our segments
/// in time-ordered groups, more groups than that; with `hashed`, any file scan claiming an
/// order, its groups as they are, the claim dropped (a claim is never needed, and never
/// wrong to drop).
fn unordered(plan: &Arc<dyn ExecutionPlan>, partitions: usize, hashed: bool) -> Option<Arc<dyn ExecutionPlan>> {
    let config = plan.downcast_ref::<DataSourceExec>()?.data_source().downcast_ref::<FileScanConfig>()?;
    if config.output_ordering.is_empty() {
        return None;
    }
    let files: Vec<_> = config.file_groups.iter().flat_map(|group| group.files()).collect();
    let ours = files.iter().all(|file| file.extension::<SegmentFile>().is_some());
    let regroup = ours && config.file_groups.len() > partitions;
    if !(regroup || hashed) {
        return None;
    }
    let mut builder = FileScanConfigBuilder::from(config.clone()).with_output_ordering(Vec::new());
    if regroup {
        let groups = deal_out(files.into_iter().cloned(), partitions).into_iter().map(FileGroup::new).collect();
        builder = builder.with_file_groups(groups).with_output_partitioning(None);
    }
    Some(DataSourceExec::from_data_source(builder.build()))
}

/// `plan` as one group reading its ranges in order, shared out round-robin to as many
/// partitions, when it is one segment cut into ranges (see `cut_lone_segments`) under an
/// operator that needs their time order: merging ranges that follow each other in time
/// reads them one after another anyway, and partial aggregates of time buckets stall
/// behind the merge (a day cut in two: 15-minute bins 12 % slower than read whole).
fn rejoined(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let config = plan.downcast_ref::<DataSourceExec>()?.data_source().downcast_ref::<FileScanConfig>()?;
    let count = config.file_groups.len();
    if config.output_ordering.is_empty() || count < 2 {
        return None;
    }
    let ranges: Vec<&PartitionedFile> = config.file_groups.iter().flat_map(|group| group.files()).collect();
    let one_file = ranges.iter().all(|file| file.object_meta.location == ranges[0].object_meta.location);
    if ranges.len() != count || !one_file || ranges.iter().any(|file| file.range.is_none()) {
        return None;
    }
    // The whole file again (a group of its ranges would claim no order: DataFusion sees
    // files of the same time range in one group), with the ranges' statistics joined.
    let rows = ranges
        .iter()
        .map(|range| range.statistics.as_ref().map_or(Precision::Absent, |s| s.num_rows))
        .fold(Precision::Exact(0), |sum, rows| sum.add(&rows));
    let mut whole = ranges[0].clone();
    whole.range = None;
    if let Some(statistics) = &whole.statistics {
        let mut statistics = Statistics::clone(statistics);
        statistics.num_rows = rows;
        statistics.total_byte_size = Precision::Inexact(whole.object_meta.size as usize);
        whole.statistics = Some(Arc::new(statistics));
    }
    let config = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(vec![FileGroup::new(vec![whole])])
        .with_output_partitioning(Some(Partitioning::UnknownPartitioning(1)))
        .build();
    let scan = DataSourceExec::from_data_source(config);
    Some(Arc::new(RepartitionExec::try_new(scan, Partitioning::RoundRobinBatch(count)).ok()?.with_preserve_order()))
}

/// `items` dealt out round-robin to at most `groups` groups (fewer when there are fewer
/// items), each keeping the items' order.
pub(super) fn deal_out<T: Clone>(items: impl ExactSizeIterator<Item = T>, groups: usize) -> Vec<Vec<T>> {
    let count = groups.min(items.len()).max(1);
    let mut dealt = vec![Vec::new(); count];
    for (i, item) in items.enumerate() {
        dealt[i % count].push(item);
    }
    dealt
}
