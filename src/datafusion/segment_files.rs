//! The scan's file entries of segments (path, size, exact row count and time range), made
//! once per segment and shared by every later scan of the provider; the byte ranges a lone
//! large segment is cut into so every core reads part of it; and the table statistics of a
//! selection, summed from segment metadata. Building entries anew for every query made
//! `COUNT(*)` cost grow with the segment count. No I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::datasource::listing::PartitionedFile;

use super::time_literal::time_scalar;
use crate::formats::parquet::writer::ROW_GROUP_ROWS;
use crate::metadata::{SegmentId, SegmentMeta, TimeSet};
use crate::storage::TableLocation;

/// Tables with more live segments than this build their entries per scan instead: an
/// entry holds a path and a statistics record for every column, too much to keep for a
/// million segments.
const MAX_CACHED_SEGMENTS: usize = 100_000;

/// The fewest rows (estimated) a range of [`SegmentFiles::cut_lone_segments`] holds: two
/// row groups of the writer's default size.
const MIN_RANGE_ROWS: u64 = 2 * ROW_GROUP_ROWS as u64;

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

    /// Cuts lone large segments into byte ranges so a scan of fewer sorted segments than
    /// `partitions` still decodes on every core: a query on one compacted segment would
    /// otherwise read it on one. DataFusion cuts large files itself, but not in a scan
    /// whose partitioning is declared, as ours is (see the provider).
    ///
    /// `groups` holds the scan's segments, `entries` their files, group by group. Only
    /// groups of one segment are cut, each range its own group, the largest first. The
    /// cuts split the part of the segment that `times` asks for (rows are in time order,
    /// so that part's bytes are estimated by its share of the time span) into pieces of at
    /// least [`MIN_RANGE_ROWS`] rows: fewer rows are better left whole, since a range holds
    /// whole row groups and uneven ranges leave one core with most of the work and the
    /// operators above unable to share it out. The first range starts at the file's
    /// start and the last ends at its end, so every row group is in exactly one (the
    /// Parquet reader reads a row group in the range that holds its first page), and each
    /// range is in time order. A range is not a whole segment: it has no [`SegmentFile`]
    /// mark (the rules that read whole segments leave the scan alone) and inexact
    /// statistics.
    pub(crate) fn cut_lone_segments(
        &self,
        groups: &[Vec<Arc<SegmentMeta>>],
        entries: Vec<Vec<PartitionedFile>>,
        partitions: usize,
        times: &TimeSet,
    ) -> Vec<Vec<PartitionedFile>> {
        let mut spare = partitions.saturating_sub(groups.len());
        if spare == 0 {
            return entries; // every partition has a group already (the usual case)
        }
        // The asked-for part of each lone segment, as (start, end) fractions of its span,
        // and its estimated rows.
        let wanted: Vec<Option<(f64, f64, u64)>> = groups
            .iter()
            .map(|group| match group.as_slice() {
                [segment] => wanted_share(segment, times),
                _ => None,
            })
            .collect();
        let mut pieces: Vec<u64> = vec![1; groups.len()];
        while spare > 0 {
            // The lone segment with the largest pieces that can still be cut.
            let next = (0..groups.len())
                .filter_map(|i| wanted[i].map(|(_, _, rows)| (i, rows)))
                .filter(|&(i, rows)| rows / (pieces[i] + 1) >= MIN_RANGE_ROWS)
                .max_by_key(|&(i, rows)| rows / pieces[i]);
            let Some((i, _)) = next else { break };
            pieces[i] += 1;
            spare -= 1;
        }
        let mut cut = Vec::with_capacity(partitions.max(groups.len()));
        for ((group, pieces), wanted) in entries.into_iter().zip(pieces).zip(wanted) {
            let (2.., Some((from, to, _))) = (pieces, wanted) else {
                cut.push(group);
                continue;
            };
            let file = &group[0];
            let size = file.object_meta.size;
            let at = |fraction: f64| ((size as f64 * fraction) as u64).min(size);
            let mut bounds = vec![0];
            bounds.extend((1..pieces).map(|i| at(from + (to - from) * i as f64 / pieces as f64)));
            bounds.push(size);
            for range in bounds.windows(2) {
                cut.push(vec![self.range_of(file, range[0], range[1])]);
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

/// The part of `segment` that `times` asks for: the start and end of the hull of the
/// asked-for times inside its span, as fractions of the span, and its estimated rows.
fn wanted_share(segment: &SegmentMeta, times: &TimeSet) -> Option<(f64, f64, u64)> {
    let inside = times.intersect(&TimeSet::closed(segment.ts_min, segment.ts_max));
    let (&(lo, _), &(_, hi)) = (inside.intervals().first()?, inside.intervals().last()?);
    let span = (segment.ts_max as f64 - segment.ts_min as f64).max(1.0);
    let from = (lo as f64 - segment.ts_min as f64) / span;
    let to = ((hi as f64 - segment.ts_min as f64) / span).max(from);
    let rows = if segment.ts_max == segment.ts_min {
        segment.row_count
    } else {
        (segment.row_count as f64 * (to - from)) as u64
    };
    Some((from, to, rows))
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

    /// A schema of a symbol and a time column, its file entries and an in-memory location.
    fn symbol_and_time() -> (SchemaRef, SegmentFiles, TableLocation) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("symbol", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        ]));
        let files = SegmentFiles::new(Arc::clone(&schema), 1);
        (schema, files, TableLocation::memory("segment-files-test", "t").unwrap())
    }

    #[test]
    fn table_statistics_equal_the_merged_file_statistics_and_entries_are_reused() {
        let (schema, files, location) = symbol_and_time();
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
    fn lone_segments_are_cut_where_the_query_reads_into_ranges_of_enough_rows() {
        let (_, files, location) = symbol_and_time();
        let row_group = ROW_GROUP_ROWS as u64;
        // Spans of 1,000 ns, 1,000 bytes per row group of rows.
        let sized = |id: &str, ts: i64, rows: u64| {
            let mut segment = Arc::unwrap_or_clone(segment(id, ts, ts + 1_000, rows));
            segment.size_bytes = rows / row_group * 1_000;
            Arc::new(segment)
        };
        // A chain of two segments, a lone one of 16 row groups, a lone one of 3.
        let groups = vec![
            vec![sized("pair-1", 0, 16 * row_group), sized("pair-2", 2_000, 16 * row_group)],
            vec![sized("large", 4_000, 16 * row_group)],
            vec![sized("small", 6_000, 3 * row_group)],
        ];
        let ranges = |cut: &[Vec<PartitionedFile>]| -> Vec<Vec<Option<(i64, i64)>>> {
            cut.iter().map(|group| group.iter().map(|f| f.range.as_ref().map(|r| (r.start, r.end))).collect()).collect()
        };

        // Three spare partitions, all for the large segment (the small one's halves would
        // hold under two row groups each): four ranges of four row groups.
        let all = files.cut_lone_segments(&groups, files.entries(&location, 4, &groups), 6, &TimeSet::all());
        assert_eq!(
            ranges(&all),
            vec![
                vec![None, None],
                vec![Some((0, 4_000))],
                vec![Some((4_000, 8_000))],
                vec![Some((8_000, 12_000))],
                vec![Some((12_000, 16_000))],
                vec![None],
            ]
        );
        // Ranges are no segments: no mark, inexact statistics sharing out the rows.
        let piece = &all[1][0];
        assert!(piece.extension::<SegmentFile>().is_none() && all[0][0].extension::<SegmentFile>().is_some());
        let stats = piece.statistics.as_deref().unwrap();
        assert_eq!(stats.num_rows, Precision::Inexact(4 * ROW_GROUP_ROWS));
        assert!(!stats.column_statistics[1].min_value.is_exact().unwrap_or(true));

        // A query of the large segment's second half cuts that half in two; the ranges
        // still cover the whole file.
        let half = TimeSet::closed(4_500, 5_000);
        let cut = files.cut_lone_segments(&groups, files.entries(&location, 4, &groups), 4, &half);
        assert_eq!(ranges(&cut)[1..3], [vec![Some((0, 12_000))], vec![Some((12_000, 16_000))]]);
        // A fifth of it, about three row groups, is too few for two ranges of two.
        let fifth = TimeSet::closed(4_500, 4_700);
        let cut = files.cut_lone_segments(&groups, files.entries(&location, 4, &groups), 4, &fifth);
        assert_eq!(ranges(&cut)[1], [None]);

        // As many groups as partitions already, or one partition: nothing is cut.
        for partitions in [3, 1] {
            let cut =
                files.cut_lone_segments(&groups, files.entries(&location, 4, &groups), partitions, &TimeSet::all());
            assert_eq!(ranges(&cut), vec![vec![None, None], vec![None], vec![None]]);
        }
    }
}
