//! The analyzer rule: finds the aggregate grouped by `date_bin_gapfill`, turns that into
//! `date_bin` under a [`GapFill`] node with the time range read from the WHERE clause,
//! moves `locf`/`interpolate` of the projection above into the node's fill strategies,
//! and rejects the placeholders anywhere else.

use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::datatypes::DataType;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{plan_datafusion_err, plan_err, Column, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Aggregate, Expr, Extension, LogicalPlan, Projection, TableScan};
use datafusion::optimizer::AnalyzerRule;

use super::plan::{filled_name, Fill, GapFill, GapFillParams};
use super::Placeholder;
use crate::datafusion::predicate::{literal, time_set};
use crate::datafusion::time_literal::scalar_nanos;
use crate::datafusion::TimeSeriesProvider;
use crate::table::Expected;

/// More bins per series than this is almost certainly a mistake (a year of seconds is 31 M).
const MAX_BINS: i64 = 50_000_000;

/// See the module docs.
#[derive(Debug, Default)]
pub struct GapFillRule;

impl AnalyzerRule for GapFillRule {
    fn name(&self) -> &str {
        "gap_fill"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let rewritten = plan.transform_up_with_subqueries(rewrite)?;
        let mut plan = rewritten.data;
        if rewritten.transformed {
            // Every node above a gap fill keeps the schema it was built with, in which the
            // filled columns may still be declared non-null.
            plan = plan.transform_up_with_subqueries(|node| node.recompute_schema().map(Transformed::yes))?.data;
        }
        reject_leftovers(&plan)?;
        Ok(plan)
    }
}

fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    match plan {
        LogicalPlan::Aggregate(aggregate) => gap_fill_aggregate(aggregate),
        LogicalPlan::Projection(projection) if gap_fill_of(&projection.input).is_some() => fill_strategies(projection),
        other => Ok(Transformed::no(other)),
    }
}

fn gap_fill_of(plan: &LogicalPlan) -> Option<&GapFill> {
    match plan {
        LogicalPlan::Extension(Extension { node }) => node.as_any().downcast_ref::<GapFill>(),
        _ => None,
    }
}

