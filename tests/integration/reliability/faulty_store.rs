//! A fault-injecting `ObjectStore` wrapper.
//!
//! Wraps any store, numbers every call (1-based, over all kinds and per kind), records
//! them, and by configuration: fails the k-th call before doing it
//! ([`FaultMode::FailBefore`]), performs the k-th call and reports failure anyway
//! ([`FaultMode::FailAfter`]: the "succeeded but the response was lost" case), delays
//! calls, and runs a hook just before or just after call k, or every call (the crash tests
//! abort there; the race tests hold a writer there until another got somewhere).
//! Configuration can change while the store is in use (`arm`, `reset`), so a table can be
//! built cleanly and then exercised under a fault.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use timeseries_table_core::storage::TableLocation;
use url::Url;

/// What a call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    Put,
    PutMultipart,
    /// One part of a multipart upload.
    UploadPart,
    /// The completion of a multipart upload (the object appears).
    CompleteUpload,
    AbortUpload,
    Get,
    Head,
    Delete,
    List,
    ListWithDelimiter,
    Copy,
    Rename,
}

impl CallKind {
    /// Whether the call changes the store.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            CallKind::Put
                | CallKind::PutMultipart
                | CallKind::UploadPart
                | CallKind::CompleteUpload
                | CallKind::AbortUpload
                | CallKind::Delete
                | CallKind::Copy
                | CallKind::Rename
        )
    }
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// 1-based position among all calls since the last reset.
    pub n: u64,
    pub kind: CallKind,
    /// Full store path (for lists: the prefix).
    pub path: String,
    /// For puts: create-if-absent.
    pub create: bool,
}

/// How an injected fault behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// The call is not performed and fails.
    FailBefore,
    /// The call is performed, then reported as failed.
    FailAfter,
}

/// When a hook runs relative to its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Before,
    After,
}

pub type Hook = Arc<dyn Fn(&Call) + Send + Sync>;

#[derive(Clone, Copy)]
struct Fault {
    kind: Option<CallKind>,
    at: u64,
    mode: FaultMode,
}

#[derive(Default)]
struct Plan {
    fault: Option<Fault>,
    delay: Option<(Option<CallKind>, Duration)>,
    hook: Option<(Option<CallKind>, u64, When, Hook)>,
}

#[derive(Default)]
struct State {
    plan: Mutex<Plan>,
    calls: Mutex<Vec<Call>>,
    per_kind: Mutex<HashMap<CallKind, u64>>,
    injected: AtomicU64,
    /// Create-if-absent writes overwrite, as on a server that ignores `If-None-Match`.
    creates_overwrite: std::sync::atomic::AtomicBool,
}

/// What to do around one call, decided when it starts.
struct Decision {
    call: Call,
    fail: Option<FaultMode>,
    delay: Option<Duration>,
    hook: Option<(When, Hook)>,
}

impl Decision {
    fn error(&self) -> object_store::Error {
        object_store::Error::Generic {
            store: "FaultyStore",
            source: format!("injected fault at call {} ({:?} {})", self.call.n, self.call.kind, self.call.path).into(),
        }
    }

    async fn before(&self) -> Result<()> {
        if let Some((When::Before, hook)) = &self.hook {
            hook(&self.call);
        }
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        match self.fail {
            Some(FaultMode::FailBefore) => Err(self.error()),
            _ => Ok(()),
        }
    }

    fn after<T>(&self, result: Result<T>) -> Result<T> {
        if let Some((When::After, hook)) = &self.hook {
            hook(&self.call);
        }
        match self.fail {
            Some(FaultMode::FailAfter) => Err(self.error()),
            _ => result,
        }
    }
}

