//! Bad inputs through the Rust API: each is a specific error and leaves the table
//! byte-for-byte unchanged.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use timeseries_table_core::metadata::{TableMeta, TimeBucket, TimeIndexSpec};
use timeseries_table_core::table::{TimeRange, TimeSeriesTable};
use timeseries_table_core::Error;

use crate::common::*;

fn batch(fields: Vec<Field>, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn ts_field(nullable: bool) -> Field {
    Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), nullable)
}

#[tokio::test]
async fn every_bad_append_is_a_clear_error_and_changes_nothing() {
    let (dir, location) = temp_location();
    let mut table = new_table(location.clone(), "1m").await;
    table.append(vec![minute_bars(&["A"], T0, 5)]).await.unwrap();
    let before = tree_snapshot(dir.path());
    let sym = || Arc::new(StringArray::from(vec!["A"])) as ArrayRef;

    let cases: Vec<(&str, Vec<RecordBatch>, &str)> = vec![
        ("empty input", vec![], "no rows"),
        ("zero rows", vec![minute_bars(&["A"], T0, 0)], "no rows"),
        (
            "missing time column",
            vec![batch(vec![Field::new("symbol", DataType::Utf8, false)], vec![sym()])],
            "time column 'ts' is missing",
        ),
        (
            "time column of the wrong type",
            vec![batch(
                vec![Field::new("ts", DataType::Int64, false), Field::new("symbol", DataType::Utf8, false)],
                vec![Arc::new(Int64Array::from(vec![1])), sym()],
            )],
            "expected a Timestamp",
        ),
        (
            "null timestamps",
            vec![batch(
                vec![
                    ts_field(true),
                    Field::new("symbol", DataType::Utf8, false),
                    Field::new("price", DataType::Float64, true),
                    Field::new("volume", DataType::Int64, true),
                ],
                vec![
                    Arc::new(TimestampNanosecondArray::from(vec![None, Some(T0 + HOUR)])),
                    Arc::new(StringArray::from(vec!["A", "A"])),
                    Arc::new(Float64Array::from(vec![1.0, 2.0])),
                    Arc::new(Int64Array::from(vec![1, 2])),
                ],
            )],
            "null",
        ),
        (
            "null entity values",
            vec![batch(
                vec![
                    ts_field(false),
                    Field::new("symbol", DataType::Utf8, true),
                    Field::new("price", DataType::Float64, true),
                    Field::new("volume", DataType::Int64, true),
                ],
                vec![
                    Arc::new(TimestampNanosecondArray::from(vec![T0 + HOUR])),
                    Arc::new(StringArray::from(vec![None::<&str>])),
                    Arc::new(Float64Array::from(vec![1.0])),
                    Arc::new(Int64Array::from(vec![1])),
                ],
            )],
            "null",
        ),
        ("overlapping data", vec![minute_bars(&["A"], T0 + 4 * MINUTE, 2)], "overlap"),
    ];
    for (what, input, needle) in cases {
        let err = table.append(input).await.expect_err(what);
        assert!(err.to_string().to_lowercase().contains(&needle.to_lowercase()), "{what}: {err}");
        assert_eq!(tree_snapshot(dir.path()), before, "{what}: table changed");
    }

    // Files that are not (complete) Parquet.
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"definitely not parquet").unwrap();
    let err = table.append_parquet_file(&junk).await.unwrap_err();
    assert!(matches!(err, Error::Parquet { .. }) && err.to_string().contains("junk.parquet"), "{err}");
    let truncated = dir.path().join("truncated.parquet");
    let mut bytes = Vec::new();
    let good = minute_bars(&["Z"], T0, 3);
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, good.schema(), None).unwrap();
    writer.write(&good).unwrap();
    writer.close().unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(table.append_parquet_file(&truncated).await.unwrap_err(), Error::Parquet { .. }));
    let missing = table.append_parquet_file(dir.path().join("nope.parquet")).await.unwrap_err();
    assert!(matches!(missing, Error::Io { .. }) && missing.to_string().contains("nope.parquet"), "{missing}");
    std::fs::remove_file(&junk).unwrap();
    std::fs::remove_file(&truncated).unwrap();
    assert_eq!(tree_snapshot(dir.path()), before, "parquet failures changed the table");
}

#[tokio::test]
async fn bad_specs_buckets_and_ranges() {
    for bad in ["", "0m", "5w", "m", "1.5h", "-1h", "99999999999s"] {
        assert!(matches!(bad.parse::<TimeBucket>(), Err(Error::InvalidBucket { .. })), "{bad:?}");
    }
    assert!(matches!(TimeRange::from_nanos(T0 + 1, T0), Err(Error::InvalidRange { .. })));
    assert!(matches!(TimeRange::parse("2024-01-02", "2024-01-01"), Err(Error::InvalidRange { .. })));
    assert!(TimeRange::parse("yesterday", "2024-01-01").is_err());

    // An entity column of a type that cannot be an entity: rejected at the first append.
    let (dir, location) = temp_location();
    let spec = TimeIndexSpec::new("ts", "1m".parse().unwrap()).with_entity_columns(["price"]);
    let mut table = TimeSeriesTable::create(location.clone(), TableMeta::try_new(spec).unwrap()).await.unwrap();
    let before = tree_snapshot(dir.path());
    let err = table.append(vec![minute_bars(&["A"], T0, 2)]).await.unwrap_err();
    assert!(err.to_string().contains("entity column 'price' has type Float64"), "{err}");
    assert_eq!(tree_snapshot(dir.path()), before);

    // Specs that cannot work are refused before anything is written.
    let dup = TimeIndexSpec::new("ts", "1m".parse().unwrap()).with_entity_columns(["a", "a"]);
    assert!(matches!(TableMeta::try_new(dup), Err(Error::InvalidSpec { .. })));
    let (_dir2, location2) = temp_location();
    let self_entity = TimeIndexSpec::new("ts", "1m".parse().unwrap()).with_entity_columns(["ts"]);
    assert!(TimeSeriesTable::create_with_spec(location2.clone(), self_entity).await.is_err());
    assert!(matches!(TimeSeriesTable::open(location2).await, Err(Error::EmptyTable { .. })));
}
