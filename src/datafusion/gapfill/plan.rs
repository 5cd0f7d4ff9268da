//! The `GapFill` logical node, and the planner that turns it into [`GapFillExec`].

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, DFSchemaRef, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::exec::GapFillExec;
use crate::metadata::time::format_nanos;

/// How a column of the aggregate's output is filled in inserted rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, serde::Serialize, serde::Deserialize)]
pub enum Fill {
    /// A group key: the series' own value (or the bin, for the time column).
    Key,
    /// Null.
    Null,
    /// The last non-null value before it in the series.
    Locf,
    /// Linear between the non-null values on either side, null beyond them.
    Interpolate,
}

/// What a gap fill needs to know, all resolved when the query is planned. Times are
/// nanoseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, serde::Serialize, serde::Deserialize)]
pub struct GapFillParams {
    /// The binned time column's position in the aggregate's output.
    pub time: usize,
    /// The other group keys' positions: each combination is one series.
    pub series: Vec<usize>,
    /// Per column of the aggregate's output: `Key` or `Null`.
    pub fill: Vec<Fill>,
    /// Columns appended to the output: an aggregate (by position) filled by `Locf` or
    /// `Interpolate`, as `locf(...)`/`interpolate(...)` of the projection above refer to it.
    /// The plain aggregate stays as it is, so a query can show both.
    pub filled: Vec<(usize, Fill)>,
    pub stride: i64,
    /// Start of the first and of the last bin of the range, both included; no bins when
    /// `first_bin > last_bin`.
    pub first_bin: i64,
    pub last_bin: i64,
    /// When only scheduled bins are inserted: the sessions, ascending and disjoint, as
    /// half-open ranges. A bin is inserted iff it meets one.
    pub sessions: Option<Vec<(i64, i64)>>,
}

/// The aggregate's output with the missing bins of every series inserted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GapFill {
    pub(crate) input: Arc<LogicalPlan>,
    pub(crate) params: GapFillParams,
    /// The input's schema with every filled column nullable.
    schema: DFSchemaRef,
}

impl GapFill {
    pub(crate) fn try_new(input: Arc<LogicalPlan>, params: GapFillParams) -> Result<Self> {
        let input_schema = input.schema();
        let mut fields: Vec<_> = input_schema
            .iter()
            .enumerate()
            .map(|(i, (qualifier, field))| {
                let nullable = field.is_nullable() || params.fill[i] != Fill::Key;
                (qualifier.cloned(), Arc::new(field.as_ref().clone().with_nullable(nullable)))
            })
            .collect();
        for &(source, fill) in &params.filled {
            let field = input_schema.field(source);
            let name = filled_name(field.name(), fill);
            fields.push((None, Arc::new(field.as_ref().clone().with_name(name).with_nullable(true))));
        }
        let schema = DFSchema::new_with_metadata(fields, input_schema.metadata().clone())?;
        Ok(GapFill { input, params, schema: Arc::new(schema) })
    }
}

/// The name of the appended column holding `column` filled by `fill`.
pub(crate) fn filled_name(column: &str, fill: Fill) -> String {
    match fill {
        Fill::Locf => format!("locf({column})"),
        Fill::Interpolate => format!("interpolate({column})"),
        Fill::Key | Fill::Null => column.to_string(),
    }
}

impl PartialOrd for GapFill {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.params.partial_cmp(&other.params)
    }
}

impl UserDefinedLogicalNodeCore for GapFill {
    fn name(&self) -> &str {
        "GapFill"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<&str> = self.schema.fields().iter().map(|f| f.name().as_str()).collect();
        let p = &self.params;
        let series: Vec<&str> = p.series.iter().map(|&i| names[i]).collect();
        let filled: Vec<String> = p.filled.iter().map(|&(i, fill)| filled_name(names[i], fill)).collect();
        write!(
            f,
            "GapFill: time={}, series=[{}], stride={}ns, bins=[{}, {}]{}{}",
            names[p.time],
            series.join(", "),
            p.stride,
            format_nanos(p.first_bin),
            format_nanos(p.last_bin),
            if p.sessions.is_some() { ", scheduled bins only" } else { "" },
            if filled.is_empty() { String::new() } else { format!(", fill=[{}]", filled.join(", ")) }
        )
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> Result<Self> {
        GapFill::try_new(Arc::new(inputs.swap_remove(0)), self.params.clone())
    }
}

/// DataFusion's default planner, with [`GapFill`] added.
#[derive(Debug)]
pub(crate) struct TimeSeriesQueryPlanner;

#[async_trait]
impl QueryPlanner for TimeSeriesQueryPlanner {
    async fn create_physical_plan(&self, plan: &LogicalPlan, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(GapFillPlanner)])
            .create_physical_plan(plan, session)
            .await
    }
}

struct GapFillPlanner;

#[async_trait]
impl ExtensionPlanner for GapFillPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(gap_fill) = node.as_any().downcast_ref::<GapFill>() else { return Ok(None) };
        let schema = Arc::new(gap_fill.schema.as_arrow().clone());
        Ok(Some(Arc::new(GapFillExec::try_new(Arc::clone(&physical_inputs[0]), gap_fill.params.clone(), schema)?)))
    }
}
