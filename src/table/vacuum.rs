//! Vacuum: finding and removing files that no version within the retention needs.
//!
//! A writer that dies (or fails) between writing its files and creating its commit leaves
//! a data file, a segment sidecar and perhaps a table coverage snapshot that nothing points
//! at. They are harmless to readers but take space. Rewrites (compaction, delete, replace)
//! remove segments whose files older versions still read, for time travel. `vacuum` lists
//! `data/` and `_coverage/`, subtracts every path a version within the retention may read
//! (live segments and their sidecars, segments removed less than `retention` ago, every
//! table coverage snapshot), and deletes what is left once it is at least `retention` old.
//! Time travel to a version before a removal older than the retention may then fail to
//! read its data.
//!
//! The retention period is what keeps vacuum from deleting the files of an append that is
//! still in flight (written, not yet committed): it must exceed the longest time an append
//! can take between writing its data file and creating its commit. Ages come from the
//! store's `last_modified`, compared with this machine's clock.
//!
//! Does I/O (listing, log reads and deletes through storage). Never touches the log.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::TimeSeriesTable;
use crate::error::{Error, Result};
use crate::metadata::SegmentId;
use crate::transaction_log::{Commit, LogAction};

/// Folders vacuum looks in, relative to the table root (`_probe/` holds a file only when
/// a create was interrupted while checking the store; see `check_conditional_create`).
const VACUUMED_DIRS: [&str; 3] = ["data", "_coverage", "_probe"];

/// How a vacuum runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VacuumOptions {
    /// Unreferenced files younger than this are kept (default one hour).
    pub retention: Duration,
    /// Only report; delete nothing (default `false`).
    pub dry_run: bool,
}

impl Default for VacuumOptions {
    fn default() -> Self {
        VacuumOptions { retention: Duration::from_secs(3600), dry_run: false }
    }
}

impl VacuumOptions {
    /// The defaults: one hour of retention, deleting for real.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how old an unreferenced file must be to be deleted; keep it above the longest
    /// append, or in-flight files may go.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets whether to only report, deleting nothing.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

/// What vacuum did (or would do) with one unreferenced file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanStatus {
    /// Removed.
    Deleted,
    /// Old enough to remove; not removed because this was a dry run.
    WouldDelete,
    /// Younger than the retention period: possibly an append still in flight; kept.
    Retained,
}

/// One file under `data/` or `_coverage/` that no version within the retention needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanFile {
    /// Relative to the table root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last-modified time as reported by the store; its age decides deletion.
    pub last_modified: DateTime<Utc>,
    /// What vacuum did with the file.
    pub status: OrphanStatus,
}

/// The outcome of [`TimeSeriesTable::vacuum`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumReport {
    /// The log version whose commits (1 ..= version) were read for references.
    pub version: u64,
    /// Whether this was a dry run ([`VacuumOptions::dry_run`]).
    pub dry_run: bool,
    /// The retention period used ([`VacuumOptions::retention`]).
    pub retention: Duration,
    /// Files looked at (referenced or not).
    pub files_scanned: usize,
    /// Every unreferenced file, ordered by path.
    pub orphans: Vec<OrphanFile>,
}

impl VacuumReport {
    /// Orphans with the given status.
    pub fn with_status(&self, status: OrphanStatus) -> impl Iterator<Item = &OrphanFile> {
        self.orphans.iter().filter(move |f| f.status == status)
    }

    /// Bytes removed.
    pub fn deleted_bytes(&self) -> u64 {
        self.with_status(OrphanStatus::Deleted).map(|f| f.size).sum()
    }

    /// Bytes held by unreferenced files, whatever happened to them.
    pub fn orphan_bytes(&self) -> u64 {
        self.orphans.iter().map(|f| f.size).sum()
    }
}