/// The wrapper. Clones share counters and configuration.
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    state: Arc<State>,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        FaultyStore { inner, state: Arc::default() }
    }

    /// The wrapped store (for clean access to the same data).
    pub fn inner(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner)
    }

    /// Fails the `at`-th call (of `kind`, or of any kind when `None`), counted from the
    /// last reset.
    pub fn arm(&self, kind: Option<CallKind>, at: u64, mode: FaultMode) {
        self.state.plan.lock().unwrap().fault = Some(Fault { kind, at, mode });
    }

    /// Delays every call (of `kind`, or every call when `None`).
    pub fn delay(&self, kind: Option<CallKind>, delay: Duration) {
        self.state.plan.lock().unwrap().delay = Some((kind, delay));
    }

    /// Runs `hook` just before or just after call `at` (any kind).
    pub fn hook_at(&self, at: u64, when: When, hook: Hook) {
        self.state.plan.lock().unwrap().hook = Some((None, at, when, hook));
    }

    /// Runs `hook` just before or just after the `at`-th call of `kind` (before any delay).
    pub fn hook_on(&self, kind: CallKind, at: u64, when: When, hook: Hook) {
        self.state.plan.lock().unwrap().hook = Some((Some(kind), at, when, hook));
    }

    /// Runs `hook` just before or just after every call (of `kind`, or of any kind when
    /// `None`); the hook picks the calls it acts on (e.g. by path).
    pub fn hook_every(&self, kind: Option<CallKind>, when: When, hook: Hook) {
        self.state.plan.lock().unwrap().hook = Some((kind, 0, when, hook));
    }

    /// From now on create-if-absent writes overwrite (not undone by `reset`).
    pub fn ignore_create_if_absent(&self) {
        self.state.creates_overwrite.store(true, Ordering::SeqCst);
    }

    /// Forgets recorded calls and counters, and disarms faults, delays and hooks.
    pub fn reset(&self) {
        *self.state.plan.lock().unwrap() = Plan::default();
        self.state.calls.lock().unwrap().clear();
        self.state.per_kind.lock().unwrap().clear();
        self.state.injected.store(0, Ordering::SeqCst);
    }

    /// Calls since the last reset.
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn call_count(&self) -> u64 {
        self.state.calls.lock().unwrap().len() as u64
    }

    /// How many faults fired since the last reset.
    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// A table location over this store; `root` is the table's prefix in the store.
    pub fn location(&self, root: &str) -> TableLocation {
        TableLocation::from_store(Arc::new(self.clone()), unique_url("faulty"), root).unwrap()
    }

    /// A table location over this store named like a cloud store (`s3://...`), so it is
    /// treated as one: probed at create, uploads in S3's part sizes.
    pub fn location_as(&self, scheme: &str, root: &str) -> TableLocation {
        let name = unique_url(scheme).as_str().replacen("memory://", &format!("{scheme}://"), 1);
        TableLocation::from_store(Arc::new(self.clone()), Url::parse(&name).unwrap(), root).unwrap()
    }

    /// The wrapper around the S3 store of `url` (an `s3://` URL on the test server), and
    /// a location over it at the URL's path, named `s3://` so it is treated as S3.
    pub fn around_s3(url: &str) -> (FaultyStore, TableLocation) {
        let faulty = FaultyStore::new(Arc::clone(crate::common::test_location(url).store()));
        let root = Url::parse(url).unwrap().path().trim_start_matches('/').to_string();
        let location = faulty.location_as("s3", &root);
        (faulty, location)
    }

    fn decide(&self, kind: CallKind, path: &Path, create: bool) -> Decision {
        let mut calls = self.state.calls.lock().unwrap();
        let n = calls.len() as u64 + 1;
        let kind_n = {
            let mut per_kind = self.state.per_kind.lock().unwrap();
            let count = per_kind.entry(kind).or_default();
            *count += 1;
            *count
        };
        let call = Call { n, kind, path: path.to_string(), create };
        calls.push(call.clone());
        drop(calls);
        let plan = self.state.plan.lock().unwrap();
        let fail = plan.fault.and_then(|f| {
            let hit = match f.kind {
                None => f.at == n,
                Some(k) => k == kind && f.at == kind_n,
            };
            hit.then_some(f.mode)
        });
        if fail.is_some() {
            self.state.injected.fetch_add(1, Ordering::SeqCst);
        }
        let delay = plan.delay.and_then(|(k, d)| (k.is_none() || k == Some(kind)).then_some(d));
        let hook = plan.hook.as_ref().and_then(|(k, at, when, hook)| {
            // 0: every call (`hook_every`).
            let hit = match k {
                None => *at == n || *at == 0,
                Some(k) => *k == kind && (*at == kind_n || *at == 0),
            };
            hit.then(|| (*when, Arc::clone(hook)))
        });
        Decision { call, fail, delay, hook }
    }
}

