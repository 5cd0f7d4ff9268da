//! `DELETE FROM t WHERE ...`: the statement's filters become a [`RowSelector`] (time and
//! entity pruning, plus the whole predicate as a row test unless pruning alone is exact)
//! and the table layer's delete does the rest in one commit.
//!
//! DataFusion plans a DELETE as a plan that returns one `count` row. A `DataSinkExec` over
//! an empty input is exactly that shape, so the delete runs as a sink that consumes
//! nothing and reports the rows it removed; it runs when the plan is executed, not when
//! it is planned. Does I/O (through the table layer).

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
use crate::table::{RowMatcher, RowSelector};

/// The plan of one `DELETE`: runs the delete when executed and returns its row count.
pub(crate) fn delete_plan(
    shared: Arc<SharedTable>,
    schema: &SchemaRef,
    spec: &TimeIndexSpec,
    state: &dyn Session,
    filters: &[Expr],
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let mut selector = RowSelector {
        times: time_set(filters, &spec.time_column),
        entities: entity_constraints(filters, &spec.entity_columns),
        matcher: None,
    };
    let exact = fully_captured(filters, &spec.time_column, &spec.entity_columns);
    if let (false, Some(predicate)) = (exact, conjunction(filters.iter().cloned())) {
        let df_schema = DFSchema::try_from(Arc::clone(schema))?;
        let predicate =
            create_physical_expr(&predicate, &df_schema, state.execution_props(), &PhysicalPlanningContext::default())?;
        selector.matcher = Some(row_matcher(predicate));
    }
    let sink = DeleteSink { shared, selector, schema: Arc::clone(schema), exact };
    Ok(Arc::new(DataSinkExec::new(Arc::new(EmptyExec::new(Arc::clone(schema))), Arc::new(sink), None)))
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

/// Deletes when "written to"; consumes no rows.
struct DeleteSink {
    shared: Arc<SharedTable>,
    selector: RowSelector,
    schema: SchemaRef,
    /// Whether time and entity pruning alone decide the rows (no row test).
    exact: bool,
}

impl fmt::Debug for DeleteSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteSink").field("selector", &self.selector).finish()
    }
}

impl DisplayAs for DeleteSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TimeSeriesDelete: {}", if self.exact { "by time and entity" } else { "by row test" })
    }
}

#[async_trait]
impl DataSink for DeleteSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(&self, _data: SendableRecordBatchStream, _context: &Arc<TaskContext>) -> DfResult<u64> {
        let _turn = self.shared.writer_turn().await;
        let mut table = self.shared.handle();
        let report = table.delete(&self.selector).await?;
        self.shared.publish(table);
        Ok(report.rows_deleted)
    }
}
