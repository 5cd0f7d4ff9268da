//! The SQL table functions `coverage`, `gaps`, `last_covered_window`,
//! `coverage_changes`, `segments` and `history`, and `snapshot`, which returns the table
//! itself at a past version. Arguments are checked when the function is called (plan
//! errors); results are computed from metadata and sidecars when the query runs, never
//! from Parquet data.
//! Equality filters on entity columns restrict which entities are computed.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, ScalarValue, TableReference};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use futures::FutureExt;

use super::exported::ExportedProvider;
use super::predicate::entity_constraints;
use super::provider::TimeSeriesProvider;
use super::time_literal::scalar_nanos_in;
use crate::error::Error;
use crate::metadata::{EntityKey, EntityValue, TimeBucket, Timestamp};
use crate::storage::TableLocation;
use crate::table::{key_matches, Expected, Snapshot, TimeRange, TimeSeriesTable};

/// Which metadata question a function answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    /// `coverage(table [, start, end] [, schedule])`: bucket coverage per entity over a
    /// window.
    Coverage,
    /// `gaps(table [, start, end] [, schedule])`: runs of missing buckets per entity.
    Gaps,
    /// `last_covered_window(table, length [, end] [, schedule])`: per entity, the latest
    /// fully covered window of `length`.
    LastCoveredWindow,
    /// `coverage_changes(table, from_version [, to_version])`: the buckets each entity
    /// gained or lost between two versions.
    CoverageChanges,
    /// `segments(table)`: the live segments.
    Segments,
    /// `history(table)`: one row per commit.
    History,
}

impl MetadataKind {
    /// Every kind, for registering all the functions.
    pub const ALL: [MetadataKind; 6] = [
        MetadataKind::Coverage,
        MetadataKind::Gaps,
        MetadataKind::LastCoveredWindow,
        MetadataKind::CoverageChanges,
        MetadataKind::Segments,
        MetadataKind::History,
    ];

    /// The SQL function name.
    pub fn name(self) -> &'static str {
        match self {
            MetadataKind::Coverage => "coverage",
            MetadataKind::Gaps => "gaps",
            MetadataKind::LastCoveredWindow => "last_covered_window",
            MetadataKind::CoverageChanges => "coverage_changes",
            MetadataKind::Segments => "segments",
            MetadataKind::History => "history",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            MetadataKind::Coverage => "coverage(table [, start, end] [, schedule])",
            MetadataKind::Gaps => "gaps(table [, start, end] [, schedule])",
            MetadataKind::LastCoveredWindow => "last_covered_window(table, length [, end] [, schedule])",
            MetadataKind::CoverageChanges => "coverage_changes(table, from_version [, to_version])",
            MetadataKind::Segments => "segments(table)",
            MetadataKind::History => "history(table)",
        }
    }

    fn arity(self) -> (usize, usize) {
        match self {
            MetadataKind::Coverage | MetadataKind::Gaps => (1, 4),
            MetadataKind::LastCoveredWindow => (2, 4),
            MetadataKind::CoverageChanges => (2, 3),
            MetadataKind::Segments | MetadataKind::History => (1, 1),
        }
    }
}

/// A table function over time-series tables.
#[derive(Debug)]
pub struct MetadataFunction {
    kind: MetadataKind,
}

impl MetadataFunction {
    /// The function answering `kind`; register it under [`MetadataKind::name`].
    pub fn new(kind: MetadataKind) -> Self {
        MetadataFunction { kind }
    }
}

/// Parsed arguments of one call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    pub(crate) window: Option<TimeRange>,
    pub(crate) length: std::time::Duration,
    pub(crate) end: Option<Timestamp>,
    pub(crate) expected: Expected,
    pub(crate) from_version: u64,
    pub(crate) to_version: Option<u64>,
}

