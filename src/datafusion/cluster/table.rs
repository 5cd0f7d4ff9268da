//! `ClusterTable`: a time-series table as a Ballista scheduler sees it.
//!
//! It plans scans exactly as the local provider does (pruning, ordering, statistics, one
//! version per statement). Writes are refused with one sentence: an INSERT, DELETE or UPDATE
//! through a cluster would commit from the scheduler while the client waits on a job, so
//! none is attempted. Does I/O through the provider's scan.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::not_impl_err;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::datafusion::TimeSeriesProvider;

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct ClusterTable {
    provider: TimeSeriesProvider,
}

/// Why writes are refused, with what to do instead.
pub(super) const NO_WRITES: &str = "is not run through a cluster: run INSERT, DELETE and UPDATE in a local session on the same table (for example `tsq sql` without --cluster); the table was not changed";

impl ClusterTable {
    pub(crate) fn new(provider: TimeSeriesProvider) -> Self {
        ClusterTable { provider }
    }

    pub(crate) fn provider(&self) -> &TimeSeriesProvider {
        &self.provider
    }
}

#[async_trait]
impl TableProvider for ClusterTable {
    fn schema(&self) -> SchemaRef {
        self.provider.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.provider.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.provider.scan(state, projection, filters, limit).await
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        _input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        not_impl_err!("INSERT {NO_WRITES}")
    }

    async fn delete_from(&self, _state: &dyn Session, _filters: Vec<Expr>) -> DfResult<Arc<dyn ExecutionPlan>> {
        not_impl_err!("DELETE {NO_WRITES}")
    }

    async fn update(
        &self,
        _state: &dyn Session,
        _assignments: Vec<(String, Expr)>,
        _filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        not_impl_err!("UPDATE {NO_WRITES}")
    }

    async fn truncate(&self, _state: &dyn Session) -> DfResult<Arc<dyn ExecutionPlan>> {
        not_impl_err!("TRUNCATE {NO_WRITES}")
    }
}
