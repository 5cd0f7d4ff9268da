//! Epoch-aligned bucket arithmetic: timestamp to bucket id, bucket id to its time span,
//! and the bucket ids a time range touches.
//!
//! Pure; no I/O. Bucket `id` spans `[id * len, (id + 1) * len)` nanoseconds since the Unix
//! epoch (UTC), so ids are negative before 1970 and bucket 0 starts at the epoch.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::metadata::{TimeBucket, Timestamp};

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

/// The half-open range of bucket ids that the half-open time range `[start, end)`
/// intersects. An empty or reversed time range is an error, not an empty result, because
/// it is always a caller mistake.
pub fn expected_buckets(start: i64, end: i64, bucket: &TimeBucket) -> Result<Range<i64>> {
    if start >= end {
        return Err(Error::InvalidRange { start: Timestamp::from_nanos(start), end: Timestamp::from_nanos(end) });
    }
    let first = bucket_of(start, bucket);
    // `end > start >= i64::MIN`, so `end - 1` cannot overflow.
    let last = bucket_of(end - 1, bucket);
    let stop = last.checked_add(1).ok_or_else(|| out_of_range(last, bucket))?;
    Ok(first..stop)
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
}
