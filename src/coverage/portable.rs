//! Strict structural check of the 64-bit portable Roaring serialization, run before the
//! bytes are handed to `roaring`.
//!
//! Pure; no I/O. `roaring` checks the values inside containers and the order of runs, but
//! not empty containers, cardinalities of run containers or offsets; a checksummed but
//! crafted sidecar could otherwise yield a bitmap whose invariants are broken (and whose
//! re-serialization panics in debug builds). Accepted layout, all integers little-endian:
//!
//! ```text
//! treemap := u64 n, then n times: u32 high (strictly increasing), bitmap
//! bitmap  := u32 cookie = 12346, u32 k (1 ..= 65536),
//!            k x (u16 key (strictly increasing), u16 cardinality - 1),
//!            k x u32 offset (byte offset of the container from the start of the bitmap),
//!            k x container
//!          | u32 cookie = 12347 | (k - 1) << 16, ceil(k / 8) bytes: bit i set iff
//!            container i is a run container, k x (u16 key, u16 cardinality - 1),
//!            k x u32 offset only when k >= 4, k x container
//! container := run container: u16 r >= 1, r x (u16 start, u16 length - 1), starts
//!              increasing, runs neither overlapping nor touching, lengths summing to the
//!              cardinality
//!              | cardinality <= 4096: cardinality x u16, strictly increasing
//!              | otherwise: 1024 x u64 words whose popcount is the cardinality
//! ```
//!
//! Version 1 sidecars never hold run containers (cookie 12347 is refused in them); version
//! 2 sidecars may.

/// Whether a sidecar's layout version allows run containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runs {
    /// Version 1: array and bitmap containers only.
    Refused,
    /// Version 2: run containers too.
    Allowed,
}

const COOKIE_NO_RUN: u32 = 12346;
const COOKIE_RUN: u32 = 12347;
/// With run containers, offsets are written only from this many containers on.
const OFFSETS_FROM: usize = 4;
const MAX_CONTAINERS: u32 = 1 << 16;
const ARRAY_LIMIT: u64 = 4096;
const BITMAP_BYTES: usize = 8 * 1024;

/// Checks that `bytes` is exactly one canonical treemap and nothing more.
pub(crate) fn validate_treemap(bytes: &[u8], runs: Runs) -> Result<(), String> {
    let mut r = Reader { bytes, pos: 0 };
    let n = r.u64()?;
    let mut prev_high: Option<u32> = None;
    // No allocation depends on `n`: each iteration consumes bytes or fails.
    for i in 0..n {
        let high = r.u32()?;
        if prev_high.is_some_and(|p| high <= p) {
            return Err(format!("bitmap {i}: high key {high} is not above the previous one"));
        }
        prev_high = Some(high);
        validate_bitmap(&mut r, runs).map_err(|e| format!("bitmap {i} (high key {high}): {e}"))?;
    }
    if r.pos != bytes.len() {
        return Err(format!("{} trailing byte(s) after the bitmap", bytes.len() - r.pos));
    }
    Ok(())
}

fn validate_bitmap(r: &mut Reader<'_>, runs: Runs) -> Result<(), String> {
    let start = r.pos;
    let cookie = r.u32()?;
    let (k, run_flags, has_offsets) = if cookie == COOKIE_NO_RUN {
        let k = r.u32()?;
        if k == 0 || k > MAX_CONTAINERS {
            return Err(format!("container count {k} out of range 1..=65536"));
        }
        (k as usize, None, true)
    } else if cookie & 0xFFFF == COOKIE_RUN && runs == Runs::Allowed {
        let k = (cookie >> 16) as usize + 1;
        (k, Some(r.take(k.div_ceil(8))?), k >= OFFSETS_FROM)
    } else if cookie & 0xFFFF == COOKIE_RUN {
        return Err("run containers are not allowed in a version 1 sidecar".into());
    } else {
        return Err(format!("unsupported cookie {cookie}"));
    };
    let descriptions = r.take(4 * k)?;
    let offsets = if has_offsets { Some(r.take(4 * k)?) } else { None };
    let mut prev_key: Option<u16> = None;
    for i in 0..k {
        let key = le_u16(descriptions, 4 * i);
        let cardinality = u64::from(le_u16(descriptions, 4 * i + 2)) + 1;
        if prev_key.is_some_and(|p| key <= p) {
            return Err(format!("container key {key} is not above the previous one"));
        }
        prev_key = Some(key);
        if let Some(offsets) = offsets {
            let offset = le_u32(offsets, 4 * i) as usize;
            if r.pos - start != offset {
                return Err(format!("container {i} offset {offset} does not match its position"));
            }
        }
        let is_run = run_flags.is_some_and(|flags| flags[i / 8] & (1 << (i % 8)) != 0);
        if is_run {
            validate_runs(r, cardinality).map_err(|e| format!("container {i}: {e}"))?;
        } else if cardinality <= ARRAY_LIMIT {
            let values = r.take(2 * cardinality as usize)?;
            let mut prev: Option<u16> = None;
            for j in 0..cardinality as usize {
                let v = le_u16(values, 2 * j);
                if prev.is_some_and(|p| v <= p) {
                    return Err(format!("container {i}: array values are not strictly increasing"));
                }
                prev = Some(v);
            }
        } else {
            let words = r.take(BITMAP_BYTES)?;
            let ones: u64 = words.chunks_exact(8).map(|w| u64::from(le_u64(w).count_ones())).sum();
            if ones != cardinality {
                return Err(format!("container {i}: {ones} bits set but cardinality {cardinality}"));
            }
        }
    }
    Ok(())
}

