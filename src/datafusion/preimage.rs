//! The time intervals on which a monotonic function of the time column compares true with
//! a constant: `CAST(ts AS DATE) = DATE '2024-01-10'` becomes one local day of `ts`,
//! `date_trunc('hour', ts) < x` everything before the first hour that starts at or
//! after `x`.
//!
//! The functions are not re-implemented here. Each boundary is found by bisecting the
//! time axis and evaluating the expression itself with DataFusion's own kernels (casts
//! and scalar functions), so zones, DST and every unit agree with what DataFusion computes
//! for the rows. That is exact as long as the function never decreases in time, which is
//! why only an allow-list of DataFusion's functions qualifies. Pure; no I/O.

use std::cmp::Ordering;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::ScalarValue;
use datafusion::functions::datetime::date_bin::DateBinFunc;
use datafusion::functions::datetime::date_trunc::DateTruncFunc;
use datafusion::functions::datetime::to_date::ToDateFunc;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{ColumnarValue, Expr, Operator, ReturnFieldArgs, ScalarFunctionArgs};

use super::time_literal::time_scalar;
use crate::metadata::TimeSet;

/// The position of the time argument of a scalar function that never decreases in it
/// while its other arguments are constants: DataFusion's own `date_trunc`, `date_bin` and
/// one-argument `to_date` (matched by type, not name, so a replacement with other
/// semantics never qualifies).
fn monotonic_argument(function: &ScalarFunction) -> Option<usize> {
    let inner = function.func.inner();
    if inner.is::<DateTruncFunc>() || inner.is::<DateBinFunc>() {
        Some(1)
    } else if inner.is::<ToDateFunc>() && function.args.len() == 1 {
        // With a format argument it parses strings; alone it is a cast.
        Some(0)
    } else {
        None
    }
}

/// Whether `expr` is a monotonic (non-decreasing) function of the time column `time`
/// that [`preimage`] can invert: allow-listed functions and casts between time types,
/// wrapped around the column, with constant other arguments.
pub(crate) fn is_monotonic_of_time(expr: &Expr, time: &Field) -> bool {
    match expr {
        Expr::Column(c) => c.name == *time.name(),
        Expr::Cast(cast) => is_time_type(cast.field.data_type()) && is_monotonic_of_time(&cast.expr, time),
        Expr::TryCast(cast) => is_time_type(cast.field.data_type()) && is_monotonic_of_time(&cast.expr, time),
        Expr::ScalarFunction(function) => {
            let Some(position) = monotonic_argument(function) else { return false };
            function.args.iter().enumerate().all(|(i, arg)| {
                if i == position {
                    is_monotonic_of_time(arg, time)
                } else {
                    matches!(arg, Expr::Literal(..))
                }
            })
        }
        _ => false,
    }
}

fn is_time_type(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64)
}

/// Where the bisection may run, widest first: the whole nanosecond range, then spans
/// that stop short of its ends, where some functions overflow (`date_trunc('year')` of
/// 1677, `date_bin` far from its origin). Outside the span the times are always admitted,
/// so the answer is then a superset rather than exact.
const SPANS: &[(i64, i64)] = &[
    (i64::MIN, i64::MAX),
    (i64::MIN + 400 * DAY, i64::MAX - 400 * DAY),
    (-(1 << 62), 1 << 62), // 1823 to 2116
];
const DAY: i64 = 86_400_000_000_000;

