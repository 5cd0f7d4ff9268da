//! `CREATE EXTERNAL TABLE t STORED AS TIMESERIES LOCATION '...'`: opens the table at the
//! location, or, given a column list and `OPTIONS ('time_column' ..., 'bucket' ...,
//! 'entity_columns' ..., 'timezone' ...)`, creates it there.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::plan_err;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::CreateExternalTable;

use super::provider::TimeSeriesProvider;
use crate::metadata::{TableMeta, TimeBucket, TimeIndexSpec};
use crate::storage::TableLocation;
use crate::table::TimeSeriesTable;

/// The `STORED AS` name the factory is registered under.
pub const FORMAT_NAME: &str = "TIMESERIES";
const OPTION_KEYS: [&str; 4] = ["time_column", "bucket", "entity_columns", "timezone"];

/// Opens or creates time-series tables for `CREATE EXTERNAL TABLE`.
#[derive(Debug, Default)]
pub struct TimeSeriesTableFactory;

/// OPTIONS arrive lowercased as `format.<key>`; unknown keys are rejected here because
/// DataFusion does not.
fn parse_options(options: &HashMap<String, String>) -> DfResult<HashMap<&'static str, String>> {
    let mut parsed = HashMap::new();
    for (key, value) in options {
        let short = key.strip_prefix("format.").unwrap_or(key);
        match OPTION_KEYS.iter().find(|k| **k == short) {
            Some(known) => {
                parsed.insert(*known, value.clone());
            }
            None => {
                return plan_err!(
                    "unknown option '{short}' for STORED AS {FORMAT_NAME}; valid options: {}",
                    OPTION_KEYS.join(", ")
                )
            }
        }
    }
    Ok(parsed)
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
        let options = parse_options(&cmd.options)?;
        let location = TableLocation::parse(location)?;
        let table = if cmd.schema.fields().is_empty() {
            let table = TimeSeriesTable::open(location).await?;
            if !options.is_empty() {
                let wanted = spec_from_options(&options)?;
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
            let spec = spec_from_options(&options)?;
            let schema = table_schema(cmd.schema.as_arrow(), &spec);
            let meta = TableMeta::try_with_schema(spec, &schema).map_err(DataFusionError::from)?;
            TimeSeriesTable::create(location, meta).await?
        };
        Ok(Arc::new(TimeSeriesProvider::try_new(table)?))
    }
}