impl TableFunctionImpl for MetadataFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let kind = self.kind;
        let exprs = args.exprs();
        let (min, max) = kind.arity();
        if exprs.len() < min || exprs.len() > max {
            return plan_err!(
                "{} takes {} argument(s), got {}; usage: {}",
                kind.name(),
                arity_text(min, max),
                exprs.len(),
                kind.usage()
            );
        }
        let provider = resolve_table(args.session(), &exprs[0], kind)?;
        let mut params = Params::default();
        let zone = provider.spec().timezone.clone();
        let zone = zone.as_deref();
        let mut rest = &exprs[1..];
        match kind {
            MetadataKind::Coverage | MetadataKind::Gaps => {
                // An odd trailing argument that is not a time is the schedule.
                if rest.len() % 2 == 1 && !is_time(&rest[rest.len() - 1], zone) {
                    params.expected = schedule_arg(&rest[rest.len() - 1], kind)?;
                    rest = &rest[..rest.len() - 1];
                }
                match rest {
                    [] => {}
                    [start, end] => {
                        let start = timestamp_arg(start, "start", kind, zone)?;
                        let end = timestamp_arg(end, "end", kind, zone)?;
                        // A reversed range is a bad argument, reported like the others.
                        params.window =
                            Some(TimeRange::try_new(start, end).map_err(|e| DataFusionError::Plan(e.to_string()))?);
                    }
                    _ => {
                        return plan_err!(
                            "{} needs both start and end, or neither; usage: {}",
                            kind.name(),
                            kind.usage()
                        )
                    }
                }
            }
            MetadataKind::LastCoveredWindow => {
                params.length = length_arg(&rest[0], provider.spec().bucket)?;
                rest = &rest[1..];
                if let [.., last] = rest {
                    if !is_time(last, zone) {
                        params.expected = match (schedule_arg(last, kind), rest.len()) {
                            (Ok(expected), _) => expected,
                            // Neither a time nor a schedule: most likely a bad end.
                            (Err(DataFusionError::Plan(schedule)), 1) => {
                                let Err(DataFusionError::Plan(end)) = timestamp_arg(last, "end", kind, zone) else {
                                    return plan_err!("{schedule}");
                                };
                                return plan_err!("{end} (read as a schedule instead: {schedule})");
                            }
                            (Err(e), _) => return Err(e),
                        };
                        rest = &rest[..rest.len() - 1];
                    }
                }
                match rest {
                    [] => {}
                    [end] => params.end = Some(timestamp_arg(end, "end", kind, zone)?),
                    _ => return plan_err!("too many arguments; usage: {}", kind.usage()),
                }
            }
            MetadataKind::CoverageChanges => {
                params.from_version = version_arg(&rest[0], "from_version")?;
                params.to_version = rest.get(1).map(|e| version_arg(e, "to_version")).transpose()?;
                if let Some(to) = params.to_version.filter(|to| *to < params.from_version) {
                    return plan_err!(
                        "from_version {} is after to_version {to}: give the earlier version first; usage: {}",
                        params.from_version,
                        kind.usage()
                    );
                }
            }
            MetadataKind::Segments | MetadataKind::History => {}
        }
        let schema = output_schema(kind, &provider);
        Ok(Arc::new(MetadataTable { kind, provider, params, schema }))
    }
}

fn arity_text(min: usize, max: usize) -> String {
    if min == max {
        min.to_string()
    } else {
        format!("{min} to {max}")
    }
}

/// The table named by the first argument: a table registered in the session, or a
/// path/URL of a table root.
fn resolve_table(session: &dyn Session, expr: &Expr, kind: MetadataKind) -> DfResult<TimeSeriesProvider> {
    let name = table_name(expr, kind.name(), kind.usage())?;
    if let Some(provider) = registered(session, &name)? {
        return Ok(provider);
    }
    match TableLocation::parse(&name).and_then(|location| open_blocking(location, At::Latest)) {
        Ok(table) => TimeSeriesProvider::try_new(table).map_err(DataFusionError::from),
        Err(Error::EmptyTable { .. }) | Err(Error::InvalidLocation { .. }) => plan_err!(
            "unknown table '{name}' in {}: it is not registered in this session and no time-series table exists at that path",
            kind.name()
        ),
        Err(e) => Err(DataFusionError::from(e).context(format!("cannot open table '{name}' for {}", kind.name()))),
    }
}

/// The first argument of a table function: a table name or a path, as a string.
fn table_name(expr: &Expr, function: &str, usage: &str) -> DfResult<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Ok(s.clone()),
        Expr::Column(c) => Ok(c.flat_name()),
        other => plan_err!(
            "the first argument of {function} must be a table name or a path as a string, got {other}; usage: {usage}"
        ),
    }
}

