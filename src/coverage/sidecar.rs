//! The `.roar` coverage sidecar codec: a segment's per-entity coverage as bytes.
//!
//! Pure; no I/O (callers read and write the file and add its path to errors).
//!
//! Layout, all integers little-endian:
//!
//! ```text
//! magic        8 bytes   b"TSCOVER2" (written) or b"TSCOVER1" (read)
//! count        u32       number of entities
//! count times, in ascending entity-key order, keys distinct:
//!   key_len    u32       length of key
//!   key        key_len   the entity key as compact JSON: an array of the entity-column
//!                        values in column order, strings as JSON strings and integers as
//!                        JSON numbers, e.g. ["AAPL"] or ["AAPL",3]; [] for the implicit
//!                        entity of a table without entity columns
//!   set_len    u64       length of set
//!   set        set_len   the entity's covered bucket ids in the 64-bit portable Roaring
//!                        format (RoaringTreemap / CRoaring Roaring64Map "portable"),
//!                        non-empty, containers run-optimized (version 1: without run
//!                        containers); bucket id `i` is stored
//!                        as the unsigned 64-bit value `i XOR 2^63` (sign bit flipped)
//!                        (the exact accepted Roaring layout is in `portable.rs`)
//! crc          u32       CRC-32 (IEEE, as in zlib/crc32fast) of every preceding byte
//! ```
//!
//! Entity-key order is the crate's `EntityKey` order: values compared pairwise in column
//! order, integers before strings, integers numerically, strings by UTF-8 bytes, and a
//! key that is a prefix of another first. A reader rejects a bad magic, a checksum
//! mismatch, lengths that overrun the file, keys that are not JSON arrays of strings and
//! integers, keys out of order or repeated, sets that break the constraints above, and
//! bytes left over after the last entity.

use super::bucket_set::BucketSet;
use super::coverage::Coverage;
use super::portable::Runs;
use crate::metadata::EntityKey;

/// First bytes of every sidecar written; the trailing digit is the layout version.
pub const MAGIC: &[u8; 8] = b"TSCOVER2";

/// Version 1: the same layout without run containers, which readers still accept.
pub const MAGIC_V1: &[u8; 8] = b"TSCOVER1";

/// Smallest possible sidecar: magic, entity count and checksum.
const MIN_LEN: usize = 8 + 4 + 4;

