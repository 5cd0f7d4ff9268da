//! Coverage sidecars: any bytes are decoded (a damaged sidecar must be an error, never a
//! panic); a decoded value re-encodes to bytes that decode to the same value, and the
//! set operations readers run on it do not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timeseries_table_core::coverage::sidecar::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(coverage) = decode(data) else { return };
    let again = decode(&encode(&coverage)).expect("re-encoded sidecar decodes");
    assert_eq!(again, coverage, "re-encode changed the coverage");
    let extent = coverage.extent();
    assert_eq!(extent.is_none(), coverage.is_empty());
    if let Some(range) = extent {
        assert!(coverage.any_in(None, range));
    }
    let _ = coverage.bucket_count();
    if !coverage.is_empty() {
        let overlap = coverage.first_overlap(&coverage).expect("a non-empty coverage overlaps itself");
        assert!(overlap.buckets > 0);
    }
    let mut union = coverage.clone();
    union.union_with(&again);
    assert_eq!(union, coverage, "union with itself changed the coverage");
});
