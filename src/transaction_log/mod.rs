//! The append-only transaction log.
//!
//! `actions` (the commit file model) and `state` (replay as a fold) are pure;
//! `log_store` reads and writes commit files through storage with create-if-absent.

pub mod actions;
pub mod log_store;
pub mod state;

pub use actions::{Commit, LogAction, FORMAT_VERSION};
pub use log_store::{commit_path, CommitOutcome, LogStore, LOG_DIR};
pub use state::TableState;
