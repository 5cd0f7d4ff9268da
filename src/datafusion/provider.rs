//! `TimeSeriesProvider`: a `TableProvider` over a [`TimeSeriesTable`].
//!
//! Translates filters into time/entity sets, asks the table layer which segments to read,
//! and hands the survivors to DataFusion's own Parquet scan with exact statistics and a
//! declared time ordering. Writes (`INSERT`, `DELETE`, `UPDATE`, `TRUNCATE`) go through the
//! table layer's append, delete and update.
//! Does I/O (through the table layer and DataFusion's scan).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, FileSource, ParquetFileReaderFactory, ParquetSource,
};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result as DfResult;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{create_physical_expr, LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::metrics::MetricBuilder;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

use super::insert::TimeSeriesSink;
use super::predicate::{entity_constraints, fully_captured, time_constraint};
use super::scan_groups::deal_out;
use super::segment_files::{asked_rows, RowGroupStarts, SegmentFiles};
use super::statement_snapshots::SharedTable;
use super::time_ranges::plain_range;
use crate::error::Error;
use crate::formats::parquet::writer::ROW_GROUP_ROWS;
use crate::metadata::{EntityValue, SegmentMeta, TimeIndexSpec, TimeSet};
use crate::storage::TableLocation;
use crate::table::{FirstRows, Snapshot, TimeSeriesTable};

/// A DataFusion table backed by a time-series table. Each statement reads the version
/// that was latest when its first scan was planned, the same for all its scans and table
/// functions; the next statement sees newer commits. Clones share the handle.
#[derive(Clone)]
pub struct TimeSeriesProvider {
    shared: Arc<SharedTable>,
    schema: SchemaRef,
    spec: TimeIndexSpec,
    time_index: usize,
    store_url: ObjectStoreUrl,
    files: Arc<SegmentFiles>,
    first_rows: Option<FirstRows>,
}

impl fmt::Debug for TimeSeriesProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeSeriesProvider").field("schema", &self.schema).finish()
    }
}

impl TimeSeriesProvider {
    /// A provider for `table`, which must have a schema (declared at creation or fixed by
    /// its first append).
    pub fn try_new(table: TimeSeriesTable) -> crate::Result<Self> {
        let schema = table.schema().ok_or_else(|| {
            Error::invalid_input(format!(
                "the table at {} has no schema yet: append data first, or create it with a column list",
                table.location()
            ))
        })?;
        let spec = table.spec().clone();
        let time_index = schema.index_of(&spec.time_column).map_err(|e| Error::invalid_input(e.to_string()))?;
        let store_url = ObjectStoreUrl::parse(table.location().registered_as().as_str())?;
        let files = Arc::new(SegmentFiles::new(Arc::clone(&schema), time_index));
        Ok(TimeSeriesProvider {
            shared: Arc::new(SharedTable::new(table)),
            schema,
            spec,
            time_index,
            store_url,
            files,
            first_rows: None,
        })
    }

    /// The same table (sharing its handle and caches), whose scans read only the segments
    /// that can hold `first`, the first rows in time order that are all a sort above keeps
    /// of them (or every one, for `None`).
    pub(crate) fn with_first_rows(&self, first: Option<FirstRows>) -> Self {
        TimeSeriesProvider { first_rows: first, ..self.clone() }
    }

    pub(crate) fn first_rows(&self) -> Option<FirstRows> {
        self.first_rows
    }

    /// A copy of the latest handle (no I/O).
    #[cfg(feature = "ballista")]
    pub(crate) fn handle(&self) -> TimeSeriesTable {
        self.shared.handle()
    }

    /// Where the table lives.
    pub fn location(&self) -> TableLocation {
        self.shared.handle().location().clone()
    }

    /// The table's metadata (schedule, zone) as of the handle's version.
    pub(crate) fn table_meta(&self) -> crate::metadata::TableMeta {
        self.shared.handle().meta().clone()
    }

    /// The Arrow type of the time column.
    pub fn time_type(&self) -> &DataType {
        self.schema.field(self.time_index).data_type()
    }

    /// The table's time index.
    pub fn spec(&self) -> &TimeIndexSpec {
        &self.spec
    }

    /// The latest committed version, after catching up with new commits (cheap when
    /// there are none).
    pub async fn latest_snapshot(&self) -> crate::Result<Arc<Snapshot>> {
        self.shared.latest_snapshot().await
    }

    /// The version the statement running in `session` reads (see the module docs).
    pub(crate) async fn statement_snapshot(&self, session: &dyn Session) -> crate::Result<Arc<Snapshot>> {
        self.shared.statement_snapshot(session).await
    }

