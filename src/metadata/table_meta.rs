//! `TimeIndexSpec` and `TableMeta`: what a table is indexed by and, once the first append
//! has fixed it, its schema. Validation of a schema against the spec lives here.
//!
//! Pure; no I/O.

use std::collections::HashSet;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use super::entity::is_entity_type;
use super::schema::{describe_schema, schema_from_wire, schema_to_wire, storage_schema, FieldDef};
use super::{Schedule, TimeBucket};
use crate::error::{Error, Result};

/// Where day buckets start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketAlignment {
    /// Every bucket is aligned to the Unix epoch in UTC (format version 1 tables).
    #[default]
    Utc,
    /// Day buckets start at local midnight in the table's time zone; shorter buckets stay
    /// epoch-aligned. Tables with a time zone and day buckets are created so.
    Local,
}

impl BucketAlignment {
    fn is_utc(&self) -> bool {
        *self == BucketAlignment::Utc
    }
}

/// How a table is indexed in time and by entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeIndexSpec {
    /// Name of the Arrow `Timestamp` column (any unit, with or without time zone).
    pub time_column: String,
    /// Coverage granularity.
    pub bucket: TimeBucket,
    /// If set, the time column must carry exactly this time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Columns that identify an entity (symbol, sensor, ...); empty = one implicit entity.
    #[serde(default)]
    pub entity_columns: Vec<String>,
    /// Where day buckets start; set when the table is created, never changed.
    #[serde(default, skip_serializing_if = "BucketAlignment::is_utc")]
    pub alignment: BucketAlignment,
}

impl TimeIndexSpec {
    /// A spec with no entity columns and no time zone requirement.
    pub fn new(time_column: impl Into<String>, bucket: TimeBucket) -> Self {
        TimeIndexSpec {
            time_column: time_column.into(),
            bucket,
            timezone: None,
            entity_columns: Vec::new(),
            alignment: BucketAlignment::Utc,
        }
    }

    /// Adds entity columns.
    pub fn with_entity_columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entity_columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Requires the time column to carry this time zone.
    pub fn with_timezone(mut self, timezone: impl Into<String>) -> Self {
        self.timezone = Some(timezone.into());
        self
    }

    /// The spec a new table is created with: validated, and with day buckets on local
    /// days when it has a time zone.
    fn for_new_table(mut self) -> Result<Self> {
        self.validate()?;
        if self.timezone.is_some() && self.bucket.days().is_some() {
            self.alignment = BucketAlignment::Local;
        }
        Ok(self)
    }

    /// Checks the spec on its own: names present and distinct.
    pub fn validate(&self) -> Result<()> {
        if self.time_column.trim().is_empty() {
            return Err(Error::invalid_spec("the time column name is empty"));
        }
        let mut seen = HashSet::new();
        for column in &self.entity_columns {
            if column.trim().is_empty() {
                return Err(Error::invalid_spec("an entity column name is empty"));
            }
            if column == &self.time_column {
                return Err(Error::invalid_spec(format!(
                    "'{column}' cannot be both the time column and an entity column"
                )));
            }
            if !seen.insert(column) {
                return Err(Error::invalid_spec(format!("entity column '{column}' is listed twice")));
            }
        }
        if let Some(tz) = &self.timezone {
            if tz.parse::<arrow::array::timezone::Tz>().is_err() {
                return Err(Error::invalid_spec(format!("unknown time zone '{tz}' (use e.g. UTC or +05:30)")));
            }
        }
        Ok(())
    }

    /// Checks that `schema` can hold data for this spec: the time column is a timestamp
    /// (with the required zone), entity columns exist with supported types.
    pub fn validate_schema(&self, schema: &Schema) -> Result<()> {
        let time = schema.field_with_name(&self.time_column).map_err(|_| {
            Error::invalid_input(format!(
                "the time column '{}' is missing (columns: {})",
                self.time_column,
                describe_schema(schema)
            ))
        })?;
        match time.data_type() {
            DataType::Timestamp(_, tz) => {
                if let Some(want) = &self.timezone {
                    if tz.as_deref() != Some(want.as_str()) {
                        return Err(Error::invalid_input(format!(
                            "the time column '{}' has time zone {:?}, but the table requires '{want}'",
                            self.time_column,
                            tz.as_deref()
                        )));
                    }
                }
            }
            other => {
                return Err(Error::invalid_input(format!(
                    "the time column '{}' has type {other}, expected a Timestamp",
                    self.time_column
                )))
            }
        }
        for column in &self.entity_columns {
            let field = schema.field_with_name(column).map_err(|_| {
                Error::invalid_input(format!(
                    "the entity column '{column}' is missing (columns: {})",
                    describe_schema(schema)
                ))
            })?;
            if !is_entity_type(field.data_type()) {
                return Err(Error::invalid_input(format!(
                    "entity column '{column}' has type {}, expected Utf8, LargeUtf8, Int32, Int64 or UInt64",
                    field.data_type()
                )));
            }
        }
        Ok(())
    }