/// A time-series table registered in the session under `name`, if any.
fn registered(session: &dyn Session, name: &str) -> DfResult<Option<TimeSeriesProvider>> {
    let options = &session.config_options().catalog;
    let reference = TableReference::parse_str(name).resolve(&options.default_catalog, &options.default_schema);
    let Some(catalog) = session.catalog_list().catalog(&reference.catalog) else { return Ok(None) };
    let Some(schema) = catalog.schema(&reference.schema) else { return Ok(None) };
    // In-memory catalogs answer immediately; a catalog that would need I/O is skipped.
    let Some(found) = schema.table(&reference.table).now_or_never() else { return Ok(None) };
    let Some(table) = found? else { return Ok(None) };
    // A session across the FFI boundary hands back the provider as it was exported.
    let provider = table
        .downcast_ref::<TimeSeriesProvider>()
        .or_else(|| table.downcast_ref::<ExportedProvider>().and_then(ExportedProvider::time_series));
    match provider {
        Some(provider) => Ok(Some(provider.clone())),
        None => plan_err!("table '{name}' is registered but is not a time-series table"),
    }
}

/// Which version of a table to open.
pub(crate) enum At {
    Latest,
    Version(u64),
    /// A commit time, as given: a string without an offset is read in the table's zone.
    Time(ScalarValue),
}

/// Opens a table from inside the synchronous planning call. The open runs on its own
/// thread and runtime because blocking on the caller's runtime would panic.
pub(crate) fn open_blocking(location: TableLocation, at: At) -> crate::Result<TimeSeriesTable> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Task(e.to_string()))?;
        runtime.block_on(async {
            match at {
                At::Latest => TimeSeriesTable::open(location).await,
                At::Version(version) => TimeSeriesTable::open_at(location, version).await,
                At::Time(value) => {
                    // The latest handle gives the zone to read the time in, and the log to
                    // search back from.
                    let latest = TimeSeriesTable::open(location).await?;
                    let nanos = scalar_nanos_in(&value, latest.spec().timezone.as_deref()).ok_or_else(|| {
                        Error::invalid_input(format!(
                            "the second argument of snapshot must be a version number or a time such as '2024-01-10T00:00:00Z', got {value}"
                        ))
                    })?;
                    latest.as_of(Timestamp::from_nanos(nanos)).await
                }
            }
        })
    })
    .join()
    .map_err(|_| Error::Task("opening the table panicked".into()))?
}

/// `snapshot(table, version_or_time)`: the table as of a past version (a version number)
/// or of a commit time, usable in FROM like the table itself, read-only.
#[derive(Debug, Default)]
pub struct SnapshotFunction;

impl SnapshotFunction {
    /// The SQL function name.
    pub const NAME: &'static str = "snapshot";
    const USAGE: &'static str = "snapshot(table, version_or_time)";
}

impl TableFunctionImpl for SnapshotFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let [table, when] = exprs else {
            return plan_err!("snapshot takes 2 argument(s), got {}; usage: {}", exprs.len(), Self::USAGE);
        };
        let name = table_name(table, "snapshot", Self::USAGE)?;
        let at = match when {
            Expr::Literal(value, _) if value.data_type().is_integer() => match value.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(v))) if v > 0 => At::Version(v as u64),
                _ => {
                    return plan_err!(
                        "the version argument of snapshot must be 1 or more, got {value}; usage: {}",
                        Self::USAGE
                    )
                }
            },
            Expr::Literal(value, _) if !value.is_null() => At::Time(value.clone()),
            other => {
                return plan_err!(
                "the second argument of snapshot must be a version number or a time literal, got {other}; usage: {}",
                Self::USAGE
            )
            }
        };
        let location = match registered(args.session(), &name)? {
            Some(provider) => provider.location(),
            None => TableLocation::parse(&name).map_err(DataFusionError::from)?,
        };
        let table = open_blocking(location, at).map_err(|e| match e {
            Error::EmptyTable { .. } | Error::InvalidLocation { .. } => DataFusionError::Plan(format!(
                "unknown table '{name}' in snapshot: it is not registered in this session and no time-series table exists at that path"
            )),
            e => DataFusionError::Plan(e.to_string()),
        })?;
        Ok(Arc::new(TimeSeriesProvider::try_new(table)?))
    }
}

/// A table version: a non-negative integer literal.
fn version_arg(expr: &Expr, what: &str) -> DfResult<u64> {
    let usage = MetadataKind::CoverageChanges.usage();
    let value = match expr {
        Expr::Literal(value, _) => value.cast_to(&DataType::Int64).ok(),
        _ => None,
    };
    match value {
        Some(ScalarValue::Int64(Some(v))) if v >= 0 => Ok(v as u64),
        _ => plan_err!("the {what} argument must be a version number (0 or more), got {expr}; usage: {usage}"),
    }
}