    /// Readers that keep each segment's Parquet footer and page index in the session's
    /// file metadata cache, so later queries do not fetch and decode them again (segments
    /// never change under a path). DataFusion's `ListingTable` does the same.
    fn cached_reader_factory(&self, state: &dyn Session) -> DfResult<Arc<dyn ParquetFileReaderFactory>> {
        let runtime = state.runtime_env();
        let store = runtime.object_store(&self.store_url)?;
        Ok(Arc::new(CachedParquetFileReaderFactory::new(store, runtime.cache_manager.get_file_metadata_cache())))
    }

    fn time_ordering(&self) -> Option<LexOrdering> {
        let column = Arc::new(Column::new(&self.spec.time_column, self.time_index));
        LexOrdering::new(vec![PhysicalSortExpr::new(column, SortOptions { descending: false, nulls_first: false })])
    }
}

/// Splits segments (ordered by start) into groups whose files do not overlap in time, so
/// each group reads in time order (DataFusion checks this with the per-file statistics).
/// As many groups as overlapping segments need, and at least `partitions` when possible.
fn ordered_groups(segments: &[Arc<SegmentMeta>], partitions: usize) -> Vec<Vec<Arc<SegmentMeta>>> {
    // Segments arrive ordered by start; each joins the chain that ended earliest, if that
    // chain ends before it starts (keyed by chain end, so this is O(n log chains)).
    let mut chains: Vec<Vec<Arc<SegmentMeta>>> = Vec::new();
    let mut ends: std::collections::BTreeSet<(i64, usize)> = std::collections::BTreeSet::new();
    for segment in segments {
        let chain = match ends.first().copied() {
            Some((end, chain)) if end < segment.ts_min => {
                ends.remove(&(end, chain));
                chain
            }
            _ => {
                chains.push(Vec::new());
                chains.len() - 1
            }
        };
        chains[chain].push(Arc::clone(segment));
        ends.insert((segment.ts_max, chain));
    }
    // Few long chains: split them into contiguous pieces for parallelism.
    while chains.len() < partitions {
        let Some((i, len)) = chains.iter().map(Vec::len).enumerate().max_by_key(|&(_, len)| len) else { break };
        if len < 2 {
            break;
        }
        let tail = chains[i].split_off(len / 2);
        chains.push(tail);
    }
    chains
}

