//! Entity keys: the values of a row's entity columns (e.g. `symbol`, `sensor_id`).
//!
//! Pure; no I/O. A table without entity columns has one implicit entity, the empty key.

use std::fmt;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int32Type, Int64Type, UInt64Type};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One entity column value. Unsigned values that fit in `i64` are stored as `Int`, so a
/// key compares equal however it was produced.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum EntityValue {
    /// A signed integer, or an unsigned one that fits in `i64`.
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// A string.
    Str(String),
}

impl EntityValue {
    /// Normalizing constructor for unsigned values.
    pub fn from_u64(value: u64) -> Self {
        i64::try_from(value).map(EntityValue::Int).unwrap_or(EntityValue::UInt(value))
    }
}

/// Reads what the untagged serialization writes (a JSON integer or string) directly: serde's
/// untagged deserialization buffers each value first, which made opening a checkpoint of a
/// million segments several hundred milliseconds slower.
impl<'de> Deserialize<'de> for EntityValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = EntityValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an entity value (an integer or a string)")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<EntityValue, E> {
                Ok(EntityValue::Int(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<EntityValue, E> {
                Ok(EntityValue::from_u64(v))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<EntityValue, E> {
                Ok(EntityValue::Str(v.to_string()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<EntityValue, E> {
                Ok(EntityValue::Str(v))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

impl fmt::Display for EntityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityValue::Int(v) => write!(f, "{v}"),
            EntityValue::UInt(v) => write!(f, "{v}"),
            EntityValue::Str(v) => write!(f, "{v}"),
        }
    }
}

/// The entity-column values of one entity, in entity-column order.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntityKey(pub Vec<EntityValue>);

impl EntityKey {
    /// The key of the single implicit entity of a table without entity columns.
    pub fn implicit() -> Self {
        EntityKey(Vec::new())
    }

    /// `symbol=AAPL, venue=X` style text for messages, given the entity column names.
    pub fn describe(&self, columns: &[String]) -> String {
        if self.0.is_empty() {
            return "(whole table)".to_string();
        }
        columns.iter().zip(&self.0).map(|(c, v)| format!("{c}={v}")).collect::<Vec<_>>().join(", ")
    }
}

impl From<&str> for EntityKey {
    /// The key of a table with one string entity column.
    fn from(value: &str) -> Self {
        EntityKey(vec![EntityValue::Str(value.to_string())])
    }
}

impl From<String> for EntityKey {
    /// The key of a table with one string entity column.
    fn from(value: String) -> Self {
        EntityKey(vec![EntityValue::Str(value)])
    }
}

impl From<i64> for EntityKey {
    /// The key of a table with one integer entity column.
    fn from(value: i64) -> Self {
        EntityKey(vec![EntityValue::Int(value)])
    }
}

impl From<Vec<EntityValue>> for EntityKey {
    /// The key of a table with several entity columns, values in column order.
    fn from(values: Vec<EntityValue>) -> Self {
        EntityKey(values)
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|v| v.to_string()).collect();
        write!(f, "{}", parts.join("/"))
    }
}

/// Whether `data_type` may be used as an entity column.
pub fn is_entity_type(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Int32 | DataType::Int64 | DataType::UInt64)
}

/// Reads entity values row by row from the entity columns of a batch.
pub(crate) struct EntityReader<'a> {
    columns: Vec<(&'a str, &'a ArrayRef)>,
}

impl<'a> EntityReader<'a> {
    /// `columns` are (name, array) pairs; each must be an entity type without nulls.
    pub fn try_new(columns: Vec<(&'a str, &'a ArrayRef)>) -> Result<Self> {
        for (name, array) in &columns {
            if !is_entity_type(array.data_type()) {
                return Err(Error::invalid_input(format!(
                    "entity column '{name}' has type {}, expected Utf8, LargeUtf8, Int32, Int64 or UInt64",
                    array.data_type()
                )));
            }
            if array.null_count() > 0 {
                return Err(Error::invalid_input(format!(
                    "entity column '{name}' has {} null value(s); entity columns must not be null",
                    array.null_count()
                )));
            }
        }
        Ok(EntityReader { columns })
    }

    /// The key of row `row`.
    pub fn key(&self, row: usize) -> EntityKey {
        EntityKey(self.columns.iter().map(|(_, array)| value_at(array, row)).collect())
    }
}

fn value_at(array: &ArrayRef, row: usize) -> EntityValue {
    match array.data_type() {
        DataType::Utf8 => EntityValue::Str(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => EntityValue::Str(array.as_string::<i64>().value(row).to_string()),
        DataType::Int32 => EntityValue::Int(array.as_primitive::<Int32Type>().value(row) as i64),
        DataType::Int64 => EntityValue::Int(array.as_primitive::<Int64Type>().value(row)),
        _ => EntityValue::from_u64(array.as_primitive::<UInt64Type>().value(row)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_serialize_as_plain_json_arrays() {
        let key = EntityKey(vec![EntityValue::Str("AAPL".into()), EntityValue::Int(3)]);
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, r#"["AAPL",3]"#);
        assert_eq!(serde_json::from_str::<EntityKey>(&json).unwrap(), key);
        let big = EntityKey(vec![EntityValue::from_u64(u64::MAX)]);
        assert_eq!(serde_json::from_str::<EntityKey>(&serde_json::to_string(&big).unwrap()).unwrap(), big);
        assert_eq!(EntityValue::from_u64(7), EntityValue::Int(7));
    }

    #[test]
    fn values_read_back_as_written_and_nothing_else_is_a_value() {
        let values = [
            EntityValue::Int(-3),
            EntityValue::Int(i64::MAX),
            EntityValue::UInt(u64::MAX),
            EntityValue::Str("a \"quoted\" \\ é".into()),
            EntityValue::Str("12".into()),
        ];
        let json = serde_json::to_string(&values).unwrap();
        assert_eq!(serde_json::from_str::<Vec<EntityValue>>(&json).unwrap(), values);
        for bad in ["1.5", "true", "null", "[1]", "{}"] {
            assert!(serde_json::from_str::<EntityValue>(bad).is_err(), "{bad}");
        }
    }
}
