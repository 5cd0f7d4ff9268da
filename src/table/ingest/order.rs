//! The order segments store their rows in: by time, ties by the entity columns, nulls
//! last. Checking that rows arrive in it, and sorting rows in memory into it.
//!
//! Pure; no I/O.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, ArrayData, ArrayRef, RecordBatch};
use arrow::buffer::ScalarBuffer;
use arrow::compute::{concat, interleave, lexsort_to_indices, LexicographicalComparator, SortColumn, SortOptions};
use arrow::datatypes::SchemaRef;

use crate::environment;
use crate::error::{Error, Result};
use crate::metadata::TimeIndexSpec;

/// The columns that define the order, time first.
#[derive(Debug, Clone)]
pub(crate) struct SortKey {
    /// Column indices: the time column, then the entity columns.
    pub(crate) columns: Vec<usize>,
}

/// Rows of equal-time runs that one thread orders at a time (whole runs, so a chunk may be
/// longer).
const TIE_CHUNK_ROWS: usize = 4096;

/// Ascending, nulls last, for every key column.
pub(crate) const ASCENDING: SortOptions = SortOptions { descending: false, nulls_first: false };

impl SortKey {
    pub(crate) fn new(schema: &SchemaRef, spec: &TimeIndexSpec) -> Result<Self> {
        let columns = std::iter::once(&spec.time_column)
            .chain(&spec.entity_columns)
            .map(|name| schema.index_of(name).map_err(|e| Error::invalid_input(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        Ok(SortKey { columns })
    }

    fn sort_columns(&self, arrays: impl IntoIterator<Item = ArrayRef>) -> Vec<SortColumn> {
        arrays.into_iter().map(|values| SortColumn { values, options: Some(ASCENDING) }).collect()
    }

    /// Sorts rows held in memory (freeing the input batches once they are gathered). Only
    /// the key columns are joined to find the order; the rows are gathered straight from
    /// the input batches, a column per core at a time.
    pub(crate) fn sort(&self, schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<RecordBatch> {
        let keys = self
            .columns
            .iter()
            .map(|&i| concat(&batches.iter().map(|batch| batch.column(i).as_ref()).collect::<Vec<_>>()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let order = match self.order_by_time_then_ties(&keys)? {
            Some(order) => order,
            None => lexsort_to_indices(&self.sort_columns(keys), None)?.values().to_vec(),
        };
        // Where each row of the joined keys sits in the input.
        let starts: Vec<usize> = batches
            .iter()
            .scan(0, |start, batch| {
                let this = *start;
                *start += batch.num_rows();
                Some(this)
            })
            .collect();
        let rows: Vec<(usize, usize)> = order
            .into_iter()
            .map(|row| {
                let row = row as usize;
                let batch = starts.partition_point(|&start| start <= row) - 1;
                (batch, row - starts[batch])
            })
            .collect();
        let mut sorted: Vec<Option<ArrayRef>> = vec![None; schema.fields().len()];
        let gather = sorted.iter_mut().enumerate();
        environment::on_cores(gather, rows.len(), |(i, column)| {
            let inputs: Vec<&dyn Array> = batches.iter().map(|batch| batch.column(i).as_ref()).collect();
            *column = Some(interleave(&inputs, &rows)?);
            Ok::<_, Error>(())
        })?;
        drop(batches);
        let columns = sorted.into_iter().map(|column| column.expect("every column gathered")).collect();
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }

    /// The row order of `batch`, found by sorting the raw time values and comparing entity
    /// columns only among rows of equal time, and only where those are not already in
    /// order. A general lexicographic sort compares entity strings at every step, which
    /// made input ordered by entity, then time (the common export order) several times
    /// slower to sort. `keys` are the key columns, time first. `None` for input this does
    /// not cover (null times, over `u32` rows).
    fn order_by_time_then_ties(&self, keys: &[ArrayRef]) -> Result<Option<Vec<u32>>> {
        let times = keys[0].to_data();
        if times.null_count() > 0 || times.len() > u32::MAX as usize {
            return Ok(None);
        }
        let pairs = sort_by_time(&raw_times(&times));
        let mut order: Vec<u32> = pairs.iter().map(|&(_, row)| row).collect();
        if keys.len() > 1 {
            let entities = self.sort_columns(keys[1..].iter().cloned());
            let ties = LexicographicalComparator::try_new(&entities)?;
            let compare = |a: &u32, b: &u32| ties.compare(*a as usize, *b as usize);
            // Each run of equal times is ordered on its own; runs are taken in chunks of a
            // few thousand rows, the chunks side by side.
            let mut chunks = Vec::new();
            let (mut rest, mut rest_pairs) = (order.as_mut_slice(), pairs.as_slice());
            while !rest_pairs.is_empty() {
                let mut end = TIE_CHUNK_ROWS.min(rest_pairs.len());
                while end < rest_pairs.len() && rest_pairs[end].0 == rest_pairs[end - 1].0 {
                    end += 1;
                }
                let (rows, after) = std::mem::take(&mut rest).split_at_mut(end);
                chunks.push((rows, &rest_pairs[..end]));
                (rest, rest_pairs) = (after, &rest_pairs[end..]);
            }
            environment::on_cores(chunks.into_iter(), pairs.len(), |(mut rows, pairs)| {
                for run in pairs.chunk_by(|a, b| a.0 == b.0) {
                    let (run_rows, after) = std::mem::take(&mut rows).split_at_mut(run.len());
                    if run_rows.windows(2).any(|pair| compare(&pair[0], &pair[1]) == Ordering::Greater) {
                        run_rows.sort_by(compare);
                    }
                    rows = after;
                }
                Ok::<_, Error>(())
            })?;
        }
        Ok(Some(order))
    }
}

/// (time, row) pairs ordered by time, rows of equal time in row order: what a stable sort
/// by time gives. A least-significant-byte radix sort, skipping the bytes that every time
/// shares (a day of timestamps differs in five of eight): several times faster than a
/// comparison sort on the hundreds of thousands of rows of an append. Times are keyed with
/// the sign bit flipped, so negative times come first.
fn sort_by_time(times: &[i64]) -> Vec<(u64, u32)> {
    let mut pairs: Vec<(u64, u32)> = times.iter().zip(0u32..).map(|(&t, row)| ((t as u64) ^ (1 << 63), row)).collect();
    let differing = pairs.iter().fold(0, |bits, &(key, _)| bits | (key ^ pairs[0].0));
    let shifts: Vec<u32> = (0..64).step_by(8).filter(|shift| (differing >> shift) & 0xff != 0).collect();
    let digit = |key: u64, shift: u32| ((key >> shift) & 0xff) as usize;
    // Where each digit's values start, for every sorted-by digit, counted in one pass.
    let mut starts = vec![[0usize; 256]; shifts.len()];
    for &(key, _) in &pairs {
        for (counts, &shift) in starts.iter_mut().zip(&shifts) {
            counts[digit(key, shift)] += 1;
        }
    }
    let mut scratch = vec![(0, 0); pairs.len()];
    for (next, &shift) in starts.iter_mut().zip(&shifts) {
        let mut start = 0;
        for slot in next.iter_mut() {
            (start, *slot) = (start + *slot, start);
        }
        for &pair in &pairs {
            let slot = &mut next[digit(pair.0, shift)];
            scratch[*slot] = pair;
            *slot += 1;
        }
        std::mem::swap(&mut pairs, &mut scratch);
    }
    pairs
}

/// The raw `i64` values of a timestamp column (any unit: only their order is used).
fn raw_times(times: &ArrayData) -> ScalarBuffer<i64> {
    ScalarBuffer::new(times.buffers()[0].clone(), times.offset(), times.len())
}

/// Follows a stream of batches and tells whether it is still in [`SortKey`] order.
pub(crate) struct OrderCheck {
    key: SortKey,
    /// The key columns of the last row seen.
    last: Option<Vec<ArrayRef>>,
}

impl OrderCheck {
    pub(crate) fn new(key: SortKey) -> Self {
        OrderCheck { key, last: None }
    }

    /// Whether `batch` continues the order of every batch before it.
    pub(crate) fn continues(&mut self, batch: &RecordBatch) -> Result<bool> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(true);
        }
        let keys: Vec<ArrayRef> = self.key.columns.iter().map(|&i| batch.column(i).clone()).collect();
        if let Some(last) = &self.last {
            let pair = last
                .iter()
                .zip(&keys)
                .map(|(previous, next)| concat(&[previous.as_ref(), next.slice(0, 1).as_ref()]))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if !self.in_order(&pair)? {
                return Ok(false);
            }
        }
        if !self.in_order(&keys)? {
            return Ok(false);
        }
        self.last = Some(keys.iter().map(|k| k.slice(rows - 1, 1)).collect());
        Ok(true)
    }

    /// Whether the rows of `keys` (time first) are in order: a pass over the raw time
    /// values, and the entity comparison only where two times are equal.
    fn in_order(&self, keys: &[ArrayRef]) -> Result<bool> {
        let values = raw_times(&keys[0].to_data());
        let mut ties = None;
        for i in 1..values.len() {
            match values[i - 1].cmp(&values[i]) {
                Ordering::Less => {}
                Ordering::Greater => return Ok(false),
                Ordering::Equal if keys.len() > 1 => {
                    if ties.is_none() {
                        ties = Some(LexicographicalComparator::try_new(
                            &self.key.sort_columns(keys[1..].iter().cloned()),
                        )?);
                    }
                    if ties.as_ref().expect("set above").compare(i - 1, i) == Ordering::Greater {
                        return Ok(false);
                    }
                }
                Ordering::Equal => {}
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use proptest::prelude::*;

    use super::*;

    fn batch(rows: &[(Option<i64>, &str, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("symbol", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("v", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(TimestampMillisecondArray::from_iter(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .unwrap()
    }

    fn key(batch: &RecordBatch) -> SortKey {
        let spec = TimeIndexSpec::new("ts", "1m".parse().unwrap()).with_entity_columns(["symbol"]);
        SortKey::new(&batch.schema(), &spec).unwrap()
    }

    /// The (time, symbol, value) rows of a batch.
    fn rows(batch: &RecordBatch) -> Vec<(Option<i64>, String, i64)> {
        let ts = batch.column(1).as_any().downcast_ref::<TimestampMillisecondArray>().unwrap();
        let symbol = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let v = batch.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        (0..batch.num_rows())
            .map(|i| (ts.is_valid(i).then(|| ts.value(i)), symbol.value(i).to_string(), v.value(i)))
            .collect()
    }

    const SYMBOLS: [&str; 6] = ["AAPL", "MSFT", "GOOG", "AMZN", "A", "ZZZZ"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn sorts_by_time_then_entity_whatever_the_input_order(
            picks in prop::collection::vec((-4i64..8, 0usize..SYMBOLS.len()), 1..60),
            export_order in any::<bool>(),
            cuts in prop::collection::vec(0usize..60, 0..4),
        ) {
            let mut input: Vec<(Option<i64>, &str, i64)> =
                picks.iter().zip(0..).map(|(&(minute, s), i)| (Some(minute * 60_000), SYMBOLS[s], i)).collect();
            if export_order {
                // The export order: by entity, then time.
                input.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
            }
            let b = batch(&input);
            // The rows arrive in several batches, cut anywhere.
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(b.num_rows())).chain([0, b.num_rows()]).collect();
            cuts.sort();
            let pieces = cuts.windows(2).map(|w| b.slice(w[0], w[1] - w[0])).collect();
            let sorted = rows(&key(&b).sort(&b.schema(), pieces).unwrap());
            let mut expected: Vec<_> = input.iter().map(|&(t, s, v)| (t, s.to_string(), v)).collect();
            expected.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            let keys = |rows: &[(Option<i64>, String, i64)]| rows.iter().map(|r| (r.0, r.1.clone())).collect::<Vec<_>>();
            prop_assert_eq!(keys(&sorted), keys(&expected), "{:?}", input);
            let mut all = sorted.clone();
            all.sort();
            let mut want = expected.clone();
            want.sort();
            prop_assert_eq!(all, want, "the same rows, none lost or repeated");
        }
    }

    /// Enough rows that the columns are gathered on several threads.
    #[test]
    fn large_inputs_sort_across_batches() {
        let input: Vec<(Option<i64>, &str, i64)> =
            (0..30_000).map(|i| (Some((i % 5_000) * 60_000), SYMBOLS[(i / 5_000) as usize], i)).collect();
        let b = batch(&input);
        let pieces = vec![b.slice(0, 10_000), b.slice(10_000, 7), b.slice(10_007, 19_993)];
        let sorted = rows(&key(&b).sort(&b.schema(), pieces).unwrap());
        let mut expected: Vec<_> = input.iter().map(|&(t, s, v)| (t, s.to_string(), v)).collect();
        expected.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        assert_eq!(sorted, expected);
    }

    /// Rows of equal time and entity keep their input order, as a stable sort leaves them,
    /// also when runs of equal times are ordered in chunks on several threads.
    #[test]
    fn equal_keys_keep_their_input_order_across_threads() {
        // 20,000 rows over 7 minutes: runs of about 2,857 equal times, so chunks of whole
        // runs past 4,096 rows; three symbols out of order within each run.
        let input: Vec<(Option<i64>, &str, i64)> =
            (0..20_000).map(|i| (Some(((i * 7919) % 7) * 60_000), SYMBOLS[((i * 31) % 3) as usize], i)).collect();
        let b = batch(&input);
        let pieces = vec![b.slice(0, 12_345), b.slice(12_345, 20_000 - 12_345)];
        let sorted = rows(&key(&b).sort(&b.schema(), pieces).unwrap());
        let mut expected: Vec<_> = input.iter().map(|&(t, s, v)| (t, s.to_string(), v)).collect();
        expected.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        assert_eq!(sorted, expected);
    }

    #[test]
    fn the_radix_sort_orders_extreme_and_equal_times_stably() {
        let times = [5, i64::MIN, -1, 0, i64::MAX, 5, -1, -300, 1 << 40];
        let rows: Vec<u32> = sort_by_time(&times).into_iter().map(|(_, row)| row).collect();
        let mut expected: Vec<u32> = (0..times.len() as u32).collect();
        expected.sort_by_key(|&row| times[row as usize]);
        assert_eq!(rows, expected);
    }

    #[test]
    fn null_times_sort_last() {
        let b = batch(&[(None, "B", 0), (Some(5), "B", 1), (Some(5), "A", 2), (Some(1), "C", 3)]);
        let sorted = rows(&key(&b).sort(&b.schema(), vec![b.clone()]).unwrap());
        let order: Vec<i64> = sorted.iter().map(|r| r.2).collect();
        assert_eq!(order, vec![3, 2, 1, 0]);
    }
}
