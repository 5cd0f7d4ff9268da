//! Reading and writing the log through storage: version discovery (the `CURRENT` hint plus
//! forward probing), loading a state at a version, and the create-if-absent commit.
//!
//! Does I/O (through [`TableLocation`]). A lost race is a value ([`CommitOutcome::Conflict`]),
//! not an error; deciding what to do about it belongs to the table layer.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::actions::Commit;
use super::checkpoint::{checkpoint_path, decode_checkpoint, encode_checkpoint, CHECKPOINT_INTERVAL};
use super::state::TableState;
use crate::error::{Error, Result};
use crate::storage::{PutOutcome, TableLocation};

/// Folder of the log, relative to the table root.
pub const LOG_DIR: &str = "_timeseries_log";
const CURRENT: &str = "_timeseries_log/CURRENT";
/// How many commit files are fetched at once while replaying.
const READ_CONCURRENCY: usize = 16;

/// Relative path of the commit file of `version`.
pub fn commit_path(version: u64) -> String {
    format!("{LOG_DIR}/{version:010}.json")
}

/// What happened to a commit attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The commit file was created; the version is ours.
    Committed,
    /// Another writer holds that version.
    Conflict,
}

/// The transaction log of one table.
#[derive(Debug, Clone)]
pub struct LogStore {
    location: TableLocation,
}

impl LogStore {
    pub fn new(location: TableLocation) -> Self {
        LogStore { location }
    }

    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    /// The latest committed version (0 for no table). `CURRENT` is only a hint: commits
    /// beyond it (a writer died before updating it) are found by probing forward, and a
    /// garbled or too-high hint is ignored.
    pub async fn latest_version(&self) -> Result<u64> {
        let hint = match self.location.get(CURRENT).await? {
            Some(bytes) => std::str::from_utf8(&bytes).ok().and_then(|s| s.trim().parse::<u64>().ok()),
            None => None,
        };
        let mut version = match hint {
            Some(v) if v == 0 || self.exists(v).await? => v,
            _ => self.highest_listed_version().await?,
        };
        while self.exists(version + 1).await? {
            version += 1;
        }
        Ok(version)
    }

    async fn exists(&self, version: u64) -> Result<bool> {
        Ok(self.location.size(&commit_path(version)).await?.is_some())
    }

    /// Fallback when the hint is unusable: the highest commit file in a listing.
    async fn highest_listed_version(&self) -> Result<u64> {
        let files = self.location.list(LOG_DIR).await?;
        Ok(files
            .iter()
            // `<version>.json` only; checkpoints end in `.checkpoint.json` and do not parse.
            .filter_map(|f| f.path.rsplit('/').next()?.strip_suffix(".json")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0))
    }

    /// Reads and parses the commit of `version`.
    pub async fn read_commit(&self, version: u64) -> Result<Commit> {
        let relative = commit_path(version);
        let path = self.location.describe(&relative);
        let bytes = self.location.get(&relative).await?.ok_or_else(|| Error::MissingLog { path: path.clone() })?;
        parse_commit(&bytes, version, &path)
    }

    /// The state at `version` (the latest when `None`).
    pub async fn load(&self, version: Option<u64>) -> Result<TableState> {
        let latest = self.latest_version().await?;
        if latest == 0 {
            return Err(Error::EmptyTable { location: self.location.to_string() });
        }
        let target = version.unwrap_or(latest);
        if target == 0 || target > latest {
            return Err(Error::VersionNotFound { location: self.location.to_string(), requested: target, latest });
        }
        let mut state = match self.latest_checkpoint(target).await? {
            Some(state) => state,
            None => {
                let first = self.read_commit(1).await?;
                TableState::from_first_commit(&first, &self.location.describe(&commit_path(1)))?
            }
        };
        self.apply_range(&mut state, target).await?;
        Ok(state)
    }

    /// The newest readable checkpoint at or before `version`. Unreadable ones are skipped
    /// (a torn checkpoint is never trusted); the commits are always there to fall back on.
    async fn latest_checkpoint(&self, version: u64) -> Result<Option<TableState>> {
        let mut candidate = version / CHECKPOINT_INTERVAL * CHECKPOINT_INTERVAL;
        // Checkpoints are best effort: look back a few intervals, then replay.
        for _ in 0..3 {
            if candidate == 0 {
                break;
            }
            let path = checkpoint_path(candidate);
            if let Some(bytes) = self.location.get(&path).await? {
                match decode_checkpoint(&bytes, candidate) {
                    Ok(state) => return Ok(Some(state)),
                    Err(reason) => tracing::warn!(path = %path, %reason, "ignoring unreadable checkpoint"),
                }
            }
            candidate -= CHECKPOINT_INTERVAL;
        }
        Ok(None)
    }

