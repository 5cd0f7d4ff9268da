//! The scan's file entries of segments (path, size, exact row count and time range), made
//! once per segment and shared by every later scan of the provider, and the table
//! statistics of a selection, summed from segment metadata. Building these anew for every
//! query made `COUNT(*)` cost grow with the segment count. No I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::datasource::listing::PartitionedFile;

use super::time_literal::time_scalar;
use crate::metadata::{SegmentId, SegmentMeta};
use crate::storage::TableLocation;

/// Tables with more live segments than this build their entries per scan instead: an
/// entry holds a path and a statistics record for every column, too much to keep for a
/// million segments.
const MAX_CACHED_SEGMENTS: usize = 100_000;

/// The smallest byte range [`SegmentFiles::cut_lone_segments`] makes (a segment of at
/// most this size is read whole by `SmallSegmentsExec` anyway).
const MIN_RANGE_BYTES: u64 = 1 << 20;

/// Marks a scan's file as one of our segments, whose statistics come from segment metadata
/// (exact row count, exact time range, no null times).
pub(crate) struct SegmentFile;

/// File entries by segment, for one table (segments are immutable, so an entry never
/// goes stale; it only goes unused once its segment is removed).
pub(crate) struct SegmentFiles {
    schema: SchemaRef,
    time_index: usize,
    entries: Mutex<HashMap<SegmentId, PartitionedFile>>,
}

impl SegmentFiles {
    pub(crate) fn new(schema: SchemaRef, time_index: usize) -> Self {
        SegmentFiles { schema, time_index, entries: Mutex::new(HashMap::new()) }
    }

    fn time_type(&self) -> &DataType {
        self.schema.field(self.time_index).data_type()
    }

    /// The file entries of `groups` (segments of a table at `location` holding `live`
    /// segments in all), group by group.
    pub(crate) fn entries(
        &self,
        location: &TableLocation,
        live: usize,
        groups: &[Vec<Arc<SegmentMeta>>],
    ) -> Vec<Vec<PartitionedFile>> {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Removed segments leave entries behind; start over once they could outnumber the
        // live ones (or when the table is too large to keep them at all).
        let keep = live <= MAX_CACHED_SEGMENTS;
        if !keep || entries.len() > 2 * live + 1024 {
            entries.clear();
        }
        let mut entry_of = |segment: &SegmentMeta| match entries.get(&segment.id) {
            Some(entry) => entry.clone(),
            None => {
                let entry = self.entry(location, segment);
                if keep {
                    entries.insert(segment.id.clone(), entry.clone());
                }
                entry
            }
        };
        groups.iter().map(|group| group.iter().map(|segment| entry_of(segment)).collect()).collect()
    }

    fn entry(&self, location: &TableLocation, segment: &SegmentMeta) -> PartitionedFile {
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Exact(segment.row_count as usize);
        stats.total_byte_size = Precision::Inexact(segment.size_bytes as usize);
        stats.column_statistics[self.time_index] = self.time_statistics(segment.ts_min, segment.ts_max);
        PartitionedFile::new(location.path(&segment.path).to_string(), segment.size_bytes)
            .with_statistics(Arc::new(stats))
            .with_extension(SegmentFile)
    }

    fn time_statistics(&self, min: i64, max: i64) -> ColumnStatistics {
        ColumnStatistics {
            null_count: Precision::Exact(0),
            min_value: Precision::Exact(time_scalar(min, self.time_type())),
            max_value: Precision::Exact(time_scalar(max, self.time_type())),
            ..ColumnStatistics::new_unknown()
        }
    }