fn gap_fill_aggregate(aggregate: Aggregate) -> Result<Transformed<LogicalPlan>> {
    let calls: Vec<usize> = aggregate
        .group_expr
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            matches!(Placeholder::of(unalias(e)), Some(Placeholder::Gapfill | Placeholder::GapfillScheduled))
        })
        .map(|(i, _)| i)
        .collect();
    let time = match calls.as_slice() {
        [] => return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate))),
        [one] => *one,
        _ => return plan_err!("date_bin_gapfill() may appear only once in GROUP BY"),
    };
    if aggregate.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
        return plan_err!("gap filling does not support GROUPING SETS, CUBE or ROLLUP");
    }
    let call = &aggregate.group_expr[time];
    let name = call.schema_name().to_string();
    let function = unalias(call);
    let (Some(kind), Expr::ScalarFunction(ScalarFunction { args, .. })) = (Placeholder::of(function), function) else {
        unreachable!("checked above")
    };
    let fname = kind.name();
    if !(2..=3).contains(&args.len()) {
        return plan_err!("{fname}() takes 2 or 3 arguments, got {}", args.len());
    }

    let stride = match literal(&args[0]) {
        Some(ScalarValue::IntervalMonthDayNano(Some(i))) if i.months == 0 => {
            i128::from(i.days) * 86_400_000_000_000 + i128::from(i.nanoseconds)
        }
        Some(ScalarValue::IntervalMonthDayNano(Some(_))) => {
            return plan_err!("{fname}() needs a fixed stride: months and years vary in length")
        }
        _ => return plan_err!("{fname}() takes a constant interval as its stride, e.g. INTERVAL '5 minutes'"),
    };
    let stride = match i64::try_from(stride) {
        Ok(s) if s > 0 => s,
        _ => return plan_err!("{fname}() needs a positive stride"),
    };
    // The column, possibly under the cast to nanoseconds that coercion adds for `date_bin`.
    let (column, binned_type) = match &args[1] {
        Expr::Column(c) => (c, None),
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Column(c) => (c, Some(cast.field.data_type().clone())),
            _ => return plan_err!("{fname}() needs the time column itself as its second argument, not {}", args[1]),
        },
        other => return plan_err!("{fname}() needs the time column itself as its second argument, not {other}"),
    };
    let field = aggregate.input.schema().qualified_field_from_column(column)?.1.clone();
    let binned_type = binned_type.unwrap_or_else(|| field.data_type().clone());
    let (DataType::Timestamp(_, zone), DataType::Timestamp(unit, _)) = (field.data_type().clone(), binned_type) else {
        return plan_err!("{fname}() bins a timestamp column; {} is {}", column.name, field.data_type());
    };
    let unit_nanos = crate::metadata::time::nanos_per_unit(unit);
    if stride % unit_nanos != 0 {
        return plan_err!("the stride of {fname}() is finer than {} ({unit:?} precision)", column.name);
    }
    let (origin, expected) = match (kind, args.get(2)) {
        (Placeholder::Gapfill, Some(origin)) => {
            let origin = literal(origin).as_ref().and_then(scalar_nanos);
            let Some(origin) = origin else { return plan_err!("{fname}() takes a constant timestamp as its origin") };
            (origin, None)
        }
        (Placeholder::GapfillScheduled, Some(schedule)) => match literal(schedule) {
            Some(ScalarValue::Utf8(Some(text))) => {
                (0, Some(Expected::parse(&text).map_err(|e| plan_datafusion_err!("{fname}(): {e}"))?))
            }
            _ => return plan_err!("{fname}() takes a schedule as text: 'table', 'always' or a schedule"),
        },
        (Placeholder::GapfillScheduled, None) => (0, Some(Expected::TableSchedule)),
        _ => (0, None),
    };
    if origin % unit_nanos != 0 {
        return plan_err!("the origin of {fname}() is finer than {} ({unit:?} precision)", column.name);
    }

    // The range: what the filters below admit of the time column.
    let mut filters = Vec::new();
    let scan = filters_below(&aggregate.input, &column.name, &mut filters);
    let times = time_set(&filters, &field);
    let (first_bin, last_bin) = match (times.intervals().first(), times.intervals().last()) {
        (Some(&(lo, _)), Some(&(_, hi))) => {
            let missing = match (lo == i64::MIN, hi == i64::MAX) {
                (true, true) => Some("both a lower and an upper bound"),
                (true, false) => Some("a lower bound"),
                (false, true) => Some("an upper bound"),
                (false, false) => None,
            };
            if let Some(missing) = missing {
                return plan_err!(
                    "gap filling needs a time range, and the WHERE clause gives {} {missing}: \
                     write e.g. WHERE {} >= '2024-01-02T00:00:00Z' AND {} < '2024-01-03T00:00:00Z'",
                    column.name,
                    column.name,
                    column.name
                );
            }
            match (bin(lo, origin, stride), bin(hi, origin, stride)) {
                (Some(first), Some(last)) => (first, last),
                _ => {
                    return plan_err!("{fname}(): the first or last bin of the range starts before 1677 or after 2262")
                }
            }
        }
        _ => (1, 0), // nothing is admitted: no bins
    };
    if first_bin <= last_bin
        && (i128::from(last_bin) - i128::from(first_bin)) / i128::from(stride) >= i128::from(MAX_BINS)
    {
        return plan_err!(
            "{fname}() would insert more than {MAX_BINS} bins per series between {} and {}: narrow the range or widen the stride",
            crate::metadata::format_nanos(first_bin),
            crate::metadata::format_nanos(last_bin)
        );
    }
    let sessions = match expected {
        None => None,
        Some(expected) => Some(sessions(&expected, scan, zone.as_deref(), first_bin, last_bin, stride)?),
    };

    // `date_bin` in its place, under the same name, so everything above still resolves.
    let mut date_bin_args = vec![args[0].clone(), args[1].clone()];
    if kind == Placeholder::Gapfill && args.len() == 3 {
        date_bin_args.push(args[2].clone());
    }
    let date_bin =
        Expr::ScalarFunction(ScalarFunction::new_udf(datafusion::functions::datetime::date_bin(), date_bin_args))
            .alias(name);
    let mut group_expr = aggregate.group_expr.clone();
    group_expr[time] = date_bin;
    let groups = group_expr.len();
    let binned = Aggregate::try_new_with_schema(
        Arc::clone(&aggregate.input),
        group_expr,
        aggregate.aggr_expr.clone(),
        Arc::clone(&aggregate.schema),
    )?;
    let columns = binned.schema.fields().len();
    let fill = (0..columns).map(|i| if i < groups { Fill::Key } else { Fill::Null }).collect();
    let params = GapFillParams {
        time,
        series: (0..groups).filter(|&i| i != time).collect(),
        fill,
        filled: Vec::new(),
        stride,
        first_bin,
        last_bin,
        sessions,
    };
    let node = GapFill::try_new(Arc::new(LogicalPlan::Aggregate(binned)), params)?;
    Ok(Transformed::yes(LogicalPlan::Extension(Extension { node: Arc::new(node) })))
}

