//! Reading and writing the log through storage: version discovery (the `CURRENT` hint plus
//! forward probing), loading a state at a version, and the create-if-absent commit.
//!
//! Does I/O (through [`TableLocation`]). A lost race is a value ([`CommitOutcome::Conflict`]),
//! not an error; deciding what to do about it belongs to the table layer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::actions::{parse_commit, Commit, FORMAT_VERSION};
use super::checkpoint::{
    checkpoint_due, checkpoint_path, checkpoint_version, decode_checkpoint, encode_checkpoint, CheckpointDue,
    CheckpointError, CHECKPOINT_INTERVAL,
};
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
    /// The newest checkpoint version this handle knows of (learnt when loading, or written
    /// by it), or the version of its last failed attempt to write one; 0 for none. Only a
    /// hint, kept here rather than in `TableState` because it describes the log's files, not
    /// the table: it lets a commit decide with no I/O that no checkpoint is overdue, and it
    /// is checked against a listing before a catch-up checkpoint is written.
    newest_checkpoint: Arc<AtomicU64>,
}

impl LogStore {
    /// The log of the table at `location` (nothing is read until asked).
    pub fn new(location: TableLocation) -> Self {
        LogStore { location, newest_checkpoint: Arc::default() }
    }

    /// Where the table lives.
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

    /// The newest readable checkpoint at or before `version` (checkpoints may sit at any
    /// version). A torn or damaged one is skipped, never
    /// trusted: the commits are always there to fall back on. One written by a newer format is
    /// an error, not skipped: writers write checkpoints in the table's format, so it means the
    /// table was moved to that format at or before its version. Replaying past it would at best
    /// fail later on a newer commit, and at worst (the older commits cleaned up, or a change of
    /// meaning that needs no new action) misread the table without a word.
    ///
    /// The scheduled checkpoint (the last multiple of [`CHECKPOINT_INTERVAL`] at or below
    /// `version`) is tried first with one read, so a long log is not listed on every open;
    /// the listing is the fallback when that one is missing or unreadable.
    async fn latest_checkpoint(&self, version: u64) -> Result<Option<TableState>> {
        let scheduled = version / CHECKPOINT_INTERVAL * CHECKPOINT_INTERVAL;
        if scheduled > 0 {
            if let Some(state) = self.read_checkpoint(scheduled).await? {
                return Ok(Some(state));
            }
        }
        let mut candidates: Vec<u64> =
            self.listed_checkpoints().await?.into_iter().filter(|v| *v <= version && *v != scheduled).collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        for candidate in candidates {
            if let Some(state) = self.read_checkpoint(candidate).await? {
                return Ok(Some(state));
            }
        }
        Ok(None)
    }

    /// The checkpoint of version `candidate`: `None` when it is absent (gone since a
    /// listing, or never written) or unreadable (torn, damaged); an error when a newer
    /// format wrote it.
    async fn read_checkpoint(&self, candidate: u64) -> Result<Option<TableState>> {
        let relative = checkpoint_path(candidate);
        let Some(bytes) = self.location.get(&relative).await? else { return Ok(None) };
        match decode_checkpoint(&bytes, candidate) {
            Ok(state) => {
                self.newest_checkpoint.fetch_max(candidate, Ordering::Relaxed);
                Ok(Some(state))
            }
            Err(CheckpointError::NewerFormat { found }) => Err(Error::UnsupportedFormat {
                path: self.location.describe(&relative),
                found,
                supported: FORMAT_VERSION,
            }),
            Err(CheckpointError::Unreadable(reason)) => {
                tracing::warn!(path = %relative, %reason, "ignoring unreadable checkpoint");
                Ok(None)
            }
        }
    }

    /// The versions of the checkpoint files in the log folder, in no particular order.
    async fn listed_checkpoints(&self) -> Result<Vec<u64>> {
        let prefix = format!("{LOG_DIR}/");
        let files = self.location.list(LOG_DIR).await?;
        Ok(files.iter().filter_map(|f| checkpoint_version(f.path.strip_prefix(&prefix)?)).collect())
    }

    /// Writes a checkpoint of `state` if its version is due one: a multiple of
    /// [`CHECKPOINT_INTERVAL`], or the newest checkpoint is more than an interval behind (the
    /// writer due to write it crashed or failed). Costs no I/O unless one is due; an overdue
    /// one is first checked with one listing, since another writer may have written one this
    /// handle has not seen. Best effort: a failure only means readers replay more commits.
    pub async fn checkpoint_if_due(&self, state: &TableState) {
        let version = state.version;
        match checkpoint_due(version, self.newest_checkpoint.load(Ordering::Relaxed)) {
            CheckpointDue::No => return,
            CheckpointDue::Scheduled => {}
            CheckpointDue::Overdue => match self.listed_checkpoints().await {
                Ok(listed) => {
                    let newest = listed.into_iter().filter(|v| *v <= version).max().unwrap_or(0);
                    let known = self.newest_checkpoint.fetch_max(newest, Ordering::Relaxed).max(newest);
                    if checkpoint_due(version, known) == CheckpointDue::No {
                        return;
                    }
                }
                // Write anyway: a redundant checkpoint costs less than replaying without one.
                Err(e) => tracing::warn!(error = %e, "could not list checkpoints"),
            },
        }
        let path = checkpoint_path(version);
        let written = match encode_checkpoint(state) {
            Ok(bytes) => self.location.put(&path, Bytes::from(bytes)).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(error) = &written {
            tracing::warn!(path = %path, %error, "could not write checkpoint");
        }
        // A failed scheduled checkpoint is caught up by the next commit. A failed catch-up
        // counts as written, so a store that refuses them costs one attempt per interval,
        // not one per commit.
        if written.is_ok() || version % CHECKPOINT_INTERVAL != 0 {
            self.newest_checkpoint.fetch_max(version, Ordering::Relaxed);
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
            state.apply_owned(commit, &self.location.describe(&commit_path(version)))?;
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
            // Refused outright: nothing was written.
            Err(source @ object_store::Error::NotImplemented { .. }) => {
                return Err(self.location.write_error(&relative, source))
            }
            Err(source) => match self.read_commit(commit.version).await {
                Ok(found) if found.txn_id == commit.txn_id => CommitOutcome::Committed,
                // A newer writer's commit is not ours; reloading will report its format.
                Ok(_) | Err(Error::UnsupportedFormat { .. }) => CommitOutcome::Conflict,
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
