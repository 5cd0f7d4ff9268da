//! Reliability suites (DESIGN.md section 9): fault injection, concurrent writers (tasks and
//! processes), crash safety, corruption, bad input, vacuum. See TESTING.md for what each
//! guarantees and how to run the long variants.
//!
//! Tests that need separate OS processes re-execute this test binary
//! (`std::env::current_exe()`) with `--exact <name> --ignored` and environment variables
//! saying what to do; those `#[ignore]`d entry points do nothing when run by hand.

mod bad_input;
mod concurrency;
mod corruption;
mod crash;
mod faults;
pub mod faulty_store;
mod vacuum;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};

use futures::{StreamExt, TryStreamExt};
use timeseries_table_core::storage::TableLocation;
use timeseries_table_core::table::{TimeRange, TimeSeriesTable};

use crate::common::*;

/// Environment variable that marks a re-executed child and names its role.
pub const CHILD_ROLE: &str = "TSQ_RELIABILITY_ROLE";

/// What a reader can see of a table: its version, its rows and its coverage answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub version: u64,
    /// Every row, pretty-printed, sorted.
    pub rows: Vec<String>,
    pub answers: String,
}

/// Every row of the table through `TimeSeriesTable::scan`, one string per row, sorted.
pub async fn scan_rows(table: &TimeSeriesTable) -> timeseries_table_core::Result<Vec<String>> {
    if table.schema().is_none() {
        return Ok(Vec::new());
    }
    let batches: Vec<_> = table.scan(None).await?.try_collect().await?;
    Ok(sorted_rows(&batches))
}

/// Rows of pretty-printed batches (header and borders dropped), sorted.
pub fn sorted_rows(batches: &[arrow::array::RecordBatch]) -> Vec<String> {
    if batches.is_empty() {
        return Vec::new();
    }
    let mut rows: Vec<String> =
        pretty(batches).lines().filter(|l| l.starts_with('|')).skip(1).map(str::to_string).collect();
    rows.sort();
    rows
}

/// One string per row (its cells joined by `,`), sorted. Unlike [`sorted_rows`] it does not
/// depend on how the rows were batched, so the rows of several appends can be compared
/// with a scan: equal lists mean every row is there exactly as often.
pub fn row_keys(batches: &[arrow::array::RecordBatch]) -> Vec<String> {
    use arrow::util::display::array_value_to_string;
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch.columns().iter().map(|c| array_value_to_string(c, row).unwrap()).collect();
            rows.push(cells.join(","));
        }
    }
    rows.sort();
    rows
}

/// [`row_keys`] of every row of the table.
pub async fn scan_row_keys(table: &TimeSeriesTable) -> Vec<String> {
    if table.schema().is_none() {
        return Vec::new();
    }
    let batches: Vec<_> = table.scan(None).await.unwrap().try_collect().await.unwrap();
    row_keys(&batches)
}

/// Asserts that the table's coverage is exactly the (symbol, bucket) pairs of its rows:
/// rewrites must neither keep a bucket they emptied nor lose one that still has rows.
pub async fn assert_coverage_is_the_rows_buckets(table: &TimeSeriesTable, label: &str) {
    use arrow::array::{Array, StringArray};
    use timeseries_table_core::formats::parquet::stats::timestamps_as_nanos;
    let bucket = table.spec().bucket.nanos();
    let mut of_rows = BTreeSet::new();
    if table.schema().is_some() {
        let batches: Vec<_> = table.scan(None).await.unwrap().try_collect().await.unwrap();
        for batch in &batches {
            let ts = timestamps_as_nanos(batch.column(0), "ts").unwrap();
            let symbols = batch.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            for (row, t) in ts.iter().enumerate() {
                of_rows.insert((format!("symbol={}", symbols.value(row)), t.div_euclid(bucket)));
            }
        }
    }
    let coverage = table.snapshot().table_coverage().await.unwrap();
    let mut covered = BTreeSet::new();
    for (key, set) in coverage.entities() {
        covered.extend(set.iter().map(|id| (key.describe(&["symbol".to_string()]), id)));
    }
    assert_eq!(covered, of_rows, "{label}: the coverage must be exactly the buckets of the rows");
}

/// Coverage and gaps, rendered so two tables can be compared.
pub async fn coverage_answers(table: &TimeSeriesTable) -> timeseries_table_core::Result<String> {
    let window = TimeRange::from_nanos(T0 - DAY, T0 + DAY).unwrap();
    Ok(format!(
        "{:?}\n{:?}\n{:?}",
        table.coverage(None, None).await?,
        table.coverage(Some(window), None).await?,
        table.gaps(Some(window), None).await?
    ))
}

pub async fn observe(table: &TimeSeriesTable) -> Observed {
    Observed {
        version: table.version(),
        rows: scan_rows(table).await.expect("scan"),
        answers: coverage_answers(table).await.expect("coverage"),
    }
}

/// Files under `data/` and `_coverage/`, relative to the table root.
pub async fn table_files(location: &TableLocation) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for dir in ["data", "_coverage"] {
        files.extend(location.list(dir).await.unwrap().into_iter().map(|f| f.path));
    }
    files
}

