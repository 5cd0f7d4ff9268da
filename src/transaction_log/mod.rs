//! The append-only transaction log.
//!
//! `actions` (the commit file model), `state` (replay as a fold) and `checkpoint` (the
//! state at a version in one file) are pure;
//! `log_store` reads and writes commit files through storage with create-if-absent, and
//! finds and writes checkpoints. Every log file is read `format_version` first.

pub mod actions;
pub mod checkpoint;
pub mod log_store;
pub mod state;

pub use actions::{Commit, CommitSummary, LogAction, RowChange, FORMAT_VERSION};
pub use checkpoint::{checkpoint_path, CHECKPOINT_INTERVAL};
pub use log_store::{commit_path, CommitOutcome, LogStore, LOG_DIR};
pub use state::{CoverageSnapshotRef, TableState};
