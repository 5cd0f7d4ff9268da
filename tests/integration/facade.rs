//! The front door: `open`, `create` and `TableBuilder` with its writer and storage options.

use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use timeseries_table_core::{EntityKey, Error, SegmentCompression, TableBuilder, TimeRange, WriterOptions};

use crate::common::*;

#[tokio::test]
async fn create_append_and_reopen_through_the_front_door() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").to_str().unwrap().to_string();
    let options = WriterOptions::default().with_compression(SegmentCompression::Zstd(3)).with_row_group_rows(7);
    let mut table = TableBuilder::new(&uri).with_writer_options(options).create(spec("1m")).await.unwrap();
    table.append(vec![minute_bars(&["A", "B"], T0, 10)]).await.unwrap();

    // The writer options reached the file: zstd pages, row groups of 7 rows.
    let segment = &table.segments()[0];
    let file = std::fs::File::open(dir.path().join("t").join(&segment.path)).unwrap();
    let metadata = SerializedFileReader::new(file).unwrap().metadata().clone();
    assert_eq!(metadata.num_row_groups(), 3, "20 rows in groups of 7");
    assert!(matches!(metadata.row_group(0).column(0).compression(), Compression::ZSTD(_)));

    let reopened = timeseries_table_core::open(&uri).await.unwrap();
    assert_eq!(reopened.version(), 2);
    let window = TimeRange::parse("2024-01-01T00:00:00Z", "2024-01-01T00:20:00Z").unwrap();
    let gaps = reopened.gaps(Some(window), Some(&[EntityKey::from("A")])).await.unwrap();
    assert_eq!((gaps.len(), gaps[0].start.to_string()), (1, "2024-01-01T00:10:00Z".to_string()));
    let old = TableBuilder::new(&uri).at_version(1).open().await.unwrap();
    assert_eq!(old.version(), 1);

    // Creating again where a table exists is refused.
    let again = timeseries_table_core::create(&uri, spec("1m")).await.unwrap_err();
    assert!(matches!(again, Error::TableExists { version: 2, .. }), "{again}");
}

#[tokio::test]
async fn storage_options_on_a_local_table_are_an_error_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let err = TableBuilder::new(dir.path().to_str().unwrap())
        .with_storage_option("aws.region", "eu-west-1")
        .open()
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidLocation { reason, .. } if reason.contains("only to cloud URLs")), "{err}");
}
