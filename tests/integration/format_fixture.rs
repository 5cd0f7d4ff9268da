//! Golden on-disk fixtures: a table written by format version 1 (or 2) must keep opening
//! with the same answers. Files of the current version round-trip byte-for-byte through
//! the codecs; older ones decode to the same content and are rewritten in the current
//! layout. A format change adds a new fixture folder; it never edits an old one.

use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use timeseries_table_core::coverage::sidecar;
use timeseries_table_core::metadata::{BucketAlignment, TimeIndexSpec};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{Expected, TimeSeriesTable};
use timeseries_table_core::transaction_log::Commit;

use crate::common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (relative, _) in tree_snapshot(dir) {
        if relative.ends_with(suffix) {
            out.push(dir.join(relative));
        }
    }
    out
}

/// Writes `tests/fixtures/format-v1` (run by hand once: `cargo test --test integration
/// write_format_v1_fixture -- --ignored`). Refuses to overwrite an existing fixture.
#[tokio::test]
#[ignore = "generates the golden fixture; run by hand only for a new format version"]
async fn write_format_v1_fixture() {
    let root = fixture("format-v1");
    assert!(!root.exists(), "{} exists; a format change adds a new fixture instead", root.display());
    let location = TableLocation::local(&root).unwrap();
    let mut table = new_table(location, "1m").await;
    table.append(vec![minute_bars(&["AAPL", "MSFT"], T0, 30)]).await.unwrap();
    table.append(vec![minute_bars(&["AAPL"], T0 + HOUR, 15)]).await.unwrap();
}

#[tokio::test]
async fn format_v1_table_opens_with_the_same_answers() {
    let root = fixture("format-v1");
    let table = TimeSeriesTable::open(TableLocation::local(&root).unwrap()).await.unwrap();
    assert_eq!(table.version(), 3);
    assert_eq!(table.spec().time_column, "ts");
    assert_eq!(table.spec().bucket.to_string(), "1m");
    assert_eq!(table.spec().entity_columns, vec!["symbol".to_string()]);
    assert_eq!(table.segments().len(), 2);
    assert_eq!(table.snapshot().state().row_count(), 75);
    let cov = table.coverage(None, None).await.unwrap();
    let summary: Vec<(String, u64, u64)> =
        cov.iter().map(|c| (c.entity.to_string(), c.expected_buckets, c.covered_buckets)).collect();
    assert_eq!(summary, vec![("AAPL".into(), 75, 45), ("MSFT".into(), 75, 30)]);
    let rows: Vec<_> = table.scan(None).await.unwrap().try_collect().await.unwrap();
    assert_eq!(row_count(&rows), 75);
}

#[test]
fn format_v1_commits_round_trip_losslessly() {
    let commits = files_with_suffix(&fixture("format-v1"), ".json");
    assert_eq!(commits.len(), 3);
    for path in commits {
        let text = std::fs::read_to_string(&path).unwrap();
        let commit: Commit = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&commit).unwrap(), original, "{}", path.display());
    }
}

#[test]
fn format_v1_sidecars_decode_and_re_encode_in_the_current_layout() {
    let sidecars = files_with_suffix(&fixture("format-v1"), ".roar");
    assert_eq!(sidecars.len(), 4, "two segment sidecars and two table snapshots");
    for path in sidecars {
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], sidecar::MAGIC_V1);
        let coverage = sidecar::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let current = sidecar::encode(&coverage);
        assert_eq!(&current[..8], sidecar::MAGIC);
        assert_eq!(sidecar::decode(&current).unwrap(), coverage, "{}", path.display());
        assert!(current.len() <= bytes.len(), "runs never make a sidecar bigger: {}", path.display());
    }
}

/// Writes `tests/fixtures/checkpoint-v1/0000000100.checkpoint.json` (run by hand once:
/// `cargo test --test integration write_checkpoint_v1_fixture -- --ignored`).
#[tokio::test]
#[ignore = "generates the golden fixture; run by hand only for a new format version"]
async fn write_checkpoint_v1_fixture() {
    let target = fixture("checkpoint-v1");
    assert!(!target.exists(), "{} exists; a format change adds a new fixture instead", target.display());
    let location = memory_location();
    let mut table = new_table(location.clone(), "1m").await;
    for i in 0..99 {
        table.append(vec![minute_bars(&["AAPL"], T0 + i * MINUTE, 1)]).await.unwrap();
    }
    let path = timeseries_table_core::transaction_log::checkpoint_path(100);
    let bytes = location.get(&path).await.unwrap().unwrap();
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("0000000100.checkpoint.json"), bytes).unwrap();
}

