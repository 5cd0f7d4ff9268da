//! Gap filling in SQL.
//!
//! - `date_bin_gapfill(stride, ts [, origin])` in `GROUP BY` emits every bin of the WHERE
//!   clause's time range for each series (each combination of the other group keys).
//! - `date_bin_gapfill_scheduled(stride, ts [, schedule])` does the same but inserts only
//!   bins that meet a session of a schedule (the table's, by default), so nights and
//!   weekends are not invented.
//! - `locf(agg)` carries the last non-null value of the series forward; `interpolate(agg)`
//!   fills linearly between the non-null values on either side. Other aggregates are null
//!   in inserted rows.
//!
//! The functions are placeholders. The analyzer rule in [`rule`] rewrites the aggregate
//! that groups by one of them into `date_bin` under a [`plan::GapFill`] node, and the
//! planner turns that node into [`exec::GapFillExec`], which inserts the missing rows into
//! the aggregate's sorted output one series at a time. No I/O.

mod exec;
mod plan;
mod rule;

use std::sync::Arc;

use arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::common::{plan_err, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::functions::datetime::date_bin::DateBinFunc;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

#[cfg(feature = "ballista")]
pub(crate) use exec::GapFillExec;
pub use plan::GapFill;
#[cfg(feature = "ballista")]
pub(crate) use plan::GapFillParams;
pub use rule::GapFillRule;

/// Registers the gap-filling functions, the rule and the planner of its node on `ctx`.
/// The session's query planner becomes DataFusion's default planner with this
/// extension (a custom planner set before is replaced).
pub fn register(ctx: &SessionContext) {
    register_functions(ctx);
    ctx.add_analyzer_rule(Arc::new(GapFillRule));
    let state = ctx.state_ref();
    let mut state = state.write();
    *state = SessionStateBuilder::new_from_existing(state.clone())
        .with_query_planner(Arc::new(plan::TimeSeriesQueryPlanner))
        .build();
}

/// Registers the gap-filling functions alone (the rule rewrites them away).
pub(crate) fn register_functions(ctx: &SessionContext) {
    for kind in Placeholder::ALL {
        ctx.register_udf(ScalarUDF::new_from_impl(PlaceholderFunction::new(kind)));
    }
}

/// The functions that only mean something to the gap-filling rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Placeholder {
    Gapfill,
    GapfillScheduled,
    Locf,
    Interpolate,
}

impl Placeholder {
    const ALL: [Placeholder; 4] =
        [Placeholder::Gapfill, Placeholder::GapfillScheduled, Placeholder::Locf, Placeholder::Interpolate];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Placeholder::Gapfill => "date_bin_gapfill",
            Placeholder::GapfillScheduled => "date_bin_gapfill_scheduled",
            Placeholder::Locf => "locf",
            Placeholder::Interpolate => "interpolate",
        }
    }

    /// The placeholder `expr` calls, if it calls one of ours.
    pub(crate) fn of(expr: &Expr) -> Option<Placeholder> {
        match expr {
            Expr::ScalarFunction(f) => f.func.inner().downcast_ref::<PlaceholderFunction>().map(|p| p.kind),
            _ => None,
        }
    }

    /// Why the function cannot be where it was found.
    pub(crate) fn misplaced(self) -> String {
        match self {
            Placeholder::Gapfill | Placeholder::GapfillScheduled => format!(
                "{}() may only be used as a GROUP BY expression of its own, e.g. GROUP BY symbol, {}(INTERVAL '1 minute', ts)",
                self.name(),
                self.name()
            ),
            Placeholder::Locf | Placeholder::Interpolate => format!(
                "{}() may only be used in the SELECT list of a gap-filling query (one that groups by \
                 date_bin_gapfill), around one of its aggregates, e.g. {}(avg(price))",
                self.name(),
                self.name()
            ),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PlaceholderFunction {
    kind: Placeholder,
    signature: Signature,
}

impl PlaceholderFunction {
    fn new(kind: Placeholder) -> Self {
        let signature = match kind {
            // Coerced exactly as `date_bin`, which replaces it.
            Placeholder::Gapfill => {
                let mut signature = DateBinFunc::new().signature().clone();
                signature.volatility = Volatility::Volatile;
                signature
            }
            Placeholder::GapfillScheduled => Signature::user_defined(Volatility::Volatile),
            Placeholder::Locf | Placeholder::Interpolate => Signature::any(1, Volatility::Volatile),
        };
        PlaceholderFunction { kind, signature }
    }
}

impl ScalarUDFImpl for PlaceholderFunction {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        // Only `date_bin_gapfill_scheduled` has a user-defined signature.
        match arg_types {
            [stride, DataType::Timestamp(_, zone), rest @ ..] if rest.len() <= 1 => {
                let stride = match stride {
                    DataType::Interval(_) | DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                        DataType::Interval(IntervalUnit::MonthDayNano)
                    }
                    other => return plan_err!("{}() takes an interval as its stride, not {other}", self.name()),
                };
                // Nanoseconds, as `date_bin` coerces it.
                let time = DataType::Timestamp(TimeUnit::Nanosecond, zone.clone());
                Ok([stride, time].into_iter().chain(rest.iter().map(|_| DataType::Utf8)).collect())
            }
            _ => plan_err!("{}() takes (stride, time column [, schedule])", self.name()),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let index = match self.kind {
            Placeholder::Gapfill | Placeholder::GapfillScheduled => 1,
            Placeholder::Locf | Placeholder::Interpolate => 0,
        };
        match arg_types.get(index) {
            Some(t) => Ok(t.clone()),
            None => plan_err!("{}() is missing arguments", self.name()),
        }
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        plan_err!("{}", self.kind.misplaced())
    }
}

#[cfg(test)]
mod tests;
