//! `TimeSet`: a union of closed nanosecond intervals, the shape in which query predicates
//! constrain time.
//!
//! Pure; no I/O. Intervals are closed (`[lo, hi]`, both ends included) so that every
//! `i64` timestamp, `i64::MAX` among them, can be inside a set: a half-open end could
//! never include the largest value.

/// A union of disjoint, sorted closed intervals `[lo, hi]` of nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSet(Vec<(i64, i64)>);

impl TimeSet {
    /// Every timestamp.
    pub fn all() -> Self {
        TimeSet(vec![(i64::MIN, i64::MAX)])
    }

    /// No timestamp.
    pub fn empty() -> Self {
        TimeSet(Vec::new())
    }

    /// The half-open range `[start, end)`; empty when `start >= end`.
    pub fn range(start: i64, end: i64) -> Self {
        if start < end {
            TimeSet(vec![(start, end - 1)])
        } else {
            TimeSet::empty()
        }
    }

    /// The closed range `[lo, hi]`; empty when `lo > hi`.
    pub fn closed(lo: i64, hi: i64) -> Self {
        if lo <= hi {
            TimeSet(vec![(lo, hi)])
        } else {
            TimeSet::empty()
        }
    }

    /// The disjoint closed intervals `[lo, hi]`, in order.
    pub fn intervals(&self) -> &[(i64, i64)] {
        &self.0
    }

    /// Whether the set holds every timestamp.
    pub fn is_all(&self) -> bool {
        self.0 == [(i64::MIN, i64::MAX)]
    }

    /// Whether the set holds no timestamp.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any interval meets the closed range `[lo, hi]`.
    pub fn meets_closed(&self, lo: i64, hi: i64) -> bool {
        self.0.iter().any(|&(s, e)| s <= hi && lo <= e)
    }

    /// Whether `t` is in the set.
    pub fn contains(&self, t: i64) -> bool {
        self.meets_closed(t, t)
    }

    /// Whether the whole closed range `[lo, hi]` is in the set.
    pub fn contains_closed(&self, lo: i64, hi: i64) -> bool {
        self.0.iter().any(|&(s, e)| s <= lo && hi <= e)
    }

    /// Timestamps in either set.
    pub fn union(&self, other: &TimeSet) -> TimeSet {
        let mut all: Vec<(i64, i64)> = self.0.iter().chain(&other.0).copied().collect();
        all.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(all.len());
        for (s, e) in all {
            match merged.last_mut() {
                // Overlapping or adjacent (`[0, 4]` and `[5, 9]` are `[0, 9]`).
                Some(last) if i128::from(s) <= i128::from(last.1) + 1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        TimeSet(merged)
    }

    /// Timestamps in both sets.
    pub fn intersect(&self, other: &TimeSet) -> TimeSet {
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            for &(c, d) in &other.0 {
                let (s, e) = (a.max(c), b.min(d));
                if s <= e {
                    out.push((s, e));
                }
            }
        }
        TimeSet(out).union(&TimeSet::empty())
    }

    /// Timestamps not in the set.
    pub fn complement(&self) -> TimeSet {
        let mut out = Vec::new();
        // i128 so that stepping past `i64::MAX` needs no special case.
        let mut cursor = i128::from(i64::MIN);
        for &(s, e) in &self.0 {
            if cursor < i128::from(s) {
                out.push((cursor as i64, s - 1));
            }
            cursor = i128::from(e) + 1;
        }
        if cursor <= i128::from(i64::MAX) {
            out.push((cursor as i64, i64::MAX));
        }
        TimeSet(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_algebra() {
        let a = TimeSet::range(0, 10).union(&TimeSet::range(20, 30));
        assert_eq!(a.intersect(&TimeSet::range(5, 25)).intervals(), &[(5, 9), (20, 24)]);
        assert_eq!(a.complement().complement(), a);
        assert!(TimeSet::all().complement().is_empty());
        assert!(TimeSet::empty().complement().is_all());
        assert!(a.meets_closed(9, 9) && !a.meets_closed(10, 19));
        assert_eq!(TimeSet::range(0, 5).union(&TimeSet::range(5, 8)), TimeSet::range(0, 8));
    }

    #[test]
    fn both_ends_of_the_range_are_members() {
        assert!(TimeSet::all().meets_closed(i64::MAX, i64::MAX));
        assert!(TimeSet::all().meets_closed(i64::MIN, i64::MIN));
        let top = TimeSet::closed(i64::MAX, i64::MAX);
        assert_eq!(top.complement(), TimeSet::closed(i64::MIN, i64::MAX - 1));
        assert_eq!(top.complement().complement(), top);
        assert!(top.union(&top.complement()).is_all());
    }
}