/// The start of the bin holding `t`, as `date_bin` computes it; `None` when that is not
/// a nanosecond timestamp.
fn bin(t: i64, origin: i64, stride: i64) -> Option<i64> {
    let offset = i128::from(t) - i128::from(origin);
    i64::try_from(i128::from(origin) + offset.div_euclid(i128::from(stride)) * i128::from(stride)).ok()
}

/// The sessions of `expected` that meet the bins, in the schedule's zone, else the time
/// column's, else UTC.
fn sessions(
    expected: &Expected,
    scan: Option<&TableScan>,
    column_zone: Option<&str>,
    first_bin: i64,
    last_bin: i64,
    stride: i64,
) -> Result<Vec<(i64, i64)>> {
    let table = scan
        .and_then(|scan| source_as_provider(&scan.source).ok())
        .and_then(|provider| provider.downcast_ref::<TimeSeriesProvider>().map(TimeSeriesProvider::table_meta));
    let schedule = match expected {
        Expected::Always => return Ok(vec![(i64::MIN, i64::MAX)]),
        Expected::Schedule(schedule) => schedule.as_ref().clone(),
        Expected::TableSchedule => match table.as_ref().and_then(|meta| meta.schedule.clone()) {
            Some(schedule) => schedule,
            None if table.is_some() => {
                return plan_err!(
                    "the table has no schedule: give date_bin_gapfill_scheduled() one as its third argument \
                     (e.g. 'America/New_York; Mon-Fri 09:30-16:00'), or set the table's with tsq alter DIR set-schedule"
                )
            }
            None => {
                return plan_err!(
                    "date_bin_gapfill_scheduled() without a schedule argument needs a time-series table; \
                     give the schedule as its third argument"
                )
            }
        },
    };
    let zone = table.as_ref().and_then(|meta| meta.time_index.timezone.clone()).or(column_zone.map(str::to_string));
    let zone: Tz = zone.and_then(|z| z.parse().ok()).unwrap_or_else(|| "UTC".parse().expect("UTC is a zone"));
    if first_bin > last_bin {
        return Ok(Vec::new());
    }
    let end = last_bin.saturating_add(stride);
    Ok(schedule.sessions_between(first_bin, end, &zone).into_iter().map(|r| (r.start, r.end)).collect())
}

