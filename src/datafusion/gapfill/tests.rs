//! The fill of one series, on a hand-made aggregate output.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use super::exec::{fill_series, series_ranges};
use super::plan::{Fill, GapFillParams};

const MIN: i64 = 60_000_000_000;

/// One series `A` with rows at minutes 1, 2 and 5 (value 10, null, 40) and integer counts
/// 1, 3 and 8, over bins 0..=6 minutes.
fn input() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("symbol", DataType::Utf8, false),
        Field::new("bin", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("value", DataType::Float64, true),
        Field::new("count", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["A", "A", "A", "B"])),
            Arc::new(TimestampNanosecondArray::from(vec![MIN, 2 * MIN, 5 * MIN, 3 * MIN])),
            Arc::new(Float64Array::from(vec![Some(10.0), None, Some(40.0), Some(7.0)])),
            Arc::new(Int64Array::from(vec![1, 3, 8, 2])),
        ],
    )
    .unwrap()
}

fn params(sessions: Option<Vec<(i64, i64)>>) -> GapFillParams {
    GapFillParams {
        time: 1,
        series: vec![0],
        fill: vec![Fill::Key, Fill::Key, Fill::Null, Fill::Null],
        filled: vec![(2, Fill::Locf), (2, Fill::Interpolate), (3, Fill::Interpolate)],
        stride: MIN,
        first_bin: 0,
        last_bin: 6 * MIN,
        sessions,
    }
}

fn output_schema(input: &RecordBatch) -> Arc<Schema> {
    let mut fields: Vec<Field> =
        input.schema().fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    fields.push(Field::new("locf(value)", DataType::Float64, true));
    fields.push(Field::new("interpolate(value)", DataType::Float64, true));
    fields.push(Field::new("interpolate(count)", DataType::Int64, true));
    Arc::new(Schema::new(fields))
}

fn floats(batch: &RecordBatch, i: usize) -> Vec<Option<f64>> {
    let column = batch.column(i).as_any().downcast_ref::<Float64Array>().unwrap();
    (0..column.len()).map(|r| column.is_valid(r).then(|| column.value(r))).collect()
}

#[test]
fn every_bin_filled_by_its_strategy() {
    let input = input();
    let ranges = series_ranges(&input, &[0]).unwrap();
    assert_eq!(ranges, [0..3, 3..4]);
    let out = fill_series(&input, ranges[0].clone(), &params(None), &output_schema(&input)).unwrap();
    assert_eq!(out.num_rows(), 7, "minutes 0 to 6");
    let bins = out.column(1).as_any().downcast_ref::<TimestampNanosecondArray>().unwrap();
    assert_eq!(bins.values().to_vec(), (0..7).map(|m| m * MIN).collect::<Vec<_>>());
    let symbols = out.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    assert!((0..7).all(|r| symbols.value(r) == "A"));
    // Plain: the rows' own values, nulls where inserted.
    assert_eq!(floats(&out, 2), [None, Some(10.0), None, None, None, Some(40.0), None]);
    // locf also carries over the row whose value is null; nothing before the first value.
    assert_eq!(floats(&out, 4), [None, Some(10.0), Some(10.0), Some(10.0), Some(10.0), Some(40.0), Some(40.0)]);
    // interpolate: linear between minute 1 (10) and minute 5 (40), no extrapolation.
    assert_eq!(floats(&out, 5), [None, Some(10.0), Some(17.5), Some(25.0), Some(32.5), Some(40.0), None]);
    // Integers interpolate in f64 and truncate toward zero: minute 3 is 3 + 5 * 1/3 = 4.67 -> 4.
    let counts = out.column(6).as_any().downcast_ref::<Int64Array>().unwrap();
    let counts: Vec<Option<i64>> = (0..7).map(|r| counts.is_valid(r).then(|| counts.value(r))).collect();
    assert_eq!(counts, [None, Some(1), Some(3), Some(4), Some(6), Some(8), None]);
}

#[test]
fn only_scheduled_bins_are_inserted() {
    let input = input();
    // Sessions [00:30, 02:10) and [06:00, 06:01): bins 0, 1, 2 meet the first, 6 the second.
    let sessions = Some(vec![(MIN / 2, 2 * MIN + MIN / 6), (6 * MIN, 6 * MIN + 1)]);
    let out = fill_series(&input, 0..3, &params(sessions), &output_schema(&input)).unwrap();
    let bins = out.column(1).as_any().downcast_ref::<TimestampNanosecondArray>().unwrap();
    // Minute 5 is a row, so it stays although it is not scheduled.
    assert_eq!(bins.values().to_vec(), [0, MIN, 2 * MIN, 5 * MIN, 6 * MIN]);
}