    /// Cuts lone segments into byte ranges so a scan of fewer sorted segments than
    /// `partitions` still keeps every core busy: a day's query on daily segments would
    /// otherwise decode its one segment on one core. DataFusion cuts lone files itself,
    /// but not in a scan whose partitioning is declared, as ours is (see the provider).
    ///
    /// Only groups of one segment are cut, each range its own group, the largest segments
    /// first, no range under [`MIN_RANGE_BYTES`]. The Parquet reader reads a row group in
    /// the range that holds its first page, so every row group is read once, and each range
    /// is in time order. A range is not a whole segment: it has no [`SegmentFile`] mark
    /// (rules that read whole segments leave the scan alone) and inexact statistics.
    pub(crate) fn cut_lone_segments(
        &self,
        groups: Vec<Vec<PartitionedFile>>,
        partitions: usize,
    ) -> Vec<Vec<PartitionedFile>> {
        let mut spare = partitions.saturating_sub(groups.len());
        let mut pieces: Vec<u64> = vec![1; groups.len()];
        let size = |group: &[PartitionedFile]| match group {
            [file] if file.range.is_none() => file.object_meta.size,
            _ => 0,
        };
        while spare > 0 {
            // The lone segment with the largest pieces that can still be cut.
            let next = (0..groups.len())
                .filter(|&i| size(&groups[i]) / (pieces[i] + 1) >= MIN_RANGE_BYTES)
                .max_by_key(|&i| size(&groups[i]) / pieces[i]);
            let Some(i) = next else { break };
            pieces[i] += 1;
            spare -= 1;
        }
        let mut cut = Vec::with_capacity(partitions.max(groups.len()));
        for (group, pieces) in groups.into_iter().zip(pieces) {
            if pieces == 1 {
                cut.push(group);
                continue;
            }
            let file = &group[0];
            let size = file.object_meta.size;
            for piece in 0..pieces {
                let (start, end) = (size * piece / pieces, size * (piece + 1) / pieces);
                cut.push(vec![self.range_of(file, start, end)]);
            }
        }
        cut
    }

    fn range_of(&self, file: &PartitionedFile, start: u64, end: u64) -> PartitionedFile {
        let size = file.object_meta.size.max(1);
        let mut stats = file.statistics.as_deref().cloned().unwrap_or_else(|| Statistics::new_unknown(&self.schema));
        let share = |n: usize| (n as u128 * u128::from(end - start) / u128::from(size)) as usize;
        stats.num_rows = stats.num_rows.map(share).to_inexact();
        stats.total_byte_size = Precision::Inexact((end - start) as usize);
        let time = &mut stats.column_statistics[self.time_index];
        time.min_value = std::mem::take(&mut time.min_value).to_inexact();
        time.max_value = std::mem::take(&mut time.max_value).to_inexact();
        PartitionedFile::new(file.object_meta.location.to_string(), file.object_meta.size)
            .with_range(start as i64, end as i64)
            .with_statistics(Arc::new(stats))
    }

