//! Timestamps as SQL values: reading a literal (any timestamp unit or zone, a date, or an
//! RFC 3339 string) as nanoseconds, and writing nanoseconds as a scalar of the time
//! column's exact type. Every SQL surface (predicates, table-function arguments, file
//! statistics, the Rust scan's range filter) goes through this one module.
//!
//! Pure; no I/O.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;

use crate::metadata::time::{ceil_nanos, from_nanos, to_nanos};
use crate::metadata::Timestamp;

/// A timestamp-like scalar as nanoseconds; strings are parsed as RFC 3339, and one
/// without an offset is read in UTC (see [`scalar_nanos_in`]).
pub(crate) fn scalar_nanos(value: &ScalarValue) -> Option<i64> {
    scalar_nanos_in(value, None)
}

/// Like [`scalar_nanos`], reading a string without an offset in `zone` (the table's time
/// zone), as DataFusion does when it compares such a string with a zoned column.
pub(crate) fn scalar_nanos_in(value: &ScalarValue, zone: Option<&str>) -> Option<i64> {
    use TimeUnit::*;
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => to_nanos(*v, Second).ok(),
        ScalarValue::TimestampMillisecond(Some(v), _) => to_nanos(*v, Millisecond).ok(),
        ScalarValue::TimestampMicrosecond(Some(v), _) => to_nanos(*v, Microsecond).ok(),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::Date32(Some(days)) => (*days as i64).checked_mul(86_400_000_000_000),
        ScalarValue::Date64(Some(ms)) => to_nanos(*ms, Millisecond).ok(),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            Timestamp::parse_in(s, zone).ok().map(Timestamp::as_nanos)
        }
        _ => None,
    }
}

/// Nanoseconds as a scalar of the time column's exact type (unit and zone), rounded down
/// to its unit.
pub(crate) fn time_scalar(nanos: i64, data_type: &DataType) -> ScalarValue {
    scalar_in_unit(from_nanos(nanos, unit_of(data_type)), data_type)
}

/// Like [`time_scalar`], rounding up to the column's unit (keeps `[start, end)` bounds
/// exact for coarser units).
pub(crate) fn time_scalar_ceil(nanos: i64, data_type: &DataType) -> ScalarValue {
    scalar_in_unit(ceil_nanos(nanos, unit_of(data_type)), data_type)
}

fn unit_of(data_type: &DataType) -> TimeUnit {
    match data_type {
        DataType::Timestamp(unit, _) => *unit,
        _ => TimeUnit::Nanosecond,
    }
}

fn scalar_in_unit(value: i64, data_type: &DataType) -> ScalarValue {
    let tz = match data_type {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    match unit_of(data_type) {
        TimeUnit::Second => ScalarValue::TimestampSecond(Some(value), tz),
        TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(Some(value), tz),
        TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(Some(value), tz),
        TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(Some(value), tz),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_the_column_unit_both_ways() {
        let seconds = DataType::Timestamp(TimeUnit::Second, Some("UTC".into()));
        assert_eq!(time_scalar(1_500_000_000, &seconds), ScalarValue::TimestampSecond(Some(1), Some("UTC".into())));
        assert_eq!(
            time_scalar_ceil(1_500_000_000, &seconds),
            ScalarValue::TimestampSecond(Some(2), Some("UTC".into()))
        );
        assert_eq!(
            time_scalar_ceil(2_000_000_000, &seconds),
            ScalarValue::TimestampSecond(Some(2), Some("UTC".into()))
        );
        assert_eq!(scalar_nanos(&ScalarValue::Utf8(Some("1970-01-01T00:00:01Z".into()))), Some(1_000_000_000));
        assert_eq!(scalar_nanos(&ScalarValue::TimestampSecond(Some(i64::MAX), None)), None, "out of range");
    }
}
