//! Bucket arithmetic: timestamp to bucket id, bucket id to its time span, and the bucket
//! ids a time range touches.
//!
//! Pure; no I/O. The free functions are the epoch-aligned grid: bucket `id` spans
//! `[id * len, (id + 1) * len)` nanoseconds since the Unix epoch (UTC), so ids are negative
//! before 1970 and bucket 0 starts at the epoch. [`BucketGrid`] is the grid of a table,
//! which is that one, or for day buckets of a table with a time zone (created at format
//! version 2), local calendar days: bucket `id` of `Nd` starts at the local midnight
//! beginning day `id * N` counted from 1970-01-01, so it lasts 23 or 25 hours across a
//! daylight-saving switch.

use std::ops::Range;

use arrow::array::timezone::Tz;
use chrono::{Duration, NaiveDate, NaiveDateTime, Offset, TimeZone};

use crate::error::{Error, Result};
use crate::metadata::{BucketAlignment, TimeBucket, TimeIndexSpec, Timestamp};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// How a table's timestamps map to bucket ids.
#[derive(Clone, Debug)]
pub struct BucketGrid {
    bucket: TimeBucket,
    /// Set for local calendar days; `None` for the epoch-aligned grid.
    zone: Option<Tz>,
}

impl BucketGrid {
    /// The epoch-aligned grid of `bucket`.
    pub fn utc(bucket: TimeBucket) -> Self {
        BucketGrid { bucket, zone: None }
    }

    /// The grid of a table: local days when its spec says so, else epoch-aligned.
    pub fn of(spec: &TimeIndexSpec) -> Self {
        let zone = match (spec.alignment, spec.timezone.as_deref()) {
            // The spec's zone was validated when the table was created.
            (BucketAlignment::Local, Some(tz)) => tz.parse::<Tz>().ok(),
            _ => None,
        };
        BucketGrid { bucket: spec.bucket, zone: zone.filter(|_| spec.bucket.days().is_some()) }
    }

    /// The bucket length the grid is made of.
    pub fn bucket(&self) -> TimeBucket {
        self.bucket
    }

    /// Whether every bucket has the same length, which the epoch-aligned grid does.
    pub fn is_uniform(&self) -> bool {
        self.zone.is_none()
    }

    /// The id of the bucket holding `ts`.
    pub fn bucket_of(&self, ts: i64) -> i64 {
        let (Some(zone), Some(days)) = (&self.zone, self.bucket.days()) else {
            return bucket_of(ts, &self.bucket);
        };
        let local = local_seconds(zone, ts).div_euclid(SECONDS_PER_DAY);
        let guess = local.div_euclid(days);
        // The local date is the bucket except where a switch at midnight moves the day's
        // start off midnight; the starts decide. A start past the `i64` range is never
        // reached, so it decides nothing.
        if self.bucket_start(guess).is_ok_and(|start| start > ts) {
            guess - 1
        } else if self.bucket_start(guess + 1).is_ok_and(|start| start <= ts) {
            guess + 1
        } else {
            guess
        }
    }

    /// The bucket holding `ts` and its span `[start, end)` (clamped to the `i64` range).
    pub fn locate(&self, ts: i64) -> (i64, Range<i64>) {
        let id = self.bucket_of(ts);
        (id, self.start_or_clamp(id)..self.start_or_clamp(id.saturating_add(1)))
    }

    /// First nanosecond of bucket `id`; an error when it falls outside the `i64` range.
    pub fn bucket_start(&self, id: i64) -> Result<i64> {
        match (&self.zone, self.bucket.days()) {
            (Some(zone), Some(days)) => local_day_start(zone, id, days).ok_or_else(|| out_of_range(id, &self.bucket)),
            _ => bucket_start(id, &self.bucket),
        }
    }

