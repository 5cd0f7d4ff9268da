//! Serving a DataFusion on the far side of the FFI boundary (the Python package's): the
//! table and the table functions wrapped so they work in that engine.
//!
//! Two things do not cross the boundary. Tokio's context: the foreign engine polls a scan
//! on its own threads, where our object store finds no runtime, so scans run with our
//! runtime entered. And the object store registry: the task contexts our plans receive
//! know only the local file system, so a scan's plan registers its table's store as it
//! starts ([`StoreScopedExec`]). No I/O of its own.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, Constraints, Result, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use object_store::ObjectStore;
use tokio::runtime::Handle;
use url::Url;

use super::provider::TimeSeriesProvider;

/// A table provider served to a foreign DataFusion: a [`TimeSeriesProvider`], or what a
/// table function returned.
#[derive(Debug)]
pub struct ExportedProvider {
    inner: Arc<dyn TableProvider>,
    runtime: Handle,
}

impl ExportedProvider {
    /// `inner`, whose scans and writes will run with `runtime` entered.
    pub fn new(inner: Arc<dyn TableProvider>, runtime: Handle) -> Self {
        ExportedProvider { inner, runtime }
    }

    /// The time-series table inside, if it is one (the table functions look it up by name).
    pub fn time_series(&self) -> Option<&TimeSeriesProvider> {
        self.inner.downcast_ref::<TimeSeriesProvider>()
    }

    /// `work` polled with the runtime entered: timers and sockets register with our runtime,
    /// whose own threads drive them.
    fn entered<'a, F: Future + 'a>(&'a self, work: F) -> impl Future<Output = F::Output> + 'a {
        let mut work = Box::pin(work);
        std::future::poll_fn(move |cx| {
            let _entered = self.runtime.enter();
            work.as_mut().poll(cx)
        })
    }
}

#[async_trait]
impl TableProvider for ExportedProvider {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.entered(self.inner.scan(state, projection, filters, limit)).await?;
        match self.time_series().map(|table| table.location()) {
            Some(location) if !location.is_local() => Ok(Arc::new(StoreScopedExec {
                input: plan,
                url: location.registered_as().clone(),
                store: Arc::clone(location.store()),
            })),
            _ => Ok(plan),
        }
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.entered(self.inner.insert_into(state, input, insert_op)).await
    }

    async fn delete_from(&self, state: &dyn Session, filters: Vec<Expr>) -> Result<Arc<dyn ExecutionPlan>> {
        self.entered(self.inner.delete_from(state, filters)).await
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.entered(self.inner.update(state, assignments, filters)).await
    }

    async fn truncate(&self, state: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        self.entered(self.inner.truncate(state)).await
    }
}

/// A table function served to a foreign DataFusion; the tables it returns are
/// [`ExportedProvider`]s.
#[derive(Debug)]
pub struct ExportedFunction {
    inner: Arc<dyn TableFunctionImpl>,
    runtime: Handle,
}

impl ExportedFunction {
    /// `inner`, whose tables will run with `runtime` entered.
    pub fn new(inner: Arc<dyn TableFunctionImpl>, runtime: Handle) -> Self {
        ExportedFunction { inner, runtime }
    }
}

impl TableFunctionImpl for ExportedFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let table = {
            let _entered = self.runtime.enter();
            self.inner.call_with_args(args)?
        };
        Ok(Arc::new(ExportedProvider::new(table, self.runtime.clone())))
    }
}

/// Runs `input` after registering `store` under `url` in the task's runtime environment.
#[derive(Debug)]
struct StoreScopedExec {
    input: Arc<dyn ExecutionPlan>,
    url: Url,
    store: Arc<dyn ObjectStore>,
}

impl DisplayAs for StoreScopedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StoreScopedExec: store={}", self.url)
    }
}

impl ExecutionPlan for StoreScopedExec {
    fn name(&self) -> &str {
        "StoreScopedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("StoreScopedExec takes one input");
        }
        Ok(Arc::new(StoreScopedExec {
            input: children.swap_remove(0),
            url: self.url.clone(),
            store: Arc::clone(&self.store),
        }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        context.runtime_env().register_object_store(&self.url, Arc::clone(&self.store));
        self.input.execute(partition, context)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        // The scan's counters (segments pruned), for the foreign engine's EXPLAIN ANALYZE.
        self.input.metrics()
    }
}
