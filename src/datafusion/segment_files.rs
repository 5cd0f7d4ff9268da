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

/// The fewest rows (estimated) a range of [`SegmentFiles::cut_lone_segments`] holds when
/// the segment's row groups are not known: two row groups of the writer's default size.
const MIN_RANGE_ROWS: u64 = 2 * ROW_GROUP_ROWS as u64;
/// ...and when they are (the cuts fall between row groups, as even as they allow): half a
/// row group of the default size, so a daily segment of two equal groups is read by two.
const MIN_ALIGNED_RANGE_ROWS: u64 = ROW_GROUP_ROWS as u64 / 2;

/// A file's row groups from its footer, in file order: the offset of each one's first
/// page (where the Parquet reader looks to place it in a range) and its rows.
pub(crate) type RowGroupStarts = Vec<(u64, u64)>;

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
    /// so that part is estimated by its share of the time span). Uneven ranges leave one
    /// core with most of the work and the operators above unable to share it out, so:
    /// - where `footer` knows the segment's row groups (the session has read the file
    ///   before), the cuts fall at row-group starts, splitting the asked-for groups into
    ///   runs of rows as equal as they allow, each of at least [`MIN_ALIGNED_RANGE_ROWS`];
    /// - elsewhere the cuts split the asked-for bytes evenly into pieces of at least
    ///   [`MIN_RANGE_ROWS`], enough row groups that where each one falls matters little.
    ///
    /// The first range starts at the file's start and the last ends at its end, so every
    /// row group is in exactly one (the Parquet reader reads a row group in the range that
    /// holds its first page), and each range is in time order. A range is not a whole
    /// segment: it has no [`SegmentFile`] mark (the rules that read whole segments leave
    /// the scan alone) and inexact statistics.
    pub(crate) fn cut_lone_segments(
        &self,
        groups: &[Vec<Arc<SegmentMeta>>],
        entries: Vec<Vec<PartitionedFile>>,
        partitions: usize,
        times: &TimeSet,
        footer: &dyn Fn(&PartitionedFile) -> Option<RowGroupStarts>,
    ) -> Vec<Vec<PartitionedFile>> {
        let mut spare = partitions.saturating_sub(groups.len());
        if spare == 0 {
            return entries; // every partition has a group already (the usual case)
        }
        let plans: Vec<Option<CutPlan>> = groups
            .iter()
            .zip(&entries)
            .map(|(group, files)| match (group.as_slice(), files.as_slice()) {
                ([segment], [file]) => CutPlan::of(segment, times, footer(file)),
                _ => None,
            })
            .collect();
        let mut pieces: Vec<usize> = vec![1; groups.len()];
        while spare > 0 {
            // The lone segment with the largest pieces that can still be cut.
            let next = (0..groups.len())
                .filter_map(|i| plans[i].as_ref().map(|plan| (i, plan)))
                .filter(|&(i, plan)| plan.can_cut_into(pieces[i] + 1))
                .max_by_key(|&(i, plan)| plan.rows / pieces[i] as u64);
            let Some((i, _)) = next else { break };
            pieces[i] += 1;
            spare -= 1;
        }
        let mut cut = Vec::with_capacity(partitions.max(groups.len()));
        for ((group, pieces), plan) in entries.into_iter().zip(pieces).zip(plans) {
            let (2.., Some(plan)) = (pieces, plan) else {
                cut.push(group);
                continue;
            };
            let file = &group[0];
            let size = file.object_meta.size;
            let mut bounds = vec![0];
            bounds.extend(plan.cuts(pieces, size));
            bounds.push(size);
            for range in bounds.windows(2) {
                cut.push(vec![self.range_of(file, range[0], range[1])]);
            }
        }
        cut
    }

    /// Moves the boundaries between groups that read one after another in time (a chain
    /// of segments cut into a group per partition by segment count) to row-group starts,
    /// so each partition reads about as many rows: five daily segments on two partitions
    /// are otherwise three days against two. Only where the footers of the segments cut
    /// are known (see [`Self::cut_lone_segments`]), the groups are uneven (the largest more
    /// than a tenth above an even share) and the largest run then holds at least a tenth
    /// fewer rows; each group stays in time order. Otherwise the entries are returned as
    /// they are.
    pub(crate) fn even_out_chain(
        &self,
        groups: &[Vec<Arc<SegmentMeta>>],
        entries: Vec<Vec<PartitionedFile>>,
        times: &TimeSet,
        footer: &dyn Fn(&PartitionedFile) -> Option<RowGroupStarts>,
    ) -> Vec<Vec<PartitionedFile>> {
        self.evened_chain(groups, &entries, times, footer).unwrap_or(entries)
    }

    fn evened_chain(
        &self,
        groups: &[Vec<Arc<SegmentMeta>>],
        entries: &[Vec<PartitionedFile>],
        times: &TimeSet,
        footer: &dyn Fn(&PartitionedFile) -> Option<RowGroupStarts>,
    ) -> Option<Vec<Vec<PartitionedFile>>> {
        if groups.len() < 2 {
            return None;
        }
        // The groups in time order, each ending before the next begins: one chain.
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by_key(|&g| groups[g].first().map_or(i64::MIN, |s| s.ts_min));
        let chained = order.windows(2).all(|pair| match (groups[pair[0]].last(), groups[pair[1]].first()) {
            (Some(last), Some(first)) => last.ts_max < first.ts_min,
            _ => false,
        });
        if !chained {
            return None;
        }
        // The chain's asked-for rows as units: a segment's row groups where its footer is
        // known, else the segment whole.
        let mut units: Vec<Unit> = Vec::new();
        let mut group_rows = Vec::with_capacity(groups.len());
        let mut chain_files: Vec<&PartitionedFile> = Vec::new();
        for &g in &order {
            let mut rows_in_group = 0;
            for (segment, file) in groups[g].iter().zip(&entries[g]) {
                let plan = CutPlan::of(segment, times, footer(file));
                let index = chain_files.len();
                chain_files.push(file);
                match plan {
                    Some(CutPlan { row_groups: Some(row_groups), .. }) if !row_groups.is_empty() => {
                        for (start, rows) in row_groups {
                            units.push(Unit { segment: index, start: Some(start), rows });
                            rows_in_group += rows;
                        }
                    }
                    plan => {
                        let rows = plan.map_or(0, |plan| plan.rows);
                        units.push(Unit { segment: index, start: None, rows });
                        rows_in_group += rows;
                    }
                }
            }
            group_rows.push(rows_in_group);
        }
        let total: u64 = group_rows.iter().sum();
        let share = total / groups.len() as u64;
        let largest = group_rows.iter().copied().max().unwrap_or(0);
        if units.len() < groups.len() || largest * 10 <= share * 11 {
            return None;
        }
        // Runs of units as even as they allow, cut only where a run may begin: at a unit
        // with a known start, or at the first unit of a segment.
        let rows: Vec<(u64, u64)> = units.iter().map(|unit| (0, unit.rows)).collect();
        let cuts = aligned_cuts(&rows, groups.len());
        let cut_ok = |i: usize| units[i].start.is_some() || units[i - 1].segment != units[i].segment;
        if !cuts.iter().all(|&i| cut_ok(i)) {
            return None;
        }
        let mut bounds = vec![0];
        bounds.extend(&cuts);
        bounds.push(units.len());
        let run_rows = bounds.windows(2).map(|run| units[run[0]..run[1]].iter().map(|u| u.rows).sum::<u64>());
        if run_rows.max().unwrap_or(0) * 10 > largest * 9 {
            return None; // not worth cutting segments for
        }
        // Each run's files: a segment wholly in one run as it is, a segment across runs
        // as ranges that meet where the run changes.
        let mut evened = Vec::with_capacity(groups.len());
        for run in bounds.windows(2) {
            let mut files: Vec<PartitionedFile> = Vec::new();
            let mut i = run[0];
            while i < run[1] {
                let segment = units[i].segment;
                let mut j = i;
                while j + 1 < run[1] && units[j + 1].segment == segment {
                    j += 1;
                }
                let file = chain_files[segment];
                let whole_start = i == 0 || units[i - 1].segment != segment;
                let whole_end = j + 1 == units.len() || units[j + 1].segment != segment;
                if whole_start && whole_end {
                    files.push(file.clone());
                } else {
                    let size = file.object_meta.size;
                    let start = if whole_start { 0 } else { units[i].start.unwrap_or(0) };
                    let end = if whole_end { size } else { units[j + 1].start.unwrap_or(size) };
                    files.push(self.range_of(file, start, end));
                }
                i = j + 1;
            }
            evened.push(files);
        }
        Some(evened)
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

/// The rows of `segments` that `times` asks for, estimated from each one's share of the
/// time range (see [`wanted_share`]).
pub(crate) fn asked_rows(segments: &[Arc<SegmentMeta>], times: &TimeSet) -> u64 {
    segments.iter().filter_map(|segment| wanted_share(segment, times)).map(|(_, _, rows)| rows).sum()
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

/// A piece of a chain's asked-for rows: a row group of a segment (its first page's
/// offset known) or a whole segment.
struct Unit {
    /// Index of the segment in the chain.
    segment: usize,
    start: Option<u64>,
    rows: u64,
}

/// How a lone segment may be cut: the asked-for part's estimated rows, and where its row
/// groups start when the footer is known.
struct CutPlan {
    /// Start and end of the asked-for part, as fractions of the segment's time span.
    from: f64,
    to: f64,
    rows: u64,
    /// The row groups holding asked-for rows, as (first page offset, rows), when known.
    row_groups: Option<RowGroupStarts>,
}

impl CutPlan {
    fn of(segment: &SegmentMeta, times: &TimeSet, footer: Option<RowGroupStarts>) -> Option<CutPlan> {
        let (from, to, rows) = wanted_share(segment, times)?;
        // The asked-for rows are about `from..to` of the segment's rows, in time order.
        let total = segment.row_count as f64;
        let (first, last) = (from * total, to * total);
        let row_groups = footer.map(|groups| {
            let mut start = 0;
            groups
                .into_iter()
                .filter(|&(_, rows)| {
                    let (begins, ends) = (start as f64, (start + rows) as f64);
                    start += rows;
                    begins <= last && ends >= first
                })
                .collect::<Vec<_>>()
        });
        Some(CutPlan { from, to, rows, row_groups })
    }

    /// Whether the asked-for part can be cut into `pieces` ranges of enough rows, and,
    /// where the row groups are known, none more than a third above an even share (two
    /// groups of 2:1 would leave one core with most of the work).
    fn can_cut_into(&self, pieces: usize) -> bool {
        let Some(groups) = &self.row_groups else { return self.rows / pieces as u64 >= MIN_RANGE_ROWS };
        if groups.len() < pieces {
            return false;
        }
        let total: u64 = groups.iter().map(|&(_, rows)| rows).sum();
        let share = total / pieces as u64;
        let mut bounds = vec![0];
        bounds.extend(aligned_cuts(groups, pieces));
        bounds.push(groups.len());
        let largest = bounds.windows(2).map(|run| groups[run[0]..run[1]].iter().map(|g| g.1).sum::<u64>()).max();
        share >= MIN_ALIGNED_RANGE_ROWS && largest.unwrap_or(0) * 3 <= share * 4
    }

    /// The `pieces - 1` byte offsets to cut a file of `size` bytes at, in order.
    fn cuts(&self, pieces: usize, size: u64) -> Vec<u64> {
        match &self.row_groups {
            Some(groups) => aligned_cuts(groups, pieces).into_iter().map(|g| groups[g].0.min(size)).collect(),
            None => {
                let at = |fraction: f64| ((size as f64 * fraction) as u64).min(size);
                let (from, to) = (self.from, self.to);
                (1..pieces).map(|i| at(from + (to - from) * i as f64 / pieces as f64)).collect()
            }
        }
    }
}

/// Where to cut `groups` (at least `pieces` of them) into `pieces` runs of rows as even as
/// they allow: the indices of the groups that start the second run onwards.
fn aligned_cuts(groups: &[(u64, u64)], pieces: usize) -> Vec<usize> {
    let total: u64 = groups.iter().map(|&(_, rows)| rows).sum();
    // The rows before each group.
    let before: Vec<u64> = groups
        .iter()
        .scan(0, |sum, &(_, rows)| {
            let this = *sum;
            *sum += rows;
            Some(this)
        })
        .collect();
    let mut cuts: Vec<usize> = Vec::with_capacity(pieces.saturating_sub(1));
    for i in 1..pieces {
        let share = total * i as u64 / pieces as u64;
        // After the cut before, leaving a group for each cut still to come.
        let lowest = cuts.last().map_or(1, |&last| last + 1);
        let highest = groups.len() - (pieces - i);
        let nearest = (lowest..=highest).min_by_key(|&g| before[g].abs_diff(share)).unwrap_or(lowest);
        cuts.push(nearest);
    }
    cuts
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
        let all = files.cut_lone_segments(&groups, files.entries(&location, 4, &groups), 6, &TimeSet::all(), &|_| None);
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
        let cut = files.cut_lone_segments(&groups, files.entries(&location, 4, &groups), 4, &half, &|_| None);
        assert_eq!(ranges(&cut)[1..3], [vec![Some((0, 12_000))], vec![Some((12_000, 16_000))]]);
        // A fifth of it, about three row groups, is too few for two ranges of two.
        let fifth = TimeSet::closed(4_500, 4_700);
        let cut = files.cut_lone_segments(&groups, files.entries(&location, 4, &groups), 4, &fifth, &|_| None);
        assert_eq!(ranges(&cut)[1], [None]);

        // As many groups as partitions already, or one partition: nothing is cut.
        for partitions in [3, 1] {
            let cut = files.cut_lone_segments(
                &groups,
                files.entries(&location, 4, &groups),
                partitions,
                &TimeSet::all(),
                &|_| None,
            );
            assert_eq!(ranges(&cut), vec![vec![None, None], vec![None], vec![None]]);
        }
    }

    #[test]
    fn known_row_groups_are_cut_between_groups_into_even_runs() {
        let (_, files, location) = symbol_and_time();
        let day = |id: &str| {
            let mut segment = Arc::unwrap_or_clone(segment(id, 0, 1_000, 194_021));
            segment.size_bytes = 3_000_000;
            vec![Arc::new(segment)]
        };
        let groups = vec![day("even"), day("uneven")];
        let layouts = |file: &PartitionedFile| -> Option<RowGroupStarts> {
            let name = file.object_meta.location.to_string();
            if name.contains("even") && !name.contains("uneven") {
                // Two equal groups and a tail, as the writer plans a segment of known size.
                Some(vec![(4, 94_963), (1_480_000, 94_962), (2_950_000, 4_096)])
            } else {
                // A full group and the rest, as streamed input is written: 2:1.
                Some(vec![(4, 131_072), (2_000_000, 58_853), (2_950_000, 4_096)])
            }
        };
        let ranges = |cut: &[Vec<PartitionedFile>]| -> Vec<Vec<Option<(i64, i64)>>> {
            cut.iter().map(|group| group.iter().map(|f| f.range.as_ref().map(|r| (r.start, r.end))).collect()).collect()
        };
        // One spare partition: the even day is cut where its second group starts; the
        // uneven one would leave two thirds of the rows to one core, so it stays whole.
        let cut = files.cut_lone_segments(&groups, files.entries(&location, 2, &groups), 3, &TimeSet::all(), &layouts);
        assert_eq!(ranges(&cut), vec![vec![Some((0, 1_480_000))], vec![Some((1_480_000, 3_000_000))], vec![None]]);
        let cut = files.cut_lone_segments(
            &groups[1..],
            files.entries(&location, 2, &groups[1..]),
            2,
            &TimeSet::all(),
            &layouts,
        );
        assert_eq!(ranges(&cut), vec![vec![None]]);
        // Without the footer the day is under two ranges of two default row groups.
        let cut = files.cut_lone_segments(&groups, files.entries(&location, 2, &groups), 3, &TimeSet::all(), &|_| None);
        assert_eq!(ranges(&cut), vec![vec![None], vec![None]]);
        // The first hours alone ask for the first group only: nothing to share.
        let cut = files.cut_lone_segments(
            &groups,
            files.entries(&location, 2, &groups),
            3,
            &TimeSet::closed(0, 300),
            &layouts,
        );
        assert_eq!(ranges(&cut), vec![vec![None], vec![None]]);

        // Many equal groups (a compacted segment) cut into runs of whole groups, even ones.
        let groups: Vec<(u64, u64)> = (0..10).map(|g| (4 + g * 1_000, 100_000)).collect();
        assert_eq!(aligned_cuts(&groups, 2), vec![5]);
        assert_eq!(aligned_cuts(&groups, 3), vec![3, 7]);
        assert_eq!(aligned_cuts(&groups, 4), vec![2, 5, 7]); // runs of 2, 3, 2, 3 (ties go to the earlier group)
        assert_eq!(aligned_cuts(&groups[..3], 3), vec![1, 2]);
    }

    #[test]
    fn a_chain_of_few_segments_is_evened_out_between_row_groups() {
        let (_, files, location) = symbol_and_time();
        // Five daily segments, split by ordered_groups into two days and three.
        let day = |d: i64| {
            let mut segment = Arc::unwrap_or_clone(segment(&format!("day-{d}"), d * 1_000, d * 1_000 + 999, 194_021));
            segment.size_bytes = 3_000_000;
            Arc::new(segment)
        };
        let groups = vec![vec![day(0), day(1)], vec![day(2), day(3), day(4)]];
        let layout = |_: &PartitionedFile| Some(vec![(4, 94_963), (1_480_000, 94_962), (2_950_000, 4_096)]);
        let evened = files.even_out_chain(&groups, files.entries(&location, 5, &groups), &TimeSet::all(), &layout);
        // Each group's files, as (segment, byte range if a range).
        type Shape = Vec<Vec<(String, Option<(i64, i64)>)>>;
        let shape = |cut: &[Vec<PartitionedFile>]| -> Shape {
            cut.iter()
                .map(|group| {
                    group
                        .iter()
                        .map(|f| {
                            let name =
                                f.object_meta.location.filename().unwrap().trim_end_matches(".parquet").to_string();
                            (name, f.range.as_ref().map(|r| (r.start, r.end)))
                        })
                        .collect()
                })
                .collect()
        };
        // Two and a half days each: the middle day's second group starts the second run.
        let whole = |d: &str| (d.to_string(), None);
        assert_eq!(
            shape(&evened),
            vec![
                vec![whole("day-0"), whole("day-1"), ("day-2".into(), Some((0, 1_480_000)))],
                vec![("day-2".into(), Some((1_480_000, 3_000_000))), whole("day-3"), whole("day-4")],
            ]
        );
        // Whole days keep their mark; each group still reads in time order.
        assert!(evened[0][0].extension::<SegmentFile>().is_some() && evened[0][2].extension::<SegmentFile>().is_none());

        // Unknown footers, even groups, or groups that overlap in time: left as they are.
        let unchanged = |groups: &[Vec<Arc<SegmentMeta>>],
                         layout: &dyn Fn(&PartitionedFile) -> Option<RowGroupStarts>| {
            let entries = files.entries(&location, 5, groups);
            let before = shape(&entries);
            assert_eq!(shape(&files.even_out_chain(groups, entries, &TimeSet::all(), layout)), before);
        };
        unchanged(&groups, &|_| None);
        unchanged(&[vec![day(0), day(1)], vec![day(2), day(3)]], &layout);
        unchanged(&[vec![day(0), day(2)], vec![day(1), day(3), day(4)]], &layout);
        // The asked-for part decides: of the last three days, a day and a half each (the
        // first two days, not asked for, go with the first run, unread).
        let late = TimeSet::closed(2_000, 4_999);
        let evened = files.even_out_chain(&groups, files.entries(&location, 5, &groups), &late, &layout);
        assert_eq!(shape(&evened)[0][3], ("day-3".into(), Some((0, 1_480_000))));
        assert_eq!(shape(&evened)[1][0], ("day-3".into(), Some((1_480_000, 3_000_000))));
    }
}
