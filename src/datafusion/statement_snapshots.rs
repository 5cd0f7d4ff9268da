//! Which committed version each SQL statement reads.
//!
//! A provider and its clones (the registered table, the table functions that name it,
//! the `INSERT` sink) share one [`SharedTable`]. Every scan of one statement reads the
//! same snapshot: the first scan of a statement catches up with the log and pins the
//! result under the statement's key, and the statement's other scans take the pin. A
//! statement is identified by its session and its start time, which DataFusion stamps on
//! the state of every `ctx.sql()` / `DataFrame` and hands to each `scan()`.
//!
//! No lock is held across I/O: the latest handle sits behind a mutex that is taken only to
//! clone or replace it; catching up, and appends, run on a private clone and publish the
//! result if it is newer. Does I/O (catching up with the log).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::catalog::Session;
use tokio::sync::OnceCell;

use crate::error::Result;
use crate::table::{Snapshot, TimeSeriesTable};

/// How many recent statements keep their pin; an older statement that scans again
/// (a `DataFrame` executed twice, long after) simply pins anew.
const PINNED_STATEMENTS: usize = 64;

/// A statement: the session it runs in and the instant DataFusion stamped on it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatementKey {
    session: String,
    started_at: i64,
}

impl StatementKey {
    fn of(session: &dyn Session) -> Option<Self> {
        let started = session.execution_props().query_execution_start_time?;
        Some(StatementKey { session: session.session_id().to_string(), started_at: started.timestamp_nanos_opt()? })
    }
}

type Pin = Arc<OnceCell<Arc<Snapshot>>>;

/// The handle shared by a provider and its clones.
#[derive(Debug)]
pub(crate) struct SharedTable {
    latest: Mutex<TimeSeriesTable>,
    pins: Mutex<VecDeque<(StatementKey, Pin)>>,
}

impl SharedTable {
    pub(crate) fn new(table: TimeSeriesTable) -> Self {
        SharedTable { latest: Mutex::new(table), pins: Mutex::new(VecDeque::new()) }
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
        let Some(key) = StatementKey::of(session) else {
            // A state built without a start time cannot be told apart from the next one.
            return self.latest_snapshot().await;
        };
        let pin = self.pin(key);
        // Scans of one statement may be planned concurrently: the first initialises the
        // pin, the others wait for that same catch-up (never for another statement).
        pin.get_or_try_init(|| self.latest_snapshot()).await.cloned()
    }

    fn pin(&self, key: StatementKey) -> Pin {
        let mut pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, pin)) = pins.iter().find(|(k, _)| *k == key) {
            return Arc::clone(pin);
        }
        let pin = Pin::default();
        if pins.len() == PINNED_STATEMENTS {
            pins.pop_front();
        }
        pins.push_back((key, Arc::clone(&pin)));
        pin
    }
}