/// Whether `expr` is a literal that reads as a time.
fn is_time(expr: &Expr, zone: Option<&str>) -> bool {
    matches!(expr, Expr::Literal(value, _) if scalar_nanos_in(value, zone).is_some())
}

/// A schedule override: `'always'`, `'table'` or a schedule's text.
fn schedule_arg(expr: &Expr, kind: MetadataKind) -> DfResult<Expected> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Expected::parse(s).map_err(|e| DataFusionError::Plan(format!("{e}; usage: {}", kind.usage()))),
        other => plan_err!(
            "the schedule argument of {} must be a string such as 'Mon-Fri 09:30-16:00' or 'always', got {other}; usage: {}",
            kind.name(),
            kind.usage()
        ),
    }
}

/// A time argument; a string without an offset is read in the table's time zone.
fn timestamp_arg(expr: &Expr, what: &str, kind: MetadataKind, zone: Option<&str>) -> DfResult<Timestamp> {
    if let Expr::Literal(value, _) = expr {
        if let Some(nanos) = scalar_nanos_in(value, zone) {
            return Ok(Timestamp::from_nanos(nanos));
        }
    }
    plan_err!(
        "the {what} argument of {} must be a timestamp literal or a string like '2024-01-02T09:30:00Z', got {expr}; usage: {}",
        kind.name(),
        kind.usage()
    )
}

/// A window length: an interval literal or a string like `'2h'`.
fn length_arg(expr: &Expr, bucket: TimeBucket) -> DfResult<std::time::Duration> {
    let usage = MetadataKind::LastCoveredWindow.usage();
    let nanos = match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => match s.parse::<TimeBucket>() {
            Ok(length) => Some(length.nanos()),
            Err(_) => {
                return plan_err!(
                    "bad window length '{s}': expected <n><unit> with unit s, m, h or d (e.g. '2h'); usage: {usage}"
                )
            }
        },
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            (v.days as i64).checked_mul(86_400_000_000_000).and_then(|d| d.checked_add(v.nanoseconds))
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => (v.days as i64)
            .checked_mul(86_400_000_000_000)
            .and_then(|d| d.checked_add(v.milliseconds as i64 * 1_000_000)),
        _ => None,
    };
    match nanos {
        Some(n) if n > 0 && n % bucket.nanos() == 0 => Ok(std::time::Duration::from_nanos(n as u64)),
        Some(_) => {
            plan_err!("the window length must be a positive multiple of the table's bucket {bucket}; usage: {usage}")
        }
        None => plan_err!(
            "the length argument must be an interval without months or a string like '2h', got {expr}; usage: {usage}"
        ),
    }
}

fn output_schema(kind: MetadataKind, provider: &TimeSeriesProvider) -> SchemaRef {
    let table = provider.schema();
    let ts = provider.time_type().clone();
    let mut fields: Vec<Field> = Vec::new();
    if matches!(
        kind,
        MetadataKind::Coverage | MetadataKind::Gaps | MetadataKind::LastCoveredWindow | MetadataKind::CoverageChanges
    ) {
        for column in &provider.spec().entity_columns {
            if let Ok(field) = table.field_with_name(column) {
                fields.push(Field::new(column, field.data_type().clone(), false));
            }
        }
    }
    let int = |name: &str| Field::new(name, DataType::Int64, false);
    let time = |name: &str, nullable: bool| Field::new(name, ts.clone(), nullable);
    match kind {
        MetadataKind::Coverage => fields.extend([
            time("window_start", false),
            time("window_end", false),
            int("expected_buckets"),
            int("covered_buckets"),
            int("missing_buckets"),
            Field::new("coverage_ratio", DataType::Float64, false),
            int("gap_count"),
            int("max_gap_buckets"),
            time("covered_from", true),
            time("covered_until", true),
        ]),
        MetadataKind::Gaps => fields.extend([time("gap_start", false), time("gap_end", false), int("missing_buckets")]),
        MetadataKind::LastCoveredWindow => fields.extend([time("window_start", false), time("window_end", false)]),
        MetadataKind::CoverageChanges => fields.extend([
            Field::new("change", DataType::Utf8, false),
            time("range_start", false),
            time("range_end", false),
            int("buckets"),
        ]),
        MetadataKind::Segments => fields.extend([
            Field::new("segment_id", DataType::Utf8, false),
            Field::new("path", DataType::Utf8, false),
            time("ts_min", false),
            time("ts_max", false),
            int("row_count"),
            int("size_bytes"),
            int("entity_count"),
            int("added_in_version"),
            Field::new("sorted", DataType::Boolean, false),
        ]),
        MetadataKind::History => fields.extend([
            int("version"),
            Field::new("committed_at", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
            Field::new("operation", DataType::Utf8, false),
            int("segments_added"),
            int("segments_removed"),
            int("rows_added"),
            int("rows_removed"),
        ]),
    }
    Arc::new(Schema::new(fields))
}

/// The provider a table function call returns.
pub(crate) struct MetadataTable {
    pub(crate) kind: MetadataKind,
    pub(crate) provider: TimeSeriesProvider,
    pub(crate) params: Params,
    pub(crate) schema: SchemaRef,
}

impl fmt::Debug for MetadataTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(...)", self.kind.name())
    }
}

