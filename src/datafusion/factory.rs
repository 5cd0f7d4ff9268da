//! `CREATE EXTERNAL TABLE t STORED AS TIMESERIES LOCATION '...'`: opens the table at the
//! location, or, given a column list and `OPTIONS ('time_column' ..., 'bucket' ...,
//! 'entity_columns' ..., 'timezone' ..., 'schedule' ...)`, creates it there. The writer options
//! `segment_rows`, `memory_limit`, `row_group_rows` and `compression` set how the
//! registration's INSERTs write; `version` or `as_of` (a commit time) register a past
//! version, read-only.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::CreateExternalTable;

use super::provider::TimeSeriesProvider;
use crate::formats::parquet::{parse_byte_size, SegmentCompression, WriterOptions};
use crate::metadata::{Schedule, TableMeta, TimeBucket, TimeIndexSpec, Timestamp};
use crate::storage::TableLocation;
use crate::table::TimeSeriesTable;

/// The `STORED AS` name the factory is registered under.
pub const FORMAT_NAME: &str = "TIMESERIES";
/// Options that define the table (used when creating it, checked when opening it).
const SPEC_KEYS: [&str; 5] = ["time_column", "bucket", "entity_columns", "timezone", "schedule"];
/// Options for how this registration's INSERTs write segments.
const WRITER_KEYS: [&str; 4] = ["segment_rows", "memory_limit", "row_group_rows", "compression"];
/// Options that register a past version (read-only): a version number or a commit time.
const TIME_TRAVEL_KEYS: [&str; 2] = ["version", "as_of"];

/// `(key, value)` pairs for the table's object store.
type StorageOptions = Vec<(String, String)>;

/// Prefixes of storage options, as in `datafusion-cli` (`aws.access_key_id`).
const STORAGE_PREFIXES: [&str; 3] = ["aws.", "gcp.", "azure."];

/// Opens or creates time-series tables for `CREATE EXTERNAL TABLE`.
#[derive(Debug, Default)]
pub struct TimeSeriesTableFactory;

/// OPTIONS arrive lowercased as `format.<key>`; unknown keys are rejected here because
/// DataFusion does not.
/// Storage options (`aws.region`, `gcp.service_account_key`, ...) are returned apart, for
/// the table's location.
fn parse_options(options: &HashMap<String, String>) -> DfResult<(HashMap<&'static str, String>, StorageOptions)> {
    let mut parsed = HashMap::new();
    let mut storage = Vec::new();
    for (key, value) in options {
        let short = key.strip_prefix("format.").unwrap_or(key);
        if STORAGE_PREFIXES.iter().any(|prefix| short.starts_with(prefix)) {
            storage.push((short.to_string(), value.clone()));
            continue;
        }
        match SPEC_KEYS.iter().chain(&WRITER_KEYS).chain(&TIME_TRAVEL_KEYS).find(|k| **k == short) {
            Some(known) => {
                parsed.insert(*known, value.clone());
            }
            None => {
                return plan_err!(
                    "unknown option '{short}' for STORED AS {FORMAT_NAME}; valid options: {}, and storage options aws.*, gcp.*, azure.*",
                    [SPEC_KEYS.join(", "), WRITER_KEYS.join(", "), TIME_TRAVEL_KEYS.join(", ")].join(", ")
                )
            }
        }
    }
    storage.sort();
    Ok((parsed, storage))
}

/// The writer options named in OPTIONS, over the defaults.
fn writer_from_options(options: &HashMap<&'static str, String>) -> DfResult<WriterOptions> {
    let mut writer = WriterOptions::default();
    let count = |key: &str, value: &str| -> DfResult<u64> {
        match value.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => plan_err!("option '{key}' must be a positive whole number, not '{value}'"),
        }
    };
    if let Some(value) = options.get("segment_rows") {
        writer = writer.with_segment_rows(count("segment_rows", value)?);
    }
    if let Some(value) = options.get("row_group_rows") {
        writer = writer.with_row_group_rows(count("row_group_rows", value)? as usize);
    }
    if let Some(value) = options.get("memory_limit") {
        writer = writer.with_memory_limit(parse_byte_size(value).map_err(DataFusionError::from)? as usize);
    }
    if let Some(value) = options.get("compression") {
        let compression = match value.trim().to_ascii_lowercase().as_str() {
            "snappy" => SegmentCompression::Snappy,
            "none" | "uncompressed" => SegmentCompression::Uncompressed,
            zstd if zstd.starts_with("zstd") => {
                let level = zstd.trim_start_matches("zstd").trim_matches(|c| c == '(' || c == ')' || c == ':');
                match level {
                    "" => SegmentCompression::Zstd(3),
                    level => match level.parse() {
                        Ok(level) => SegmentCompression::Zstd(level),
                        Err(_) => {
                            return plan_err!("option 'compression': '{value}' has no valid zstd level (1 to 22)")
                        }
                    },
                }
            }
            _ => return plan_err!("option 'compression' must be snappy, zstd, zstd(LEVEL) or none, not '{value}'"),
        };
        writer = writer.with_compression(compression);
    }
    Ok(writer)
}

