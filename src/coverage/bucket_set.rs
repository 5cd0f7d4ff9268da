//! `BucketSet`: a compressed set of `i64` bucket ids backed by a 64-bit Roaring bitmap,
//! with the range queries coverage needs (counts, runs, gaps).
//!
//! Pure; no I/O. Ids map to `u64` keys by flipping the sign bit, which preserves order, so
//! negative ids (buckets before 1970) sort first and every id range is a key range.

use std::ops::Range;

use roaring::RoaringTreemap;

/// A set of bucket ids.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BucketSet {
    map: RoaringTreemap,
}

fn key(id: i64) -> u64 {
    (id as u64) ^ (1 << 63)
}

fn id_of(key: u64) -> i64 {
    (key ^ (1 << 63)) as i64
}

/// A non-empty id range as inclusive key bounds split into (high, low) halves.
struct KeySpan {
    first: (u32, u32),
    last: (u32, u32),
}

impl KeySpan {
    fn new(range: &Range<i64>) -> Option<Self> {
        (range.start < range.end).then(|| {
            let split = |k: u64| ((k >> 32) as u32, k as u32);
            KeySpan { first: split(key(range.start)), last: split(key(range.end - 1)) }
        })
    }

    /// Inclusive low bounds of the span inside the bitmap with this `high`.
    fn lows(&self, high: u32) -> (u32, u32) {
        let lo = if high == self.first.0 { self.first.1 } else { 0 };
        let hi = if high == self.last.0 { self.last.1 } else { u32::MAX };
        (lo, hi)
    }
}