#[async_trait]
impl TableProvider for MetadataTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let snapshot = self.provider.statement_snapshot(state).await?;
        let batch = self.compute(&snapshot, filters).await?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::clone(&self.schema), projection.cloned())?)
    }
}

impl MetadataTable {
    /// The entities a query's filters admit, or `None` for all.
    async fn selected_entities(&self, snapshot: &Snapshot, filters: &[Expr]) -> crate::Result<Option<Vec<EntityKey>>> {
        let constraints = entity_constraints(filters, &snapshot.spec().entity_columns);
        if constraints.is_empty() {
            return Ok(None);
        }
        let coverage = snapshot.table_coverage().await?;
        Ok(Some(coverage.entities().map(|(k, _)| k).filter(|k| key_matches(k, &constraints)).cloned().collect()))
    }

    async fn compute(&self, snapshot: &Snapshot, filters: &[Expr]) -> crate::Result<RecordBatch> {
        let entities = self.selected_entities(snapshot, filters).await?;
        let entities = entities.as_deref();
        let keys: Vec<EntityKey>;
        let mut times: Vec<Vec<Option<i64>>> = Vec::new();
        let mut rest: Vec<ArrayRef> = Vec::new();
        match self.kind {
            MetadataKind::Coverage => {
                let report = snapshot.coverage_report(self.params.window, entities, &self.params.expected).await?;
                keys = report.iter().map(|r| r.entity.clone()).collect();
                times.push(report.iter().map(|r| Some(r.window.start.as_nanos())).collect());
                times.push(report.iter().map(|r| Some(r.window.end.as_nanos())).collect());
                let mut columns = int_columns(&report, |r| [r.expected_buckets, r.covered_buckets, r.missing_buckets]);
                columns.push(Arc::new(report.iter().map(|r| r.coverage_ratio).collect::<Float64Array>()));
                columns.extend(int_columns(&report, |r| [r.gap_count, r.max_gap_buckets]));
                rest = columns;
                // covered_from / covered_until go after the counts.
                let ts = self.provider.time_type();
                rest.push(time_array(report.iter().map(|r| r.covered_from.map(Timestamp::as_nanos)).collect(), ts)?);
                rest.push(time_array(report.iter().map(|r| r.covered_until.map(Timestamp::as_nanos)).collect(), ts)?);
            }
            MetadataKind::Gaps => {
                let gaps = snapshot.gaps(self.params.window, entities, &self.params.expected).await?;
                keys = gaps.iter().map(|g| g.entity.clone()).collect();
                times.push(gaps.iter().map(|g| Some(g.start.as_nanos())).collect());
                times.push(gaps.iter().map(|g| Some(g.end.as_nanos())).collect());
                rest = int_columns(&gaps, |g| [g.missing_buckets]);
            }
            MetadataKind::LastCoveredWindow => {
                let windows = snapshot
                    .last_covered_windows(self.params.length, self.params.end, entities, &self.params.expected)
                    .await?;
                keys = windows.iter().map(|(k, _)| k.clone()).collect();
                times.push(windows.iter().map(|(_, w)| Some(w.start.as_nanos())).collect());
                times.push(windows.iter().map(|(_, w)| Some(w.end.as_nanos())).collect());
            }
            MetadataKind::CoverageChanges => {
                let changes = snapshot.coverage_changes(self.params.from_version, self.params.to_version).await?;
                // Filtered by key, not by the entities covered now: a removed entity may
                // have no coverage left.
                let constraints = entity_constraints(filters, &snapshot.spec().entity_columns);
                let changes: Vec<_> = changes.into_iter().filter(|c| key_matches(&c.entity, &constraints)).collect();
                keys = changes.iter().map(|c| c.entity.clone()).collect();
                let kinds: ArrayRef =
                    Arc::new(changes.iter().map(|c| Some(c.change.as_str())).collect::<StringArray>());
                let ts = self.provider.time_type();
                rest = vec![
                    kinds,
                    time_array(changes.iter().map(|c| Some(c.start.as_nanos())).collect(), ts)?,
                    time_array(changes.iter().map(|c| Some(c.end.as_nanos())).collect(), ts)?,
                ];
                rest.extend(int_columns(&changes, |c| [c.buckets]));
            }
            MetadataKind::Segments => {
                let segments = snapshot.segments();
                let ts = self.provider.time_type();
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(segments.iter().map(|s| Some(s.id.0.clone())).collect::<StringArray>()),
                    Arc::new(segments.iter().map(|s| Some(s.path.clone())).collect::<StringArray>()),
                    time_array(segments.iter().map(|s| Some(s.ts_min)).collect(), ts)?,
                    time_array(segments.iter().map(|s| Some(s.ts_max)).collect(), ts)?,
                ];
                let mut columns = columns;
                columns.extend(int_columns(&segments, |s| {
                    [s.row_count, s.size_bytes, s.entity_count, s.added_in_version]
                }));
                columns.push(Arc::new(segments.iter().map(|s| Some(s.sorted)).collect::<BooleanArray>()));
                return Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?);
            }
            MetadataKind::History => {
                let history = snapshot.history().await?;
                let mut columns = int_columns(&history, |c| [c.version]);
                let committed = history.iter().map(|c| Some(c.committed_at.as_nanos())).collect();
                columns.push(time_array(committed, &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())))?);
                columns.push(Arc::new(history.iter().map(|c| Some(c.operation.clone())).collect::<StringArray>()));
                columns.extend(int_columns(&history, |c| {
                    [c.segments_added, c.segments_removed, c.rows_added, c.rows_removed]
                }));
                return Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?);
            }
        }
        let mut columns = entity_columns(&keys, &self.schema, snapshot.spec().entity_columns.len())?;
        let ts = self.provider.time_type();
        for values in times {
            columns.push(time_array(values, ts)?);
        }
        columns.extend(rest);
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// BIGINT counter columns, one per element of the array `values` returns for a row.
fn int_columns<T, const N: usize>(rows: &[T], values: impl Fn(&T) -> [u64; N]) -> Vec<ArrayRef> {
    let table: Vec<[u64; N]> = rows.iter().map(values).collect();
    (0..N)
        .map(|i| {
            Arc::new(table.iter().map(|r| Some(r[i].min(i64::MAX as u64) as i64)).collect::<Int64Array>()) as ArrayRef
        })
        .collect()
}

