//! `Coverage`: the covered buckets of every entity of a segment or a table.
//!
//! Pure; no I/O. Entities are kept in key order so that iteration, overlap reports and the
//! sidecar encoding are deterministic. An entity with no covered bucket is never stored.
//! Each entity's set is shared between clones and copied only when written, so the table
//! coverage of a new version (the old one plus an append) copies just the entities the
//! append touched.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use super::bucket_set::BucketSet;
use crate::metadata::EntityKey;

/// Per-entity bucket coverage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Coverage {
    entities: BTreeMap<EntityKey, Arc<BucketSet>>,
}

/// Where two coverages meet: the first entity (in key order) with buckets in both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlap {
    /// The entity covered by both sides.
    pub entity: EntityKey,
    /// Smallest bucket id covered by both sides for this entity.
    pub first_bucket: i64,
    /// Number of bucket ids covered by both sides for this entity.
    pub buckets: u64,
}

impl Coverage {
    /// An empty coverage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks bucket `id` covered for `entity`.
    pub fn insert(&mut self, entity: &EntityKey, id: i64) {
        // Look up before inserting so the common case (entity present) does not clone the key.
        match self.entities.get_mut(entity) {
            Some(set) => {
                Arc::make_mut(set).insert(id);
            }
            None => {
                let mut set = BucketSet::new();
                set.insert(id);
                self.entities.insert(entity.clone(), Arc::new(set));
            }
        }
    }

    /// Unions `set` into the coverage of `entity`.
    pub fn insert_set(&mut self, entity: EntityKey, set: BucketSet) {
        if set.is_empty() {
            return;
        }
        match self.entities.get_mut(&entity) {
            Some(existing) => Arc::make_mut(existing).union_with(&set),
            None => {
                self.entities.insert(entity, Arc::new(set));
            }
        }
    }

    /// Stores every set in its smallest form (see [`BucketSet::optimize`]).
    pub fn optimize(&mut self) {
        for set in self.entities.values_mut() {
            Arc::make_mut(set).optimize();
        }
    }

    /// The covered buckets of `entity`, if it has any.
    pub fn entity(&self, entity: &EntityKey) -> Option<&BucketSet> {
        self.entities.get(entity).map(|set| &**set)
    }

    /// Every entity with its covered buckets, in key order.
    pub fn entities(&self) -> impl Iterator<Item = (&EntityKey, &BucketSet)> {
        self.entities.iter().map(|(key, set)| (key, &**set))
    }

    /// Number of entities with at least one covered bucket.
    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    /// Number of covered (entity, bucket) pairs.
    pub fn bucket_count(&self) -> u64 {
        self.entities.values().map(|set| set.len()).sum()
    }

    /// Whether no bucket is covered.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Adds everything `other` covers.
    pub fn union_with(&mut self, other: &Coverage) {
        for (entity, set) in &other.entities {
            match self.entities.get_mut(entity) {
                Some(existing) => Arc::make_mut(existing).union_with(set),
                // Shared, not copied: the set is copied when either side next writes it.
                None => {
                    self.entities.insert(entity.clone(), Arc::clone(set));
                }
            }
        }
    }

    /// Removes everything `other` covers (entities left with no bucket are dropped).
    pub fn subtract(&mut self, other: &Coverage) {
        for (entity, set) in &other.entities {
            if let Some(existing) = self.entities.get_mut(entity) {
                Arc::make_mut(existing).difference_with(set);
                if existing.is_empty() {
                    self.entities.remove(entity);
                }
            }
        }
    }

    /// The (entity, bucket) pairs covered by both `self` and `other`.
    pub fn intersection(&self, other: &Coverage) -> Coverage {
        let mut both = Coverage::new();
        for (entity, set) in &self.entities {
            if let Some(theirs) = other.entities.get(entity) {
                both.insert_set(entity.clone(), set.intersection(theirs));
            }
        }
        both
    }

    /// The first entity (in key order) covered by both `self` and `other` in some bucket.
    pub fn first_overlap(&self, other: &Coverage) -> Option<Overlap> {
        // Walking the smaller side in key order still yields the first common key first.
        let (small, large) = if self.entities.len() <= other.entities.len() { (self, other) } else { (other, self) };
        small.entities.iter().find_map(|(entity, set)| {
            let theirs = large.entities.get(entity)?;
            // Counting is allocation-free; the intersection is only built for the hit.
            let buckets = set.intersection_len(theirs);
            if buckets == 0 {
                return None;
            }
            let first_bucket = set.intersection(theirs).min()?;
            Some(Overlap { entity: entity.clone(), first_bucket, buckets })
        })
    }

    /// `min..max + 1` over the covered buckets of all entities. The end saturates at
    /// `i64::MAX`, which real bucket ids (|id| < 2^34 for 1-second buckets) never reach.
    pub fn extent(&self) -> Option<Range<i64>> {
        let min = self.entities.values().filter_map(|set| set.min()).min()?;
        let max = self.entities.values().filter_map(|set| set.max()).max()?;
        Some(min..max.saturating_add(1))
    }

