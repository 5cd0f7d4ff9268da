//! The table schema as written in the log: a list of `{name, type, nullable}` fields with
//! a small, stable type vocabulary that does not depend on Arrow's `Debug` output.
//!
//! Pure; no I/O.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One column of the table schema, as stored in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    /// Column name.
    pub name: String,
    /// Type in the format's own vocabulary (`int64`, `utf8`, `timestamp(ns,UTC)`, ...),
    /// stored as `type`.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the column may hold nulls.
    pub nullable: bool,
}

/// Converts an Arrow schema to its log form; fails on types the format does not support.
pub fn schema_to_wire(schema: &Schema) -> Result<Vec<FieldDef>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            Ok(FieldDef { name: f.name().clone(), data_type: type_to_wire(f.data_type())?, nullable: f.is_nullable() })
        })
        .collect()
}

/// Converts the log form back to an Arrow schema.
pub fn schema_from_wire(fields: &[FieldDef]) -> Result<SchemaRef> {
    let fields: Result<Vec<Field>> =
        fields.iter().map(|f| Ok(Field::new(&f.name, type_from_wire(&f.data_type)?, f.nullable))).collect();
    Ok(Arc::new(Schema::new(fields?)))
}

fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    }
}

fn type_to_wire(data_type: &DataType) -> Result<String> {
    let name = match data_type {
        DataType::Boolean => "boolean".to_string(),
        DataType::Int8 => "int8".to_string(),
        DataType::Int16 => "int16".to_string(),
        DataType::Int32 => "int32".to_string(),
        DataType::Int64 => "int64".to_string(),
        DataType::UInt8 => "uint8".to_string(),
        DataType::UInt16 => "uint16".to_string(),
        DataType::UInt32 => "uint32".to_string(),
        DataType::UInt64 => "uint64".to_string(),
        DataType::Float32 => "float32".to_string(),
        DataType::Float64 => "float64".to_string(),
        DataType::Utf8 => "utf8".to_string(),
        DataType::LargeUtf8 => "large_utf8".to_string(),
        DataType::Binary => "binary".to_string(),
        DataType::LargeBinary => "large_binary".to_string(),
        DataType::Date32 => "date32".to_string(),
        DataType::Date64 => "date64".to_string(),
        DataType::Decimal128(p, s) => format!("decimal128({p},{s})"),
        DataType::Timestamp(unit, None) => format!("timestamp({})", unit_name(*unit)),
        DataType::Timestamp(unit, Some(tz)) => format!("timestamp({},{tz})", unit_name(*unit)),
        other => {
            return Err(Error::invalid_input(format!(
                "column type {other} is not supported by the table format (use integers, floats, booleans, \
                 utf8, binary, dates, decimal128 or timestamps)"
            )))
        }
    };
    Ok(name)
}

fn type_from_wire(text: &str) -> Result<DataType> {
    let bad = || Error::invalid_spec(format!("unknown column type '{text}' in the table schema"));
    let simple = match text {
        "boolean" => Some(DataType::Boolean),
        "int8" => Some(DataType::Int8),
        "int16" => Some(DataType::Int16),
        "int32" => Some(DataType::Int32),
        "int64" => Some(DataType::Int64),
        "uint8" => Some(DataType::UInt8),
        "uint16" => Some(DataType::UInt16),
        "uint32" => Some(DataType::UInt32),
        "uint64" => Some(DataType::UInt64),
        "float32" => Some(DataType::Float32),
        "float64" => Some(DataType::Float64),
        "utf8" => Some(DataType::Utf8),
        "large_utf8" => Some(DataType::LargeUtf8),
        "binary" => Some(DataType::Binary),
        "large_binary" => Some(DataType::LargeBinary),
        "date32" => Some(DataType::Date32),
        "date64" => Some(DataType::Date64),
        _ => None,
    };
    if let Some(t) = simple {
        return Ok(t);
    }
    let (head, args) = text.strip_suffix(')').and_then(|t| t.split_once('(')).ok_or_else(bad)?;
    match head {
        "decimal128" => {
            let (p, s) = args.split_once(',').ok_or_else(bad)?;
            Ok(DataType::Decimal128(p.trim().parse().map_err(|_| bad())?, s.trim().parse().map_err(|_| bad())?))
        }
        "timestamp" => {
            let (unit, tz) = match args.split_once(',') {
                Some((u, tz)) => (u, Some(Arc::from(tz))),
                None => (args, None),
            };
            let unit = match unit {
                "s" => TimeUnit::Second,
                "ms" => TimeUnit::Millisecond,
                "us" => TimeUnit::Microsecond,
                "ns" => TimeUnit::Nanosecond,
                _ => return Err(bad()),
            };
            Ok(DataType::Timestamp(unit, tz))
        }
        _ => Err(bad()),
    }
}

