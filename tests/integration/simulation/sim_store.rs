//! The simulated store: an in-memory `ObjectStore` whose every call is decided by the
//! seeded [`World`]:
//! - a latency (a sleep on the paused tokio clock, so it orders calls without taking time);
//! - a failure before the call, or after it took effect (reported as failed);
//! - a crash of the calling actor, before the call or after it took effect: the actor's
//!   future is dropped there and every later call it (or a task it started) makes hangs;
//! - listings that lag: files written lately missing, files deleted lately still listed;
//! - stale and torn reads of files overwritten in place (the `CURRENT` hint, checkpoints),
//!   as a filesystem without atomic replace could show. Files written once never tear.
//!
//! A conditional create stays atomic, as S3's is.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::AbortHandle;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};
use timeseries_table_core::environment;

use super::{Flaws, Rng};

/// How long a listing may lag behind writes and deletes, and a read behind an overwrite.
const LAG: Duration = Duration::from_millis(400);

/// How likely each kind of trouble is per call while faults are on, per mille. Opening
/// the table reads up to a hundred commits, so a few per mille already fail many opens.
#[derive(Debug, Clone, Copy)]
pub struct Odds {
    pub fail_before: u64,
    pub fail_after: u64,
    pub crash: u64,
    /// Listings that lag, and whole reads of files overwritten lately that are stale or torn.
    pub lag: u64,
}