fn spec_from_options(options: &HashMap<&'static str, String>) -> DfResult<TimeIndexSpec> {
    let Some(time_column) = options.get("time_column") else {
        return plan_err!(
            "creating a {FORMAT_NAME} table needs OPTIONS ('time_column' '<column>', 'bucket' '<e.g. 1m>')"
        );
    };
    let Some(bucket) = options.get("bucket") else {
        return plan_err!("creating a {FORMAT_NAME} table needs OPTIONS ('bucket' '<e.g. 1m>')");
    };
    let bucket: TimeBucket = bucket.parse().map_err(DataFusionError::from)?;
    let mut spec = TimeIndexSpec::new(time_column.clone(), bucket);
    if let Some(entities) = options.get("entity_columns") {
        spec = spec.with_entity_columns(entities.split(',').map(str::trim).filter(|s| !s.is_empty()));
    }
    if let Some(tz) = options.get("timezone") {
        spec = spec.with_timezone(tz.clone());
    }
    spec.validate().map_err(DataFusionError::from)?;
    Ok(spec)
}

/// SQL column types as the table stores them: `VARCHAR` arrives as `Utf8View` and
/// `TIMESTAMP` without a zone; the time column takes the spec's zone.
fn table_schema(sql: &Schema, spec: &TimeIndexSpec) -> Schema {
    let fields: Vec<Field> = sql
        .fields()
        .iter()
        .map(|f| {
            let data_type = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::Timestamp(unit, tz) if f.name() == &spec.time_column => {
                    DataType::Timestamp(*unit, spec.timezone.as_deref().map(Arc::from).or_else(|| tz.clone()))
                }
                other => other.clone(),
            };
            Field::new(f.name(), data_type, f.is_nullable())
        })
        .collect();
    Schema::new(fields)
}

#[async_trait]
impl TableProviderFactory for TimeSeriesTableFactory {
    async fn create(&self, _state: &dyn Session, cmd: &CreateExternalTable) -> DfResult<Arc<dyn TableProvider>> {
        let [location] = cmd.locations.as_slice() else {
            return plan_err!("STORED AS {FORMAT_NAME} takes exactly one LOCATION");
        };
        let (mut options, storage) = parse_options(&cmd.options)?;
        let writer = writer_from_options(&options)?;
        let travel = (options.remove("version"), options.remove("as_of"));
        options.retain(|key, _| SPEC_KEYS.contains(key));
        let location = TableLocation::parse_with_options(location, &storage)?;
        let schedule = options.remove("schedule").map(|text| text.parse::<Schedule>()).transpose()?;
        let table = if cmd.schema.fields().is_empty() {
            let table = match travel {
                (None, None) => TimeSeriesTable::open(location).await?,
                (Some(version), None) => match version.trim().parse::<u64>() {
                    Ok(version) => TimeSeriesTable::open_at(location, version).await?,
                    Err(_) => return plan_err!("option 'version' must be a version number, not '{version}'"),
                },
                (None, Some(at)) => {
                    // A time without an offset is read in the table's zone.
                    let latest = TimeSeriesTable::open(location).await?;
                    let at =
                        Timestamp::parse_in(&at, latest.spec().timezone.as_deref()).map_err(DataFusionError::from)?;
                    latest.as_of(at).await?
                }
                (Some(_), Some(_)) => return plan_err!("give OPTIONS 'version' or 'as_of', not both"),
            };
            if schedule.is_some() && schedule != table.meta().schedule {
                return plan_err!(
                    "the table at {} has the schedule {}; OPTIONS ('schedule' ...) must repeat it (change it with `tsq alter <dir> set-schedule`)",
                    table.location(),
                    table.meta().schedule.as_ref().map_or("(none)".to_string(), |s| format!("'{s}'"))
                );
            }
            if !options.is_empty() {
                let mut wanted = spec_from_options(&options)?;
                // Fixed when the table was created, not an option.
                wanted.alignment = table.spec().alignment;
                if &wanted != table.spec() {
                    return plan_err!(
                        "the table at {} already exists with a different specification ({:?}); drop the OPTIONS to open it",
                        table.location(),
                        table.spec()
                    );
                }
            }
            table
        } else {
            if travel.0.is_some() || travel.1.is_some() {
                return plan_err!(
                    "OPTIONS 'version' and 'as_of' open an existing table at a past version; they cannot create one (drop the column list)"
                );
            }
            let spec = spec_from_options(&options)?;
            let schema = table_schema(cmd.schema.as_arrow(), &spec);
            let meta =
                TableMeta::try_with_schema(spec, &schema).map_err(DataFusionError::from)?.with_schedule(schedule);
            TimeSeriesTable::create(location, meta).await?
        };
        Ok(Arc::new(TimeSeriesProvider::try_new(table.with_writer_options(writer))?))
    }
}
