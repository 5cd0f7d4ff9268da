//! How new segments are written: the writer options (row groups, compression, segment
//! size, memory limit) and the Parquet writer properties that follow from them.
//!
//! No I/O; the table layer streams segments to storage with these settings.

use arrow::datatypes::SchemaRef;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::metadata::TimeIndexSpec;

/// Rows per row group by default: small enough that a one-hour query inside a large
/// segment skips most of it by row-group statistics.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per data page at most (the Parquet writer's default is 20,000): the page index
/// then narrows a query of an hour inside a row group to fewer rows to decode, for 2 % more
/// bytes (measured in BENCHMARKS.md).
pub const PAGE_ROWS: usize = 8 * 1024;
/// Rows of a segment's last row group when its size is known before it is written: the
/// newest rows get a small row group of their own, so `ORDER BY ts DESC LIMIT n` decodes
/// these, not up to a whole row group (measured in BENCHMARKS.md).
pub const TAIL_ROWS: usize = 4 * 1024;
/// Rows per segment by default (32 row groups); measured in BENCHMARKS.md.
pub const SEGMENT_ROWS: u64 = 32 * ROW_GROUP_ROWS as u64;
/// Encoded bytes per segment at most, whatever the row count.
pub const SEGMENT_BYTES: u64 = 512 * 1024 * 1024;
/// What one append may hold in memory by default (input waiting to be sorted).
pub const MEMORY_LIMIT: usize = 256 * 1024 * 1024;
/// Bytes per part of an upload by default (S3 requires at least 5 MiB but for the last).
pub const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;

/// How new segments are written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterOptions {
    /// Rows per Parquet row group (the unit that row-group pruning skips).
    pub row_group_rows: usize,
    /// Compression of the data pages.
    pub compression: SegmentCompression,
    /// A segment is closed at the first new timestamp after it holds this many rows.
    pub segment_rows: u64,
    /// ...or after its encoded size reaches this many bytes.
    pub segment_bytes: u64,
    /// The most input one append holds in memory. Unsorted input beyond it is sorted on
    /// disk (spilled to the system temp directory).
    pub memory_limit: usize,
    /// Files larger than this are uploaded in parts of this size (a multipart upload).
    pub upload_part_bytes: usize,
    /// Appends may add nullable columns after the table's own (default `false`: input
    /// with columns the table lacks is refused).
    pub evolve_schema: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            row_group_rows: ROW_GROUP_ROWS,
            compression: SegmentCompression::Snappy,
            segment_rows: SEGMENT_ROWS,
            segment_bytes: SEGMENT_BYTES,
            memory_limit: MEMORY_LIMIT,
            upload_part_bytes: UPLOAD_PART_BYTES,
            evolve_schema: false,
        }
    }
}

impl WriterOptions {
    /// Sets the rows per row group (at least 1).
    pub fn with_row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows.max(1);
        self
    }

    /// Sets the compression.
    pub fn with_compression(mut self, compression: SegmentCompression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the target rows per segment (at least 1).
    pub fn with_segment_rows(mut self, rows: u64) -> Self {
        self.segment_rows = rows.max(1);
        self
    }

    /// Sets the most encoded bytes per segment (at least 1).
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1);
        self
    }

    /// Sets the memory limit of one append, in bytes.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Sets whether appends may add nullable columns (schema evolution).
    pub fn with_evolve_schema(mut self, evolve: bool) -> Self {
        self.evolve_schema = evolve;
        self
    }

    /// Sets the upload part size (at least 1 byte). On S3 and GCS a part is at least
    /// 5 MiB, their minimum for every part but the last, whatever is set here.
    pub fn with_upload_part_bytes(mut self, bytes: usize) -> Self {
        self.upload_part_bytes = bytes.max(1);
        self
    }
}

/// Parses a byte size such as `256MiB`, `1GiB`, `512M`, `64k` or `1000000` (binary
/// multiples either way: `M` and `MiB` are both 2^20).
pub fn parse_byte_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || Error::invalid_input(format!("'{text}' is not a size; write e.g. 256MiB, 1GiB or 65536"));
    let number: f64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Compression codecs for segment data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentCompression {
    /// No compression.
    Uncompressed,
    /// Snappy: fast, the default.
    Snappy,
    /// Zstandard at the given level (1-22): smaller files, slower writes.
    Zstd(i32),
}