/// Nanosecond timestamps as an array of the time column's type.
fn time_array(values: Vec<Option<i64>>, data_type: &DataType) -> crate::Result<ArrayRef> {
    let nanos: ArrayRef = Arc::new(TimestampNanosecondArray::from(values));
    let target = match data_type {
        DataType::Timestamp(unit, tz) => DataType::Timestamp(*unit, tz.clone()),
        other => other.clone(),
    };
    Ok(arrow::compute::cast(&nanos, &target)?)
}

/// The entity columns of the output, in the table's own types.
fn entity_columns(keys: &[EntityKey], schema: &Schema, count: usize) -> crate::Result<Vec<ArrayRef>> {
    (0..count)
        .map(|i| {
            let data_type = schema.field(i).data_type();
            let scalars = keys.iter().map(|k| entity_scalar(k.0.get(i), data_type));
            Ok(ScalarValue::iter_to_array(scalars)
                .or_else(|_| Ok::<_, DataFusionError>(arrow::array::new_empty_array(data_type)))?)
        })
        .collect()
}

fn entity_scalar(value: Option<&EntityValue>, data_type: &DataType) -> ScalarValue {
    let scalar = match value {
        Some(EntityValue::Str(s)) => ScalarValue::Utf8(Some(s.clone())),
        Some(EntityValue::Int(v)) => ScalarValue::Int64(Some(*v)),
        Some(EntityValue::UInt(v)) => ScalarValue::UInt64(Some(*v)),
        None => ScalarValue::Null,
    };
    scalar.cast_to(data_type).unwrap_or(scalar)
}
