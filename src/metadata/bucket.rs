//! `TimeBucket`: the coverage granularity of a table, parsed from `<n><unit>`.
//!
//! Pure; no I/O. Buckets are aligned to the Unix epoch in UTC, except day buckets of a
//! table with a time zone, which follow its local days (see `coverage::BucketGrid`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Unit of a bucket length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketUnit {
    /// `s`
    Second,
    /// `m`
    Minute,
    /// `h`
    Hour,
    /// `d`: 86 400 s, or a local calendar day on a table with a time zone (see
    /// [`crate::coverage::BucketGrid`]).
    Day,
}

impl BucketUnit {
    fn seconds(self) -> i64 {
        match self {
            BucketUnit::Second => 1,
            BucketUnit::Minute => 60,
            BucketUnit::Hour => 3_600,
            BucketUnit::Day => 86_400,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            BucketUnit::Second => "s",
            BucketUnit::Minute => "m",
            BucketUnit::Hour => "h",
            BucketUnit::Day => "d",
        }
    }
}

/// A fixed bucket length such as `30s`, `1m`, `15m`, `1h` or `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeBucket {
    count: u32,
    unit: BucketUnit,
    nanos: i64,
}

impl TimeBucket {
    /// A bucket of `count` units; `count` must be positive.
    pub fn try_new(count: u32, unit: BucketUnit) -> Result<Self> {
        let spec = format!("{count}{}", unit.suffix());
        if count == 0 {
            return Err(Error::InvalidBucket { spec, reason: "the length must be positive".into() });
        }
        let nanos = (count as i64)
            .checked_mul(unit.seconds())
            .and_then(|s| s.checked_mul(NANOS_PER_SECOND))
            .ok_or_else(|| Error::InvalidBucket { spec, reason: "the length is too large".into() })?;
        Ok(TimeBucket { count, unit, nanos })
    }

    /// Length of one bucket in nanoseconds (always positive).
    pub fn nanos(&self) -> i64 {
        self.nanos
    }

    /// The number of days of a day bucket (`Nd`), `None` for shorter units.
    pub fn days(&self) -> Option<i64> {
        (self.unit == BucketUnit::Day).then_some(i64::from(self.count))
    }

    /// Length of one bucket in whole seconds.
    pub fn seconds(&self) -> i64 {
        self.nanos / NANOS_PER_SECOND
    }
}

impl fmt::Display for TimeBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.suffix())
    }
}

impl FromStr for TimeBucket {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidBucket { spec: s.to_string(), reason: reason.into() };
        let text = s.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| bad("missing unit"))?;
        let (digits, unit) = text.split_at(split);
        if digits.is_empty() {
            return Err(bad("missing length"));
        }
        let count: u32 = digits.parse().map_err(|_| bad("the length is too large"))?;
        let unit = match unit {
            "s" => BucketUnit::Second,
            "m" => BucketUnit::Minute,
            "h" => BucketUnit::Hour,
            "d" => BucketUnit::Day,
            _ => return Err(bad("unknown unit")),
        };
        TimeBucket::try_new(count, unit).map_err(|_| bad("the length must be positive and fit in nanoseconds"))
    }
}

impl Serialize for TimeBucket {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeBucket {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        for (text, secs) in [("30s", 30), ("1m", 60), ("15m", 900), ("1h", 3600), ("1d", 86400), (" 2h ", 7200)] {
            let bucket: TimeBucket = text.parse().unwrap();
            assert_eq!(bucket.seconds(), secs, "{text}");
        }
        assert_eq!("15m".parse::<TimeBucket>().unwrap().to_string(), "15m");
    }

    #[test]
    fn rejects_bad_forms() {
        for text in ["", "m", "0m", "1", "1w", "1.5h", "-1m", "1 m", "99999999999d", "4294967295d"] {
            let err = text.parse::<TimeBucket>().unwrap_err();
            assert!(matches!(err, Error::InvalidBucket { .. }), "{text}: {err}");
        }
    }

    #[test]
    fn serde_round_trip_is_the_string_form() {
        let bucket: TimeBucket = "5m".parse().unwrap();
        let json = serde_json::to_string(&bucket).unwrap();
        assert_eq!(json, "\"5m\"");
        assert_eq!(serde_json::from_str::<TimeBucket>(&json).unwrap(), bucket);
        assert!(serde_json::from_str::<TimeBucket>("\"7x\"").is_err());
    }
}
