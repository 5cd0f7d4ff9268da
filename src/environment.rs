//! What the crate takes from its surroundings: the time of day, random numbers (file and
//! transaction ids, retry jitter) and threads for heavy computation (encoding coverage,
//! segment statistics, sorting and encoding a segment's columns).
//!
//! By default: the system clock, fresh random UUIDs and tokio's blocking threads. A thread
//! may be seeded instead ([`seed_this_thread`]): ids then come from a seeded generator, the
//! clock follows the tokio clock, and computation runs on the calling thread, so a run on a
//! single-threaded runtime with paused time replays exactly, call for call. The simulation
//! tests do this; nothing else should.
//!
//! No I/O.

use std::cell::RefCell;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

thread_local! {
    static SEEDED: RefCell<Option<Seeded>> = const { RefCell::new(None) };
}

struct Seeded {
    /// splitmix64 state.
    state: u64,
    /// What [`now`] answers at `start`.
    epoch: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl Seeded {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A random 128-bit number: seeded on a seeded thread, a fresh UUID's bits otherwise.
pub(crate) fn random_u128() -> u128 {
    SEEDED.with(|seeded| match seeded.borrow_mut().as_mut() {
        Some(seeded) => (u128::from(seeded.next()) << 64) | u128::from(seeded.next()),
        None => uuid::Uuid::new_v4().as_u128(),
    })
}

/// A fresh identifier: 32 lowercase hex digits.
pub(crate) fn random_id() -> String {
    uuid::Uuid::from_u128(random_u128()).simple().to_string()
}

fn is_seeded() -> bool {
    SEEDED.with(|seeded| seeded.borrow().is_some())
}

/// Runs `work` away from the async tasks: on a blocking thread, or inline on a seeded
/// thread (a blocking thread would finish at a moment the seed does not decide).
pub(crate) async fn compute<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> Result<R> {
    if is_seeded() {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::Task(e.to_string()))
}

/// Below this many rows, work on a batch stays on the calling thread: starting threads
/// would cost more than they save.
const PARALLEL_MIN_ROWS: usize = 8 * 1024;

/// Runs `work` on every item, spread over the machine's cores with the calling thread among
/// them: each thread takes the next item not yet taken, so one slow item does not hold up
/// the rest. `rows` is how many rows the items cover: below a few thousand, or on a seeded
/// thread, everything runs on the calling thread. Returns an error of `work`, if any, once
/// every thread has stopped.
pub(crate) fn on_cores<T: Send, E: Send>(
    items: impl Iterator<Item = T> + Send,
    rows: usize,
    work: impl Fn(T) -> std::result::Result<(), E> + Sync,
) -> std::result::Result<(), E> {
    let threads = if rows >= PARALLEL_MIN_ROWS && !is_seeded() { std::thread::available_parallelism().map_or(1, usize::from) } else { 1 };
    let queue = Mutex::new(items);
    let run = || loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
        let Some(item) = next else { return Ok(()) };
        work(item)?;
    };
    if threads == 1 {
        return run();
    }
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(run)).collect();
        let mut result = run();
        for helper in helpers {
            let helped = helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            result = result.and(helped);
        }
        result
    })
}

/// Folds the items of `queue` into the state `init` makes, while the sender keeps
/// producing: on a blocking thread, or on a seeded thread as a task of its runtime.
pub(crate) fn spawn_fold<T, S>(
    mut queue: mpsc::Receiver<T>,
    init: impl FnOnce() -> Result<S> + Send + 'static,
    step: impl Fn(&mut S, T) -> Result<()> + Send + 'static,
) -> JoinHandle<Result<S>>
where
    T: Send + 'static,
    S: Send + 'static,
{
    if is_seeded() {
        return tokio::spawn(async move {
            let mut state = init()?;
            while let Some(item) = queue.recv().await {
                step(&mut state, item)?;
            }
            Ok(state)
        });
    }
    tokio::task::spawn_blocking(move || {
        let mut state = init()?;
        while let Some(item) = queue.blocking_recv() {
            step(&mut state, item)?;
        }
        Ok(state)
    })
}

internal_api! {
    /// The current time: the system clock, or on a seeded thread the installed epoch plus
    /// the tokio clock's time since [`seed_this_thread`].
    pub fn now() -> DateTime<Utc> {
        SEEDED.with(|seeded| match seeded.borrow().as_ref() {
            Some(seeded) => {
                let elapsed = tokio::time::Instant::now().duration_since(seeded.start);
                seeded.epoch + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
            }
            None => Utc::now(),
        })
    }
}

internal_api! {
    /// Makes this thread's ids come from `seed` and its clock start at `epoch` and follow
    /// the tokio clock, until the returned guard is dropped. Call it inside the runtime
    /// (the tokio clock is read now); every task of a current-thread runtime then shares it.
    pub fn seed_this_thread(seed: u64, epoch: DateTime<Utc>) -> SeededThread {
        let start = tokio::time::Instant::now();
        SEEDED.with(|seeded| *seeded.borrow_mut() = Some(Seeded { state: seed, epoch, start }));
        SeededThread { _not_send: std::marker::PhantomData }
    }
}

internal_api! {
    /// Restores the system sources on its thread when dropped.
    pub struct SeededThread {
        _not_send: std::marker::PhantomData<*const ()>,
    }
}

impl Drop for SeededThread {
    fn drop(&mut self) {
        SEEDED.with(|seeded| *seeded.borrow_mut() = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_seed_replays_its_ids_and_the_clock_follows_tokio() {
        let epoch = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let first: Vec<String> = {
            let _seeded = seed_this_thread(7, epoch);
            (0..3).map(|_| random_id()).collect()
        };
        let _seeded = seed_this_thread(7, epoch);
        let again: Vec<String> = (0..3).map(|_| random_id()).collect();
        assert_eq!(first, again);
        assert_ne!(first[0], first[1]);
        assert_eq!(first[0].len(), 32);
        tokio::time::sleep(std::time::Duration::from_secs(90)).await;
        assert_eq!(now(), epoch + chrono::Duration::seconds(90));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn seeded_computation_runs_on_the_calling_thread() {
        let caller = std::thread::current().id();
        let elsewhere = compute(move || std::thread::current().id()).await.unwrap();
        assert_ne!(elsewhere, caller);
        let _seeded = seed_this_thread(1, Utc::now());
        let inline = compute(move || std::thread::current().id()).await.unwrap();
        assert_eq!(inline, caller);
        let (sender, queue) = mpsc::channel(1);
        let sum = spawn_fold(queue, || Ok(0), |sum, n: i32| {
            *sum += n;
            Ok(())
        });
        for n in 1..=3 {
            sender.send(n).await.unwrap();
        }
        drop(sender);
        assert_eq!(sum.await.unwrap().unwrap(), 6);
    }

    #[test]
    fn unseeded_ids_are_fresh() {
        assert_ne!(random_id(), random_id());
        assert!((Utc::now() - now()).num_seconds().abs() < 5);
    }
}