/// Every path any commit file names, read straight from the JSON (independently of the
/// library's model), relative to the table root.
pub async fn referenced_by_log(location: &TableLocation) -> BTreeSet<String> {
    let mut referenced = BTreeSet::new();
    for commit in commit_files(location).await {
        for action in commit["actions"].as_array().unwrap() {
            if let Some(add) = action.get("AddSegment") {
                referenced.insert(add["path"].as_str().unwrap().to_string());
                referenced.insert(add["coverage_path"].as_str().unwrap().to_string());
            }
            if let Some(cov) = action.get("UpdateTableCoverage") {
                referenced.insert(cov["path"].as_str().unwrap().to_string());
            }
        }
    }
    referenced
}

/// Every commit file, parsed as plain JSON.
async fn commit_files(location: &TableLocation) -> Vec<serde_json::Value> {
    let files = location.list("_timeseries_log").await.unwrap();
    let commits = files.into_iter().filter(|file| {
        let name = file.path.rsplit('/').next().unwrap_or_default();
        name.strip_suffix(".json").is_some_and(|v| v.chars().all(|c| c.is_ascii_digit()))
    });
    // Several reads at a time: on S3 a table of a hundred commits is otherwise slow to check.
    let reads = commits.map(|file| async move {
        let bytes = location.get(&file.path).await.unwrap().unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    });
    futures::stream::iter(reads).buffered(16).collect().await
}

/// The data files and sidecars of the segments some commit removed (a rewrite), read
/// straight from the JSON. Vacuum frees them once the removal is older than its retention.
pub async fn removed_segment_files(location: &TableLocation) -> BTreeSet<String> {
    let (mut added, mut removed) = (std::collections::BTreeMap::new(), BTreeSet::new());
    for commit in commit_files(location).await {
        for action in commit["actions"].as_array().unwrap() {
            if let Some(add) = action.get("AddSegment") {
                let files = [add["path"].as_str().unwrap(), add["coverage_path"].as_str().unwrap()];
                added.insert(add["id"].as_str().unwrap().to_string(), files.map(str::to_string));
            }
            if let Some(remove) = action.get("RemoveSegment") {
                removed.insert(remove["id"].as_str().unwrap().to_string());
            }
        }
    }
    removed.iter().flat_map(|id| added[id].clone()).collect()
}

/// Files under `data/` and `_coverage/` that no commit names.
pub async fn unreferenced_files(location: &TableLocation) -> BTreeSet<String> {
    let referenced = referenced_by_log(location).await;
    table_files(location).await.into_iter().filter(|f| !referenced.contains(f)).collect()
}

/// Re-executes this test binary to run the one `#[ignore]`d test `test` (full path, e.g.
/// `reliability::crash::crash_writer`) with `envs`; stdout and stderr are captured.
pub fn spawn_child(test: &str, envs: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut attempts = 0;
    loop {
        let spawned = Command::new(&exe)
            .args([test, "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(child) => return child,
            // ETXTBSY: a concurrent build is relinking this very binary (shared target dir).
            Err(e) if e.raw_os_error() == Some(26) && attempts < 20 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(e) => panic!("cannot spawn {} as a child process: {e}", exe.display()),
        }
    }
}

/// Whether this process is a child started for `role`.
pub fn child_role_is(role: &str) -> bool {
    std::env::var(CHILD_ROLE).is_ok_and(|r| r == role)
}

/// A required environment variable of a child.
pub fn child_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child process needs {name}"))
}

/// An in-memory table whose next commit is due a checkpoint (version
/// `CHECKPOINT_INTERVAL - 1`), with the batch to append next. Small segments, so the
/// ~100 appends stay quick.
pub async fn checkpoint_due_store(
    root: &str,
) -> (std::sync::Arc<object_store::memory::InMemory>, arrow::array::RecordBatch) {
    use timeseries_table_core::transaction_log::CHECKPOINT_INTERVAL;
    let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    let location = faulty_store::clean_location(store.clone(), root);
    let mut table = new_table(location, "1h").await;
    let step = |i: u64| minute_bars(&["K"], T0 + i as i64 * HOUR, 2);
    for i in 0..CHECKPOINT_INTERVAL - 2 {
        table.append(vec![step(i)]).await.unwrap();
    }
    assert_eq!(table.version(), CHECKPOINT_INTERVAL - 1);
    (store, step(CHECKPOINT_INTERVAL))
}

/// Copies every object of `store` into the local directory `dir`.
pub async fn dump_to_dir(store: &object_store::memory::InMemory, root: &str, dir: &std::path::Path) {
    use object_store::{ObjectStore, ObjectStoreExt};
    let objects: Vec<_> = store.list(None).try_collect().await.unwrap();
    for meta in objects {
        let relative = meta.location.as_ref().strip_prefix(&format!("{root}/")).unwrap().to_string();
        let bytes = store.get(&meta.location).await.unwrap().bytes().await.unwrap();
        let target = dir.join(&relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}