/// Renders a schema compactly for messages: `ts: timestamp(ns,UTC), symbol: utf8, ...`.
pub fn describe_schema(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| {
            let ty = type_to_wire(f.data_type()).unwrap_or_else(|_| f.data_type().to_string());
            format!("{}: {ty}{}", f.name(), if f.is_nullable() { "" } else { " not null" })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The type a column of `data_type` is stored as. String and binary views and
/// dictionary-encoded strings (as polars and DuckDB write them) are stored in their plain
/// form; every other type as it is.
pub fn storage_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, values) => storage_type(values),
        other => other.clone(),
    }
}

/// `input` with every column at its [`storage_type`]: what a first append adopts.
pub fn storage_schema(input: &Schema) -> Schema {
    let fields: Vec<Field> =
        input.fields().iter().map(|f| f.as_ref().clone().with_data_type(storage_type(f.data_type()))).collect();
    Schema::new_with_metadata(fields, input.metadata().clone())
}

/// Whether every value of type `from` converts to type `to` unchanged: the same type,
/// another encoding of the same strings or bytes, or a timestamp in a coarser unit with the
/// same zone (a value outside the finer unit's range is still an error when converted).
pub fn converts_losslessly(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match (storage_type(from), to) {
        (from, to) if from == *to => true,
        (Utf8 | LargeUtf8, Utf8 | LargeUtf8) | (Binary | LargeBinary, Binary | LargeBinary) => true,
        (Timestamp(from_unit, from_tz), Timestamp(to_unit, to_tz)) => {
            from_tz == *to_tz
                && crate::metadata::time::nanos_per_unit(from_unit) % crate::metadata::time::nanos_per_unit(*to_unit)
                    == 0
        }
        _ => false,
    }
}

/// `batch` with its columns converted to the table's types (see [`converts_losslessly`];
/// the schema check has already admitted them), and nulls for trailing columns the batch
/// lacks (a segment written before they were added). A timestamp that does not fit the finer unit is an
/// error naming the column, never a wrapped value.
pub fn conform_batch(batch: &RecordBatch, table: &SchemaRef) -> Result<RecordBatch> {
    let columns = table
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| conform_column(batch.columns().get(i), field, batch.num_rows()))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(table), columns)?)
}

/// `column` converted to `field`'s type as [`conform_batch`] converts it, or `rows` nulls
/// when a segment has no such column.
pub fn conform_column(column: Option<&ArrayRef>, field: &Field, rows: usize) -> Result<ArrayRef> {
    let Some(column) = column else {
        return Ok(new_null_array(field.data_type(), rows));
    };
    if column.data_type() == field.data_type() {
        return Ok(Arc::clone(column));
    }
    let options = CastOptions { safe: false, ..Default::default() };
    cast_with_options(column, field.data_type(), &options).map_err(|e| {
        Error::invalid_input(format!(
            "column '{}' cannot be converted from {} to the table's {}: {e}",
            field.name(),
            column.data_type(),
            field.data_type()
        ))
    })
}