/// Encodes `coverage` as sidecar bytes.
pub fn encode(coverage: &Coverage) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        MIN_LEN + coverage.entities().map(|(_, set)| 12 + 16 + set.serialized_size()).sum::<usize>(),
    );
    let mut optimized = BucketSet::new();
    out.extend_from_slice(MAGIC);
    // Four billion entities would not fit in memory, so the count fits in u32.
    out.extend_from_slice(&(coverage.entity_count() as u32).to_le_bytes());
    for (key, set) in coverage.entities() {
        // Serializing integers and strings cannot fail; were it to, the empty key would be
        // rejected by `decode` instead of being misread as the implicit entity `[]`.
        let json = serde_json::to_vec(key).unwrap_or_default();
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        // Sets are usually held optimized already; the copy is for those that are not, so
        // the bytes do not depend on how the set was built.
        optimized.clone_from(set);
        optimized.optimize();
        out.extend_from_slice(&(optimized.serialized_size() as u64).to_le_bytes());
        optimized.serialize_into(&mut out);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes sidecar bytes; the error says what is wrong (the caller names the file).
pub fn decode(bytes: &[u8]) -> Result<Coverage, String> {
    let runs = match bytes.get(..MAGIC.len()) {
        Some(magic) if magic == MAGIC => Runs::Allowed,
        Some(magic) if magic == MAGIC_V1 => Runs::Refused,
        Some(_) => return Err("bad magic (not a TSCOVER1 or TSCOVER2 coverage sidecar)".into()),
        None => Runs::Allowed,
    };
    if bytes.len() < MIN_LEN {
        return Err(format!("truncated: {} bytes, a sidecar has at least {MIN_LEN}", bytes.len()));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(format!("checksum mismatch (stored {stored:08x}, computed {computed:08x}): truncated or corrupt"));
    }

    let mut r = Reader { bytes: body, pos: MAGIC.len() };
    let count = r.u32()?;
    // Each entity takes at least 12 bytes; reject absurd counts before looping.
    if u64::from(count) * 12 > r.remaining() as u64 {
        return Err(format!("entity count {count} does not fit in {} remaining bytes", r.remaining()));
    }
    let mut coverage = Coverage::new();
    let mut previous: Option<EntityKey> = None;
    for i in 0..count {
        let key_len = r.u32()? as usize;
        let json = r.take(key_len).map_err(|e| format!("entity #{i} key: {e}"))?;
        let key: EntityKey = serde_json::from_slice(json).map_err(|e| format!("entity #{i}: invalid key JSON: {e}"))?;
        if previous.as_ref().is_some_and(|p| key <= *p) {
            return Err(format!("entity #{i} {}: keys are not in strictly ascending order", show(json)));
        }
        let set_len = usize::try_from(r.u64()?).map_err(|_| format!("entity #{i}: bucket set too large"))?;
        let set_bytes = r.take(set_len).map_err(|e| format!("entity #{i} {}: bucket set: {e}", show(json)))?;
        let set = BucketSet::deserialize(set_bytes, runs).map_err(|e| format!("entity #{i} {}: {e}", show(json)))?;
        if set.is_empty() {
            return Err(format!("entity #{i} {}: empty bucket set", show(json)));
        }
        coverage.insert_set(key.clone(), set);
        previous = Some(key);
    }
    if r.remaining() != 0 {
        return Err(format!("{} unexpected byte(s) after the last entity", r.remaining()));
    }
    Ok(coverage)
}

/// Key JSON for messages, shortened so a corrupt length cannot produce a huge message.
fn show(json: &[u8]) -> String {
    let text = String::from_utf8_lossy(json);
    if text.chars().count() > 80 {
        format!("{}...", text.chars().take(80).collect::<String>())
    } else {
        text.into_owned()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!("truncated: needs {n} bytes at offset {}, {} left", self.pos, self.remaining()));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::EntityValue;

    fn sample() -> Coverage {
        let mut c = Coverage::new();
        c.insert_set(EntityKey(vec![EntityValue::Str("AAPL".into())]), (-5..70_000).collect());
        c.insert_set(
            EntityKey(vec![EntityValue::Int(-3), EntityValue::Str("x\"y".into())]),
            [i64::MIN, 0].into_iter().collect(),
        );
        c.insert(&EntityKey::implicit(), i64::MAX);
        c
    }

    #[test]
    fn round_trip_and_layout() {
        let c = sample();
        let bytes = encode(&c);
        assert_eq!(&bytes[..8], b"TSCOVER2");
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 3);
        // The implicit entity sorts first and is written as `[]`.
        assert_eq!(u32::from_le_bytes(bytes[12..16].try_into().unwrap()), 2);
        assert_eq!(&bytes[16..18], b"[]");
        assert_eq!(decode(&bytes).unwrap(), c);
        assert_eq!(decode(&encode(&Coverage::new())).unwrap(), Coverage::new());
        assert_eq!(encode(&Coverage::new()).len(), MIN_LEN);
    }

    #[test]
    fn reads_version_1_and_stores_dense_runs_in_a_few_bytes() {
        // A version 1 sidecar is the same layout with the old magic and no run containers.
        let c = sample();
        let mut v1 = Vec::new();
        v1.extend_from_slice(MAGIC_V1);
        v1.extend_from_slice(&(c.entity_count() as u32).to_le_bytes());
        for (key, set) in c.entities() {
            let json = serde_json::to_vec(key).unwrap();
            v1.extend_from_slice(&(json.len() as u32).to_le_bytes());
            v1.extend_from_slice(&json);
            v1.extend_from_slice(&(set.serialized_size() as u64).to_le_bytes());
            set.serialize_into(&mut v1);
        }
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&v1).unwrap(), c);
        // A run in a version 1 file is refused: that writer never made one.
        let v2 = encode(&c);
        let mut relabelled = v2[..v2.len() - 4].to_vec();
        relabelled[..8].copy_from_slice(MAGIC_V1);
        let crc = crc32fast::hash(&relabelled);
        relabelled.extend_from_slice(&crc.to_le_bytes());
        assert!(decode(&relabelled).unwrap_err().contains("version 1"));

        // A year of one-minute buckets, every minute covered: one run per 2^16 ids.
        let mut year = Coverage::new();
        year.insert_set(EntityKey::implicit(), (0..525_600).collect());
        let bytes = encode(&year);
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes).unwrap(), year);
    }

    #[test]
    fn rejects_damage_with_a_reason() {
        let bytes = encode(&sample());
        assert!(decode(b"").unwrap_err().contains("truncated"));
        assert!(decode(b"TSCOVER").unwrap_err().contains("truncated"));
        assert!(decode(b"TSCOVER2").unwrap_err().contains("truncated"));
        assert!(decode(b"PAR1PAR1PAR1PAR1").unwrap_err().contains("bad magic"));
        assert!(decode(&bytes[..bytes.len() - 1]).unwrap_err().contains("checksum"));
        let mut flipped = bytes.clone();
        flipped[20] ^= 0x10;
        assert!(decode(&flipped).unwrap_err().contains("checksum"));
    }

    #[test]
    fn rejects_structural_errors_even_with_a_valid_checksum() {
        let reseal = |mut body: Vec<u8>| {
            let crc = crc32fast::hash(&body);
            body.extend_from_slice(&crc.to_le_bytes());
            body
        };
        let bytes = encode(&sample());
        let body = bytes[..bytes.len() - 4].to_vec();
        let mut extra = body.clone();
        extra.push(0);
        assert!(decode(&reseal(extra)).unwrap_err().contains("unexpected"));
        let mut count = body.clone();
        count[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&reseal(count)).unwrap_err().contains("entity count"));
        let mut key = body.clone();
        key[16] = b'{';
        assert!(decode(&reseal(key)).unwrap_err().contains("invalid key JSON"));
        // Two entities, the second equal to the first.
        let one = encode(&{
            let mut c = Coverage::new();
            c.insert(&EntityKey::implicit(), 1);
            c
        });
        let entry = one[12..one.len() - 4].to_vec();
        let mut dup = one[..12].to_vec();
        dup[8] = 2;
        dup.extend_from_slice(&entry);
        dup.extend_from_slice(&entry);
        assert!(decode(&reseal(dup)).unwrap_err().contains("ascending"));
    }
}
