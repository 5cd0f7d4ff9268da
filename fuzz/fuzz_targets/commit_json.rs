//! Commit files: any bytes, split on 0xFF into a sequence of commit files, are parsed as
//! `Commit`s; whatever parses must survive a JSON round trip unchanged, and replaying the
//! sequence into a `TableState` must return (an error for a damaged log) rather than panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timeseries_table_core::transaction_log::{Commit, TableState};

fuzz_target!(|data: &[u8]| {
    let mut commits = Vec::new();
    for chunk in data.split(|b| *b == 0xFF) {
        let Ok(commit) = serde_json::from_slice::<Commit>(chunk) else { return };
        let encoded = serde_json::to_vec_pretty(&commit).expect("a parsed commit encodes");
        let decoded: Commit = serde_json::from_slice(&encoded).expect("an encoded commit parses");
        assert_eq!(decoded, commit, "JSON round trip changed the commit");
        let _ = commit.summary();
        commits.push(commit);
    }
    let Some(first) = commits.first() else { return };
    let Ok(mut state) = TableState::from_first_commit(first, "0000000001.json") else { return };
    for (i, commit) in commits.iter().enumerate().skip(1) {
        if state.apply(commit, &format!("{:010}.json", i + 1)).is_err() {
            break;
        }
    }
    let _ = state.row_count();
    let _ = state.time_extent();
});