    /// Exclusive end of bucket `id`, i.e. the start of bucket `id + 1`.
    pub fn bucket_end(&self, id: i64) -> Result<i64> {
        let next = id.checked_add(1).ok_or_else(|| out_of_range(id, &self.bucket))?;
        self.bucket_start(next)
    }

    /// The start of bucket `id`, clamped to the `i64` range at its ends.
    pub fn start_or_clamp(&self, id: i64) -> i64 {
        match self.bucket_start(id) {
            Ok(start) => start,
            // Bucket 0 starts at (local) 1970-01-01, so negative ids fall off the bottom.
            Err(_) if id < 0 => i64::MIN,
            Err(_) => i64::MAX,
        }
    }

    /// The half-open range of bucket ids that the half-open time range `[start, end)`
    /// intersects. An empty or reversed time range is an error, not an empty result,
    /// because it is always a caller mistake.
    pub fn buckets_touching(&self, start: i64, end: i64) -> Result<Range<i64>> {
        if start >= end {
            return Err(Error::InvalidRange { start: Timestamp::from_nanos(start), end: Timestamp::from_nanos(end) });
        }
        // `end > start >= i64::MIN`, so `end - 1` cannot overflow.
        let last = self.bucket_of(end - 1);
        let stop = last.checked_add(1).ok_or_else(|| out_of_range(last, &self.bucket))?;
        Ok(self.bucket_of(start)..stop)
    }
}

/// Finds the buckets of timestamps that mostly arrive in order: the span of the last one
/// is remembered, so on a local-day grid only a new day costs a time-zone look-up.
#[derive(Clone, Debug)]
pub struct BucketCursor {
    grid: BucketGrid,
    last: Option<(i64, Range<i64>)>,
}

impl BucketCursor {
    /// A cursor over `grid`.
    pub fn new(grid: BucketGrid) -> Self {
        BucketCursor { grid, last: None }
    }

    /// The id of the bucket holding `ts`.
    pub fn id_of(&mut self, ts: i64) -> i64 {
        if self.grid.is_uniform() {
            return self.grid.bucket_of(ts);
        }
        match &self.last {
            Some((id, span)) if span.contains(&ts) => *id,
            _ => {
                let (id, span) = self.grid.locate(ts);
                self.last = Some((id, span));
                id
            }
        }
    }
}

/// Seconds of the local wall clock at `ts`, counted from 1970-01-01T00:00 local.
fn local_seconds(zone: &Tz, ts: i64) -> i64 {
    let utc = ts.div_euclid(NANOS_PER_SECOND);
    let naive = chrono::DateTime::from_timestamp(utc, 0).map(|d| d.naive_utc()).unwrap_or_default();
    utc + i64::from(zone.offset_from_utc_datetime(&naive).fix().local_minus_utc())
}

/// The first instant (nanoseconds) of local day `id * days` after 1970-01-01: its
/// midnight, the earlier one if midnight happens twice, or the switch that skips it.
fn local_day_start(zone: &Tz, id: i64, days: i64) -> Option<i64> {
    let day = id.checked_mul(days)?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let date = epoch.checked_add_signed(Duration::try_days(day)?)?;
    let midnight: NaiveDateTime = date.and_hms_opt(0, 0, 0)?;
    let seconds = match zone.offset_from_local_datetime(&midnight) {
        chrono::LocalResult::Single(offset) | chrono::LocalResult::Ambiguous(offset, _) => {
            midnight.and_utc().timestamp() - i64::from(offset.fix().local_minus_utc())
        }
        // Midnight is skipped: the day starts at the switch, where the offset before it
        // would have put midnight.
        chrono::LocalResult::None => {
            let before = zone.offset_from_utc_datetime(&(midnight - Duration::hours(12))).fix().local_minus_utc();
            midnight.and_utc().timestamp() - i64::from(before)
        }
    };
    seconds.checked_mul(NANOS_PER_SECOND)
}