#[test]
fn checkpoint_v1_decodes_and_re_encodes_byte_for_byte() {
    use timeseries_table_core::transaction_log::checkpoint::{decode_checkpoint, encode_checkpoint};
    let bytes = std::fs::read(fixture("checkpoint-v1").join("0000000100.checkpoint.json")).unwrap();
    let state = decode_checkpoint(&bytes, 100).unwrap();
    assert_eq!(state.version, 100);
    assert_eq!(state.segments.len(), 99);
    assert_eq!(state.row_count(), 99);
    assert_eq!(state.coverage_snapshot.as_ref().map(|s| s.version), Some(97), "snapshot after 32, 64, 96 segments");
    assert!(state.segments.values().all(|s| (2..=100).contains(&s.added_in_version)));
    // Re-encoded, it is a current-format checkpoint with the same content.
    let current = encode_checkpoint(&state).unwrap();
    assert_eq!(encode_checkpoint(&decode_checkpoint(&current, 100).unwrap()).unwrap(), current);
    let fields = |bytes: &[u8]| {
        let mut value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let version = value.as_object_mut().unwrap().remove("format_version");
        value.as_object_mut().unwrap().remove("crc32");
        (version, value)
    };
    let ((old_version, old), (new_version, new)) = (fields(&bytes), fields(&current));
    assert_eq!((old_version, new_version), (Some(1.into()), Some(2.into())));
    assert_eq!(old, new, "nothing but the version and checksum differ");
}

/// Writes `tests/fixtures/format-v2` (run by hand once: `cargo test --test integration
/// write_format_v2_fixture -- --ignored`): a New York table with day buckets on local
/// days, rows either side of the 2024-03-10 switch, and a schedule set after the appends.
#[tokio::test]
#[ignore = "generates the golden fixture; run by hand only for a new format version"]
async fn write_format_v2_fixture() {
    let root = fixture("format-v2");
    assert!(!root.exists(), "{} exists; a format change adds a new fixture instead", root.display());
    let spec = TimeIndexSpec::new("ts", "1d".parse().unwrap()).with_entity_columns(["symbol"]).with_timezone(NEW_YORK);
    let mut table = TimeSeriesTable::create_with_spec(TableLocation::local(&root).unwrap(), spec).await.unwrap();
    table.append(vec![new_york_rows(&V2_ROWS[..6])]).await.unwrap();
    table.append(vec![new_york_rows(&V2_ROWS[6..])]).await.unwrap();
    table.set_schedule(Some(V2_SCHEDULE.parse().unwrap())).await.unwrap();
}

const NEW_YORK: &str = "America/New_York";
const V2_SCHEDULE: &str = "Mon-Fri 09:30-16:00; closed 2024-03-11";
/// (symbol, seconds since the epoch): 2024-03-08 15:00 EST, 2024-03-09 12:00 EST,
/// 2024-03-10 23:30 EDT (03:30 UTC on the 11th), 2024-03-11 10:00 EDT, 2024-03-12 10:00 EDT,
/// 2024-03-13 10:00 EDT. AAPL covers six local days in a row: one run container.
const V2_ROWS: [(&str, i64); 8] = [
    ("AAPL", 1_709_928_000),
    ("MSFT", 1_709_928_000),
    ("AAPL", 1_710_003_600),
    ("AAPL", 1_710_127_800),
    ("AAPL", 1_710_165_600),
    ("AAPL", 1_710_252_000),
    ("AAPL", 1_710_338_400),
    ("MSFT", 1_710_338_400),
];

