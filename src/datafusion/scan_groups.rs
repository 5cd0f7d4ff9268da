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
//! unless a filter below that operator keeps one value of a column (one entity). No I/O.

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
use datafusion::physical_expr::{split_conjunction, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

use super::segment_files::SegmentFile;

/// New children, new plan properties.
const RECOMPUTE: ReplaceChildrenOptions = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);

/// The optimizer rule (see the module docs). Registered by [`super::register`].
#[derive(Debug, Default)]
pub struct ScanGroups;

impl PhysicalOptimizerRule for ScanGroups {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        // The plan's own output order may be what the query asked for.
        regroup(plan, true, false, config.execution.target_partitions.max(1))
    }

    fn name(&self) -> &str {
        "scan_groups"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with its scans regrouped where nothing needs their order: an operator needs its
/// input's order when it requires one, or keeps it for a parent that needs it. `selective`:
/// between the scan and the nearest operator that requires its order, a filter keeps only
/// the rows of a column equal to a value (one entity of many).
fn regroup(
    plan: Arc<dyn ExecutionPlan>,
    order_needed: bool,
    selective: bool,
    partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    if !order_needed {
        if let Some(scan) = unordered(&plan, partitions) {
            return Ok(scan);
        }
    } else if !selective {
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
    let mut new_children = Vec::with_capacity(children.len());
    for (i, child) in children.into_iter().enumerate() {
        let requires = required.get(i).is_some_and(Option::is_some);
        let needed = requires || (order_needed && maintained.get(i).copied().unwrap_or(true));
        let selective = filters_one_value || (selective && !requires);
        let new_child = regroup(Arc::clone(child), needed, selective, partitions)?;
        changed |= !Arc::ptr_eq(&new_child, child);
        new_children.push(new_child);
    }
    if changed {
        plan.replace_children(new_children, RECOMPUTE)
    } else {
        Ok(plan)
    }
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
/// in time-ordered groups, more groups than that.
fn unordered(plan: &Arc<dyn ExecutionPlan>, partitions: usize) -> Option<Arc<dyn ExecutionPlan>> {
    let config = plan.downcast_ref::<DataSourceExec>()?.data_source().downcast_ref::<FileScanConfig>()?;
    if config.output_ordering.is_empty() || config.file_groups.len() <= partitions {
        return None;
    }
    let files: Vec<_> = config.file_groups.iter().flat_map(|group| group.files()).collect();
    if !files.iter().all(|file| file.extension::<SegmentFile>().is_some()) {
        return None;
    }
    let config = FileScanConfigBuilder::from(config.clone())
        .with_file_groups(deal_out(files.into_iter().cloned(), partitions).into_iter().map(FileGroup::new).collect())
        .with_output_ordering(Vec::new())
        .with_output_partitioning(None)
        .build();
    Some(DataSourceExec::from_data_source(config))
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