    /// Writes a checkpoint of `state` if its version is due one. Best effort: a failure
    /// only means readers replay a few more commits.
    pub async fn checkpoint_if_due(&self, state: &TableState) {
        if state.version == 0 || state.version % CHECKPOINT_INTERVAL != 0 {
            return;
        }
        let path = checkpoint_path(state.version);
        match encode_checkpoint(state) {
            Ok(bytes) => {
                if let Err(e) = self.location.put(&path, Bytes::from(bytes)).await {
                    tracing::warn!(path = %path, error = %e, "could not write checkpoint");
                }
            }
            Err(e) => tracing::warn!(path = %path, error = %e, "could not encode checkpoint"),
        }
    }

    /// The state after the commits newer than `state`, or `None` when there are none
    /// (the common case, which costs one read of `CURRENT` and one probe).
    pub async fn catch_up(&self, state: &TableState) -> Result<Option<TableState>> {
        let latest = self.latest_version().await?;
        if latest <= state.version {
            return Ok(None);
        }
        let mut next = state.clone();
        self.apply_range(&mut next, latest).await?;
        Ok(Some(next))
    }

    /// Applies commits `state.version + 1 ..= target`, fetching several at a time.
    async fn apply_range(&self, state: &mut TableState, target: u64) -> Result<()> {
        let mut commits = futures::stream::iter(state.version + 1..=target)
            .map(|v| async move { self.read_commit(v).await.map(|c| (v, c)) })
            .buffered(READ_CONCURRENCY);
        while let Some((version, commit)) = commits.try_next().await? {
            state.apply(&commit, &self.location.describe(&commit_path(version)))?;
        }
        Ok(())
    }

    /// Tries to claim `commit.version` with a create-if-absent write.
    ///
    /// If the write fails without a clear answer, the file is read back: our own
    /// transaction id there means we won, another means we lost; if it cannot be told, the
    /// outcome is [`Error::CommitOutcomeUnknown`].
    #[tracing::instrument(skip_all, fields(version = commit.version, operation = %commit.operation))]
    pub async fn try_commit(&self, commit: &Commit) -> Result<CommitOutcome> {
        let relative = commit_path(commit.version);
        let body = serde_json::to_vec_pretty(commit)
            .map_err(|e| Error::CorruptLog { path: relative.clone(), reason: format!("cannot encode commit: {e}") })?;
        let outcome = match self.location.put_if_absent(&relative, Bytes::from(body)).await {
            Ok(PutOutcome::Created) => CommitOutcome::Committed,
            Ok(PutOutcome::AlreadyExists) => CommitOutcome::Conflict,
            Err(source) => match self.read_commit(commit.version).await {
                Ok(found) if found.txn_id == commit.txn_id => CommitOutcome::Committed,
                Ok(_) => CommitOutcome::Conflict,
                Err(_) => {
                    return Err(Error::CommitOutcomeUnknown {
                        path: self.location.describe(&relative),
                        version: commit.version,
                        source,
                    })
                }
            },
        };
        if outcome == CommitOutcome::Committed {
            // Best effort: readers probe past a stale hint.
            let _ = self.location.put(CURRENT, Bytes::from(commit.version.to_string())).await;
        }
        Ok(outcome)
    }

    /// Every commit from 1 to `version`, oldest first.
    pub async fn commits(&self, version: u64) -> Result<Vec<Commit>> {
        futures::stream::iter(1..=version).map(|v| self.read_commit(v)).buffered(READ_CONCURRENCY).try_collect().await
    }
}

fn parse_commit(bytes: &[u8], version: u64, path: &str) -> Result<Commit> {
    let commit: Commit = serde_json::from_slice(bytes)
        .map_err(|e| Error::CorruptLog { path: path.to_string(), reason: format!("not a valid commit: {e}") })?;
    if commit.version != version {
        return Err(Error::CorruptLog {
            path: path.to_string(),
            reason: format!("file holds version {} instead of {version}", commit.version),
        });
    }
    Ok(commit)
}
