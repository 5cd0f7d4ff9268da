//! `DELETE FROM t WHERE ...`, `UPDATE t SET ... WHERE ...` and `TRUNCATE t`: the
//! statement's filters become a [`RowSelector`] (time and entity pruning, plus the whole
//! predicate as a row test unless pruning alone is exact), an UPDATE's assignments become
//! column computations, and the table layer's delete or update does the rest in one commit.
//!
//! DataFusion plans these statements as a plan that returns one `count` row. A
//! `DataSinkExec` over an empty input is exactly that shape, so the change runs as a sink
//! that consumes nothing and reports the rows it changed; it runs when the plan is
//! executed, not when it is planned. Does I/O (through the table layer).

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};

use super::predicate::{entity_constraints, fully_captured, time_set};
use super::statement_snapshots::SharedTable;
use crate::error::Error;
use crate::metadata::TimeIndexSpec;
use crate::table::{ColumnValues, RowMatcher, RowSelector};

/// The rows `filters` select: pruning sets, plus the predicate as a row test when the
/// sets alone are not exact.
fn selector(schema: &SchemaRef, spec: &TimeIndexSpec, state: &dyn Session, filters: &[Expr]) -> DfResult<RowSelector> {
    let time = schema.field_with_name(&spec.time_column)?;
    let mut selector = RowSelector {
        times: time_set(filters, time),
        entities: entity_constraints(filters, &spec.entity_columns),
        matcher: None,
    };
    let exact = fully_captured(filters, time, &spec.entity_columns);
    if let (false, Some(predicate)) = (exact, conjunction(filters.iter().cloned())) {
        selector.matcher = Some(row_matcher(physical(schema, state, &predicate)?));
    }
    Ok(selector)
}

fn physical(schema: &SchemaRef, state: &dyn Session, expr: &Expr) -> DfResult<Arc<dyn PhysicalExpr>> {
    let df_schema = DFSchema::try_from(Arc::clone(schema))?;
    create_physical_expr(expr, &df_schema, state.execution_props(), &PhysicalPlanningContext::default())
}

/// The plan of one `DELETE` (or, without filters, `TRUNCATE`).
pub(crate) fn delete_plan(
    shared: Arc<SharedTable>,
    schema: &SchemaRef,
    spec: &TimeIndexSpec,
    state: &dyn Session,
    filters: &[Expr],
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let change = Change::Delete(selector(schema, spec, state, filters)?);
    Ok(sink_plan(DmlSink { shared, change, schema: Arc::clone(schema) }))
}

/// The plan of one `UPDATE`.
pub(crate) fn update_plan(
    shared: Arc<SharedTable>,
    schema: &SchemaRef,
    spec: &TimeIndexSpec,
    state: &dyn Session,
    assignments: &[(String, Expr)],
    filters: &[Expr],
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let selector = selector(schema, spec, state, filters)?;
    let assignments = assignments
        .iter()
        .map(|(name, expr)| {
            let expr = physical(schema, state, expr)?;
            let values: ColumnValues =
                Arc::new(move |batch: &RecordBatch| Ok(expr.evaluate(batch)?.into_array(batch.num_rows())?));
            Ok((name.clone(), values))
        })
        .collect::<DfResult<Vec<_>>>()?;
    let change = Change::Update(selector, assignments);
    Ok(sink_plan(DmlSink { shared, change, schema: Arc::clone(schema) }))
}

fn sink_plan(sink: DmlSink) -> Arc<dyn ExecutionPlan> {
    let empty = Arc::new(EmptyExec::new(Arc::clone(&sink.schema)));
    Arc::new(DataSinkExec::new(empty, Arc::new(sink), None))
}

/// The statement's predicate as a row test over batches in the table schema. Columns the
/// table gained after the provider was registered come after the ones it knows, so the
/// planned column positions still hold.
fn row_matcher(predicate: Arc<dyn PhysicalExpr>) -> RowMatcher {
    Arc::new(move |batch: &RecordBatch| {
        let value = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
        value.as_any().downcast_ref::<BooleanArray>().cloned().ok_or_else(|| {
            Error::invalid_input(format!("the DELETE condition is {}, not a boolean", value.data_type()))
        })
    })
}

/// What one statement changes.
enum Change {
    Delete(RowSelector),
    Update(RowSelector, Vec<(String, ColumnValues)>),
}

/// Makes the change when "written to"; consumes no rows.
struct DmlSink {
    shared: Arc<SharedTable>,
    change: Change,
    schema: SchemaRef,
}

impl fmt::Debug for DmlSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.change {
            Change::Delete(selector) => f.debug_struct("DeleteSink").field("selector", selector).finish(),
            Change::Update(selector, assignments) => f
                .debug_struct("UpdateSink")
                .field("selector", selector)
                .field("columns", &assignments.iter().map(|(name, _)| name).collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl DisplayAs for DmlSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let (what, selector) = match &self.change {
            Change::Delete(selector) => ("TimeSeriesDelete", selector),
            Change::Update(selector, _) => ("TimeSeriesUpdate", selector),
        };
        let rows = if selector.matcher.is_some() { "by row test" } else { "by time and entity" };
        write!(f, "{what}: {rows}")
    }
}

#[async_trait]
impl DataSink for DmlSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(&self, _data: SendableRecordBatchStream, _context: &Arc<TaskContext>) -> DfResult<u64> {
        let _turn = self.shared.writer_turn().await;
        let mut table = self.shared.handle();
        let changed = match &self.change {
            Change::Delete(selector) => table.delete(selector).await?.rows_deleted,
            Change::Update(selector, assignments) => table.update(selector, assignments).await?.rows_updated,
        };
        self.shared.publish(table);
        Ok(changed)
    }
}