/// The id of the bucket holding `ts`.
///
/// Floor division, so `-1` ns lies in bucket `-1`, not bucket `0`.
pub fn bucket_of(ts: i64, bucket: &TimeBucket) -> i64 {
    // `nanos()` is always positive, so this can neither divide by zero nor overflow.
    ts.div_euclid(bucket.nanos())
}

/// First nanosecond of bucket `id`; an error when it falls outside the `i64` range.
pub fn bucket_start(id: i64, bucket: &TimeBucket) -> Result<i64> {
    id.checked_mul(bucket.nanos()).ok_or_else(|| out_of_range(id, bucket))
}

/// Exclusive end of bucket `id`, i.e. the start of bucket `id + 1`.
pub fn bucket_end(id: i64, bucket: &TimeBucket) -> Result<i64> {
    id.checked_add(1).and_then(|next| next.checked_mul(bucket.nanos())).ok_or_else(|| out_of_range(id, bucket))
}

/// The half-open range of epoch-aligned bucket ids that `[start, end)` intersects; see
/// [`BucketGrid::buckets_touching`].
pub fn expected_buckets(start: i64, end: i64, bucket: &TimeBucket) -> Result<Range<i64>> {
    BucketGrid::utc(*bucket).buckets_touching(start, end)
}

fn out_of_range(id: i64, bucket: &TimeBucket) -> Error {
    Error::TimestampOutOfRange {
        detail: format!(
            "bucket {id} of length {bucket} lies outside the representable nanosecond range (years 1677-2262)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::BucketUnit;

    const S: i64 = 1_000_000_000;

    fn b(spec: &str) -> TimeBucket {
        spec.parse().unwrap()
    }

    #[test]
    fn floor_semantics_before_and_after_the_epoch() {
        let m = b("1m");
        assert_eq!(bucket_of(0, &m), 0);
        assert_eq!(bucket_of(-1, &m), -1);
        assert_eq!(bucket_of(60 * S - 1, &m), 0);
        assert_eq!(bucket_of(60 * S, &m), 1);
        assert_eq!(bucket_of(-60 * S, &m), -1);
        assert_eq!(bucket_of(-60 * S - 1, &m), -2);
        assert_eq!(bucket_of(i64::MIN, &m), i64::MIN.div_euclid(60 * S));
        assert_eq!(bucket_of(i64::MAX, &m), i64::MAX / (60 * S));
    }

    #[test]
    fn every_unit_round_trips_at_boundaries() {
        let units =
            [(BucketUnit::Second, 1), (BucketUnit::Minute, 60), (BucketUnit::Hour, 3_600), (BucketUnit::Day, 86_400)];
        for (unit, secs) in units {
            for count in [1u32, 7, 15] {
                let bucket = TimeBucket::try_new(count, unit).unwrap();
                let len = secs * count as i64 * S;
                assert_eq!(bucket.nanos(), len);
                for id in [-1_000_i64, -2, -1, 0, 1, 2, 2_000] {
                    let start = bucket_start(id, &bucket).unwrap();
                    let end = bucket_end(id, &bucket).unwrap();
                    assert_eq!(start, id * len, "{bucket} {id}");
                    assert_eq!(end, start + len);
                    assert_eq!(bucket_of(start, &bucket), id);
                    assert_eq!(bucket_of(end - 1, &bucket), id);
                    assert_eq!(bucket_of(end, &bucket), id + 1);
                    assert_eq!(bucket_of(start - 1, &bucket), id - 1);
                }
            }
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let d = b("1d");
        let last = bucket_of(i64::MAX, &d);
        assert!(bucket_start(last, &d).is_ok());
        assert!(matches!(bucket_end(last, &d), Err(Error::TimestampOutOfRange { .. })));
        assert!(matches!(bucket_start(last + 1, &d), Err(Error::TimestampOutOfRange { .. })));
        assert!(matches!(bucket_start(i64::MIN, &d), Err(Error::TimestampOutOfRange { .. })));
        assert!(matches!(bucket_end(i64::MAX, &d), Err(Error::TimestampOutOfRange { .. })));
        let first = bucket_of(i64::MIN, &d);
        assert!(bucket_start(first, &d).is_err(), "the first bucket starts before i64::MIN");
        assert!(bucket_end(first, &d).is_ok());
    }

    #[test]
    fn expected_buckets_examples() {
        let m = b("1m");
        assert_eq!(expected_buckets(30 * S, 120 * S, &m).unwrap(), 0..2);
        assert_eq!(expected_buckets(30 * S, 120 * S + 1, &m).unwrap(), 0..3);
        assert_eq!(expected_buckets(0, 1, &m).unwrap(), 0..1);
        assert_eq!(expected_buckets(-1, 0, &m).unwrap(), -1..0);
        assert_eq!(expected_buckets(-1, 1, &m).unwrap(), -1..1);
        assert_eq!(expected_buckets(-120 * S, 60 * S, &m).unwrap(), -2..1);
        assert_eq!(
            expected_buckets(i64::MIN, i64::MAX, &m).unwrap(),
            bucket_of(i64::MIN, &m)..bucket_of(i64::MAX - 1, &m) + 1
        );
    }

    #[test]
    fn empty_or_reversed_ranges_are_invalid() {
        let m = b("1m");
        for (start, end) in [(5, 5), (6, 5), (0, -1), (i64::MAX, i64::MIN)] {
            match expected_buckets(start, end, &m) {
                Err(Error::InvalidRange { start: s, end: e }) => {
                    assert_eq!(s.as_nanos(), start);
                    assert_eq!(e.as_nanos(), end);
                }
                other => panic!("({start}, {end}): {other:?}"),
            }
        }
    }

    fn local_days(zone: &str, bucket: &str) -> BucketGrid {
        let spec = TimeIndexSpec::new("ts", b(bucket)).with_timezone(zone);
        let spec = TimeIndexSpec { alignment: BucketAlignment::Local, ..spec };
        BucketGrid::of(&spec)
    }

    fn at(text: &str) -> i64 {
        crate::metadata::parse_timestamp(text).unwrap()
    }

    /// (local date, its first instant in UTC, hours long).
    fn day_golden(grid: &BucketGrid, days: &[(&str, &str, i64)]) {
        for &(date, start, hours) in days {
            let midnight = at(date);
            let id = midnight.div_euclid(86_400 * S);
            assert_eq!(grid.bucket_start(id).unwrap(), at(start), "{date} starts");
            assert_eq!(grid.bucket_end(id).unwrap() - grid.bucket_start(id).unwrap(), hours * 3_600 * S, "{date}");
            assert_eq!(grid.bucket_of(at(start)), id);
            assert_eq!(grid.bucket_of(at(start) - 1), id - 1);
            assert_eq!(grid.bucket_of(grid.bucket_end(id).unwrap() - 1), id);
            assert_eq!(grid.locate(at(start) + S), (id, at(start)..grid.bucket_end(id).unwrap()));
        }
    }

    #[test]
    fn new_york_days_are_23_and_25_hours_around_the_switches() {
        let grid = local_days("America/New_York", "1d");
        day_golden(
            &grid,
            &[
                ("2024-03-09", "2024-03-09T05:00:00Z", 24),
                ("2024-03-10", "2024-03-10T05:00:00Z", 23),
                ("2024-03-11", "2024-03-11T04:00:00Z", 24),
                ("2024-11-02", "2024-11-02T04:00:00Z", 24),
                ("2024-11-03", "2024-11-03T04:00:00Z", 25),
                ("2024-11-04", "2024-11-04T05:00:00Z", 24),
            ],
        );
        // 23:30 on the 10th in New York is the 11th in UTC, and the 10th's bucket here.
        assert_eq!(grid.bucket_of(at("2024-03-11T03:30:00Z")), at("2024-03-10").div_euclid(86_400 * S));
        assert_eq!(BucketGrid::utc(b("1d")).bucket_of(at("2024-03-11T03:30:00Z")), at("2024-03-11") / (86_400 * S));
        // Touching a range: the 10th local from 00:00 to 23:59 is one bucket.
        let day = grid.buckets_touching(at("2024-03-10T05:00:00Z"), at("2024-03-11T04:00:00Z")).unwrap();
        assert_eq!(day.end - day.start, 1);
    }

    #[test]
    fn london_days_are_23_and_25_hours_around_the_switches() {
        let grid = local_days("Europe/London", "1d");
        day_golden(
            &grid,
            &[
                ("2024-03-30", "2024-03-30T00:00:00Z", 24),
                ("2024-03-31", "2024-03-31T00:00:00Z", 23),
                ("2024-04-01", "2024-03-31T23:00:00Z", 24),
                ("2024-10-27", "2024-10-26T23:00:00Z", 25),
                ("2024-10-28", "2024-10-28T00:00:00Z", 24),
            ],
        );
    }

    #[test]
    fn local_days_at_both_ends_of_the_range() {
        let grid = local_days("America/New_York", "1d");
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
            let (id, span) = grid.locate(ts);
            assert!(span.start <= ts && (ts < span.end || span.end == i64::MAX), "{ts}: {id} {span:?}");
        }
        assert!(grid.bucket_start(grid.bucket_of(i64::MAX)).is_ok(), "the last row's day starts in range");
    }

    #[test]
    fn multi_day_buckets_and_skipped_midnights() {
        // Week-long buckets count local days from 1970-01-01 in sevens.
        let week = local_days("Europe/London", "7d");
        let id = week.bucket_of(at("2024-03-31T12:00:00Z"));
        assert_eq!(id, at("2024-03-31").div_euclid(86_400 * S).div_euclid(7));
        let (start, end) = (week.bucket_start(id).unwrap(), week.bucket_end(id).unwrap());
        assert_eq!(end - start, (7 * 24 - 1) * 3_600 * S, "a week holding the spring switch");
        // Santiago skips midnight when it springs forward (2024-09-08 00:00 -> 01:00): the
        // day starts at the switch, 04:00 UTC.
        let santiago = local_days("America/Santiago", "1d");
        let id = at("2024-09-08").div_euclid(86_400 * S);
        assert_eq!(santiago.bucket_start(id).unwrap(), at("2024-09-08T04:00:00Z"));
        assert_eq!(santiago.bucket_end(id).unwrap(), at("2024-09-09T03:00:00Z"));
        // Sub-day buckets of a zoned table stay on the epoch grid.
        let minutes = BucketGrid::of(&TimeIndexSpec::new("ts", b("15m")).with_timezone("America/New_York"));
        assert!(minutes.is_uniform());
        assert_eq!(minutes.bucket_of(at("2024-03-10T07:07:00Z")), bucket_of(at("2024-03-10T07:07:00Z"), &b("15m")));
    }

    proptest::proptest! {
        #[test]
        fn local_buckets_tile_time(
            zone in proptest::sample::select(vec!["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "+05:45"]),
            days in 1u32..9,
            ts in -2_000_000_000i64..4_000_000_000,
        ) {
            let grid = local_days(zone, &format!("{days}d"));
            let ts = ts * S;
            let id = grid.bucket_of(ts);
            let (start, end) = (grid.bucket_start(id).unwrap(), grid.bucket_end(id).unwrap());
            proptest::prop_assert!(start <= ts && ts < end, "{zone} {days}d: {ts} not in bucket {id} [{start}, {end})");
            proptest::prop_assert_eq!(grid.bucket_of(end), id + 1);
            let mut cursor = BucketCursor::new(grid.clone());
            proptest::prop_assert_eq!(cursor.id_of(ts), id);
            proptest::prop_assert_eq!(cursor.id_of(end - 1), id);
            proptest::prop_assert_eq!(cursor.id_of(end), id + 1);
        }
    }
}
