//! Parquet segments: how new ones are encoded, inspecting existing files, and the
//! statistics and coverage both derive from the rows. Reads go through parquet's async
//! file reader; nothing here writes to storage (encoded bytes go back to the caller).

pub mod encoder;
pub mod inspect;
pub mod stats;
pub mod writer;

pub use encoder::SegmentEncoder;
pub use inspect::{inspect_parquet, parquet_rows, parquet_rows_decoded, parquet_stats, InspectedFile};
pub use stats::{SegmentStats, StatsCollector};
pub use writer::{parse_byte_size, row_group_plan, segment_properties, SegmentCompression, WriterOptions};
