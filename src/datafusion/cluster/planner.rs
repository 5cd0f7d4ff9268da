//! The client's query planner on a cluster: Ballista's, after refusing writes and
//! answering `DESCRIBE` locally, with job failures made readable.
//!
//! Ballista would send an INSERT, DELETE or UPDATE to the scheduler as a job; the
//! scheduler's table refuses it too (see [`super::table`]), but only after a round trip,
//! with the refusal wrapped in the job's failure. Refusing here gives one sentence and
//! keeps writes off the cluster entirely. No I/O of its own.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::not_impl_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use futures::TryStreamExt;

use super::table::NO_WRITES;
use crate::datafusion::TimeSeriesProvider;

/// See the module docs.
#[derive(Debug)]
pub(super) struct ClusterPlanner {
    pub(super) ballista: Arc<dyn QueryPlanner + Send + Sync>,
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if let LogicalPlan::Dml(dml) = plan {
            let ours = source_as_provider(&dml.target).is_ok_and(|p| p.downcast_ref::<TimeSeriesProvider>().is_some());
            if ours {
                let op = match dml.op {
                    WriteOp::Insert(_) => "INSERT",
                    WriteOp::Delete => "DELETE",
                    WriteOp::Update => "UPDATE",
                    WriteOp::Truncate => "TRUNCATE",
                    _ => "This write",
                };
                return not_impl_err!("{op} {NO_WRITES}");
            }
        }
        if let LogicalPlan::DescribeTable(_) = plan {
            // The schema is known here; Ballista cannot send this plan anyway.
            return DefaultPhysicalPlanner::default().create_physical_plan(plan, session).await;
        }
        let job = self.ballista.create_physical_plan(plan, session).await?;
        Ok(Arc::new(ReadableErrorsExec::new(job)))
    }
}

/// Ballista's job plan on the client, with its failures made readable: a failed job
/// arrives as one string holding the task's error in Rust debug form
/// (`... DataFusionError(Shared(External(... General("the message")))))`); users get
/// "the cluster failed the query (job ...): the message" instead.
#[derive(Debug)]
pub(super) struct ReadableErrorsExec {
    inner: Arc<dyn ExecutionPlan>,
}

impl ReadableErrorsExec {
    pub(super) fn new(inner: Arc<dyn ExecutionPlan>) -> Self {
        ReadableErrorsExec { inner }
    }
}

/// The innermost message of a failed job's error text, or the text itself.
pub(super) fn readable(error: DataFusionError) -> DataFusionError {
    let text = error.to_string();
    let Some(job_at) = text.find("Job ") else { return error };
    if !text[job_at..].contains(" failed") {
        return error;
    }
    let job = text[job_at + 4..].split_whitespace().next().unwrap_or("").to_string();
    // The innermost `("...")` holds the original message.
    let message = text
        .rfind("(\"")
        .and_then(|start| text[start + 2..].find("\")").map(|end| text[start + 2..start + 2 + end].to_string()))
        .map(|m| m.replace("\\\"", "\"").replace("\\n", " "));
    match message {
        Some(message) => DataFusionError::Execution(format!("the cluster failed the query (job {job}): {message}")),
        None => error,
    }
}

impl DisplayAs for ReadableErrorsExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.inner.fmt_as(t, f)
    }
}

impl ExecutionPlan for ReadableErrorsExec {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.inner]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match children.len() {
            1 => Ok(Arc::new(ReadableErrorsExec::new(children.swap_remove(0)))),
            n => datafusion::common::internal_err!("ReadableErrorsExec takes one input, got {n}"),
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let stream = self.inner.execute(partition, context).map_err(readable)?;
        let schema = stream.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream.map_err(readable))))
    }
}