#[async_trait]
impl TableProvider for TimeSeriesProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Used for pruning and pushed into the Parquet scan; DataFusion re-applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let snapshot = self.statement_snapshot(state).await?;
        let location = snapshot.location().clone();
        if !location.is_local() {
            state.runtime_env().register_object_store(location.registered_as(), Arc::clone(location.store()));
        }
        let time = self.schema.field(self.time_index);
        let (times, derived) = time_constraint(filters, time);
        let entities = entity_constraints(filters, &self.spec.entity_columns);
        // Under a sort that keeps the first rows (the mark of `FirstRowsInTime`), the
        // segments that cannot hold them are left out when the filters say exactly which
        // rows match (then the time set and entity sets do) and the scan has no limit of
        // its own.
        let first =
            self.first_rows.filter(|_| limit.is_none() && fully_captured(filters, time, &self.spec.entity_columns));
        let selection = snapshot.select_first_segments(&times, &entities, first).await?;

        let mut source = ParquetSource::new(Arc::clone(&self.schema))
            .with_table_parquet_options(state.table_options().parquet.clone())
            .with_parquet_file_reader_factory(self.cached_reader_factory(state)?);
        if limit.is_none()
            && self.first_rows.is_none()
            && few_rows_of_few_entities(&selection.segments, &times, &entities)
        {
            // Late materialisation: the filters run first, and the other columns are decoded
            // only where they matched. It pays when an entity filter keeps a few rows of
            // the few asked for (an hour of one symbol: 12 % faster); over many rows the
            // scattered matches cost more than they save (one symbol over a week: 15 %
            // slower), so not then.
            source = source.with_pushdown_filters(true);
        }
        if derived {
            // A range found through a function of the time column (`CAST(ts AS DATE) = d`)
            // is one the Parquet reader cannot see in the filter; hand it the plain range.
            let range = plain_range(&times, &datafusion::common::Column::from_name(time.name()), time);
            let schema = DFSchema::try_from(Arc::clone(&self.schema))?;
            let context = PhysicalPlanningContext::default();
            source = source.with_predicate(create_physical_expr(&range, &schema, state.execution_props(), &context)?);
        }
        let metrics = source.metrics().clone();
        for (name, value) in [
            ("segments_total", selection.total),
            ("segments_pruned_by_time", selection.pruned_by_time),
            ("segments_pruned_by_entity", selection.pruned_by_entity),
            ("segments_pruned_by_coverage", selection.pruned_by_coverage),
            ("segments_pruned_by_limit", selection.pruned_by_limit),
        ] {
            MetricBuilder::new(&metrics).global_counter(name).add(value);
        }

        if selection.segments.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }

        let partitions = state.config_options().execution.target_partitions.max(1);
        let all_sorted = selection.segments.iter().all(|s| s.sorted);
        let groups: Vec<Vec<Arc<SegmentMeta>>> = if all_sorted {
            ordered_groups(&selection.segments, partitions)
        } else {
            deal_out(selection.segments.iter().cloned(), partitions)
        };
        let mut entries = self.files.entries(&location, selection.total, &groups);
        if all_sorted && limit.is_none() && self.first_rows.is_none() {
            // Under a limit, or a sort that keeps the first rows, the whole segments are
            // worth more: reading stops early, newest first.
            // Fewer groups than partitions: lone segments cut into ranges; as many: a chain's
            // groups evened out by rows.
            let footer = |file: &PartitionedFile| row_group_starts(state, file);
            entries = if groups.len() < partitions {
                self.files.cut_lone_segments(&groups, entries, partitions, &times, &footer)
            } else if groups.len() == partitions {
                self.files.even_out_chain(&groups, entries, &times, &footer)
            } else {
                entries
            };
        }
        let file_groups: Vec<FileGroup> = entries.into_iter().map(FileGroup::new).collect();
        let group_count = file_groups.len();
        let table_stats = self.files.table_statistics(&selection.segments);

        let mut builder = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(file_groups)
            .with_statistics(table_stats)
            .with_limit(limit)
            .with_projection_indices(projection.cloned())?;
        if all_sorted {
            if let Some(ordering) = self.time_ordering() {
                // Under `ORDER BY ts LIMIT n`, DataFusion 55's limit pushdown clears the scan's
                // `preserve_order`, which lets sibling partitions steal each other's files at run
                // time: a group is then no longer read in time order and the merge above returns
                // wrong rows. Declaring the partitioning (and claiming nothing about it) turns
                // file stealing off for ordered scans.
                builder = builder
                    .with_output_ordering(vec![ordering])
                    .with_output_partitioning(Some(Partitioning::UnknownPartitioning(group_count)));
            }
        }
        Ok(DataSourceExec::from_data_source(builder.build()))
    }

    async fn delete_from(&self, state: &dyn Session, filters: Vec<Expr>) -> DfResult<Arc<dyn ExecutionPlan>> {
        super::dml::delete_plan(Arc::clone(&self.shared), &self.schema, &self.spec, state, &filters)
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        super::dml::update_plan(Arc::clone(&self.shared), &self.schema, &self.spec, state, &assignments, &filters)
    }

    async fn truncate(&self, state: &dyn Session) -> DfResult<Arc<dyn ExecutionPlan>> {
        super::dml::delete_plan(Arc::clone(&self.shared), &self.schema, &self.spec, state, &[])
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return datafusion::common::not_impl_err!(
                "{insert_op} is not supported: time-series tables only append (use INSERT INTO)"
            );
        }
        let sink = TimeSeriesSink::new(Arc::clone(&self.shared), Arc::clone(&self.schema));
        // No sort requirement: the append sorts what is out of order itself, within its
        // memory limit, where a planner's sort would hold the whole input.
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// Rows asked for at most, for Parquet filter pushdown to pay (see the provider's scan):
/// one row group's worth.
const PUSHDOWN_ROWS: u64 = ROW_GROUP_ROWS as u64;
/// Entities a filter keeps at most, for Parquet filter pushdown to pay.
const PUSHDOWN_ENTITIES: usize = 8;

/// Whether filters keep at most [`PUSHDOWN_ENTITIES`] entities of segments holding more,
/// in at most [`PUSHDOWN_ROWS`] rows asked for (estimated from each segment's share of
/// the time range).
fn few_rows_of_few_entities(
    segments: &[Arc<SegmentMeta>],
    times: &TimeSet,
    entities: &HashMap<usize, BTreeSet<EntityValue>>,
) -> bool {
    let few_entities = entities.values().any(|values| values.len() <= PUSHDOWN_ENTITIES);
    let shared = segments.iter().any(|segment| segment.entity_count > 1);
    few_entities && shared && asked_rows(segments, times) <= PUSHDOWN_ROWS
}

/// Where the row groups of `file` start, from its footer in the session's file metadata
/// cache (put there by the cached readers once a query has read the file); `None` before.
fn row_group_starts(state: &dyn Session, file: &PartitionedFile) -> Option<RowGroupStarts> {
    let cached = state.runtime_env().cache_manager.get_file_metadata_cache().get(&file.object_meta.location)?;
    if !cached.is_valid_for(&file.object_meta) {
        return None;
    }
    let footer = cached.file_metadata.as_any().downcast_ref::<CachedParquetMetaData>()?.parquet_metadata();
    let starts = footer.row_groups().iter().map(|group| {
        // Where the Parquet reader looks to place a row group in a range.
        let first = group.column(0);
        let offset = first.dictionary_page_offset().unwrap_or_else(|| first.data_page_offset());
        (u64::try_from(offset).unwrap_or(0), u64::try_from(group.num_rows()).unwrap_or(0))
    });
    Some(starts.collect())
}