/// The times at which `function op value` holds, where `function` passed
/// [`is_monotonic_of_time`]; `None` when it cannot be evaluated. The flag says whether
/// the set is exact, not just a superset.
pub(crate) fn preimage(function: &Expr, time: &Field, op: Operator, value: &ScalarValue) -> Option<(TimeSet, bool)> {
    // A comparison with NULL holds nowhere; leave it to DataFusion rather than order NULL.
    if value.is_null() {
        return None;
    }
    let eval = |t: i64| evaluate(function, time, t);
    // The widest span the function evaluates on at both ends.
    let &(lo, hi) = SPANS.iter().find(|(lo, hi)| eval(*lo).is_some() && eval(*hi).is_some())?;
    let exact = (lo, hi) == (i64::MIN, i64::MAX);
    let compare = |t: i64| -> Option<Ordering> { eval(t)?.partial_cmp(value) };
    // The first time in the span whose value is at least (or above) `value`, if any.
    let first = |accept: fn(Ordering) -> bool| -> Option<Option<i64>> {
        if !accept(compare(hi)?) {
            return Some(None);
        }
        let (mut below, mut at) = (lo, hi);
        if accept(compare(lo)?) {
            return Some(Some(lo));
        }
        // Invariant: `below` is rejected, `at` accepted.
        while i128::from(at) - i128::from(below) > 1 {
            let mid = ((i128::from(below) + i128::from(at)) / 2) as i64;
            if accept(compare(mid)?) {
                at = mid;
            } else {
                below = mid;
            }
        }
        Some(Some(at))
    };
    let from = |start: Option<i64>| start.map_or_else(TimeSet::empty, |s| TimeSet::closed(s, hi));
    let before = |start: Option<i64>| match start {
        Some(s) => TimeSet::range(lo, s),
        None => TimeSet::closed(lo, hi),
    };
    let at_least = || first(|o| o != Ordering::Less);
    let above = || first(|o| o == Ordering::Greater);
    let set = match op {
        Operator::Lt => before(at_least()?),
        Operator::LtEq => before(above()?),
        Operator::Gt => from(above()?),
        Operator::GtEq => from(at_least()?),
        Operator::Eq => from(at_least()?).intersect(&before(above()?)),
        Operator::NotEq => before(at_least()?).union(&from(above()?)),
        _ => return None,
    };
    let edges = TimeSet::closed(lo, hi).complement();
    Some((set.union(&edges), exact))
}

/// The value of `expr` at time `t` (nanoseconds, floored to the column's unit), computed
/// by DataFusion's kernels; `None` on any error or a null.
fn evaluate(expr: &Expr, time: &Field, t: i64) -> Option<ScalarValue> {
    let value = match expr {
        Expr::Column(_) => time_scalar(t, time.data_type()),
        Expr::Literal(value, _) => value.clone(),
        Expr::Cast(cast) => evaluate(&cast.expr, time, t)?.cast_to(cast.field.data_type()).ok()?,
        Expr::TryCast(cast) => evaluate(&cast.expr, time, t)?.cast_to(cast.field.data_type()).ok()?,
        Expr::ScalarFunction(ScalarFunction { func, args }) => {
            let values: Vec<ScalarValue> = args.iter().map(|arg| evaluate(arg, time, t)).collect::<Option<_>>()?;
            let arg_fields: Vec<FieldRef> =
                values.iter().map(|v| Arc::new(Field::new("arg", v.data_type(), true))).collect();
            let constants: Vec<Option<&ScalarValue>> =
                args.iter().zip(&values).map(|(arg, v)| matches!(arg, Expr::Literal(..)).then_some(v)).collect();
            let return_field = func
                .return_field_from_args(ReturnFieldArgs { arg_fields: &arg_fields, scalar_arguments: &constants })
                .ok()?;
            let output = func
                .invoke_with_args(ScalarFunctionArgs {
                    args: values.into_iter().map(ColumnarValue::Scalar).collect(),
                    arg_fields,
                    number_rows: 1,
                    return_field,
                    config_options: Arc::clone(&CONFIG),
                })
                .ok()?;
            match output {
                ColumnarValue::Scalar(value) => value,
                ColumnarValue::Array(array) => ScalarValue::try_from_array(&array, 0).ok()?,
            }
        }
        _ => return None,
    };
    (!value.is_null()).then_some(value)
}

/// None of the allow-listed functions reads the session's options.
static CONFIG: LazyLock<Arc<ConfigOptions>> = LazyLock::new(|| Arc::new(ConfigOptions::default()));

#[cfg(test)]
mod tests;