impl BucketSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `id`; returns whether it was new.
    pub fn insert(&mut self, id: i64) -> bool {
        self.map.insert(key(id))
    }

    /// Adds `id`, as [`Self::insert`] does, but in constant time when it is above every id
    /// in the set: the case of ids arriving in order.
    pub fn insert_ascending(&mut self, id: i64) -> bool {
        self.map.try_push(key(id)).is_ok() || self.map.insert(key(id))
    }

    /// Adds every id in `range`; returns how many were new. Empty ranges are a no-op.
    pub fn insert_range(&mut self, range: Range<i64>) -> u64 {
        if range.start >= range.end {
            return 0;
        }
        self.map.insert_range(key(range.start)..=key(range.end - 1))
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: i64) -> bool {
        self.map.contains(key(id))
    }

    /// Number of ids in the set.
    pub fn len(&self) -> u64 {
        self.map.len()
    }

    /// Whether the set has no ids.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Smallest id.
    pub fn min(&self) -> Option<i64> {
        self.map.min().map(id_of)
    }

    /// Largest id.
    pub fn max(&self) -> Option<i64> {
        self.map.max().map(id_of)
    }

    /// All ids, ascending.
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.map.iter().map(id_of)
    }

    /// Adds every id of `other`.
    pub fn union_with(&mut self, other: &BucketSet) {
        self.map |= &other.map;
    }

    /// Removes every id of `other`.
    pub fn difference_with(&mut self, other: &BucketSet) {
        self.map -= &other.map;
    }

    /// Ids in both sets.
    pub fn intersection(&self, other: &BucketSet) -> BucketSet {
        BucketSet { map: &self.map & &other.map }
    }

    /// Number of ids in both sets, without building the intersection.
    pub fn intersection_len(&self, other: &BucketSet) -> u64 {
        self.map.intersection_len(&other.map)
    }

    /// Number of ids of the set inside `range`.
    pub fn count_in(&self, range: Range<i64>) -> u64 {
        let Some(span) = KeySpan::new(&range) else { return 0 };
        self.bitmaps_in(&span)
            .map(|(high, bm)| {
                let (lo, hi) = span.lows(high);
                bm.range_cardinality(lo..=hi)
            })
            .sum()
    }

    /// Whether any id of the set lies inside `range`.
    pub fn any_in(&self, range: Range<i64>) -> bool {
        self.iter_in(range).next().is_some()
    }

    /// Whether every id of `range` is in the set (true for an empty range).
    pub fn contains_all(&self, range: Range<i64>) -> bool {
        let Some(span) = KeySpan::new(&range) else { return true };
        let mut next_high = u64::from(span.first.0);
        for (high, bm) in self.bitmaps_in(&span) {
            let (lo, hi) = span.lows(high);
            if u64::from(high) != next_high || !bm.contains_range(lo..=hi) {
                return false;
            }
            next_high += 1;
        }
        next_high == u64::from(span.last.0) + 1
    }

    /// Ids of the set inside `range`, ascending (double-ended).
    pub fn iter_in(&self, range: Range<i64>) -> impl DoubleEndedIterator<Item = i64> + '_ {
        let span = KeySpan::new(&range);
        let bitmaps = span.as_ref().map(|s| (s.first.0, s.last.0));
        self.map.bitmaps().filter(move |(high, _)| bitmaps.is_some_and(|(a, b)| a <= *high && *high <= b)).flat_map(
            move |(high, bm)| {
                // Only reached when `span` is Some; the bounds are ordered because the
                // span's first key is not above its last.
                let (lo, hi) = span.as_ref().map_or((1, 0), |s| s.lows(high));
                let base = u64::from(high) << 32;
                let values = if lo <= hi { Some(bm.range(lo..=hi)) } else { None };
                values.into_iter().flatten().map(move |low| id_of(base | u64::from(low)))
            },
        )
    }

    /// Maximal runs of consecutive ids of the set inside `range`, ascending.
    pub fn runs_in(&self, range: Range<i64>) -> Vec<Range<i64>> {
        let mut runs = Vec::new();
        self.for_each_run(range, |run| runs.push(run));
        runs
    }

    /// Maximal runs of consecutive ids inside `range` that are NOT in the set, ascending.
    pub fn missing_runs_in(&self, range: Range<i64>) -> Vec<Range<i64>> {
        let mut gaps = Vec::new();
        self.for_each_gap(range, |gap| gaps.push(gap));
        gaps
    }

    /// Calls `f` with each maximal run of covered ids inside `range`, ascending. Runs are
    /// read a stretch at a time from the containers (a run container yields its runs
    /// whole), and joined across container edges.
    pub(crate) fn for_each_run(&self, range: Range<i64>, mut f: impl FnMut(Range<i64>)) {
        let Some(span) = KeySpan::new(&range) else { return };
        let mut pending: Option<Range<i64>> = None;
        for (high, bm) in self.bitmaps_in(&span) {
            let (lo, hi) = span.lows(high);
            let base = u64::from(high) << 32;
            let mut values = bm.range(lo..=hi);
            while let Some(stretch) = values.next_range() {
                let first = id_of(base | u64::from(*stretch.start()));
                // The last id is below `range.end`, so one past it still fits.
                let end = id_of(base | u64::from(*stretch.end())) + 1;
                match &mut pending {
                    Some(run) if run.end == first => run.end = end,
                    _ => {
                        if let Some(run) = pending.replace(first..end) {
                            f(run);
                        }
                    }
                }
            }
        }
        if let Some(run) = pending {
            f(run);
        }
    }

    /// Calls `f` with each maximal run of missing ids inside `range`, ascending.
    pub(crate) fn for_each_gap(&self, range: Range<i64>, mut f: impl FnMut(Range<i64>)) {
        let mut cursor = range.start;
        self.for_each_run(range.clone(), |run| {
            if run.start > cursor {
                f(cursor..run.start);
            }
            cursor = run.end;
        });
        if cursor < range.end {
            f(cursor..range.end);
        }
    }

    /// The maximal run holding the largest id below `end`, clipped to end at `end`. Read a
    /// stretch at a time from the back, like [`BucketSet::for_each_run`] from the front.
    pub(crate) fn last_run_before(&self, end: i64) -> Option<Range<i64>> {
        let span = KeySpan::new(&(i64::MIN..end))?;
        let last_high = span.last.0;
        let mut run: Option<Range<i64>> = None;
        for (high, bm) in self.map.bitmaps().rev().skip_while(|(h, _)| *h > last_high) {
            let (lo, hi) = span.lows(high);
            let base = u64::from(high) << 32;
            let mut values = bm.range(lo..=hi);
            while let Some(stretch) = values.next_range_back() {
                let first = id_of(base | u64::from(*stretch.start()));
                // The last id is below `end`, so one past it still fits.
                let stop = id_of(base | u64::from(*stretch.end())) + 1;
                match &mut run {
                    None => run = Some(first..stop),
                    Some(joined) if joined.start == stop => joined.start = first,
                    Some(_) => return run,
                }
            }
        }
        run
    }

    fn bitmaps_in<'a>(&'a self, span: &KeySpan) -> impl Iterator<Item = (u32, &'a roaring::RoaringBitmap)> + 'a {
        let (first, last) = (span.first.0, span.last.0);
        self.map.bitmaps().skip_while(move |(h, _)| *h < first).take_while(move |(h, _)| *h <= last)
    }

    /// Stores each container in its smallest form, runs included: dense coverage (every
    /// minute of a session) shrinks from a bitmap of 8 KiB per 65,536 ids to a few bytes
    /// per run. Returns whether anything changed.
    pub fn optimize(&mut self) -> bool {
        self.map.optimize()
    }

    /// Size in bytes of [`BucketSet::serialize_into`]'s output.
    pub(crate) fn serialized_size(&self) -> usize {
        self.map.serialized_size()
    }

    /// Appends the 64-bit portable Roaring serialization of the set's keys, in the form
    /// the set is held in (call [`BucketSet::optimize`] first for the smallest).
    pub(crate) fn serialize_into(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail, so the io::Result carries nothing.
        let _ = self.map.serialize_into(out);
    }

    /// Reads a set written by [`BucketSet::serialize_into`]; the whole slice must be used.
    /// Run containers are accepted only when `runs` is set (layout version 2).
    pub(crate) fn deserialize(bytes: &[u8], runs: super::portable::Runs) -> Result<Self, String> {
        super::portable::validate_treemap(bytes, runs)?;
        let map = RoaringTreemap::deserialize_from(bytes).map_err(|e| format!("invalid bitmap: {e}"))?;
        Ok(BucketSet { map })
    }
}

impl FromIterator<i64> for BucketSet {
    fn from_iter<I: IntoIterator<Item = i64>>(iter: I) -> Self {
        let mut set = BucketSet::new();
        set.extend(iter);
        set
    }
}

impl Extend<i64> for BucketSet {
    fn extend<I: IntoIterator<Item = i64>>(&mut self, iter: I) {
        for id in iter {
            self.insert(id);
        }
    }
}