impl TimeSeriesTable {
    /// Lists the files under `data/` and `_coverage/` that no version within the retention
    /// needs (see the module docs) and, unless `options.dry_run`, deletes those at least
    /// `options.retention` old.
    ///
    /// References are read from every commit up to the latest version (not this handle's
    /// version, which may be behind or pinned), after listing, and read again just before
    /// deleting, so a file committed meanwhile is not taken for an orphan. A log that
    /// cannot be read fully is an error and nothing is deleted.
    #[tracing::instrument(skip_all, fields(location = %self.location(), dry_run = options.dry_run))]
    pub async fn vacuum(&self, options: VacuumOptions) -> Result<VacuumReport> {
        let location = self.location();
        let mut listed = Vec::new();
        for dir in VACUUMED_DIRS {
            listed.extend(location.list(dir).await?);
        }
        let version = self.log.latest_version().await?;
        if version == 0 {
            return Err(Error::EmptyTable { location: location.to_string() });
        }
        let now = crate::environment::now();
        let retention = chrono::Duration::from_std(options.retention).unwrap_or(chrono::Duration::MAX);
        let referenced = needed_files(&self.log.commits(version).await?, now, retention);
        let mut orphans: Vec<OrphanFile> = listed
            .iter()
            .filter(|f| !referenced.contains(&normalize(&f.path)))
            .map(|f| OrphanFile {
                path: f.path.clone(),
                size: f.size,
                last_modified: f.last_modified,
                status: if now.signed_duration_since(f.last_modified) >= retention {
                    OrphanStatus::WouldDelete
                } else {
                    OrphanStatus::Retained
                },
            })
            .collect();
        orphans.sort_by(|a, b| a.path.cmp(&b.path));

        let mut final_version = version;
        if !options.dry_run && orphans.iter().any(|f| f.status == OrphanStatus::WouldDelete) {
            // A writer may have committed since the log was read: its files are not orphans.
            let mut referenced = referenced;
            let latest = self.log.latest_version().await?;
            for v in version + 1..=latest {
                add_references(&self.log.read_commit(v).await?, &mut referenced);
            }
            final_version = latest;
            orphans.retain(|f| !referenced.contains(&normalize(&f.path)));
            for file in orphans.iter_mut().filter(|f| f.status == OrphanStatus::WouldDelete) {
                location.delete(&file.path).await?;
                file.status = OrphanStatus::Deleted;
            }
        }
        let report = VacuumReport {
            version: final_version,
            dry_run: options.dry_run,
            retention: options.retention,
            files_scanned: listed.len(),
            orphans,
        };
        tracing::info!(
            orphans = report.orphans.len(),
            deleted = report.with_status(OrphanStatus::Deleted).count(),
            bytes = report.deleted_bytes(),
            "vacuum finished"
        );
        Ok(report)
    }
}

/// The files a version within `retention` of `now` may read: those of live segments, of
/// segments removed less than `retention` ago, and every table coverage snapshot.
fn needed_files(commits: &[Commit], now: DateTime<Utc>, retention: chrono::Duration) -> BTreeSet<String> {
    let mut live: HashMap<&SegmentId, [&str; 2]> = HashMap::new();
    let mut needed = BTreeSet::new();
    for commit in commits {
        let removed_at = DateTime::<Utc>::from_timestamp_millis(commit.committed_at).unwrap_or(now);
        let recent = now.signed_duration_since(removed_at) < retention;
        for action in &commit.actions {
            match action {
                LogAction::AddSegment(segment) => {
                    live.insert(&segment.id, [&segment.path, &segment.coverage_path]);
                }
                LogAction::RemoveSegment { id } => {
                    if let (Some(paths), true) = (live.remove(id), recent) {
                        needed.extend(paths.iter().map(|p| normalize(p)));
                    }
                }
                LogAction::UpdateTableCoverage { path } => {
                    needed.insert(normalize(path));
                }
                LogAction::UpdateTableMeta(_) => {}
            }
        }
    }
    needed.extend(live.values().flatten().map(|p| normalize(p)));
    needed
}

/// Every table file a commit names.
fn add_references(commit: &Commit, referenced: &mut BTreeSet<String>) {
    for action in &commit.actions {
        match action {
            LogAction::AddSegment(segment) => {
                referenced.insert(normalize(&segment.path));
                referenced.insert(normalize(&segment.coverage_path));
            }
            LogAction::UpdateTableCoverage { path } => {
                referenced.insert(normalize(path));
            }
            LogAction::RemoveSegment { .. } | LogAction::UpdateTableMeta(_) => {}
        }
    }
}

/// A relative path with empty components dropped, as storage resolves it.
fn normalize(path: &str) -> String {
    path.split('/').filter(|p| !p.is_empty() && *p != ".").collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_compare_as_storage_resolves_them() {
        assert_eq!(normalize("data/a.parquet"), "data/a.parquet");
        assert_eq!(normalize("/data//a.parquet"), "data/a.parquet");
        assert_eq!(normalize("./_coverage/segments/x.roar"), "_coverage/segments/x.roar");
    }

    #[test]
    fn default_keeps_an_hour_and_deletes() {
        let options = VacuumOptions::default();
        assert_eq!((options.retention, options.dry_run), (Duration::from_secs(3600), false));
        let dry = VacuumOptions::new().with_dry_run(true).with_retention(Duration::ZERO);
        assert_eq!((dry.retention, dry.dry_run), (Duration::ZERO, true));
    }
}