    /// Whether any of `entities` (every entity when `None`) has a covered bucket in `range`.
    pub fn any_in(&self, entities: Option<&[EntityKey]>, range: Range<i64>) -> bool {
        match entities {
            None => self.entities.values().any(|set| set.any_in(range.clone())),
            Some(keys) => keys.iter().filter_map(|key| self.entities.get(key)).any(|set| set.any_in(range.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::EntityValue;

    fn key(s: &str) -> EntityKey {
        EntityKey(vec![EntityValue::Str(s.into())])
    }

    #[test]
    fn insert_union_and_counts() {
        let mut c = Coverage::new();
        assert!(c.is_empty());
        assert_eq!(c.extent(), None);
        c.insert(&key("B"), 5);
        c.insert(&key("A"), -3);
        c.insert(&key("A"), -3);
        c.insert_set(key("C"), BucketSet::new());
        assert_eq!(c.entity_count(), 2, "empty sets are not stored");
        assert_eq!(c.bucket_count(), 2);
        assert_eq!(c.extent(), Some(-3..6));
        let order: Vec<_> = c.entities().map(|(k, _)| k.clone()).collect();
        assert_eq!(order, vec![key("A"), key("B")]);

        let mut other = Coverage::new();
        other.insert_set(key("A"), (0..4).collect());
        other.insert(&EntityKey::implicit(), 9);
        c.union_with(&other);
        assert_eq!(c.entity_count(), 3);
        assert_eq!(c.entity(&key("A")).map(BucketSet::len), Some(5));
        assert_eq!(c.extent(), Some(-3..10));
    }

    #[test]
    fn first_overlap_reports_the_first_key_and_counts() {
        let mut a = Coverage::new();
        a.insert_set(key("A"), (0..10).collect());
        a.insert_set(key("B"), (0..10).collect());
        a.insert_set(key("C"), (0..10).collect());
        let mut b = Coverage::new();
        b.insert_set(key("A"), (10..20).collect());
        b.insert_set(key("C"), (7..30).collect());
        b.insert_set(key("B"), [-5, 3, 9].into_iter().collect());
        let hit = Overlap { entity: key("B"), first_bucket: 3, buckets: 2 };
        assert_eq!(a.first_overlap(&b), Some(hit.clone()));
        assert_eq!(b.first_overlap(&a), Some(hit));
        b.insert_set(key("Z"), (0..1).collect());
        assert_eq!(a.first_overlap(&b).map(|o| o.entity), Some(key("B")));
        assert_eq!(a.first_overlap(&Coverage::new()), None);
    }

    #[test]
    fn subtract_and_intersection_drop_emptied_entities() {
        let mut a = Coverage::new();
        a.insert_set(key("A"), (0..10).collect());
        a.insert_set(key("B"), (0..3).collect());
        let mut b = Coverage::new();
        b.insert_set(key("A"), (5..20).collect());
        b.insert_set(key("B"), (0..3).collect());
        b.insert_set(key("C"), (0..3).collect());
        let both = a.intersection(&b);
        assert_eq!(both.entity(&key("A")), Some(&(5..10).collect::<BucketSet>()));
        assert_eq!(both.entity(&key("B")).map(BucketSet::len), Some(3));
        assert_eq!(both.entity_count(), 2);
        a.subtract(&b);
        assert_eq!(a.entity(&key("A")), Some(&(0..5).collect::<BucketSet>()));
        assert_eq!(a.entity_count(), 1, "B lost every bucket");
    }

    #[test]
    fn any_in_prunes_by_entity_and_range() {
        let mut c = Coverage::new();
        c.insert_set(key("A"), (0..10).collect());
        c.insert_set(key("B"), (100..110).collect());
        assert!(c.any_in(None, 9..11));
        assert!(!c.any_in(None, 10..100));
        assert!(c.any_in(Some(&[key("B")]), 50..101));
        assert!(!c.any_in(Some(&[key("A"), key("X")]), 50..101));
        assert!(!c.any_in(Some(&[]), 0..1000));
        assert!(!c.any_in(None, 5..5));
    }

    #[test]
    fn a_union_copies_only_the_entities_it_changes() {
        let mut table = Coverage::new();
        for name in ["A", "B", "C"] {
            table.insert_set(key(name), (0..100_000).collect());
        }
        let mut next = table.clone();
        let mut append = Coverage::new();
        append.insert_set(key("B"), (100_000..100_010).collect());
        next.union_with(&append);
        let shared = |name: &str| Arc::ptr_eq(&table.entities[&key(name)], &next.entities[&key(name)]);
        assert!(shared("A") && shared("C"), "untouched entities are shared, not copied");
        assert!(!shared("B"));
        assert_eq!(table.entity(&key("B")).map(BucketSet::len), Some(100_000), "the old version is unchanged");
        assert_eq!(next.entity(&key("B")).map(BucketSet::len), Some(100_010));
    }
}
