//! `COUNT(*)`, `MIN(time)` and `MAX(time)` of a whole table, answered from segment
//! metadata. An optimizer rule ([`MetadataAggregates`]) replaces such an aggregate with a
//! one-row table ([`MetadataTotals`]) computed from the statement's snapshot when the
//! query is planned. Beside other aggregates (`SELECT count(*), max(ts), avg(price)`),
//! only those others read the files, so the time column is not decoded for totals the
//! metadata already holds.
//!
//! DataFusion answers these from the scan's exact statistics too, but only after planning
//! the scan, and a scan plan lists every segment's file: at 10,000 segments that alone
//! takes tens of milliseconds. The rule's answer reads totals the snapshot keeps, made once
//! per version. Does I/O only through the provider (catching up with the log).

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, Int64Array};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result as DfResult, TableReference};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, TableScan, TableType};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;

use super::provider::TimeSeriesProvider;
use super::time_literal::time_scalar;

/// The optimizer rule: `SELECT COUNT(*), MIN(ts), MAX(ts) FROM t` (any of them, in any
/// order, also `COUNT(ts)`) without `WHERE` or `GROUP BY`, over a time-series table; with
/// other aggregates beside them, those are computed from the files and joined to the
/// totals' row. Anything else is left to DataFusion. Registered by [`super::register`].
#[derive(Debug, Default)]
pub struct MetadataAggregates;

impl OptimizerRule for MetadataAggregates {
    fn name(&self) -> &str {
        "metadata_aggregates"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else { return Ok(Transformed::no(plan)) };
        Ok(match from_metadata(aggregate)? {
            Some(answer) => Transformed::yes(answer),
            None => Transformed::no(plan),
        })
    }
}

/// What one aggregate asks for. Every row has a timestamp (appends refuse null times), so
/// `COUNT(ts)` is the row count, and the segments' time ranges are the rows' exact ones.
/// Serializable for the cluster codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Total {
    Rows,
    FirstTime,
    LastTime,
}

impl Total {
    /// The total `expr` asks for, if it is one of the three over the scan of a table whose
    /// time column is `time`.
    fn of(expr: &Expr, time: &str) -> Option<Total> {
        let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else { return None };
        if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
            return None;
        }
        let [arg] = params.args.as_slice() else { return None };
        let is_time = matches!(arg, Expr::Column(column) if column.name == time);
        match func.name() {
            "count" if is_time || matches!(arg, Expr::Literal(value, _) if !value.is_null()) => Some(Total::Rows),
            "min" if is_time => Some(Total::FirstTime),
            "max" if is_time => Some(Total::LastTime),
            _ => None,
        }
    }
}

/// The plan that answers `aggregate` from metadata: a scan of [`MetadataTotals`], joined
/// to an aggregate over the files for the aggregates metadata cannot answer (if any),
/// under a projection that gives the columns the aggregate's names and order. `None` when
/// the rule does not apply.
fn from_metadata(aggregate: &Aggregate) -> DfResult<Option<LogicalPlan>> {
    if !aggregate.group_expr.is_empty() {
        return Ok(None);
    }
    let LogicalPlan::TableScan(TableScan { source, table_name, filters, fetch, .. }) = aggregate.input.as_ref() else {
        return Ok(None);
    };
    if !filters.is_empty() || fetch.is_some() {
        return Ok(None);
    }
    let Some(provider) = source_as_provider(source).ok().and_then(|p| p.downcast_ref::<TimeSeriesProvider>().cloned())
    else {
        return Ok(None);
    };
    let time = provider.spec().time_column.clone();
    // Without group expressions, the aggregate's fields are its aggregates, in order.
    let asked: Vec<Option<Total>> = aggregate.aggr_expr.iter().map(|e| Total::of(e, &time)).collect();
    if asked.iter().all(Option::is_none) {
        return Ok(None);
    }
    let name = TableReference::bare(format!("{}_metadata_totals", table_name.table()));
    let fields: Vec<_> = aggregate.schema.iter().collect();
    let totals_schema = Arc::new(Schema::new(
        fields
            .iter()
            .zip(&asked)
            .filter(|(_, total)| total.is_some())
            .map(|((_, field), _)| Arc::clone(field))
            .collect::<Vec<_>>(),
    ));
    let table = MetadataTotals { provider, totals: asked.iter().flatten().copied().collect(), schema: totals_schema };
    let mut plan = LogicalPlanBuilder::scan(name.clone(), provider_as_source(Arc::new(table)), None)?;
    let rest: Vec<Expr> =
        aggregate.aggr_expr.iter().zip(&asked).filter(|(_, total)| total.is_none()).map(|(e, _)| e.clone()).collect();
    if !rest.is_empty() {
        let files = LogicalPlanBuilder::from(aggregate.input.as_ref().clone()).aggregate(Vec::<Expr>::new(), rest)?;
        plan = plan.cross_join(files.build()?)?;
    }
    let columns: Vec<Expr> = fields
        .iter()
        .zip(&asked)
        .map(|((qualifier, field), total)| {
            let from = if total.is_some() { Some(name.clone()) } else { None };
            Expr::Column(Column::new(from, field.name())).alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    plan.project(columns)?.build().map(Some)
}

/// One row of totals of a table, read from the statement's snapshot when planned.
#[derive(Debug)]
pub(crate) struct MetadataTotals {
    pub(crate) provider: TimeSeriesProvider,
    pub(crate) totals: Vec<Total>,
    /// One field per total, with the aggregate's name and type.
    pub(crate) schema: SchemaRef,
}

#[async_trait]
impl TableProvider for MetadataTotals {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let snapshot = self.provider.statement_snapshot(state).await?;
        // Both kept by the snapshot, made once per version.
        let rows = snapshot.row_count();
        let extent = snapshot.time_extent().map(|(first, last)| (first.as_nanos(), last.as_nanos()));
        let columns: Vec<ArrayRef> = self
            .totals
            .iter()
            .zip(self.schema.fields())
            .map(|(total, field)| {
                let time = |nanos: i64, data_type: &DataType| time_scalar(nanos, data_type).to_array();
                match (total, extent) {
                    (Total::Rows, _) => Ok(Arc::new(Int64Array::from(vec![rows as i64])) as ArrayRef),
                    (Total::FirstTime, Some((first, _))) => time(first, field.data_type()),
                    (Total::LastTime, Some((_, last))) => time(last, field.data_type()),
                    (_, None) => Ok(new_null_array(field.data_type(), 1)),
                }
            })
            .collect::<DfResult<_>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::clone(&self.schema), projection.cloned())?)
    }
}