impl Odds {
    /// A quarter of the seeds run with no trouble at all (races only); the others with
    /// odds drawn per seed.
    pub fn from_rng(rng: &mut Rng) -> Self {
        if rng.below(4) == 0 {
            return Odds { fail_before: 0, fail_after: 0, crash: 0, lag: 0 };
        }
        Odds { fail_before: rng.below(6), fail_after: rng.below(6), crash: rng.below(6), lag: rng.below(600) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Normal,
    FailBefore,
    FailAfter,
    CrashBefore,
    CrashAfter,
}

struct Decision {
    n: u64,
    latency: Duration,
    fate: Fate,
    /// Listings: lag. Whole reads: serve a stale or torn copy when there is one.
    lag: bool,
}

/// What the world remembers of a file beyond its bytes.
#[derive(Clone)]
struct Written {
    at: tokio::time::Instant,
    last_modified: DateTime<Utc>,
    /// The bytes it replaced, for an overwrite.
    previous: Option<Bytes>,
}

struct Actor {
    name: String,
    crashable: bool,
    crashed: bool,
    abort: Option<AbortHandle>,
}

struct State {
    rng: Rng,
    flaws: Flaws,
    odds: Option<Odds>,
    calls: u64,
    faults: u64,
    crashes: u64,
    written: HashMap<Path, Written>,
    /// Deleted files and when, for lagging listings.
    ghosts: HashMap<Path, (ObjectMeta, tokio::time::Instant)>,
    actors: Vec<Actor>,
    trace: Vec<String>,
    /// Every file's last bytes, deleted or not: the checks read old versions from here
    /// after vacuum has (rightly) deleted their files.
    vault: HashMap<Path, Bytes>,
}

/// The seeded state every store handle shares.
pub struct World {
    state: Mutex<State>,
    store: InMemory,
    epoch: DateTime<Utc>,
    /// The modification time of files the world did not see written.
    older: DateTime<Utc>,
}

impl World {
    /// A world over `store` whose clock starts at `epoch`; files already in the store
    /// were last modified at `older`.
    pub fn new(seed: u64, store: InMemory, epoch: DateTime<Utc>, older: DateTime<Utc>) -> Arc<Self> {
        Arc::new(World {
            state: Mutex::new(State {
                rng: Rng::new(seed ^ 0x5703_e000),
                flaws: Flaws::default(),
                odds: None,
                calls: 0,
                faults: 0,
                crashes: 0,
                written: HashMap::new(),
                ghosts: HashMap::new(),
                actors: Vec::new(),
                trace: Vec::new(),
                vault: HashMap::new(),
            }),
            store,
            epoch,
            older,
        })
    }

    /// Puts every file already in the store in the vault.
    pub async fn vault_existing(&self) {
        let files: Vec<ObjectMeta> = self.store.list(None).try_collect().await.unwrap();
        for file in files {
            if let Some(bytes) = read_now(&self.store, &file.location).await {
                self.state.lock().unwrap().vault.insert(file.location, bytes);
            }
        }
    }

    /// A plain store holding every file ever written, deleted or not, with its last
    /// bytes: history as it was written, for reading old versions after vacuum.
    pub async fn vault_store(&self) -> InMemory {
        let files: Vec<(Path, Bytes)> =
            self.state.lock().unwrap().vault.iter().map(|(p, b)| (p.clone(), b.clone())).collect();
        let store = InMemory::new();
        for (path, bytes) in files {
            store.put_opts(&path, PutPayload::from(bytes), PutOptions::default()).await.unwrap();
        }
        store
    }

    /// The files as they are, for a base to start other runs from.
    pub fn fork_store(&self) -> InMemory {
        self.store.fork()
    }

    pub fn set_flaws(&self, flaws: Flaws) {
        self.state.lock().unwrap().flaws = flaws;
    }

    fn racy_create(&self) -> bool {
        self.state.lock().unwrap().flaws.racy_create
    }

    /// Turns faults, crashes, lag and stale reads on (`Some`) or off.
    pub fn set_odds(&self, odds: Option<Odds>) {
        self.state.lock().unwrap().odds = odds;
    }

    /// A new actor; crashable ones may be crashed at a store call.
    pub fn actor(self: &Arc<Self>, name: &str, crashable: bool) -> SimStore {
        let mut state = self.state.lock().unwrap();
        state.actors.push(Actor { name: name.to_string(), crashable, crashed: false, abort: None });
        SimStore { world: Arc::clone(self), actor: state.actors.len() - 1 }
    }

    pub fn set_abort(&self, store: &SimStore, abort: AbortHandle) {
        self.state.lock().unwrap().actors[store.actor].abort = Some(abort);
    }

    /// Adds a line to the trace, stamped with the simulated time.
    pub fn note(&self, line: impl fmt::Display) {
        let stamp = self.millis();
        self.state.lock().unwrap().trace.push(format!("{stamp:>9}ms {line}"));
    }

    pub fn trace(&self) -> Vec<String> {
        self.state.lock().unwrap().trace.clone()
    }

    /// (calls, injected failures, crashes) so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        let state = self.state.lock().unwrap();
        (state.calls, state.faults, state.crashes)
    }

    fn millis(&self) -> i64 {
        (environment::now() - self.epoch).num_milliseconds()
    }

    fn decide(&self, actor: usize, kind: &str, path: &Path, write: bool) -> Option<Decision> {
        let stamp = self.millis();
        let mut state = self.state.lock().unwrap();
        let state = &mut *state;
        if state.actors[actor].crashed {
            return None;
        }
        state.calls += 1;
        let n = state.calls;
        let rng = &mut state.rng;
        // Mostly quick, sometimes slow, now and then very slow.
        let latency = match rng.below(100) {
            0..=79 => Duration::from_millis(1 + rng.below(10)),
            80..=97 => Duration::from_millis(10 + rng.below(200)),
            _ => Duration::from_millis(500 + rng.below(3000)),
        };
        let (mut fate, mut lag) = (Fate::Normal, false);
        if let Some(odds) = state.odds {
            let roll = rng.below(1000);
            fate = if roll < odds.fail_before {
                Fate::FailBefore
            } else if roll < odds.fail_before + odds.fail_after {
                Fate::FailAfter
            } else if state.actors[actor].crashable && roll < odds.fail_before + odds.fail_after + odds.crash {
                if write && rng.below(2) == 0 {
                    Fate::CrashAfter
                } else {
                    Fate::CrashBefore
                }
            } else {
                Fate::Normal
            };
            lag = rng.below(1000) < odds.lag;
        }
        if matches!(fate, Fate::FailBefore | Fate::FailAfter) {
            state.faults += 1;
        }
        let fate_text = match fate {
            Fate::Normal => "",
            Fate::FailBefore => " FAIL-BEFORE",
            Fate::FailAfter => " FAIL-AFTER",
            Fate::CrashBefore => " CRASH-BEFORE",
            Fate::CrashAfter => " CRASH-AFTER",
        };
        let lag_text = if lag { " lag" } else { "" };
        state.trace.push(format!(
            "{stamp:>9}ms #{n} {} {kind} {path} +{}ms{fate_text}{lag_text}",
            state.actors[actor].name,
            latency.as_millis()
        ));
        Some(Decision { n, latency, fate, lag })
    }

    fn crash(&self, actor: usize) {
        let mut state = self.state.lock().unwrap();
        state.crashes += 1;
        let actor = &mut state.actors[actor];
        actor.crashed = true;
        if let Some(abort) = &actor.abort {
            abort.abort();
        }
    }

    async fn record_write(&self, path: &Path, previous: Option<Bytes>) {
        let written = Written { at: tokio::time::Instant::now(), last_modified: environment::now(), previous };
        let bytes = read_now(&self.store, path).await;
        let mut state = self.state.lock().unwrap();
        if let Some(bytes) = bytes {
            state.vault.insert(path.clone(), bytes);
        }
        state.ghosts.remove(path);
        state.written.insert(path.clone(), written);
    }

    fn record_delete(&self, meta: ObjectMeta) {
        let mut state = self.state.lock().unwrap();
        state.written.remove(&meta.location);
        state.ghosts.insert(meta.location.clone(), (meta, tokio::time::Instant::now()));
    }

    /// The file's simulated modification time.
    fn patch(&self, mut meta: ObjectMeta) -> ObjectMeta {
        let state = self.state.lock().unwrap();
        meta.last_modified = state.written.get(&meta.location).map_or(self.older, |w| w.last_modified);
        meta
    }

    /// A listing as it may lag: recent writes missing, recent deletes still there.
    fn lagging(&self, listed: Vec<ObjectMeta>, prefix: Option<&Path>) -> Vec<ObjectMeta> {
        let now = tokio::time::Instant::now();
        let state = self.state.lock().unwrap();
        let recent = |at: tokio::time::Instant| now.duration_since(at) < LAG;
        let mut out: Vec<ObjectMeta> =
            listed.into_iter().filter(|m| !state.written.get(&m.location).is_some_and(|w| recent(w.at))).collect();
        let mut ghosts: Vec<&ObjectMeta> = state
            .ghosts
            .values()
            .filter(|(meta, at)| recent(*at) && prefix.is_none_or(|p| meta.location.prefix_matches(p)))
            .map(|(meta, _)| meta)
            .collect();
        ghosts.sort_by(|a, b| a.location.cmp(&b.location));
        out.extend(ghosts.into_iter().cloned());
        out
    }

    /// For a whole read of a file overwritten lately: its previous bytes or a torn prefix.
    fn stale_copy(&self, path: &Path, current: &Bytes, torn: bool) -> Option<Bytes> {
        let state = self.state.lock().unwrap();
        let written = state.written.get(path)?;
        let previous = written.previous.as_ref()?;
        if tokio::time::Instant::now().duration_since(written.at) >= LAG {
            return None;
        }
        Some(if torn { current.slice(..current.len() / 2) } else { previous.clone() })
    }
}

/// One actor's handle on the world's store.
#[derive(Clone)]
pub struct SimStore {
    world: Arc<World>,
    actor: usize,
}

impl fmt::Display for SimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimStore(actor {})", self.actor)
    }
}

