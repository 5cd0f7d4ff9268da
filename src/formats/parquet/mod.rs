//! Parquet segments: how new ones are written, inspecting existing files, and the statistics
//! and coverage both derive from the rows. Reads go through parquet's async file reader;
//! nothing here writes.

pub mod inspect;
pub mod stats;
pub mod writer;

pub use inspect::{inspect_parquet, parquet_rows, parquet_stats, InspectedFile};
pub use stats::{SegmentStats, StatsCollector};
pub use writer::{parse_byte_size, segment_properties, SegmentCompression, WriterOptions};
