//! Buckets and ranges: the input, as UTF-8 split on '|', is a bucket spec and two
//! timestamps. A bucket that parses prints back to itself and has a positive length; a
//! timestamp that parses formats back to the same instant; a range is valid exactly when
//! start < end; bucket arithmetic on the parsed values errors instead of overflowing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timeseries_table_core::coverage::{bucket_end, bucket_of, bucket_start, expected_buckets};
use timeseries_table_core::metadata::{format_nanos, parse_timestamp, TimeBucket};
use timeseries_table_core::table::TimeRange;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '|');
    let bucket = parts.next().and_then(|s| s.parse::<TimeBucket>().ok());
    if let Some(bucket) = &bucket {
        assert!(bucket.nanos() > 0);
        let printed = bucket.to_string();
        assert_eq!(printed.parse::<TimeBucket>().ok().as_ref(), Some(bucket), "{printed} does not parse back");
    }
    let start = parts.next().and_then(|s| parse_timestamp(s).ok());
    let end = parts.next().and_then(|s| parse_timestamp(s).ok());
    for ts in [start, end].into_iter().flatten() {
        let formatted = format_nanos(ts);
        assert_eq!(parse_timestamp(&formatted).ok(), Some(ts), "{formatted} does not parse back to {ts}");
        if let Some(bucket) = &bucket {
            let id = bucket_of(ts, bucket);
            if let (Ok(s), Ok(e)) = (bucket_start(id, bucket), bucket_end(id, bucket)) {
                assert!(s <= ts && ts < e, "{ts} not in bucket {id} [{s}, {e})");
            }
        }
    }
    if let (Some(start), Some(end)) = (start, end) {
        assert_eq!(TimeRange::from_nanos(start, end).is_ok(), start < end);
        if let Some(bucket) = &bucket {
            if let Ok(ids) = expected_buckets(start, end, bucket) {
                assert!(ids.start < ids.end);
            }
        }
    }
});