impl SegmentCompression {
    fn to_parquet(self) -> Result<Compression> {
        Ok(match self {
            SegmentCompression::Uncompressed => Compression::UNCOMPRESSED,
            SegmentCompression::Snappy => Compression::SNAPPY,
            SegmentCompression::Zstd(level) => Compression::ZSTD(
                ZstdLevel::try_new(level)
                    .map_err(|e| Error::invalid_input(format!("zstd level {level}: {e} (use 1 to 22)")))?,
            ),
        })
    }
}

/// The Parquet properties of a new segment of `schema`, whose rows are sorted by time,
/// ties by the entity columns (recorded as the file's sorting columns).
pub fn segment_properties(schema: &SchemaRef, spec: &TimeIndexSpec, options: &WriterOptions) -> Result<WriterProperties> {
    let sort_keys = std::iter::once(&spec.time_column).chain(&spec.entity_columns);
    let sorting = sort_keys
        .map(|name| {
            let index = schema.index_of(name).map_err(|e| Error::invalid_input(e.to_string()))?;
            Ok(SortingColumn { column_idx: index as i32, descending: false, nulls_first: false })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(WriterProperties::builder()
        .set_compression(options.compression.to_parquet()?)
        .set_max_row_group_row_count(Some(options.row_group_rows))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_sorting_columns(Some(sorting))
        .build())
}

/// The row-group sizes of a segment of `rows` rows known in advance: as few groups of at
/// most `row_group_rows` as hold all but the tail, of equal size (so a scan that reads the
/// segment in ranges of whole groups gives each core as many rows), then [`TAIL_ROWS`].
/// Empty (every group full size) when the segment or its groups are too small for a tail.
pub fn row_group_plan(rows: u64, row_group_rows: usize) -> Vec<usize> {
    let Ok(rows) = usize::try_from(rows) else { return Vec::new() };
    if rows <= 2 * TAIL_ROWS || row_group_rows <= 2 * TAIL_ROWS {
        return Vec::new();
    }
    let body = rows - TAIL_ROWS;
    let groups = body.div_ceil(row_group_rows);
    let mut sizes: Vec<usize> = (0..groups).map(|i| body / groups + usize::from(i < body % groups)).collect();
    sizes.push(TAIL_ROWS);
    sizes
}

#[cfg(test)]
mod tests {
    use super::{parse_byte_size, row_group_plan, TAIL_ROWS};

    #[test]
    fn a_segment_of_known_size_ends_in_a_small_row_group() {
        let group = 128 * 1024;
        // 189,925 rows before the tail: two equal groups, the first one row longer.
        assert_eq!(row_group_plan(194_021, group), vec![94_963, 94_962, TAIL_ROWS]);
        assert_eq!(row_group_plan(2 * group as u64 + TAIL_ROWS as u64, group), vec![group, group, TAIL_ROWS]);
        assert_eq!(row_group_plan(2 * group as u64 + TAIL_ROWS as u64 + 3, group).len(), 4);
        assert_eq!(row_group_plan(50_000, group), vec![50_000 - TAIL_ROWS, TAIL_ROWS]);
        for rows in [8_193, 100_000, 1 << 20, 11_056_939] {
            let plan = row_group_plan(rows, group);
            assert_eq!(plan.iter().sum::<usize>() as u64, rows);
            let body = &plan[..plan.len() - 1];
            assert!(body.iter().max().unwrap() - body.iter().min().unwrap() <= 1 && body[0] <= group, "{plan:?}");
        }
        // Too small for a tail: the segment, or its groups.
        assert!(row_group_plan(2 * TAIL_ROWS as u64, group).is_empty());
        assert!(row_group_plan(194_021, 7).is_empty());
    }

    #[test]
    fn byte_sizes_parse_in_binary_multiples() {
        assert_eq!(parse_byte_size("65536").unwrap(), 65536);
        assert_eq!(parse_byte_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_byte_size("256m").unwrap(), 256 << 20);
        assert_eq!(parse_byte_size("1.5 GiB").unwrap(), 3 << 29);
        assert_eq!(parse_byte_size("64k").unwrap(), 64 << 10);
        for bad in ["", "MiB", "12 parsecs", "-5M"] {
            assert!(parse_byte_size(bad).is_err(), "{bad}");
        }
    }
}