    /// The statistics of a scan of `segments` (not empty): exact row count and time range,
    /// the same as merging the files' statistics, without merging them.
    pub(crate) fn table_statistics(&self, segments: &[Arc<SegmentMeta>]) -> Statistics {
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Exact(segments.iter().map(|s| s.row_count as usize).sum());
        stats.total_byte_size = Precision::Inexact(segments.iter().map(|s| s.size_bytes as usize).sum());
        let min = segments.iter().map(|s| s.ts_min).min().unwrap_or_default();
        let max = segments.iter().map(|s| s.ts_max).max().unwrap_or_default();
        stats.column_statistics[self.time_index] = self.time_statistics(min, max);
        stats
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{Field, Schema, TimeUnit};

    use super::*;

    fn segment(id: &str, ts_min: i64, ts_max: i64, rows: u64) -> Arc<SegmentMeta> {
        Arc::new(SegmentMeta {
            id: SegmentId(id.into()),
            path: format!("data/{id}.parquet"),
            coverage_path: format!("_coverage/segments/{id}.roar"),
            ts_min,
            ts_max,
            row_count: rows,
            size_bytes: 1000 + rows,
            sorted: true,
            entity_count: 1,
            entities: None,
            added_in_version: 0,
        })
    }

    #[test]
    fn table_statistics_equal_the_merged_file_statistics_and_entries_are_reused() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("symbol", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        ]));
        let files = SegmentFiles::new(Arc::clone(&schema), 1);
        let location = TableLocation::memory("segment-files-test", "t").unwrap();
        let segments = vec![segment("a", 5_000_000, 9_000_000, 7), segment("b", 1_000_000, 3_000_000, 11)];
        let groups = vec![segments.clone()];

        let entries = files.entries(&location, segments.len(), &groups);
        let merged = Statistics::try_merge_iter(
            entries[0].iter().map(|file| file.statistics.as_deref().expect("every entry has statistics")),
            &schema,
        )
        .unwrap();
        let direct = files.table_statistics(&segments);
        assert_eq!(direct, merged);
        assert_eq!(direct.num_rows, Precision::Exact(18));
        assert_eq!(
            direct.column_statistics[1].min_value,
            Precision::Exact(time_scalar(1_000_000, schema.field(1).data_type()))
        );

        // A second scan gets the same entries (the same statistics allocation), not new ones.
        let again = files.entries(&location, segments.len(), &groups);
        for (first, second) in entries[0].iter().zip(&again[0]) {
            assert!(Arc::ptr_eq(first.statistics.as_ref().unwrap(), second.statistics.as_ref().unwrap()));
            assert_eq!(first.object_meta.location, second.object_meta.location);
        }
    }

    #[test]
    fn lone_segments_are_cut_into_ranges_of_at_least_a_mebibyte_the_largest_first() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("symbol", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        ]));
        let files = SegmentFiles::new(Arc::clone(&schema), 1);
        let location = TableLocation::memory("segment-files-test", "t").unwrap();
        let mib = 1 << 20;
        let sized = |id: &str, ts: i64, bytes: u64| {
            let mut segment = Arc::unwrap_or_clone(segment(id, ts, ts + 1_000, 1_000));
            segment.size_bytes = bytes;
            Arc::new(segment)
        };
        // A chain of two segments, a lone large one, a lone one too small to cut.
        let groups = vec![
            vec![sized("pair-1", 0, 9 * mib), sized("pair-2", 2_000, 9 * mib)],
            vec![sized("large", 4_000, 5 * mib)],
            vec![sized("small", 6_000, mib + mib / 2)],
        ];
        let entries = files.entries(&location, 4, &groups);

        let cut = files.cut_lone_segments(entries.clone(), 6);
        // Three spare partitions, all for the large segment (the small one's halves would be
        // under a mebibyte), which makes ranges of 5/4 MiB.
        let ranges: Vec<Vec<Option<(i64, i64)>>> = cut
            .iter()
            .map(|group| group.iter().map(|f| f.range.as_ref().map(|r| (r.start, r.end))).collect())
            .collect();
        let quarter = (5 * mib / 4) as i64;
        assert_eq!(
            ranges,
            vec![
                vec![None, None],
                vec![Some((0, quarter))],
                vec![Some((quarter, 2 * quarter))],
                vec![Some((2 * quarter, 3 * quarter))],
                vec![Some((3 * quarter, 4 * quarter))],
                vec![None],
            ]
        );
        // Ranges are no segments: no mark, inexact statistics sharing out the rows.
        let piece = &cut[1][0];
        assert!(piece.extension::<SegmentFile>().is_none() && cut[0][0].extension::<SegmentFile>().is_some());
        let stats = piece.statistics.as_deref().unwrap();
        assert_eq!(stats.num_rows, Precision::Inexact(250));
        assert!(!stats.column_statistics[1].min_value.is_exact().unwrap_or(true));

        // As many groups as partitions already, or one partition: nothing is cut.
        assert_eq!(files.cut_lone_segments(entries.clone(), 3).len(), 3);
        assert_eq!(files.cut_lone_segments(entries, 1).len(), 3);
    }
}
