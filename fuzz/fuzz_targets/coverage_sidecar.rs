//! Coverage sidecars: any bytes are decoded (a damaged sidecar must be an error, never a
//! panic); a decoded value re-encodes to bytes that decode to the same value, and the
//! set operations readers run on it do not panic.
//!
//! The trailing CRC-32 would stop almost every mutation at the checksum, so each input is
//! also decoded with its last four bytes replaced by the right checksum: that reaches the
//! structural checks (lengths, key order, portable Roaring) behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timeseries_table_core::coverage::sidecar::{decode, encode};

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= 4 {
        let mut fixed = data.to_vec();
        let body = fixed.len() - 4;
        let crc = crc32fast::hash(&fixed[..body]);
        fixed[body..].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let Ok(coverage) = decode(data) else { return };
    let again = decode(&encode(&coverage)).expect("re-encoded sidecar decodes");
    assert_eq!(again, coverage, "re-encode changed the coverage");
    let extent = coverage.extent();
    assert_eq!(extent.is_none(), coverage.is_empty());
    if let Some(range) = extent {
        // The end saturates at i64::MAX (documented), which drops a bucket id of i64::MAX.
        if range.end < i64::MAX {
            assert!(coverage.any_in(None, range));
        }
    }
    let _ = coverage.bucket_count();
    if !coverage.is_empty() {
        let overlap = coverage.first_overlap(&coverage).expect("a non-empty coverage overlaps itself");
        assert!(overlap.buckets > 0);
    }
    let mut union = coverage.clone();
    union.union_with(&again);
    assert_eq!(union, coverage, "union with itself changed the coverage");
}