    /// The schema a first append establishes: the input's fields in their stored types
    /// (string views as plain strings), with the time and entity columns declared non-null
    /// (they may never hold nulls) and metadata dropped.
    pub fn adopt_schema(&self, input: &Schema) -> Result<SchemaRef> {
        let stored = storage_schema(input);
        self.validate_schema(&stored)?;
        let fields: Vec<Field> = stored
            .fields()
            .iter()
            .map(|f| {
                let key = f.name() == &self.time_column || self.entity_columns.contains(f.name());
                Field::new(f.name(), f.data_type().clone(), f.is_nullable() && !key)
            })
            .collect();
        let schema = Schema::new(fields);
        schema_to_wire(&schema)?;
        Ok(std::sync::Arc::new(schema))
    }
}

/// Table-level metadata: the time index and, after the first append, the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TableMetaWire", into = "TableMetaWire")]
pub struct TableMeta {
    /// How the table is indexed in time and by entity.
    pub time_index: TimeIndexSpec,
    /// The table schema; `None` until the first append unless declared at creation.
    pub schema: Option<SchemaRef>,
    /// When data is expected: coverage is judged against it. `None`: all the time.
    pub schedule: Option<Schedule>,
}

#[derive(Serialize, Deserialize)]
struct TableMetaWire {
    time_index: TimeIndexSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema: Option<Vec<FieldDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<Schedule>,
}

impl TryFrom<TableMetaWire> for TableMeta {
    type Error = Error;

    fn try_from(wire: TableMetaWire) -> Result<Self> {
        let schema = wire.schema.as_deref().map(schema_from_wire).transpose()?;
        Ok(TableMeta { time_index: wire.time_index, schema, schedule: wire.schedule })
    }
}

impl From<TableMeta> for TableMetaWire {
    fn from(meta: TableMeta) -> Self {
        // A schema only enters TableMeta after `schema_to_wire` accepted it.
        let schema = meta.schema.as_deref().and_then(|s| schema_to_wire(s).ok());
        TableMetaWire { time_index: meta.time_index, schema, schedule: meta.schedule }
    }
}

impl TableMeta {
    /// Metadata of a new table; the schema comes with the first append.
    pub fn try_new(time_index: TimeIndexSpec) -> Result<Self> {
        let time_index = time_index.for_new_table()?;
        Ok(TableMeta { time_index, schema: None, schedule: None })
    }

    /// The same metadata with `schedule` (`None`: every bucket is expected).
    pub fn with_schedule(self, schedule: Option<Schedule>) -> Self {
        TableMeta { schedule, ..self }
    }

    /// Metadata with a schema declared up front (validated against the spec).
    pub fn try_with_schema(time_index: TimeIndexSpec, schema: &Schema) -> Result<Self> {
        let time_index = time_index.for_new_table()?;
        let schema = time_index.adopt_schema(schema)?;
        Ok(TableMeta { time_index, schema: Some(schema), schedule: None })
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::TimeUnit;

    use super::*;

    fn spec() -> TimeIndexSpec {
        TimeIndexSpec::new("ts", "1m".parse().unwrap()).with_entity_columns(["symbol"])
    }

    #[test]
    fn spec_validation_rejects_confusing_specs() {
        assert!(spec().validate().is_ok());
        assert!(TimeIndexSpec::new("", "1m".parse().unwrap()).validate().is_err());
        assert!(spec().with_entity_columns(["ts"]).validate().is_err());
        assert!(spec().with_entity_columns(["a", "a"]).validate().is_err());
        assert!(spec().with_timezone("Not/AZone").validate().is_err());
    }

    #[test]
    fn schema_validation_names_the_problem() {
        let ok = Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("symbol", DataType::Utf8, true),
            Field::new("px", DataType::Float64, true),
        ]);
        let adopted = spec().adopt_schema(&ok).unwrap();
        assert!(!adopted.field(0).is_nullable() && !adopted.field(1).is_nullable() && adopted.field(2).is_nullable());
        // String views (as DataFusion writes strings) are adopted as plain strings.
        let viewed = Schema::new(vec![ok.field(0).clone(), Field::new("symbol", DataType::Utf8View, true)]);
        assert_eq!(spec().adopt_schema(&viewed).unwrap().field(1).data_type(), &DataType::Utf8);

        let wrong_time =
            Schema::new(vec![Field::new("ts", DataType::Int64, false), Field::new("symbol", DataType::Utf8, false)]);
        assert!(spec().validate_schema(&wrong_time).unwrap_err().to_string().contains("expected a Timestamp"));
        let no_entity = Schema::new(vec![Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), false)]);
        assert!(spec().validate_schema(&no_entity).unwrap_err().to_string().contains("'symbol' is missing"));
        let float_entity = Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), false),
            Field::new("symbol", DataType::Float32, false),
        ]);
        assert!(spec().validate_schema(&float_entity).is_err());
    }

    #[test]
    fn meta_json_round_trip() {
        let schema = Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
            Field::new("symbol", DataType::Utf8, false),
        ]);
        let meta = TableMeta::try_with_schema(spec(), &schema).unwrap();
        let json = serde_json::to_string(&meta).unwrap();
        assert_eq!(serde_json::from_str::<TableMeta>(&json).unwrap(), meta);
    }
}