/// Checks that input with schema `input` can be appended to a table with schema `table`:
/// same column names and order, and types that convert without loss
/// ([`converts_losslessly`]); a column the table declares non-null must be provably
/// null-free in the input (`null_free[i]`).
pub fn check_append_schema(table: &Schema, input: &Schema, null_free: &[bool]) -> Result<()> {
    let mismatch = |detail: String| Error::SchemaMismatch {
        expected: describe_schema(table),
        found: describe_schema(input),
        detail,
    };
    if input.fields().len() > table.fields().len() {
        let extra: Vec<&str> = input.fields()[table.fields().len()..].iter().map(|f| f.name().as_str()).collect();
        return Err(mismatch(format!(
            "the table has {} columns, the input has {}: {} (to add columns, append with schema evolution: `evolve_schema`, `tsq append --evolve-schema`)",
            table.fields().len(),
            input.fields().len(),
            extra.join(", ")
        )));
    }
    if input.fields().len() < table.fields().len() {
        let missing: Vec<&str> = table.fields()[input.fields().len()..].iter().map(|f| f.name().as_str()).collect();
        return Err(mismatch(format!(
            "the table has {} columns, the input has {}: {} missing (give columns the data lacks as nulls)",
            table.fields().len(),
            input.fields().len(),
            missing.join(", ")
        )));
    }
    for (i, (want, got)) in table.fields().iter().zip(input.fields()).enumerate() {
        if want.name() != got.name() {
            return Err(mismatch(format!(
                "column {} is '{}' in the table but '{}' in the input",
                i + 1,
                want.name(),
                got.name()
            )));
        }
        if !converts_losslessly(got.data_type(), want.data_type()) {
            return Err(mismatch(format!(
                "column '{}' has type {} in the table but {} in the input, which does not convert without loss",
                want.name(),
                want.data_type(),
                got.data_type()
            )));
        }
        if !want.is_nullable() && got.is_nullable() && !null_free.get(i).copied().unwrap_or(false) {
            return Err(mismatch(format!(
                "column '{}' is NOT NULL in the table but the input has nulls in it",
                want.name()
            )));
        }
    }
    Ok(())
}

/// Checks that segments written with schema `staged` (the table's schema when they were
/// written, or a widening of it) fit a table whose schema is now `table`: the columns they
/// share agree in name and type. Columns the table gained since read as nulls.
pub fn check_staged_schema(table: &Schema, staged: &Schema) -> Result<()> {
    for (want, got) in table.fields().iter().zip(staged.fields()) {
        if want.name() != got.name() || want.data_type() != got.data_type() {
            return Err(Error::SchemaMismatch {
                expected: describe_schema(table),
                found: describe_schema(staged),
                detail: format!(
                    "the table's schema changed while the data was written: column '{}' is now {} {}",
                    got.name(),
                    want.name(),
                    want.data_type()
                ),
            });
        }
    }
    Ok(())
}

/// `table` widened by the columns `input` has after the table's own, for an append with
/// schema evolution. The input must match the table's columns first (see
/// [`check_append_schema`]); the new columns are stored nullable, since older segments
/// have no values for them.
pub fn widen_schema(table: &Schema, input: &Schema) -> Result<Schema> {
    let extra = input.fields().iter().skip(table.fields().len());
    let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
    for field in extra {
        check_new_column(table, field)?;
        fields.push(field.as_ref().clone().with_data_type(storage_type(field.data_type())).with_nullable(true));
    }
    Ok(Schema::new_with_metadata(fields, table.metadata().clone()))
}

/// Checks that `field` can be added to `table`: a new name, a supported type.
pub fn check_new_column(table: &Schema, field: &Field) -> Result<()> {
    if table.fields().iter().any(|f| f.name().eq_ignore_ascii_case(field.name())) {
        return Err(Error::invalid_input(format!(
            "the table already has a column named '{}'; columns cannot be renamed or retyped",
            field.name()
        )));
    }
    type_to_wire(&storage_type(field.data_type())).map_err(|_| {
        Error::invalid_input(format!(
            "column '{}' has type {}, which the table format cannot store",
            field.name(),
            field.data_type()
        ))
    })?;
    Ok(())
}