impl fmt::Debug for SimStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn injected(d: &Decision, kind: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "SimStore",
        source: format!("injected failure of call #{} ({kind})", d.n).into(),
    }
}

impl SimStore {
    /// Waits, then fails, crashes or performs `call` as decided.
    async fn run<T>(
        &self,
        d: Option<Decision>,
        kind: &str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(d) = d else { return futures::future::pending().await };
        tokio::time::sleep(d.latency).await;
        match d.fate {
            Fate::FailBefore => return Err(injected(&d, kind)),
            Fate::CrashBefore => {
                self.world.crash(self.actor);
                return futures::future::pending().await;
            }
            _ => {}
        }
        let result = call.await;
        match d.fate {
            Fate::FailAfter if result.is_ok() => Err(injected(&d, kind)),
            Fate::CrashAfter => {
                self.world.crash(self.actor);
                futures::future::pending().await
            }
            _ => result,
        }
    }

    fn decide(&self, kind: &str, path: &Path, write: bool) -> Option<Decision> {
        self.world.decide(self.actor, kind, path, write)
    }

    async fn current(&self, path: &Path) -> Option<Bytes> {
        read_now(&self.world.store, path).await
    }
}

#[async_trait]
impl ObjectStore for SimStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, mut opts: PutOptions) -> Result<PutResult> {
        let create = matches!(opts.mode, PutMode::Create);
        if create && self.world.racy_create() {
            opts.mode = PutMode::Overwrite;
        }
        let d = self.decide(if create { "create" } else { "put" }, location, true);
        self.run(d, "put", async {
            let previous = if create { None } else { self.current(location).await };
            let result = self.world.store.put_opts(location, payload, opts).await?;
            self.world.record_write(location, previous).await;
            Ok(result)
        })
        .await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        let d = self.decide("upload-start", location, true);
        let inner = self.run(d, "upload-start", self.world.store.put_multipart_opts(location, opts)).await?;
        Ok(Box::new(SimUpload { inner, store: self.clone(), path: location.clone() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let whole = !options.head && options.range.is_none();
        let d = self.decide(if options.head { "head" } else { "get" }, location, false);
        let lag = d.as_ref().is_some_and(|d| d.lag);
        let torn = d.as_ref().is_some_and(|d| d.n % 2 == 0);
        let result = self.run(d, "get", self.world.store.get_opts(location, options)).await?;
        let meta = self.world.patch(result.meta.clone());
        if !(whole && lag) {
            return Ok(GetResult { meta, ..result });
        }
        let attributes = result.attributes.clone();
        let current = result.bytes().await?;
        let Some(copy) = self.world.stale_copy(location, &current, torn) else {
            return Ok(rebuilt(meta, attributes, current));
        };
        self.world.note(format!("  {} {location} read {}", if torn { "torn" } else { "stale" }, copy.len()));
        Ok(rebuilt(meta, attributes, copy))
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let this = self.clone();
        locations
            .then(move |location| {
                let this = this.clone();
                async move {
                    let location = location?;
                    let d = this.decide("delete", &location, true);
                    this.run(d, "delete", async {
                        let meta = head_meta(&this.world.store, &location).await;
                        let once = location.clone();
                        let mut inner =
                            this.world.store.delete_stream(futures::stream::once(async move { Ok(once) }).boxed());
                        let result = inner.next().await.unwrap_or(Ok(location.clone()));
                        if let (Ok(_), Some(meta)) = (&result, meta) {
                            this.world.record_delete(meta);
                        }
                        result
                    })
                    .await
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let this = self.clone();
        let prefix = prefix.cloned();
        futures::stream::once(async move {
            let d = this.decide("list", prefix.as_ref().unwrap_or(&Path::default()), false);
            let lag = d.as_ref().is_some_and(|d| d.lag);
            let listed: Vec<ObjectMeta> =
                this.run(d, "list", this.world.store.list(prefix.as_ref()).try_collect()).await?;
            let listed = if lag { this.world.lagging(listed, prefix.as_ref()) } else { listed };
            Ok::<_, object_store::Error>(listed.into_iter().map(|m| this.world.patch(m)).collect::<Vec<_>>())
        })
        .flat_map(|listed| match listed {
            Ok(metas) => futures::stream::iter(metas.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => futures::stream::iter(vec![Err(e)]),
        })
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let d = self.decide("list-dirs", prefix.unwrap_or(&Path::default()), false);
        let mut result = self.run(d, "list-dirs", self.world.store.list_with_delimiter(prefix)).await?;
        result.objects = result.objects.into_iter().map(|m| self.world.patch(m)).collect();
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let d = self.decide("copy", to, true);
        self.run(d, "copy", async {
            let previous = self.current(to).await;
            self.world.store.copy_opts(from, to, options).await?;
            self.world.record_write(to, previous).await;
            Ok(())
        })
        .await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let d = self.decide("rename", to, true);
        self.run(d, "rename", async {
            let previous = self.current(to).await;
            let meta = head_meta(&self.world.store, from).await;
            self.world.store.rename_opts(from, to, options).await?;
            self.world.record_write(to, previous).await;
            if let Some(meta) = meta {
                self.world.record_delete(meta);
            }
            Ok(())
        })
        .await
    }
}

/// A file's bytes straight from the backing store (no latency, no faults).
async fn read_now(store: &InMemory, path: &Path) -> Option<Bytes> {
    store.get_opts(path, GetOptions::default()).await.ok()?.bytes().await.ok()
}

async fn head_meta(store: &InMemory, path: &Path) -> Option<ObjectMeta> {
    store.get_opts(path, GetOptions { head: true, ..Default::default() }).await.ok().map(|r| r.meta)
}

fn rebuilt(meta: ObjectMeta, attributes: object_store::Attributes, bytes: Bytes) -> GetResult {
    let len = bytes.len() as u64;
    GetResult {
        payload: GetResultPayload::Stream(futures::stream::once(async move { Ok(bytes) }).boxed()),
        meta,
        range: 0..len,
        attributes,
    }
}

/// A multipart upload whose parts, completion and abort are decided like any call.
#[derive(Debug)]
struct SimUpload {
    inner: Box<dyn MultipartUpload>,
    store: SimStore,
    path: Path,
}

#[async_trait]
impl MultipartUpload for SimUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let d = self.store.decide("upload-part", &self.path, true);
        let part = self.inner.put_part(data);
        let store = self.store.clone();
        Box::pin(async move { store.run(d, "upload-part", part).await })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let d = self.store.decide("upload-complete", &self.path, true);
        let (store, path) = (self.store.clone(), self.path.clone());
        let inner = &mut self.inner;
        store
            .run(d, "upload-complete", async {
                let result = inner.complete().await?;
                store.world.record_write(&path, None).await;
                Ok(result)
            })
            .await
    }

    async fn abort(&mut self) -> Result<()> {
        let d = self.store.decide("upload-abort", &self.path, true);
        let store = self.store.clone();
        store.run(d, "upload-abort", self.inner.abort()).await
    }
}
