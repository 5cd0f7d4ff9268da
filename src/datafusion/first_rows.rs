//! `FirstRowsInTime`: an optimizer rule that tells a scan of a time-series table when all
//! that reads it is a sort on the time column keeping its first rows
//! (`ORDER BY ts DESC LIMIT 100`), with nothing in between that drops rows but the scan's
//! own filters. When those say exactly which rows match (time ranges, entity `=`/`IN`),
//! the provider leaves out, by exact row counts, listed entities and time ranges, the
//! segments that cannot hold any of those rows ([`Snapshot::select_first_segments`]):
//! on a table of ten thousand overlapping segments, the plan lists those of the last day
//! instead of every file, and [`super::NewestFirst`] reads a few of them.
//!
//! The rule must run after every rule that can change the plan between a sort and its
//! scan (`register` adds it last): it visits the whole plan on every pass, so a scan that
//! no longer sits under such a sort loses the mark, but a rule after it could put a filter
//! under the sort of a marked scan. Plans of subqueries inside expressions
//! (`x < (SELECT ...)`) are not visited, and their scans are not marked. Pure; no I/O.
//!
//! [`Snapshot::select_first_segments`]: crate::table::Snapshot::select_first_segments

use std::sync::Arc;

use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, SortExpr};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::TimeSeriesProvider;
use crate::table::FirstRows;

/// See the module docs; to be added after every other logical optimizer rule.
#[derive(Debug, Default)]
pub struct FirstRowsInTime;

impl OptimizerRule for FirstRowsInTime {
    fn name(&self) -> &str {
        "first_rows_in_time"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        None // `mark` walks the plan itself, carrying what the sort above wants
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        mark(plan, None)
    }
}

/// What a sort above wants of the node it reaches: the first rows in the order of
/// `column` (a column of that node's output).
#[derive(Clone)]
struct Wanted {
    column: Column,
    first: FirstRows,
}

/// `plan` with each scan of a time-series table marked with the first rows a sort above
/// wants of it (`wanted`, as seen from `plan`), or unmarked where nothing does.
fn mark(plan: LogicalPlan, wanted: Option<Wanted>) -> Result<Transformed<LogicalPlan>> {
    let below = match &plan {
        LogicalPlan::Sort(sort) => match (sort.fetch, sort.expr.first()) {
            (Some(rows), Some(SortExpr { expr: Expr::Column(column), asc, .. })) => {
                Some(Wanted { column: column.clone(), first: FirstRows { rows, latest: !asc } })
            }
            _ => None,
        },
        // Both pass every row on; only the column's name may change.
        LogicalPlan::Projection(projection) => wanted.and_then(|w| {
            let index = projection.schema.index_of_column(&w.column).ok()?;
            let expr = match &projection.expr[index] {
                Expr::Alias(alias) => alias.expr.as_ref(),
                expr => expr,
            };
            let Expr::Column(column) = expr else { return None };
            Some(Wanted { column: column.clone(), ..w })
        }),
        LogicalPlan::SubqueryAlias(alias) => wanted.and_then(|w| {
            let index = alias.schema.index_of_column(&w.column).ok()?;
            Some(Wanted { column: Column::from(alias.input.schema().qualified_field(index)), ..w })
        }),
        // A filter the scan below applies too (DataFusion keeps it above a scan whose
        // pushdown is inexact) drops nothing the scan's own filters do not; whether
        // those say exactly which rows match is the provider's to judge.
        LogicalPlan::Filter(filter) => wanted.filter(|_| match filter.input.as_ref() {
            LogicalPlan::TableScan(scan) => {
                split_conjunction(&filter.predicate).into_iter().all(|conjunct| scan.filters.contains(conjunct))
            }
            _ => false,
        }),
        LogicalPlan::TableScan(_) => return mark_scan(plan, wanted),
        // Anything else (a limit, a join, an aggregate) can drop or make rows.
        _ => None,
    };
    plan.map_children(|child| mark(child, below.clone()))
}

/// A scan of a time-series table marked with `wanted`'s first rows, if they are in order
/// of its time column and it has no limit; unmarked otherwise.
fn mark_scan(plan: LogicalPlan, wanted: Option<Wanted>) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::TableScan(mut scan) = plan else { return Ok(Transformed::no(plan)) };
    let Ok(provider) = source_as_provider(&scan.source) else {
        return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
    };
    let Some(table) = provider.downcast_ref::<TimeSeriesProvider>() else {
        return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
    };
    let first = wanted.filter(|_| scan.fetch.is_none()).and_then(|w| {
        let index = scan.projected_schema.index_of_column(&w.column).ok()?;
        (scan.projected_schema.field(index).name() == &table.spec().time_column).then_some(w.first)
    });
    if table.first_rows() == first {
        return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
    }
    scan.source = provider_as_source(Arc::new(table.with_first_rows(first)));
    Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
}