/// Parses a column type in the format's vocabulary (`int64`, `utf8`, `timestamp(ms,UTC)`,
/// ...), plus the common SQL names `bigint`, `int`, `double`, `float`, `string`, `varchar`,
/// `text` and `bool`.
pub fn parse_column_type(text: &str) -> Result<DataType> {
    let lower = text.trim().to_ascii_lowercase();
    let alias = match lower.as_str() {
        "bigint" => "int64",
        "int" | "integer" => "int32",
        "smallint" => "int16",
        "tinyint" => "int8",
        "double" => "float64",
        "float" | "real" => "float32",
        "string" | "varchar" | "text" => "utf8",
        "bool" => "boolean",
        "date" => "date32",
        // Time zone names are case-sensitive.
        _ if lower.starts_with("timestamp") => text.trim(),
        other => other,
    };
    type_from_wire(alias).map_err(|_| {
        Error::invalid_input(format!(
            "unknown column type '{text}': use one of boolean, int8..int64, uint8..uint64, float32, float64, utf8, binary, date32, decimal128(p,s), timestamp(unit[,zone])"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_type_round_trips() {
        let schema = Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
            Field::new("ts2", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("sym", DataType::Utf8, false),
            Field::new("px", DataType::Float64, true),
            Field::new("d", DataType::Decimal128(18, 4), true),
            Field::new("n", DataType::UInt64, true),
            Field::new("day", DataType::Date32, true),
        ]);
        let wire = schema_to_wire(&schema).unwrap();
        assert_eq!(wire[0].data_type, "timestamp(ms,UTC)");
        assert_eq!(*schema_from_wire(&wire).unwrap(), schema);
    }

    #[test]
    fn equivalent_types_convert_and_lossy_ones_do_not() {
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        for string in [DataType::Utf8View, DataType::LargeUtf8, dict.clone()] {
            assert!(converts_losslessly(&string, &DataType::Utf8), "{string}");
        }
        assert_eq!(storage_type(&dict), DataType::Utf8);
        assert_eq!(storage_type(&DataType::Utf8View), DataType::Utf8);
        let ts = |unit, tz: Option<&str>| DataType::Timestamp(unit, tz.map(Arc::from));
        assert!(converts_losslessly(&ts(TimeUnit::Second, None), &ts(TimeUnit::Nanosecond, None)));
        assert!(!converts_losslessly(&ts(TimeUnit::Nanosecond, None), &ts(TimeUnit::Millisecond, None)));
        assert!(!converts_losslessly(&ts(TimeUnit::Second, Some("UTC")), &ts(TimeUnit::Second, None)));
        assert!(!converts_losslessly(&DataType::Int32, &DataType::Int64), "numbers are not widened");
        assert!(!converts_losslessly(&DataType::Utf8, &DataType::Binary));
    }

    #[test]
    fn conforming_casts_views_and_refuses_out_of_range_timestamps() {
        use arrow::array::{Array, StringViewArray, TimestampSecondArray};
        let table: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("sym", DataType::Utf8, false),
        ]));
        let input = Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), false),
            Field::new("sym", DataType::Utf8View, false),
        ]);
        let batch = |seconds: i64| {
            RecordBatch::try_new(
                Arc::new(input.clone()),
                vec![
                    Arc::new(TimestampSecondArray::from(vec![seconds])),
                    Arc::new(StringViewArray::from(vec!["AAPL"])),
                ],
            )
            .unwrap()
        };
        let out = conform_batch(&batch(2), &table).unwrap();
        assert_eq!(out.schema(), table);
        assert_eq!(out.column(1).len(), 1);
        let err = conform_batch(&batch(i64::MAX / 2), &table).unwrap_err();
        assert!(err.to_string().contains("column 'ts' cannot be converted"), "{err}");
    }

    #[test]
    fn unsupported_and_unknown_types_are_errors() {
        let schema = Schema::new(vec![Field::new("l", DataType::new_list(DataType::Int32, true), true)]);
        assert!(schema_to_wire(&schema).is_err());
        let bad = [FieldDef { name: "x".into(), data_type: "timestamp(min)".into(), nullable: true }];
        assert!(schema_from_wire(&bad).is_err());
    }
}
