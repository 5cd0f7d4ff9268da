//! Timestamps: conversion between Arrow time units and the crate's internal
//! nanoseconds since the Unix epoch (UTC), and human-readable formatting.
//!
//! Pure; no I/O. Internal timestamps are `i64` nanoseconds, so the supported range is
//! roughly 1677-09-21 to 2262-04-11; values outside it are an error, never a wrap.

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::TimeUnit;

use crate::error::{Error, Result};

/// A point in time, in nanoseconds since the Unix epoch (UTC): the unit every time value
/// of the API is expressed in. Displays as RFC 3339 and parses from RFC 3339 or a date
/// (`"2024-01-02T09:30:00Z"`, `"2024-01-02"`; no offset means UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest representable instant (1677-09-21).
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable instant (2262-04-11).
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// The instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// The same instant as a `chrono` UTC date-time.
    pub fn to_datetime(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_nanos(self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_nanos(self.0))
    }
}

impl FromStr for Timestamp {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        parse_timestamp(text).map(Timestamp)
    }
}

impl Timestamp {
    /// Parses RFC 3339 or a date; a time without an offset (or a bare date) is read as
    /// the wall clock of `zone` (an IANA name or an offset such as `+05:30`), or UTC
    /// when `zone` is `None`. This is the one rule for such strings: table-function
    /// arguments, the CLI and DataFusion's comparison of a string with a zoned column
    /// all read them so.
    pub fn parse_in(text: &str, zone: Option<&str>) -> Result<Self> {
        let Some(zone) = zone else { return text.parse() };
        let tz: arrow::array::timezone::Tz = zone
            .parse()
            .map_err(|_| Error::invalid_input(format!("unknown time zone '{zone}' for reading '{text}'")))?;
        let parsed = arrow::compute::kernels::cast_utils::string_to_datetime(&tz, text.trim()).map_err(|e| {
            Error::InvalidInput {
                reason: format!(
                    "cannot parse timestamp '{text}': {e} (expected e.g. 2024-01-02T09:30:00Z or 2024-01-02)"
                ),
            }
        })?;
        Timestamp::try_from(parsed.with_timezone(&chrono::Utc))
    }
}

impl TryFrom<chrono::DateTime<chrono::Utc>> for Timestamp {
    type Error = Error;

    fn try_from(value: chrono::DateTime<chrono::Utc>) -> Result<Self> {
        value.timestamp_nanos_opt().map(Timestamp).ok_or_else(|| Error::TimestampOutOfRange {
            detail: format!("{value} is outside the years 1677-2262 that nanoseconds can hold"),
        })
    }
}

/// Nanoseconds in one unit of `unit`.
pub fn nanos_per_unit(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// Converts a value in `unit` to nanoseconds, failing instead of overflowing.
pub fn to_nanos(value: i64, unit: TimeUnit) -> Result<i64> {
    value.checked_mul(nanos_per_unit(unit)).ok_or_else(|| Error::TimestampOutOfRange {
        detail: format!("{value} {unit:?}s since the epoch does not fit in nanoseconds (years 1677-2262)"),
    })
}

/// Converts nanoseconds to `unit`, rounding toward negative infinity.
pub fn from_nanos(nanos: i64, unit: TimeUnit) -> i64 {
    nanos.div_euclid(nanos_per_unit(unit))
}

/// Converts nanoseconds to `unit`, rounding toward positive infinity.
pub fn ceil_nanos(nanos: i64, unit: TimeUnit) -> i64 {
    let per = nanos_per_unit(unit);
    let floor = nanos.div_euclid(per);
    if nanos.rem_euclid(per) == 0 {
        floor
    } else {
        floor + 1
    }
}

/// Formats nanoseconds since the epoch as an RFC 3339 UTC timestamp.
pub fn format_nanos(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 / ISO 8601 timestamp (or a date) to nanoseconds since the epoch.
/// A timestamp without an offset is taken as UTC.
pub fn parse_timestamp(text: &str) -> Result<i64> {
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(text.trim()).map_err(|e| Error::InvalidInput {
        reason: format!("cannot parse timestamp '{text}': {e} (expected e.g. 2024-01-02T09:30:00Z or 2024-01-02)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_conversions_round_trip() {
        for unit in [TimeUnit::Second, TimeUnit::Millisecond, TimeUnit::Microsecond, TimeUnit::Nanosecond] {
            let nanos = to_nanos(-1_700, unit).unwrap();
            assert_eq!(from_nanos(nanos, unit), -1_700);
        }
        assert!(to_nanos(i64::MAX / 2, TimeUnit::Second).is_err());
        assert_eq!(from_nanos(-1, TimeUnit::Second), -1, "floor, not truncation");
    }

    #[test]
    fn formats_and_parses_utc() {
        let nanos = parse_timestamp("2024-01-02T09:30:00Z").unwrap();
        assert_eq!(format_nanos(nanos), "2024-01-02T09:30:00Z");
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z").unwrap(), -1_000_000_000);
        assert!(parse_timestamp("yesterday").is_err());
        let t: Timestamp = "2024-01-02".parse().unwrap();
        assert_eq!(t.to_string(), "2024-01-02T00:00:00Z");
        assert_eq!(Timestamp::try_from(t.to_datetime()).unwrap(), t);
    }

    #[test]
    fn both_ends_of_the_range_format_and_round() {
        assert_eq!(Timestamp::MIN.to_string().parse::<Timestamp>().unwrap(), Timestamp::MIN);
        assert_eq!(Timestamp::MAX.to_string().parse::<Timestamp>().unwrap(), Timestamp::MAX);
        assert_eq!(ceil_nanos(i64::MAX, TimeUnit::Second), i64::MAX / 1_000_000_000 + 1);
        assert_eq!(ceil_nanos(-1, TimeUnit::Second), 0);
        assert_eq!(ceil_nanos(i64::MIN, TimeUnit::Nanosecond), i64::MIN);
    }
}
