//! Model-based tests of the coverage module: `BucketSet`, metrics, `Coverage` and the
//! sidecar codec checked against `BTreeSet<i64>` / brute-force models.
//!
//! Pure; no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use proptest::prelude::*;

use super::portable::Runs;
use super::*;
use crate::metadata::{EntityKey, EntityValue};

fn model_runs(model: &BTreeSet<i64>, window: Range<i64>, covered: bool) -> Vec<Range<i64>> {
    let mut runs: Vec<Range<i64>> = Vec::new();
    for id in window {
        if model.contains(&id) == covered {
            match runs.last_mut() {
                Some(run) if run.end == id => run.end += 1,
                _ => runs.push(id..id + 1),
            }
        }
    }
    runs
}

fn set_of(model: &BTreeSet<i64>) -> BucketSet {
    model.iter().copied().collect()
}

fn ids() -> impl Strategy<Value = BTreeSet<i64>> {
    prop::collection::btree_set(-300i64..300, 0..120)
}

fn window() -> impl Strategy<Value = Range<i64>> {
    (-350i64..350, -350i64..350).prop_map(|(a, b)| a..b)
}

fn entity_key() -> impl Strategy<Value = EntityKey> {
    let value = prop_oneof![
        (-3i64..3).prop_map(EntityValue::Int),
        ((1u64 << 63)..=u64::MAX).prop_map(EntityValue::UInt),
        prop::sample::select(vec!["AAPL", "MSFT", "é\"\\", ""]).prop_map(|s| EntityValue::Str(s.into())),
    ];
    prop::collection::vec(value, 0..3).prop_map(EntityKey)
}

fn coverage() -> impl Strategy<Value = BTreeMap<EntityKey, BTreeSet<i64>>> {
    prop::collection::btree_map(entity_key(), prop::collection::btree_set(-300i64..300, 1..40), 0..5)
}

fn coverage_of(model: &BTreeMap<EntityKey, BTreeSet<i64>>) -> Coverage {
    let mut c = Coverage::new();
    for (key, ids) in model {
        c.insert_set(key.clone(), set_of(ids));
    }
    c
}

