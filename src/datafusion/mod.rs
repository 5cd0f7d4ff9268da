//! The DataFusion surface: a `TableProvider` with time/entity/coverage pruning (also
//! through date functions of the time column), `INSERT`, the `CREATE EXTERNAL TABLE ...
//! STORED AS TIMESERIES` factory, the coverage table functions, `snapshot()` (a past
//! version in FROM) and gap filling. Thin: every rule is the table layer's; this module
//! translates.

/// The `ExecutionPlan` methods every leaf node of ours writes the same way: its name, the
/// `properties` field, no children and no expressions to visit.
macro_rules! leaf_exec_methods {
    ($name:literal) => {
        fn name(&self) -> &str {
            $name
        }

        fn properties(&self) -> &std::sync::Arc<datafusion::physical_plan::PlanProperties> {
            &self.properties
        }

        fn children(&self) -> Vec<&std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
            vec![]
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
            ) -> datafusion::common::Result<datafusion::common::tree_node::TreeNodeRecursion>,
        ) -> datafusion::common::Result<datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }

        fn with_new_children(
            self: std::sync::Arc<Self>,
            children: Vec<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
        ) -> datafusion::common::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
            if !children.is_empty() {
                return datafusion::common::internal_err!("{} has no inputs", $name);
            }
            Ok(self)
        }
    };
}

#[cfg(feature = "ballista")]
pub mod cluster;
mod dml;
mod exported;
mod factory;
mod first_rows;
mod functions;
pub mod gapfill;
mod insert;
mod metadata_aggregates;
mod newest_first;
mod predicate;
mod preimage;
mod provider;
mod scan_groups;
pub mod script;
mod segment_files;
mod small_segments;
mod statement_snapshots;
mod table_scan;
mod time_literal;
mod time_ranges;

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

#[cfg(feature = "ballista")]
pub use cluster::{remote_session_context, standalone_session_context};
pub use exported::{ExportedFunction, ExportedProvider};
pub use factory::{TimeSeriesTableFactory, FORMAT_NAME};
pub use first_rows::FirstRowsInTime;
pub use functions::{MetadataFunction, MetadataKind, SnapshotFunction};
pub use metadata_aggregates::MetadataAggregates;
pub use newest_first::{NewestFirst, NewestFirstExec};
pub use provider::TimeSeriesProvider;
pub use scan_groups::ScanGroups;
pub use small_segments::{SmallSegments, SmallSegmentsExec};
pub use time_ranges::TimeFunctionRanges;

use crate::error::Result;
use crate::storage::TableLocation;
use crate::table::TimeSeriesTable;

/// Registers the table functions (`coverage`, `gaps`, `last_covered_window`,
/// `coverage_changes`, `segments`, `history`, and `snapshot` for a past version), the
/// `STORED AS TIMESERIES` factory, the [`TimeFunctionRanges`], [`MetadataAggregates`] and
/// [`FirstRowsInTime`] optimizer rules, the [`NewestFirst`], [`ScanGroups`] and
/// [`SmallSegments`] physical optimizer rules and gap filling ([`gapfill::register`]) on
/// `ctx`.
pub fn register(ctx: &SessionContext) {
    register_shared(ctx);
    // Last, once filters and limits are where they stay; its mark does not travel through
    // the cluster codec, so cluster sessions go without it.
    ctx.add_optimizer_rule(Arc::new(FirstRowsInTime));
    let shared = ctx.state_ref();
    let mut state = shared.write();
    // NewestFirst runs before DataFusion's limit, sort and dynamic-filter pushdown, which
    // would otherwise each rebuild the scan (copying every file entry) under a sort it
    // replaces. By then the sort (or the ordered merge) already has the query's limit.
    let mut rules = state.physical_optimizers().to_vec();
    let before = rules.iter().position(|rule| rule.name() == "LimitPushdown").unwrap_or(rules.len());
    rules.insert(before, Arc::new(NewestFirst));
    rules.extend([Arc::new(ScanGroups) as _, Arc::new(SmallSegments) as _]);
    *state = SessionStateBuilder::new_from_existing(state.clone()).with_physical_optimizer_rules(rules).build();
}

/// [`register`] without the physical optimizer rules: for cluster sessions, whose plans
/// travel through the cluster codec (which has no form for [`NewestFirstExec`]) and are
/// split into stages by the cluster's own planner.
pub(crate) fn register_shared(ctx: &SessionContext) {
    for kind in MetadataKind::ALL {
        ctx.register_udtf(kind.name(), Arc::new(MetadataFunction::new(kind)));
    }
    ctx.register_udtf(SnapshotFunction::NAME, Arc::new(SnapshotFunction));
    ctx.add_optimizer_rule(Arc::new(TimeFunctionRanges));
    ctx.add_optimizer_rule(Arc::new(MetadataAggregates));
    gapfill::register(ctx);
    ctx.state_ref().write().table_factories_mut().insert(FORMAT_NAME.to_string(), Arc::new(TimeSeriesTableFactory));
}

/// A new `SessionContext` with everything of [`register`] in it.
pub fn session_context() -> SessionContext {
    let ctx = SessionContext::new();
    register(&ctx);
    ctx
}

/// Opens the table at `location` (a path or URL) and registers it as `name`.
pub async fn register_table(ctx: &SessionContext, name: &str, location: &str) -> Result<Arc<TimeSeriesProvider>> {
    let table = TimeSeriesTable::open(TableLocation::parse(location)?).await?;
    register_opened(ctx, name, table)
}

/// Registers an already opened table as `name`.
pub fn register_opened(ctx: &SessionContext, name: &str, table: TimeSeriesTable) -> Result<Arc<TimeSeriesProvider>> {
    let provider = Arc::new(TimeSeriesProvider::try_new(table)?);
    ctx.register_table(name, provider.clone())?;
    Ok(provider)
}
