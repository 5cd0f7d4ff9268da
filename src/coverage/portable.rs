//! Strict structural check of the 64-bit portable Roaring serialization, run before the
//! bytes are handed to `roaring`.
//!
//! Pure; no I/O. `roaring` 0.10 checks the values inside containers but not the order of
//! container keys, empty containers or the consistency of run containers; a checksummed but
//! crafted sidecar could otherwise yield a bitmap whose invariants are broken (and whose
//! re-serialization panics in debug builds). Accepted layout, all integers little-endian:
//!
//! ```text
//! treemap := u64 n, then n times: u32 high (strictly increasing), bitmap
//! bitmap  := u32 cookie = 12346, u32 k (1 ..= 65536),
//!            k x (u16 key (strictly increasing), u16 cardinality - 1),
//!            k x u32 offset (byte offset of the container from the start of the bitmap),
//!            k x container
//! container := cardinality <= 4096: cardinality x u16, strictly increasing
//!              otherwise: 1024 x u64 words whose popcount is the cardinality
//! ```
//!
//! Run containers (cookie 12347) are rejected: this writer never produces them, and
//! accepting exactly one encoding per set keeps the format canonical.

const COOKIE_NO_RUN: u32 = 12346;
const MAX_CONTAINERS: u32 = 1 << 16;
const ARRAY_LIMIT: u64 = 4096;
const BITMAP_BYTES: usize = 8 * 1024;

/// Checks that `bytes` is exactly one canonical treemap and nothing more.
pub(crate) fn validate_treemap(bytes: &[u8]) -> Result<(), String> {
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
        validate_bitmap(&mut r).map_err(|e| format!("bitmap {i} (high key {high}): {e}"))?;
    }
    if r.pos != bytes.len() {
        return Err(format!("{} trailing byte(s) after the bitmap", bytes.len() - r.pos));
    }
    Ok(())
}

fn validate_bitmap(r: &mut Reader<'_>) -> Result<(), String> {
    let start = r.pos;
    let cookie = r.u32()?;
    if cookie != COOKIE_NO_RUN {
        return Err(format!("unsupported cookie {cookie} (expected {COOKIE_NO_RUN}; run containers are not allowed)"));
    }
    let k = r.u32()?;
    if k == 0 || k > MAX_CONTAINERS {
        return Err(format!("container count {k} out of range 1..=65536"));
    }
    let k = k as usize;
    let descriptions = r.take(4 * k)?;
    let offsets = r.take(4 * k)?;
    let mut expected_offset = 8 + 8 * k;
    let mut prev_key: Option<u16> = None;
    for i in 0..k {
        let key = le_u16(descriptions, 4 * i);
        let cardinality = u64::from(le_u16(descriptions, 4 * i + 2)) + 1;
        if prev_key.is_some_and(|p| key <= p) {
            return Err(format!("container key {key} is not above the previous one"));
        }
        prev_key = Some(key);
        let offset = le_u32(offsets, 4 * i) as usize;
        if offset != expected_offset || r.pos - start != offset {
            return Err(format!("container {i} offset {offset} does not match its position"));
        }
        if cardinality <= ARRAY_LIMIT {
            let values = r.take(2 * cardinality as usize)?;
            let mut prev: Option<u16> = None;
            for j in 0..cardinality as usize {
                let v = le_u16(values, 2 * j);
                if prev.is_some_and(|p| v <= p) {
                    return Err(format!("container {i}: array values are not strictly increasing"));
                }
                prev = Some(v);
            }
            expected_offset += 2 * cardinality as usize;
        } else {
            let words = r.take(BITMAP_BYTES)?;
            let ones: u64 = words.chunks_exact(8).map(|w| u64::from(le_u64(w).count_ones())).sum();
            if ones != cardinality {
                return Err(format!("container {i}: {ones} bits set but cardinality {cardinality}"));
            }
            expected_offset += BITMAP_BYTES;
        }
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
        assert!(validate_treemap(&bytes_of(&t)).is_ok());
        t.insert_range(10..20_000); // bitmap containers
        t.insert(1 << 40);
        t.insert(u64::MAX);
        t.insert((1 << 63) + 70_000);
        assert!(validate_treemap(&bytes_of(&t)).is_ok());
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
        assert!(validate_treemap(&empty).is_err());
        // A duplicated high key.
        let mut dup = good.clone();
        dup[0] = 2;
        dup.extend_from_slice(&good[8..]);
        assert!(validate_treemap(&dup).is_err());
        // Trailing bytes and run-container cookies.
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(validate_treemap(&trailing).is_err());
        let mut run = good.clone();
        run[12..16].copy_from_slice(&12347u32.to_le_bytes());
        assert!(validate_treemap(&run).is_err());
        // Unsorted container keys.
        let mut two = RoaringTreemap::new();
        two.insert(1);
        two.insert(1 << 16);
        let mut swapped = bytes_of(&two);
        let d = 8 + 4 + 8;
        swapped.swap(d, d + 4);
        swapped.swap(d + 1, d + 5);
        assert!(validate_treemap(&swapped).is_err());
    }
}