/// Collects the filters of the single-input chain below an aggregate, for as long as the
/// time column passes through unchanged; returns the scan at its bottom.
fn filters_below<'a>(plan: &'a LogicalPlan, time: &str, out: &mut Vec<Expr>) -> Option<&'a TableScan> {
    match plan {
        LogicalPlan::Filter(filter) => {
            out.push(filter.predicate.clone());
            filters_below(&filter.input, time, out)
        }
        LogicalPlan::TableScan(scan) => {
            out.extend(scan.filters.iter().cloned());
            Some(scan)
        }
        LogicalPlan::Projection(Projection { expr, input, .. }) => {
            let passes_through = expr.iter().any(|e| match e {
                Expr::Column(c) => c.name == time,
                Expr::Alias(a) => a.name == time && matches!(a.expr.as_ref(), Expr::Column(c) if c.name == time),
                _ => false,
            });
            if passes_through {
                filters_below(input, time, out)
            } else {
                None
            }
        }
        LogicalPlan::SubqueryAlias(alias) => filters_below(&alias.input, time, out),
        LogicalPlan::Sort(sort) => filters_below(&sort.input, time, out),
        LogicalPlan::Limit(limit) => filters_below(&limit.input, time, out),
        LogicalPlan::Repartition(repartition) => filters_below(&repartition.input, time, out),
        _ => None,
    }
}

/// Turns `locf(column)` and `interpolate(column)` in the projection over a gap fill into
/// references to filled columns the node appends.
fn fill_strategies(projection: Projection) -> Result<Transformed<LogicalPlan>> {
    let node = gap_fill_of(&projection.input).expect("checked by the caller");
    let mut params = node.params.clone();
    let input_schema = Arc::clone(node.input.schema());
    let mut exprs = Vec::with_capacity(projection.expr.len());
    for expr in &projection.expr {
        let name = expr.schema_name().to_string();
        let rewritten = expr.clone().transform_up(|e| {
            let Some(kind @ (Placeholder::Locf | Placeholder::Interpolate)) = Placeholder::of(&e) else {
                return Ok(Transformed::no(e));
            };
            let Expr::ScalarFunction(ScalarFunction { args, .. }) = &e else { unreachable!("a placeholder call") };
            let fname = kind.name();
            let index = match args.as_slice() {
                [Expr::Column(c)] => input_schema.index_of_column(c).ok(),
                _ => None,
            };
            let Some(index) = index.filter(|&i| params.fill.get(i) == Some(&Fill::Null)) else {
                return plan_err!("{fname}() takes one aggregate of the gap-filling query, e.g. {fname}(avg(price))");
            };
            let fill = if kind == Placeholder::Locf { Fill::Locf } else { Fill::Interpolate };
            if kind == Placeholder::Interpolate && !is_numeric(input_schema.field(index).data_type()) {
                return plan_err!(
                    "interpolate() needs a numeric aggregate; {} is {}",
                    input_schema.field(index).name(),
                    input_schema.field(index).data_type()
                );
            }
            if !params.filled.contains(&(index, fill)) {
                params.filled.push((index, fill));
            }
            let name = filled_name(input_schema.field(index).name(), fill);
            Ok(Transformed::yes(Expr::Column(Column::from_name(name))))
        })?;
        let changed = rewritten.transformed;
        let mut rewritten = rewritten.data;
        // Keep the column's name, `locf(avg(t.price))` unless it was aliased.
        if changed && !matches!(rewritten, Expr::Alias(_)) {
            rewritten = rewritten.alias(name);
        }
        exprs.push(rewritten);
    }
    let node = GapFill::try_new(Arc::clone(&node.input), params)?;
    let input = Arc::new(LogicalPlan::Extension(Extension { node: Arc::new(node) }));
    Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(exprs, input)?)))
}

fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_integer() || data_type.is_floating()
}

/// Fails on the first placeholder the rewrite did not consume.
fn reject_leftovers(plan: &LogicalPlan) -> Result<()> {
    plan.apply_with_subqueries(|node| {
        for expr in node.expressions() {
            expr.apply(|e| match Placeholder::of(e) {
                Some(kind) => Err(DataFusionError::Plan(kind.misplaced())),
                None => Ok(TreeNodeRecursion::Continue),
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(())
}

fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unalias(&alias.expr),
        other => other,
    }
}