fn validate_runs(r: &mut Reader<'_>, cardinality: u64) -> Result<(), String> {
    let count = usize::from(le_u16(r.take(2)?, 0));
    if count == 0 {
        return Err("a run container without runs".into());
    }
    let pairs = r.take(4 * count)?;
    let mut total = 0u64;
    // Exclusive end of the previous run; the next must start after it, not at it.
    let mut prev_end: Option<u32> = None;
    for j in 0..count {
        let first = u32::from(le_u16(pairs, 4 * j));
        let last = first + u32::from(le_u16(pairs, 4 * j + 2));
        if last > u32::from(u16::MAX) {
            return Err(format!("run {j} runs past the container"));
        }
        if prev_end.is_some_and(|end| first <= end) {
            return Err(format!("run {j} overlaps or touches the previous run"));
        }
        prev_end = Some(last + 1);
        total += u64::from(last - first + 1);
    }
    if total != cardinality {
        return Err(format!("runs hold {total} values but the cardinality is {cardinality}"));
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("truncated bitmap")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.take(4).map(|b| le_u32(b, 0))
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.take(8).map(le_u64)
    }
}

// Callers pass slices whose length was established by `take`, so the indexing is in bounds.
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use roaring::RoaringTreemap;

    fn bytes_of(t: &RoaringTreemap) -> Vec<u8> {
        let mut out = Vec::new();
        t.serialize_into(&mut out).unwrap();
        out
    }

    #[test]
    fn accepts_what_roaring_writes() {
        let mut t = RoaringTreemap::new();
        assert!(validate_treemap(&bytes_of(&t), Runs::Refused).is_ok());
        // One by one, so no run container forms: what a version 1 writer made.
        (10..20_000).for_each(|v| {
            t.insert(v);
        }); // bitmap containers
        t.insert(1 << 40);
        t.insert(u64::MAX);
        t.insert((1 << 63) + 70_000);
        assert!(validate_treemap(&bytes_of(&t), Runs::Refused).is_ok());
        // Run containers: once with fewer than four containers (no offsets), once with more.
        for extra in [0u64, 5] {
            let mut runs = t.clone();
            for c in 0..extra {
                runs.insert_range((c << 16) + 70_000..(c << 16) + 70_100);
            }
            assert!(runs.optimize());
            let bytes = bytes_of(&runs);
            assert!(validate_treemap(&bytes, Runs::Allowed).is_ok(), "{extra}");
            assert!(validate_treemap(&bytes, Runs::Refused).unwrap_err().contains("version 1"));
        }
    }

    #[test]
    fn rejects_inconsistent_run_containers() {
        let mut t = RoaringTreemap::new();
        t.insert_range(100..200);
        t.insert_range(300..400);
        t.optimize();
        let good = bytes_of(&t);
        assert!(validate_treemap(&good, Runs::Allowed).is_ok());
        // treemap header (8) + high (4) + cookie (4) + flags (1) + description (4): runs at 21.
        let runs_at = 21;
        assert_eq!(le_u16(&good, runs_at), 2);
        let mut cardinality = good.clone();
        cardinality[19] ^= 1;
        assert!(validate_treemap(&cardinality, Runs::Allowed).unwrap_err().contains("cardinality"));
        let mut touching = good.clone();
        // Second run starts where the first ends.
        touching[runs_at + 6..runs_at + 8].copy_from_slice(&200u16.to_le_bytes());
        assert!(validate_treemap(&touching, Runs::Allowed).is_err());
        let mut none = good.clone();
        none[runs_at..runs_at + 2].copy_from_slice(&0u16.to_le_bytes());
        assert!(validate_treemap(&none, Runs::Allowed).is_err());
    }

    #[test]
    fn rejects_non_canonical_layouts() {
        let mut t = RoaringTreemap::new();
        t.insert(5);
        let good = bytes_of(&t);
        // An empty bitmap inside the treemap.
        let mut empty = Vec::new();
        empty.extend_from_slice(&1u64.to_le_bytes());
        empty.extend_from_slice(&0u32.to_le_bytes());
        empty.extend_from_slice(&COOKIE_NO_RUN.to_le_bytes());
        empty.extend_from_slice(&0u32.to_le_bytes());
        assert!(validate_treemap(&empty, Runs::Allowed).is_err());
        // A duplicated high key.
        let mut dup = good.clone();
        dup[0] = 2;
        dup.extend_from_slice(&good[8..]);
        assert!(validate_treemap(&dup, Runs::Allowed).is_err());
        // Trailing bytes and run-container cookies.
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(validate_treemap(&trailing, Runs::Allowed).is_err());
        let mut run = good.clone();
        run[12..16].copy_from_slice(&12347u32.to_le_bytes());
        assert!(validate_treemap(&run, Runs::Refused).is_err());
        // Unsorted container keys.
        let mut two = RoaringTreemap::new();
        two.insert(1);
        two.insert(1 << 16);
        let mut swapped = bytes_of(&two);
        let d = 8 + 4 + 8;
        swapped.swap(d, d + 4);
        swapped.swap(d + 1, d + 5);
        assert!(validate_treemap(&swapped, Runs::Allowed).is_err());
    }
}
