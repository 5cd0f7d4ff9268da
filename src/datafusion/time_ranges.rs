//! An optimizer rule for scans of time-series tables: a filter that compares a function of
//! the time column with constants (`CAST(ts AS DATE) = DATE '2024-01-10'`,
//! `date_trunc('hour', ts) < x`) is replaced by the plain range it selects
//! (`ts >= '2024-01-10T00:00Z' AND ts <= '2024-01-10T23:59:59.999Z'`), when that range is
//! exact.
//!
//! The provider prunes segments through such filters either way. The rewrite adds three
//! things: the Parquet reader prunes row groups and pages by the range, rows are tested
//! by integer comparison instead of a cast per row, and DataFusion's filter statistics never
//! see the cast (in DataFusion 55 they propagate intervals back through it wrongly,
//! conclude the time column holds one value, and drop the sort of `ORDER BY ts`).
//! Only filters right above a scan of a [`TimeSeriesProvider`] are touched: its time
//! values are known to lie in the nanosecond range the preimage is exact over.
//! Pure; no I/O.

use std::sync::Arc;

use arrow::datatypes::Field;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::Transformed;
use datafusion::common::Column;
use datafusion::common::Result;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{col, lit, Expr, Filter, LogicalPlan, TableScan};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::predicate::exact_through_functions;
use super::time_literal::{time_scalar, time_scalar_ceil};
use super::TimeSeriesProvider;
use crate::metadata::TimeSet;

/// See the module docs.
#[derive(Debug, Default)]
pub struct TimeFunctionRanges;

impl OptimizerRule for TimeFunctionRanges {
    fn name(&self) -> &str {
        "time_function_ranges"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        match plan {
            LogicalPlan::Filter(filter) => {
                let LogicalPlan::TableScan(scan) = filter.input.as_ref() else {
                    return Ok(Transformed::no(LogicalPlan::Filter(filter)));
                };
                let Some(time) = time_field(scan) else { return Ok(Transformed::no(LogicalPlan::Filter(filter))) };
                match rewrite(&filter.predicate, &time) {
                    Some(predicate) => Filter::try_new(predicate, Arc::clone(&filter.input))
                        .map(|f| Transformed::yes(LogicalPlan::Filter(f))),
                    None => Ok(Transformed::no(LogicalPlan::Filter(filter))),
                }
            }
            LogicalPlan::TableScan(mut scan) => {
                let Some(time) = time_field(&scan) else { return Ok(Transformed::no(LogicalPlan::TableScan(scan))) };
                let mut changed = false;
                for filter in &mut scan.filters {
                    if let Some(plain) = rewrite(filter, &time) {
                        *filter = plain;
                        changed = true;
                    }
                }
                let plan = LogicalPlan::TableScan(scan);
                Ok(if changed { Transformed::yes(plan) } else { Transformed::no(plan) })
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

/// The time column of a scan of a time-series table.
fn time_field(scan: &TableScan) -> Option<Field> {
    let provider = source_as_provider(&scan.source).ok()?;
    let table = provider.downcast_ref::<TimeSeriesProvider>()?;
    let schema = TableProvider::schema(table);
    Some(schema.field_with_name(&table.spec().time_column).ok()?.clone())
}

/// `predicate` with each conjunct that [`exact_through_functions`] understands replaced by
/// its plain range; `None` when there is none.
fn rewrite(predicate: &Expr, time: &Field) -> Option<Expr> {
    let mut changed = false;
    let conjuncts: Vec<Expr> = split_conjunction(predicate)
        .into_iter()
        .map(|conjunct| {
            // The column as the conjunct names it (with its table qualifier).
            let column = conjunct.column_refs().into_iter().find(|c| c.name == *time.name()).cloned();
            match (column, exact_through_functions(conjunct, time)) {
                (Some(column), Some(set)) => {
                    changed = true;
                    plain_range(&set, &column, time)
                }
                _ => conjunct.clone(),
            }
        })
        .collect();
    if changed {
        conjunction(conjuncts)
    } else {
        None
    }
}

/// `set` as comparisons of the time column `column`. A null time matches none of them, as
/// it matched no comparison of a function of it.
pub(crate) fn plain_range(set: &TimeSet, column: &Column, time: &Field) -> Expr {
    let column = || col(column.clone());
    let data_type = time.data_type();
    let ranges = set.intervals().iter().map(|&(lo, hi)| {
        let lower = (lo != i64::MIN).then(|| column().gt_eq(lit(time_scalar_ceil(lo, data_type))));
        let upper = (hi != i64::MAX).then(|| column().lt_eq(lit(time_scalar(hi, data_type))));
        match (lower, upper) {
            (Some(l), Some(u)) => l.and(u),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => column().is_not_null(),
        }
    });
    ranges.reduce(Expr::or).unwrap_or_else(|| lit(false))
}
