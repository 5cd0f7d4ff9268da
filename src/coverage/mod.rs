//! Coverage: which time buckets hold data, per entity.
//!
//! Time is cut into epoch-aligned buckets of the table's bucket length (see
//! [`buckets`]); bucket `id` spans `[id * len, (id + 1) * len)` nanoseconds UTC. A bucket is
//! covered for an entity iff at least one row of that entity falls in it. Each segment
//! stores its coverage in a `.roar` sidecar ([`sidecar`]); the table's coverage is the union
//! of its segments' coverages. Appends whose coverage intersects the table's are overlaps,
//! and reads use coverage to prune segments and to report gaps ([`metrics`]).
//!
//! Pure; no I/O.

pub mod bucket_set;
pub mod buckets;
// The type is named after the concept the module is named after.
#[allow(clippy::module_inception)]
pub mod coverage;
pub mod metrics;
mod portable;
pub mod sidecar;

#[cfg(test)]
mod tests;

pub use bucket_set::BucketSet;
pub use buckets::{bucket_end, bucket_of, bucket_start, expected_buckets, BucketCursor, BucketGrid};
pub use coverage::{Coverage, Overlap};
pub use metrics::{entity_metrics, entity_summary, last_covered_window, last_covered_window_in, EntityMetrics};
pub use sidecar::{decode as decode_sidecar, encode as encode_sidecar};