/// A `memory://<prefix>-<n>` URL unique in this process, to name a store to DataFusion.
pub fn unique_url(prefix: &str) -> Url {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    Url::parse(&format!("memory://{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))).unwrap()
}

/// A clean (fault-free) location over `store` at `root`.
pub fn clean_location(store: Arc<dyn ObjectStore>, root: &str) -> TableLocation {
    TableLocation::from_store(store, unique_url("clean"), root).unwrap()
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let d = self.decide(CallKind::Put, location, matches!(opts.mode, PutMode::Create));
        d.before().await?;
        let mut opts = opts;
        if self.state.creates_overwrite.load(Ordering::SeqCst) && matches!(opts.mode, PutMode::Create) {
            opts.mode = PutMode::Overwrite;
        }
        let result = self.inner.put_opts(location, payload, opts).await;
        d.after(result)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        let d = self.decide(CallKind::PutMultipart, location, false);
        d.before().await?;
        let result = self.inner.put_multipart_opts(location, opts).await;
        let upload = d.after(result)?;
        Ok(Box::new(FaultyUpload { inner: upload, store: self.clone(), path: location.clone() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let kind = if options.head { CallKind::Head } else { CallKind::Get };
        let d = self.decide(kind, location, false);
        d.before().await?;
        let result = self.inner.get_opts(location, options).await;
        d.after(result)
    }

    // `get_ranges` is left to the default (per-range `get_opts`), so every read is counted.

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let this = self.clone();
        locations
            .then(move |location| {
                let this = this.clone();
                async move {
                    let location = location?;
                    let d = this.decide(CallKind::Delete, &location, false);
                    d.before().await?;
                    let mut inner =
                        this.inner.delete_stream(futures::stream::once(async move { Ok(location) }).boxed());
                    let result = match inner.next().await {
                        Some(r) => r,
                        None => Err(d.error()),
                    };
                    d.after(result)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let root = Path::default();
        let d = self.decide(CallKind::List, prefix.unwrap_or(&root), false);
        let inner = self.inner.list(prefix);
        let fail_after = d.fail == Some(FaultMode::FailAfter);
        let after_hook = match &d.hook {
            Some((When::After, hook)) => Some(Arc::clone(hook)),
            _ => None,
        };
        let call = d.call.clone();
        let error = d.error();
        async move {
            match d.before().await {
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
                Ok(()) => {
                    let tail = futures::stream::once(async move {
                        if let Some(hook) = after_hook {
                            hook(&call);
                        }
                        if fail_after {
                            Some(Err(error))
                        } else {
                            None
                        }
                    })
                    .filter_map(|x| async move { x });
                    inner.chain(tail).boxed()
                }
            }
        }
        .into_stream()
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let root = Path::default();
        let d = self.decide(CallKind::ListWithDelimiter, prefix.unwrap_or(&root), false);
        d.before().await?;
        let result = self.inner.list_with_delimiter(prefix).await;
        d.after(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let d = self.decide(CallKind::Copy, to, false);
        d.before().await?;
        let result = self.inner.copy_opts(from, to, options).await;
        d.after(result)
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let d = self.decide(CallKind::Rename, to, false);
        d.before().await?;
        let result = self.inner.rename_opts(from, to, options).await;
        d.after(result)
    }
}

/// A multipart upload whose parts, completion and abort are calls of the store like any
/// other: counted, and failed or hooked when armed.
#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    store: FaultyStore,
    path: Path,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let d = self.store.decide(CallKind::UploadPart, &self.path, false);
        // Stores may start the part as soon as it is handed over, so a "before" hook
        // runs now, not when the part's future is polled.
        if let Some((When::Before, hook)) = &d.hook {
            hook(&d.call);
        }
        if d.fail == Some(FaultMode::FailBefore) {
            let error = d.error();
            return Box::pin(async move { Err(error) });
        }
        let part = self.inner.put_part(data);
        Box::pin(async move {
            let result = part.await;
            d.after(result)
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let d = self.store.decide(CallKind::CompleteUpload, &self.path, false);
        d.before().await?;
        let result = self.inner.complete().await;
        d.after(result)
    }

    async fn abort(&mut self) -> Result<()> {
        let d = self.store.decide(CallKind::AbortUpload, &self.path, false);
        d.before().await?;
        let result = self.inner.abort().await;
        d.after(result)
    }
}
