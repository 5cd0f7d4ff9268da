//! The table's metadata model and its validation: time index, buckets, entities, schema,
//! segment descriptors. Pure; no I/O.

pub mod bucket;
pub mod entity;
pub mod schedule;
pub mod time;
pub mod time_set;

pub use bucket::{BucketUnit, TimeBucket};
pub use entity::{EntityKey, EntityValue};
pub use schedule::{Schedule, Session};
pub use time::{format_nanos, parse_timestamp, Timestamp};
pub use time_set::TimeSet;
pub mod schema;
pub mod segment;
pub mod table_meta;

pub use schema::describe_schema;
pub use segment::{SegmentId, SegmentMeta};
pub use table_meta::{BucketAlignment, TableMeta, TimeIndexSpec};
