//! Parquet segments: encoding new ones, inspecting existing files, and the statistics and
//! coverage both derive from the rows. No I/O: bytes in, bytes out.

pub mod inspect;
pub mod stats;
pub mod writer;

pub use inspect::{inspect_parquet, InspectedFile};
pub use stats::{SegmentStats, StatsCollector};
pub use writer::{encode_segment, EncodedSegment, SegmentCompression, WriterOptions};