fn new_york_rows(rows: &[(&str, i64)]) -> arrow::array::RecordBatch {
    use arrow::array::{StringArray, TimestampSecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let schema = Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Second, Some(NEW_YORK.into())), false),
        Field::new("symbol", DataType::Utf8, false),
    ]);
    arrow::array::RecordBatch::try_new(
        std::sync::Arc::new(schema),
        vec![
            std::sync::Arc::new(
                TimestampSecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()).with_timezone(NEW_YORK),
            ),
            std::sync::Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn format_v2_table_opens_with_local_days_and_its_schedule() {
    let table = TimeSeriesTable::open(TableLocation::local(fixture("format-v2")).unwrap()).await.unwrap();
    assert_eq!(table.version(), 4);
    assert_eq!(table.spec().alignment, BucketAlignment::Local);
    assert_eq!(table.meta().schedule.as_ref().map(|s| s.to_string()).as_deref(), Some(V2_SCHEDULE));
    let summary = |report: Vec<timeseries_table_core::EntityCoverage>| -> Vec<(String, u64, u64, String, String)> {
        report
            .iter()
            .map(|c| {
                (
                    c.entity.to_string(),
                    c.expected_buckets,
                    c.covered_buckets,
                    c.window.start.to_string(),
                    c.window.end.to_string(),
                )
            })
            .collect()
    };
    // Scheduled: Fri 8th, Tue 12th, Wed 13th (the 9th and 10th are a weekend, the 11th is
    // closed). The window runs from New York midnight (05:00 UTC, EST) to midnight after
    // the switch (04:00 UTC, EDT).
    let window = ("2024-03-08T05:00:00Z".to_string(), "2024-03-14T04:00:00Z".to_string());
    assert_eq!(
        summary(table.coverage(None, None).await.unwrap()),
        vec![
            ("AAPL".into(), 3, 3, window.0.clone(), window.1.clone()),
            ("MSFT".into(), 3, 2, window.0.clone(), window.1.clone()),
        ]
    );
    let gaps = table.gaps(None, None).await.unwrap();
    let gaps: Vec<(String, String, String)> =
        gaps.iter().map(|g| (g.entity.to_string(), g.start.to_string(), g.end.to_string())).collect();
    assert_eq!(gaps, vec![("MSFT".into(), "2024-03-12T04:00:00Z".into(), "2024-03-13T04:00:00Z".into())]);
    // Judged against every bucket: AAPL's 23:30 row is on the 10th in New York (on the 11th
    // in UTC, where the 10th would be missing), so it covers all 6 local days.
    let always = table.snapshot().coverage_report(None, None, &Expected::Always).await.unwrap();
    assert_eq!(summary(always)[0], ("AAPL".into(), 6, 6, window.0.clone(), window.1.clone()));
    let rows: Vec<_> = table.scan(None).await.unwrap().try_collect().await.unwrap();
    assert_eq!(row_count(&rows), 8);
}

#[test]
fn format_v2_files_round_trip_byte_for_byte() {
    let sidecars = files_with_suffix(&fixture("format-v2"), ".roar");
    assert_eq!(sidecars.len(), 2, "one sidecar per segment");
    for path in sidecars {
        let bytes = std::fs::read(&path).unwrap();
        let coverage = sidecar::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(sidecar::encode(&coverage), bytes, "{}", path.display());
    }
    let commits = files_with_suffix(&fixture("format-v2"), ".json");
    assert_eq!(commits.len(), 4);
    for path in commits {
        let text = std::fs::read_to_string(&path).unwrap();
        let commit: Commit = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(commit.format_version, 2, "{}", path.display());
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&commit).unwrap(), original, "{}", path.display());
    }
}

/// One rule for a time written without an offset, on a New York table: WHERE (through
/// DataFusion's cast), the table functions and the Rust parser all read it in New York.
#[tokio::test]
async fn times_without_an_offset_are_read_in_the_tables_zone_everywhere() {
    use timeseries_table_core::datafusion::{register_opened, session_context};
    use timeseries_table_core::metadata::Timestamp;
    let table = TimeSeriesTable::open(TableLocation::local(fixture("format-v2")).unwrap()).await.unwrap();
    let ctx = session_context();
    register_opened(&ctx, "ny", table.clone()).unwrap();
    // 23:00 to midnight on the 10th in New York holds AAPL's 23:30 row (03:30 UTC on the
    // 11th); read as UTC the same strings would select 19:00-20:00 in New York, no row.
    let (from, to) = ("2024-03-10T23:00:00", "2024-03-11T00:00:00");
    let where_ = format!("SELECT count(*) AS n FROM ny WHERE ts >= '{from}' AND ts < '{to}'");
    let batches = ctx.sql(&where_).await.unwrap().collect().await.unwrap();
    assert!(pretty(&batches).contains("| 1 |"), "{}", pretty(&batches));
    // The table functions: the 10th as a window, against every bucket, is one covered day.
    let sql = "SELECT expected_buckets, covered_buckets FROM coverage('ny', '2024-03-10', '2024-03-11', 'always') WHERE symbol = 'AAPL'";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    assert!(pretty(&batches).contains("| 1                | 1               |"), "{}", pretty(&batches));
    let parsed = Timestamp::parse_in(from, table.spec().timezone.as_deref()).unwrap();
    assert_eq!(parsed.to_string(), "2024-03-11T03:00:00Z");
    assert_eq!(
        Timestamp::parse_in("2024-03-10", Some("America/New_York")).unwrap().to_string(),
        "2024-03-10T05:00:00Z"
    );
    assert_eq!(
        Timestamp::parse_in("2024-03-10T12:00:00Z", Some("America/New_York")).unwrap().to_string(),
        "2024-03-10T12:00:00Z"
    );
}
