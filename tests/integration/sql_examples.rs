//! The `sql-examples/*.sql` files are golden tests: each runs in a fresh session where the
//! sample table is registered as `bars`, every statement's result is rendered (statement
//! text, then the pretty-printed table) and the whole text must equal the `.expected` file
//! next to it. `UPDATE_GOLDEN=1 cargo test --test integration sql_examples` rewrites the
//! expected files instead; review the diff by hand before committing it.

use std::path::{Path, PathBuf};

use arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use timeseries_table_core::datafusion::script::{run_script, StatementResult};
use timeseries_table_core::datafusion::{register_opened, session_context};
use timeseries_table_core::sample::{create_sample_table, MarketBars};
use timeseries_table_core::storage::TableLocation;

use crate::common::uuid_like;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-examples")
}

/// The example scripts in name order (the order `tsq demo` runs them in).
fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("sql-examples/ exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// A session with the sample table (6 symbols x 5 trading days) registered as `bars`.
pub async fn bars_session() -> SessionContext {
    let location = TableLocation::memory(&uuid_like(), "bars").unwrap();
    let table = create_sample_table(location, &MarketBars::new(6, 5), |_, _| {}).await.unwrap();
    let ctx = session_context();
    register_opened(&ctx, "bars", table).unwrap();
    ctx
}

/// Each statement followed by its result table; statements without output show `OK`.
fn render(results: &[StatementResult]) -> String {
    let mut out = String::new();
    for result in results {
        out.push_str(&result.sql);
        out.push_str(";\n");
        if result.batches.is_empty() {
            out.push_str("OK");
        } else {
            out.push_str(&pretty_format_batches(&result.batches).unwrap().to_string());
        }
        out.push_str("\n\n");
    }
    out
}

async fn run_file(ctx: &SessionContext, file: &Path, script: &str) -> String {
    match run_script(ctx, script).await {
        Ok(results) => render(&results),
        Err(e) => panic!("{} failed: {e}", file.display()),
    }
}

/// `None` when equal, else a short description of the first difference.
fn difference(expected: &str, actual: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let line = e.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(e.len().min(a.len()));
    Some(format!(
        "first difference at line {}:\n  expected: {:?}\n  actual:   {:?}\n--- actual output ---\n{actual}",
        line + 1,
        e.get(line).copied().unwrap_or("<end of file>"),
        a.get(line).copied().unwrap_or("<end of output>"),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_example_matches_its_expected_output() {
    let files = example_files();
    assert!(files.len() >= 6, "expected the example scripts in {}", examples_dir().display());
    let mut failures = Vec::new();
    for file in &files {
        let script = std::fs::read_to_string(file).unwrap();
        let actual = run_file(&bars_session().await, file, &script).await;
        let expected_path = file.with_extension("expected");
        if updating() {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_GOLDEN=1", expected_path.display()));
        if let Some(diff) = difference(&expected, &actual) {
            failures.push(format!("{}: {diff}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

const MEMORY: &str = "memory://examples/";
const SEQUENCE_MEMORY: &str = "memory://examples-in-sequence/";

/// `tsq demo` runs all files in name order in one session, so no file may depend on or
/// collide with another's tables. Scratch tables live in the process-wide `memory://`
/// store, so this run moves them to another store name to stay clear of the test above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_run_in_sequence_in_one_session() {
    let ctx = bars_session().await;
    let mut failures = Vec::new();
    for file in example_files() {
        let script = std::fs::read_to_string(&file).unwrap().replace(MEMORY, SEQUENCE_MEMORY);
        let actual = run_file(&ctx, &file, &script).await.replace(SEQUENCE_MEMORY, MEMORY);
        let Ok(expected) = std::fs::read_to_string(file.with_extension("expected")) else { continue };
        if updating() {
            continue;
        }
        if let Some(diff) = difference(&expected, &actual) {
            failures.push(format!("{} (in sequence): {diff}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_expected_file_has_its_script() {
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expected") {
            assert!(path.with_extension("sql").exists(), "{} has no .sql next to it", path.display());
        }
    }
}