proptest! {
    #[test]
    fn range_queries_match_the_model(model in ids(), w in window(), runs in any::<bool>()) {
        let mut set = set_of(&model);
        if runs {
            // The same answers with containers in run form.
            set.optimize();
        }
        let inside: Vec<i64> = if w.start < w.end { model.range(w.clone()).copied().collect() } else { vec![] };
        prop_assert_eq!(set.len(), model.len() as u64);
        prop_assert_eq!(set.iter().collect::<Vec<_>>(), model.iter().copied().collect::<Vec<_>>());
        prop_assert_eq!(set.count_in(w.clone()), inside.len() as u64);
        prop_assert_eq!(set.any_in(w.clone()), !inside.is_empty());
        prop_assert_eq!(set.iter_in(w.clone()).collect::<Vec<_>>(), inside.clone());
        prop_assert_eq!(set.iter_in(w.clone()).rev().collect::<Vec<_>>(), inside.iter().rev().copied().collect::<Vec<_>>());
        prop_assert_eq!(set.contains_all(w.clone()), w.clone().all(|id| model.contains(&id)));
        prop_assert_eq!(set.runs_in(w.clone()), model_runs(&model, w.clone(), true));
        prop_assert_eq!(set.missing_runs_in(w.clone()), model_runs(&model, w.clone(), false));
    }

    #[test]
    fn metrics_over_several_ranges_match_the_model(
        model in ids(),
        cuts in prop::collection::btree_set(-350i64..350, 0..10),
        touching in any::<bool>(),
    ) {
        // Consecutive cut points pair up into ascending, disjoint ranges; with `touching`,
        // each range starts where the previous ended (a session boundary inside a run).
        let cuts: Vec<i64> = cuts.into_iter().collect();
        let ranges: Vec<Range<i64>> = if touching {
            cuts.windows(2).map(|c| c[0]..c[1]).collect()
        } else {
            cuts.chunks_exact(2).map(|c| c[0]..c[1]).collect()
        };
        let mut set = set_of(&model);
        set.optimize();
        let m = metrics::entity_metrics(&set, &ranges);
        let inside: Vec<i64> = ranges.iter().flat_map(|r| r.clone()).filter(|id| model.contains(id)).collect();
        let gaps: Vec<Range<i64>> = ranges.iter().flat_map(|r| model_runs(&model, r.clone(), false)).collect();
        prop_assert_eq!(m.expected, ranges.iter().map(|r| (r.end - r.start) as u64).sum::<u64>());
        prop_assert_eq!(m.covered, inside.len() as u64);
        prop_assert_eq!(m.missing, m.expected - m.covered);
        prop_assert_eq!(&m.gaps, &gaps, "a gap never spans two ranges");
        prop_assert_eq!(m.gap_count, gaps.len() as u64);
        prop_assert_eq!(m.max_gap, gaps.iter().map(|g| (g.end - g.start) as u64).max().unwrap_or(0));
        let summary = metrics::entity_summary(&set, &ranges);
        prop_assert_eq!(summary, metrics::EntityMetrics { gaps: Vec::new(), ..m.clone() }, "the same, without the list");
        prop_assert_eq!(m.covered_from, inside.first().copied());
        prop_assert_eq!(m.covered_until, inside.last().map(|id| id + 1));
    }

    #[test]
    fn runs_and_gaps_partition_the_window(model in ids(), w in window()) {
        let set = set_of(&model);
        let runs = set.runs_in(w.clone());
        let gaps = set.missing_runs_in(w.clone());
        let mut all: Vec<Range<i64>> = runs.iter().chain(&gaps).cloned().collect();
        all.sort_by_key(|r| r.start);
        // Consecutive pieces tile the window exactly and alternate covered / missing.
        let mut cursor = w.start;
        for piece in &all {
            prop_assert!(piece.start < piece.end, "empty piece {:?}", piece);
            prop_assert_eq!(piece.start, cursor);
            cursor = piece.end;
        }
        prop_assert_eq!(cursor, if w.start < w.end { w.end } else { w.start });
        for pair in all.windows(2) {
            prop_assert_ne!(runs.contains(&pair[0]), runs.contains(&pair[1]), "not maximal: {:?}", pair);
        }
        prop_assert!(runs.iter().all(|r| r.clone().all(|id| set.contains(id))));
        prop_assert!(gaps.iter().all(|g| g.clone().all(|id| !set.contains(id))));
    }

    #[test]
    fn metrics_match_the_model(model in ids(), w in window()) {
        let set = set_of(&model);
        let m = metrics::entity_metrics(&set, std::slice::from_ref(&w));
        let expected = if w.start < w.end { (w.end - w.start) as u64 } else { 0 };
        let covered = w.clone().filter(|id| model.contains(id)).count() as u64;
        let gaps = model_runs(&model, w.clone(), false);
        prop_assert_eq!(m.expected, expected);
        prop_assert_eq!(m.covered, covered);
        prop_assert_eq!(m.missing, expected - covered);
        let ratio = if expected == 0 { 0.0 } else { covered as f64 / expected as f64 };
        prop_assert_eq!(m.ratio, ratio);
        prop_assert_eq!(m.max_gap, gaps.iter().map(|g| (g.end - g.start) as u64).max().unwrap_or(0));
        prop_assert_eq!(&m.gaps, &gaps);
        prop_assert_eq!(m.covered_from, w.clone().find(|id| model.contains(id)));
        prop_assert_eq!(m.covered_until, w.clone().rev().find(|id| model.contains(id)).map(|id| id + 1));
    }

    #[test]
    fn last_covered_window_matches_brute_force(model in ids(), length in 0u64..8, end in -350i64..350) {
        let set = set_of(&model);
        let brute = if length == 0 {
            None
        } else {
            (-400..=end)
                .rev()
                .find(|&e| (e - length as i64..e).all(|id| model.contains(&id)))
                .map(|e| e - length as i64..e)
        };
        prop_assert_eq!(last_covered_window(&set, length, end), brute);
    }

    #[test]
    fn set_algebra_matches_the_model(a in ids(), b in ids()) {
        let (sa, sb) = (set_of(&a), set_of(&b));
        let both: BTreeSet<i64> = a.intersection(&b).copied().collect();
        prop_assert_eq!(sa.intersection(&sb), set_of(&both));
        prop_assert_eq!(sa.intersection_len(&sb), both.len() as u64);
        let mut u = sa.clone();
        u.union_with(&sb);
        prop_assert_eq!(u, set_of(&a.union(&b).copied().collect()));
        prop_assert_eq!(sa.min(), a.first().copied());
        prop_assert_eq!(sa.max(), a.last().copied());
    }

    #[test]
    fn coverage_ops_match_the_model(a in coverage(), b in coverage(), w in window()) {
        let (ca, cb) = (coverage_of(&a), coverage_of(&b));
        let expected = a.iter().find_map(|(key, ids)| {
            let common: Vec<i64> = ids.intersection(b.get(key)?).copied().collect();
            let first = *common.first()?;
            Some(Overlap { entity: key.clone(), first_bucket: first, buckets: common.len() as u64 })
        });
        prop_assert_eq!(ca.first_overlap(&cb), expected.clone());
        prop_assert_eq!(cb.first_overlap(&ca), expected);
        let mut u = ca.clone();
        u.union_with(&cb);
        let mut model = a.clone();
        for (key, ids) in &b {
            model.entry(key.clone()).or_default().extend(ids);
        }
        prop_assert_eq!(&u, &coverage_of(&model));
        prop_assert_eq!(u.bucket_count(), model.values().map(|s| s.len() as u64).sum::<u64>());
        let all: BTreeSet<i64> = model.values().flatten().copied().collect();
        prop_assert_eq!(u.extent(), all.first().zip(all.last()).map(|(lo, hi)| *lo..hi + 1));
        let any = |keys: Option<&[EntityKey]>| model.iter()
            .filter(|(k, _)| keys.is_none_or(|keys| keys.contains(k)))
            .any(|(_, ids)| ids.iter().any(|id| w.contains(id)));
        prop_assert_eq!(u.any_in(None, w.clone()), any(None));
        let some: Vec<EntityKey> = b.keys().take(1).cloned().collect();
        prop_assert_eq!(u.any_in(Some(&some), w.clone()), any(Some(&some)));
    }

    #[test]
    fn sidecar_round_trips(model in coverage()) {
        let c = coverage_of(&model);
        let bytes = sidecar::encode(&c);
        prop_assert_eq!(sidecar::decode(&bytes), Ok(c));
    }

    #[test]
    fn sidecar_rejects_every_truncation_and_any_flip(model in coverage(), at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let bytes = sidecar::encode(&coverage_of(&model));
        for len in 0..bytes.len() {
            prop_assert!(sidecar::decode(&bytes[..len]).is_err(), "truncation to {} accepted", len);
        }
        let mut flipped = bytes.clone();
        flipped[at.index(bytes.len())] ^= mask;
        prop_assert!(sidecar::decode(&flipped).is_err());
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
        let mut input = if magic { sidecar::MAGIC.to_vec() } else { vec![] };
        input.extend_from_slice(&bytes);
        prop_assert!(sidecar::decode(&input).is_err());
        // Past the checksum: the bitmap parser must also be total.
        let _ = BucketSet::deserialize(&bytes, Runs::Allowed);
    }

    #[test]
    fn mutated_bitmaps_are_rejected_or_canonical(
        model in ids(),
        runs in any::<bool>(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mut bytes = Vec::new();
        let mut set = set_of(&model);
        if runs {
            set.optimize();
        }
        set.serialize_into(&mut bytes);
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        if let Ok(set) = BucketSet::deserialize(&bytes, Runs::Allowed) {
            let mut again = Vec::new();
            set.serialize_into(&mut again);
            prop_assert_eq!(again, bytes);
        }
    }
}

/// Dense sets exercise bitmap containers, 2^16-id container edges and the galloping
/// search for long runs, which the small-id tests above never reach.
mod dense {
    use super::*;

    const LO: i64 = -70_000;
    const HI: i64 = 90_000;

    fn intervals() -> impl Strategy<Value = Vec<(i64, i64)>> {
        prop::collection::vec((LO..HI, 0i64..40_000), 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn dense_runs_match_a_bitmap_model(spans in intervals(), singles in prop::collection::vec(LO..HI, 0..50), a in LO - 10..HI + 10, b in LO - 10..HI + 10) {
            let mut set = BucketSet::new();
            let mut model = vec![false; (HI - LO + 40_000) as usize];
            for &(start, len) in &spans {
                set.insert_range(start..start + len);
                model[(start - LO) as usize..(start + len - LO) as usize].fill(true);
            }
            for &id in &singles {
                set.insert(id);
                model[(id - LO) as usize] = true;
            }
            let covered = |id: i64| id >= LO && model.get((id - LO) as usize).copied().unwrap_or(false);
            let mut runs: Vec<Range<i64>> = Vec::new();
            let mut gaps: Vec<Range<i64>> = Vec::new();
            for id in a..b {
                let list = if covered(id) { &mut runs } else { &mut gaps };
                match list.last_mut() {
                    Some(r) if r.end == id => r.end += 1,
                    _ => list.push(id..id + 1),
                }
            }
            prop_assert_eq!(set.runs_in(a..b), runs.clone());
            prop_assert_eq!(set.missing_runs_in(a..b), gaps);
            prop_assert_eq!(set.count_in(a..b), runs.iter().map(|r| (r.end - r.start) as u64).sum::<u64>());
            if let Some(last) = runs.last() {
                let len = (last.end - last.start) as u64;
                prop_assert_eq!(last_covered_window(&set, len, b), Some(last.clone()));
            }
        }
    }
}

#[test]
fn negative_ids_sort_first() {
    let set: BucketSet = [3, -1, i64::MIN, 0, i64::MAX, -70_000].into_iter().collect();
    assert_eq!(set.iter().collect::<Vec<_>>(), vec![i64::MIN, -70_000, -1, 0, 3, i64::MAX]);
    assert_eq!((set.min(), set.max()), (Some(i64::MIN), Some(i64::MAX)));
}

#[test]
fn runs_at_window_edges() {
    let set: BucketSet = (0..3).chain(5..6).chain(8..10).collect();
    assert_eq!(set.runs_in(0..10), vec![0..3, 5..6, 8..10]);
    assert_eq!(set.missing_runs_in(0..10), vec![3..5, 6..8]);
    assert_eq!(set.runs_in(1..9), vec![1..3, 5..6, 8..9]);
    assert_eq!(set.missing_runs_in(-2..12), vec![-2..0, 3..5, 6..8, 10..12]);
    assert_eq!(set.runs_in(3..5), Vec::<Range<i64>>::new());
    assert_eq!(set.missing_runs_in(3..5), vec![3..5]);
    assert_eq!(set.runs_in(5..5), Vec::<Range<i64>>::new());
    assert_eq!(set.missing_runs_in(Range { start: 7, end: 2 }), Vec::<Range<i64>>::new());
    assert_eq!(set.count_in(-100..100), 6);
    assert!(!set.any_in(6..8));
}

#[test]
fn runs_cross_the_sign_and_container_boundaries() {
    let mut set = BucketSet::new();
    set.insert_range(-5..5);
    set.insert_range(65_530..65_540);
    assert_eq!(set.runs_in(-100..100_000), vec![-5..5, 65_530..65_540]);
    assert_eq!(set.missing_runs_in(-6..6), vec![-6..-5, 5..6]);
    set.insert_range(-200_000..200_000);
    assert_eq!(set.runs_in(i64::MIN..i64::MAX), vec![-200_000..200_000]);
    assert_eq!(set.count_in(i64::MIN..i64::MAX), 400_000);
    assert!(set.contains_all(-200_000..200_000));
    assert!(!set.contains_all(-200_000..200_001));
}

#[test]
fn extreme_ids() {
    let mut set = BucketSet::new();
    set.insert_range(i64::MIN..i64::MIN + 3);
    set.insert_range(i64::MAX - 3..i64::MAX);
    set.insert(i64::MAX);
    assert_eq!(set.len(), 7);
    assert_eq!(set.runs_in(i64::MIN..i64::MAX), vec![i64::MIN..i64::MIN + 3, i64::MAX - 3..i64::MAX]);
    assert_eq!(set.missing_runs_in(i64::MIN..i64::MAX), vec![i64::MIN + 3..i64::MAX - 3]);
    assert_eq!(set.count_in(i64::MIN..i64::MAX), 6);
    assert_eq!(set.runs_in(i64::MAX - 1..i64::MAX), vec![i64::MAX - 1..i64::MAX]);
    assert_eq!(last_covered_window(&set, 3, i64::MAX), Some(i64::MAX - 3..i64::MAX));
    assert_eq!(last_covered_window(&set, 4, i64::MAX), None);
    let mut bytes = Vec::new();
    set.serialize_into(&mut bytes);
    assert_eq!(bytes.len(), set.serialized_size());
    assert_eq!(BucketSet::deserialize(&bytes, Runs::Allowed), Ok(set));
}

/// Rough cost of the gap report for 500 entities over a day of 1-second buckets.
/// Run with `cargo test --lib coverage::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_runs_and_gaps_for_500_entities() {
    let window = 1_700_000_000..1_700_086_400;
    let sets: Vec<BucketSet> = (0..500i64)
        .map(|e| {
            // Eight gaps of varying length, plus a fragmented stretch of alternating ids.
            let mut cuts: Vec<i64> = (0..8).map(|k| window.start + (e * 7_919 + k * 10_007) % 86_000).collect();
            cuts.sort_unstable();
            let mut set = BucketSet::new();
            let mut pos = window.start;
            for (k, cut) in cuts.into_iter().enumerate() {
                set.insert_range(pos..cut);
                pos = pos.max(cut + 1 + 13 * k as i64);
            }
            set.insert_range(pos..window.end);
            let ragged = window.start + (e * 131) % 80_000;
            set.extend((ragged..ragged + 400).step_by(2));
            set
        })
        .collect();
    let started = std::time::Instant::now();
    let mut pieces = 0;
    for set in &sets {
        pieces += set.runs_in(window.clone()).len();
        pieces += set.missing_runs_in(window.clone()).len();
    }
    eprintln!("runs + gaps for 500 x 86,400 ids: {:?} ({pieces} pieces)", started.elapsed());
}
