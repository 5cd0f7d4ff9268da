//! `TimeSet`: a union of half-open nanosecond intervals, the shape in which query
//! predicates constrain time.
//!
//! Pure; no I/O.

/// A union of disjoint, sorted half-open intervals `[start, end)` of nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSet(Vec<(i64, i64)>);

impl TimeSet {
    pub fn all() -> Self {
        TimeSet(vec![(i64::MIN, i64::MAX)])
    }

    pub fn empty() -> Self {
        TimeSet(Vec::new())
    }

    /// `[start, end)`; empty when `start >= end`.
    pub fn range(start: i64, end: i64) -> Self {
        if start < end {
            TimeSet(vec![(start, end)])
        } else {
            TimeSet::empty()
        }
    }

    pub fn intervals(&self) -> &[(i64, i64)] {
        &self.0
    }

    pub fn is_all(&self) -> bool {
        self.0 == [(i64::MIN, i64::MAX)]
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any interval meets the closed range `[lo, hi]`.
    pub fn meets_closed(&self, lo: i64, hi: i64) -> bool {
        self.0.iter().any(|&(s, e)| s <= hi && lo < e)
    }

    pub fn union(&self, other: &TimeSet) -> TimeSet {
        let mut all: Vec<(i64, i64)> = self.0.iter().chain(&other.0).copied().collect();
        all.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(all.len());
        for (s, e) in all {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        TimeSet(merged)
    }

    pub fn intersect(&self, other: &TimeSet) -> TimeSet {
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            for &(c, d) in &other.0 {
                let (s, e) = (a.max(c), b.min(d));
                if s < e {
                    out.push((s, e));
                }
            }
        }
        TimeSet(out).union(&TimeSet::empty())
    }

    pub fn complement(&self) -> TimeSet {
        let mut out = Vec::new();
        let mut cursor = i64::MIN;
        for &(s, e) in &self.0 {
            if cursor < s {
                out.push((cursor, s));
            }
            cursor = e;
        }
        if cursor < i64::MAX {
            out.push((cursor, i64::MAX));
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
        assert_eq!(a.intersect(&TimeSet::range(5, 25)).intervals(), &[(5, 10), (20, 25)]);
        assert_eq!(a.complement().complement(), a);
        assert!(TimeSet::all().complement().is_empty());
        assert!(a.meets_closed(9, 9) && !a.meets_closed(10, 19));
        assert_eq!(TimeSet::range(0, 5).union(&TimeSet::range(5, 8)), TimeSet::range(0, 8));
    }
}
