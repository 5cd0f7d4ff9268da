//! Which committed version each SQL statement reads.
//!
//! A provider and its clones (the registered table, the table functions that name it,
//! the `INSERT` sink) share one [`SharedTable`]. Every scan of one statement reads the
//! same snapshot: the first scan of a statement catches up with the log and pins the
//! result under the statement's key, and the statement's other scans take the pin. A
//! statement is identified by the alias generator of its session state: DataFusion makes a
//! new one each time it marks a statement's start (every `ctx.sql()` / `DataFrame`), and
//! every clone of that state, which is what each `scan()` receives, shares it. A pin lives
//! as long as its statement's state does.
//!
//! No lock is held across I/O: the latest handle sits behind a mutex that is taken only to
//! clone or replace it; catching up, and appends, run on a private clone and publish the
//! result if it is newer. INSERTs through one provider take turns on a lock of their own,
//! which scans never take. Does I/O (catching up with the log).

use std::sync::{Arc, Mutex, PoisonError, Weak};

use datafusion::catalog::Session;
use datafusion::common::alias::AliasGenerator;
use tokio::sync::OnceCell;

use crate::error::Result;
use crate::table::{Snapshot, TimeSeriesTable};

/// A statement: the alias generator of its session state. Held weakly, so the allocation
/// (and with it the identity) cannot be reused while the entry exists, and a finished
/// statement's entry can be recognised and dropped.
type StatementKey = Weak<AliasGenerator>;

type Pin = Arc<OnceCell<Arc<Snapshot>>>;

/// The handle shared by a provider and its clones.
#[derive(Debug)]
pub(crate) struct SharedTable {
    latest: Mutex<TimeSeriesTable>,
    pins: Mutex<Vec<(StatementKey, Pin)>>,
    /// Taken by INSERTs only, so that appends through one provider take turns instead of
    /// racing each other through the commit retries.
    writer: tokio::sync::Mutex<()>,
}

impl SharedTable {
    pub(crate) fn new(table: TimeSeriesTable) -> Self {
        SharedTable { latest: Mutex::new(table), pins: Mutex::new(Vec::new()), writer: tokio::sync::Mutex::new(()) }
    }

    /// The INSERT turn: held across one append, never by a scan.
    pub(crate) async fn writer_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    /// A private copy of the latest handle, to catch up or append on without a lock.
    pub(crate) fn handle(&self) -> TimeSeriesTable {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Makes `table` the latest handle unless a newer one got there first.
    pub(crate) fn publish(&self, table: TimeSeriesTable) {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if table.version() > latest.version() {
            *latest = table;
        }
    }

    /// The latest committed version (cheap when nothing new was committed).
    pub(crate) async fn latest_snapshot(&self) -> Result<Arc<Snapshot>> {
        let mut table = self.handle();
        if table.refresh().await? {
            let snapshot = table.snapshot();
            self.publish(table);
            return Ok(snapshot);
        }
        Ok(table.snapshot())
    }

    /// The snapshot the statement running in `session` reads: pinned by its first scan.
    pub(crate) async fn statement_snapshot(&self, session: &dyn Session) -> Result<Arc<Snapshot>> {
        let props = session.execution_props();
        if props.query_execution_start_time.is_none() {
            // A state that was never marked as a statement's start: no statement to pin for.
            return self.latest_snapshot().await;
        }
        let pin = self.pin(&props.alias_generator);
        // Scans of one statement may be planned concurrently: the first initialises the
        // pin, the others wait for that same catch-up (never for another statement).
        pin.get_or_try_init(|| self.latest_snapshot()).await.cloned()
    }

    fn pin(&self, statement: &Arc<AliasGenerator>) -> Pin {
        let key = Arc::downgrade(statement);
        let mut pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        // Statements whose state is gone will never scan again.
        pins.retain(|(k, _)| k.strong_count() > 0);
        if let Some((_, pin)) = pins.iter().find(|(k, _)| Weak::ptr_eq(k, &key)) {
            return Arc::clone(pin);
        }
        let pin = Pin::default();
        pins.push((key, Arc::clone(&pin)));
        pin
    }
}
