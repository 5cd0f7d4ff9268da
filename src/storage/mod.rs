//! Storage: the only module that touches `object_store`.
//!
//! A [`TableLocation`] resolves a local path or a URL (`file://`, `memory://`, and the cloud
//! schemes object_store knows when their features are enabled) to a store plus the table's
//! root prefix. Everything above this module names files relative to the table root.
//! Does I/O.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutMode, PutOptions, PutPayload};
use url::Url;

pub(crate) use self::read::StoredFile;
pub(crate) use self::upload::Upload;
use crate::error::{Error, Result};

mod read;
mod upload;

/// The smallest part S3 and GCS accept in a multipart upload (all but the last part).
const MIN_CLOUD_PART_BYTES: usize = 5 * 1024 * 1024;
/// The largest part of an upload to a local disk.
const LOCAL_PART_BYTES: usize = 1024 * 1024;

/// Where a table lives: a store and the root prefix of the table inside it.
#[derive(Clone)]
pub struct TableLocation {
    store: Arc<dyn ObjectStore>,
    /// `scheme://authority` of the store, for messages.
    store_url: Url,
    /// The name DataFusion knows the store by. For a cloud store it is unique to the
    /// store's configuration (`s3-<hash>://bucket`), so registering it never replaces a
    /// store the user registered for that bucket, and two tables in one bucket with
    /// different credentials each keep their own.
    registered_as: Url,
    root: Path,
    /// What the user gave us, for messages.
    display: String,
    /// How another process opens the same table: a URL and the store options, or `None`
    /// for a caller-supplied store, which exists only in this process. Read by the
    /// cluster codecs (feature `ballista`).
    #[cfg_attr(not(feature = "ballista"), allow(dead_code))]
    reopen: Option<Reopen>,
}

/// A URL and store options that resolve to the same table in any process.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Reopen {
    pub url: String,
    pub options: Vec<(String, String)>,
}

impl fmt::Debug for TableLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableLocation({})", self.display)
    }
}

impl fmt::Display for TableLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// Result of a create-if-absent write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The file was written.
    Created,
    /// A file was already there; nothing was written.
    AlreadyExists,
}

/// A listed file, relative to the table root.
#[derive(Debug, Clone)]
pub struct ListedFile {
    /// Path relative to the table root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last-modified time as reported by the store.
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// A stable digest of a cloud store's URL authority and options: equal configurations
/// share a DataFusion registration, different ones never do.
fn config_hash(url: &Url, options: &[(String, String)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut sorted: Vec<&(String, String)> = options.iter().collect();
    sorted.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (url.scheme(), url.authority(), sorted).hash(&mut hasher);
    hasher.finish()
}

fn memory_stores() -> &'static Mutex<HashMap<String, Arc<InMemory>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

impl TableLocation {
    /// Resolves a local path or a URL. A string without `://` is a local path.
    pub fn parse(location: &str) -> Result<Self> {
        if location.contains("://") {
            let url = Url::parse(location)
                .map_err(|e| Error::InvalidLocation { location: location.to_string(), reason: e.to_string() })?;
            Self::from_url(&url)
        } else {
            Self::local(location)
        }
    }

    /// Like [`Self::parse`], with options for a cloud store (credentials, region,
    /// endpoint). Keys may carry the `aws.`/`gcp.`/`azure.` prefix with a dot, as in
    /// `datafusion-cli` (`aws.region`), or be object_store's own names (`aws_region`,
    /// `region`). A key the store does not know is an error, not silently ignored.
    /// Options on a local or in-memory location are an error: they would be ignored.
    pub fn parse_with_options(location: &str, options: &[(String, String)]) -> Result<Self> {
        if options.is_empty() {
            return Self::parse(location);
        }
        let invalid = |reason: String| Error::InvalidLocation { location: location.to_string(), reason };
        let url = match Url::parse(location) {
            Ok(url) if location.contains("://") && !matches!(url.scheme(), "file" | "memory") => url,
            _ => return Err(invalid("storage options apply only to cloud URLs (s3://, gs://, az://)".into())),
        };
        // `aws.region` -> `region`: object_store takes the bare names for every backend.
        let options = options.iter().map(|(k, v)| {
            let key = k.split_once('.').map_or(k.as_str(), |(_, rest)| rest);
            (key.to_ascii_lowercase(), v.clone())
        });
        let options: Vec<(String, String)> = options.collect();
        if let Some((key, _)) = options.iter().find(|(key, _)| !known_option(url.scheme(), key)) {
            return Err(invalid(format!(
                "unknown storage option '{key}' for {}:// URLs; the usual ones are {}",
                url.scheme(),
                usual_options(url.scheme())
            )));
        }
        Self::cloud(&url, options)
    }

    /// A cloud store resolved by object_store, known to DataFusion as `scheme://authority`.
    fn cloud(url: &Url, options: Vec<(String, String)>) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidLocation { location: url.to_string(), reason };
        let (store, root) = object_store::parse_url_opts(url, options.clone()).map_err(|e| invalid(e.to_string()))?;
        let store_url =
            Url::parse(&format!("{}://{}", url.scheme(), url.authority())).map_err(|e| invalid(e.to_string()))?;
        let registered_as =
            Url::parse(&format!("{}-{:016x}://{}", url.scheme(), config_hash(url, &options), url.authority()))
                .map_err(|e| invalid(e.to_string()))?;
        let reopen = Some(Reopen { url: url.to_string(), options });
        Ok(TableLocation { store: Arc::from(store), store_url, registered_as, root, display: url.to_string(), reopen })
    }

    /// The store DataFusion knows as `registered` (see [`Self::registered_as`]), built in
    /// a process that did not register it: `memory://name` is this process's store of
    /// that name, and `<cloud>-<hash>://bucket` the bucket built with `options` (the
    /// caller's own, not those the hash stands for). `None` for any other name.
    #[cfg(feature = "ballista")]
    pub(crate) fn store_registered_as(
        registered: &Url,
        options: &[(String, String)],
    ) -> Option<Result<Arc<dyn ObjectStore>>> {
        let authority = registered.authority();
        let location = match registered.scheme() {
            "memory" => Self::parse(&format!("memory://{authority}/")),
            scheme => {
                let (cloud, _hash) = scheme.rsplit_once('-')?;
                Self::parse_with_options(&format!("{cloud}://{authority}/"), options)
            }
        };
        Some(location.map(|location| location.store))
    }

    /// A table in a directory of the local filesystem (it need not exist yet).
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let invalid = |reason: String| Error::InvalidLocation { location: dir.display().to_string(), reason };
        if dir.as_os_str().is_empty() {
            return Err(invalid("the path is empty".into()));
        }
        let absolute = std::path::absolute(dir).map_err(|e| invalid(e.to_string()))?;
        if absolute.is_file() {
            return Err(invalid("it is a file, not a directory".into()));
        }
        let root = Path::from_absolute_path(&absolute).map_err(|e| invalid(e.to_string()))?;
        let store_url = Url::parse("file:///").map_err(|e| invalid(e.to_string()))?;
        let url = Url::from_directory_path(&absolute).map_err(|_| invalid("not an absolute path".into()))?;
        Ok(TableLocation {
            store: Arc::new(LocalFileSystem::new()),
            registered_as: store_url.clone(),
            store_url,
            root,
            display: dir.display().to_string(),
            reopen: Some(Reopen { url: url.to_string(), options: Vec::new() }),
        })
    }

    /// A table in a process-wide in-memory store named `name` (same name, same store).
    pub fn memory(name: &str, prefix: &str) -> Result<Self> {
        let url = format!("memory://{name}/{prefix}");
        Self::parse(&url)
    }

    /// Resolves a URL through object_store.
    pub fn from_url(url: &Url) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidLocation { location: url.to_string(), reason };
        match url.scheme() {
            "file" => {
                let path = url.to_file_path().map_err(|_| invalid("not a local file path".into()))?;
                let mut location = Self::local(&path)?;
                location.display = url.to_string();
                Ok(location)
            }
            "memory" => {
                let name = url.host_str().unwrap_or("default").to_string();
                let store = memory_stores()
                    .lock()
                    .map_err(|_| invalid("in-memory store registry is poisoned".into()))?
                    .entry(name.clone())
                    .or_default()
                    .clone();
                let root = Path::from_url_path(url.path()).map_err(|e| invalid(e.to_string()))?;
                let store_url = Url::parse(&format!("memory://{name}")).map_err(|e| invalid(e.to_string()))?;
                let reopen = Some(Reopen { url: url.to_string(), options: Vec::new() });
                Ok(TableLocation {
                    store,
                    registered_as: store_url.clone(),
                    store_url,
                    root,
                    display: url.to_string(),
                    reopen,
                })
            }
            _ => Self::cloud(url, Vec::new()),
        }
    }

    /// A location over a caller-supplied store (e.g. a wrapper that injects faults).
    /// `store_url` (`scheme://authority`) is the name DataFusion will know the store by;
    /// it also decides the store's treatment: `file` and `memory` are trusted to create
    /// only if absent, any other is checked when a table is created there, and uploads to
    /// S3 and GCS URLs use parts of at least 5 MiB.
    pub fn from_store(store: Arc<dyn ObjectStore>, store_url: Url, root: &str) -> Result<Self> {
        let root = Path::parse(root)
            .map_err(|e| Error::InvalidLocation { location: root.to_string(), reason: e.to_string() })?;
        let display = format!("{}{}", store_url.as_str().trim_end_matches('/'), format_args!("/{root}"));
        Ok(TableLocation { store, registered_as: store_url.clone(), store_url, root, display, reopen: None })
    }

    internal_api! {
        /// The underlying store (raw access: writes through it skip the table's rules).
        pub fn store(&self) -> &Arc<dyn ObjectStore> {
            &self.store
        }
    }

    /// Starts writing a new file in parts of `part_bytes` (see [`Upload`]), raised to
    /// 5 MiB on S3 and GCS, which refuse smaller parts when the upload completes, and
    /// lowered to 1 MiB on a local disk, so that what is encoded goes to the file while
    /// the rest is still being encoded.
    pub(crate) fn upload(&self, relative: &str, part_bytes: usize) -> Upload {
        let part_bytes = match self.kind() {
            Some(ObjectStoreScheme::AmazonS3 | ObjectStoreScheme::GoogleCloudStorage) => {
                part_bytes.max(MIN_CLOUD_PART_BYTES)
            }
            Some(ObjectStoreScheme::Local) => part_bytes.min(LOCAL_PART_BYTES),
            _ => part_bytes,
        };
        Upload::new(Arc::clone(&self.store), self.path(relative), part_bytes)
    }

    /// A stored file of `size` bytes, for the Parquet reader.
    pub(crate) fn stored_file(&self, relative: &str, size: u64) -> StoredFile {
        StoredFile::new(Arc::clone(&self.store), self.path(relative), size)
    }

    /// `scheme://authority` of the store (`s3://bucket`).
    pub fn store_url(&self) -> &Url {
        &self.store_url
    }

    /// The URL to register the store under with DataFusion: the store URL for local and
    /// in-memory stores, a name unique to the configuration for cloud stores.
    pub fn registered_as(&self) -> &Url {
        &self.registered_as
    }

    /// The kind of store, as object_store reads the store URL (so an `https://` URL of an
    /// S3 bucket is S3); `None` for a scheme it does not know (a caller's own store).
    fn kind(&self) -> Option<ObjectStoreScheme> {
        match self.store_url.scheme() {
            // object_store parses only `memory:///`; ours are `memory://name`.
            "file" => Some(ObjectStoreScheme::Local),
            "memory" => Some(ObjectStoreScheme::Memory),
            _ => ObjectStoreScheme::parse(&self.store_url).ok().map(|(kind, _)| kind),
        }
    }

    /// `scheme://authority` of the store, for messages.
    fn store_name(&self) -> String {
        self.store_url.as_str().trim_end_matches('/').to_string()
    }

    /// How another process opens this table (see [`Reopen`]); `None` for a
    /// caller-supplied store.
    #[cfg(feature = "ballista")]
    pub(crate) fn reopen(&self) -> Option<&Reopen> {
        self.reopen.as_ref()
    }

    /// Whether this location is on the local filesystem.
    pub fn is_local(&self) -> bool {
        self.store_url.scheme() == "file"
    }

    /// The full store path of a file named relative to the table root.
    pub fn path(&self, relative: &str) -> Path {
        relative.split('/').filter(|p| !p.is_empty()).fold(self.root.clone(), |p, part| p.join(part))
    }

    /// Human-readable full location of a table file, for messages.
    pub fn describe(&self, relative: &str) -> String {
        if self.is_local() {
            format!("/{}", self.path(relative))
        } else {
            format!("{}/{}", self.store_name(), self.path(relative))
        }
    }

    /// Reads a whole file; `None` when it does not exist.
    pub async fn get(&self, relative: &str) -> Result<Option<Bytes>> {
        let path = self.path(relative);
        match self.store.get(&path).await {
            Ok(result) => result.bytes().await.map(Some).map_err(|e| Error::storage(self.describe(relative), e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(self.describe(relative), e)),
        }
    }

    /// Size of a file; `None` when it does not exist.
    pub async fn size(&self, relative: &str) -> Result<Option<u64>> {
        match self.store.head(&self.path(relative)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::storage(self.describe(relative), e)),
        }
    }

    // Writes go through the table layer, which applies the table's rules; raw writes are
    // for tests and tools.
    internal_api! {
        /// Writes a file only if it does not exist yet (the commit primitive).
        pub async fn put_if_absent(&self, relative: &str, bytes: Bytes) -> Result<PutOutcome, object_store::Error> {
            let options = PutOptions { mode: PutMode::Create, ..Default::default() };
            match self.store.put_opts(&self.path(relative), PutPayload::from(bytes), options).await {
                Ok(_) => Ok(PutOutcome::Created),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(PutOutcome::AlreadyExists),
                Err(e) => Err(e),
            }
        }
    }

    /// Checks that create-if-absent really refuses to overwrite here, before a table is
    /// created: writes a probe file twice with create-if-absent, then removes it (three
    /// requests). Local directories and in-memory stores are trusted, since object_store
    /// implements the create there; everything else, S3-compatible servers above all, is
    /// probed, because a server that ignores `If-None-Match` would let two writers take
    /// the same version.
    pub(crate) async fn check_conditional_create(&self) -> Result<()> {
        if matches!(self.kind(), Some(ObjectStoreScheme::Local | ObjectStoreScheme::Memory)) {
            return Ok(());
        }
        let probe = format!("_probe/{}", crate::environment::random_id());
        let second = match self.put_if_absent(&probe, Bytes::from_static(b"probe")).await {
            Ok(_) => self.put_if_absent(&probe, Bytes::from_static(b"probe")).await,
            Err(e) => Err(e),
        };
        // Best effort: a probe file left behind is harmless.
        let _ = self.delete(&probe).await;
        match second {
            Ok(PutOutcome::AlreadyExists) => Ok(()),
            Ok(PutOutcome::Created) => Err(Error::NoConditionalCreate {
                store: self.store_name(),
                reason: "a second create-if-absent write of one file replaced it instead of being refused".into(),
            }),
            Err(e) => Err(self.write_error(&probe, e)),
        }
    }

    /// The error for a failed write of `relative`: a store that cannot create only if
    /// absent says so in one sentence; anything else is a storage error naming the file.
    pub(crate) fn write_error(&self, relative: &str, source: object_store::Error) -> Error {
        match source {
            object_store::Error::NotImplemented { .. } => Error::NoConditionalCreate {
                store: self.store_name(),
                reason: match self.kind() {
                    Some(ObjectStoreScheme::AmazonS3) => {
                        "conditional puts are disabled: leave aws.conditional_put at its default, etag".into()
                    }
                    _ => "it does not implement create-if-absent writes".into(),
                },
            },
            source => Error::storage(self.describe(relative), source),
        }
    }

    internal_api! {
        /// Writes (or replaces) a file atomically.
        pub async fn put(&self, relative: &str, bytes: Bytes) -> Result<()> {
            self.store
                .put(&self.path(relative), PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| Error::storage(self.describe(relative), e))
        }
    }

    internal_api! {
        /// Deletes a file; a file already gone is not an error.
        pub async fn delete(&self, relative: &str) -> Result<()> {
            match self.store.delete(&self.path(relative)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(Error::storage(self.describe(relative), e)),
            }
        }
    }

    /// Lists the files under a folder of the table, recursively.
    pub async fn list(&self, relative_dir: &str) -> Result<Vec<ListedFile>> {
        let prefix = self.path(relative_dir);
        let root_parts = self.root.parts().count();
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::storage(self.describe(relative_dir), e))?;
        Ok(metas
            .into_iter()
            .map(|m| ListedFile {
                path: m.location.parts().skip(root_parts).map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"),
                size: m.size,
                last_modified: m.last_modified,
            })
            .collect())
    }
}

/// Whether the store for `scheme` takes the option `key` (object_store itself drops keys
/// it does not know, which would hide a typo in a credential).
/// The options most setups need, for the message about an unknown one.
fn usual_options(scheme: &str) -> &'static str {
    match scheme {
        "s3" | "s3a" => {
            "aws.access_key_id, aws.secret_access_key, aws.session_token, aws.region, aws.endpoint, \
             aws.allow_http, aws.virtual_hosted_style_request (all of object_store's AmazonS3ConfigKey names work)"
        }
        "gs" => "gcp.service_account_path, gcp.service_account_key, gcp.application_credentials",
        _ => "azure.account_name, azure.account_key, azure.sas_token, azure.endpoint, azure.use_emulator",
    }
}

fn known_option(scheme: &str, key: &str) -> bool {
    match scheme {
        #[cfg(feature = "aws")]
        "s3" | "s3a" => key.parse::<object_store::aws::AmazonS3ConfigKey>().is_ok(),
        #[cfg(feature = "gcp")]
        "gs" => key.parse::<object_store::gcp::GoogleConfigKey>().is_ok(),
        #[cfg(feature = "azure")]
        "az" | "adl" | "azure" | "abfs" | "abfss" => key.parse::<object_store::azure::AzureConfigKey>().is_ok(),
        // Other schemes fail to resolve without their feature; let object_store say so.
        _ => {
            let _ = key;
            true
        }
    }
}

/// Reads a local input file (for appending an existing Parquet file).
pub async fn read_local_file(path: &std::path::Path) -> Result<Bytes> {
    tokio::fs::read(path).await.map(Bytes::from).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_if_absent_never_overwrites() {
        let location = TableLocation::memory("storage-unit", "t").unwrap();
        let first = location.put_if_absent("a/b.json", Bytes::from_static(b"1")).await.unwrap();
        let second = location.put_if_absent("a/b.json", Bytes::from_static(b"2")).await.unwrap();
        assert_eq!((first, second), (PutOutcome::Created, PutOutcome::AlreadyExists));
        assert_eq!(location.get("a/b.json").await.unwrap().unwrap(), Bytes::from_static(b"1"));
        assert!(location.get("missing").await.unwrap().is_none());
        let listed = location.list("a").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].path, "a/b.json");
    }

    /// On a local disk a file goes out in parts of 1 MiB whatever part size is asked for,
    /// each written at its own offset while the next is prepared: the file must come out
    /// byte for byte, however the writes were cut.
    #[tokio::test]
    async fn a_local_file_larger_than_a_part_is_written_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let location = TableLocation::local(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..3_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let mut upload = location.upload("data/x.parquet", 8 * 1024 * 1024);
        assert_eq!(upload.part_bytes(), 1024 * 1024);
        for chunk in bytes.chunks(300_001) {
            upload.write(chunk).await.unwrap();
        }
        upload.finish().await.unwrap();
        assert_eq!(upload.written(), bytes.len() as u64);
        assert_eq!(location.get("data/x.parquet").await.unwrap().unwrap(), Bytes::from(bytes));
    }

    #[test]
    fn the_kind_of_store_follows_object_stores_reading_of_the_url() {
        let over = |url: &str| {
            TableLocation::from_store(Arc::new(InMemory::new()), Url::parse(url).unwrap(), "t").unwrap().kind()
        };
        assert_eq!(over("s3://bucket"), Some(ObjectStoreScheme::AmazonS3));
        assert_eq!(over("https://bucket.s3.eu-west-1.amazonaws.com"), Some(ObjectStoreScheme::AmazonS3));
        assert_eq!(over("gs://bucket"), Some(ObjectStoreScheme::GoogleCloudStorage));
        assert_eq!(over("memory://faulty-1"), Some(ObjectStoreScheme::Memory));
        assert_eq!(over("file:///"), Some(ObjectStoreScheme::Local));
        assert_eq!(over("mystore://x"), None);
        assert_eq!(TableLocation::memory("kind", "t").unwrap().kind(), Some(ObjectStoreScheme::Memory));
    }

    #[test]
    fn parses_paths_and_urls() {
        assert!(TableLocation::parse("relative/dir").unwrap().is_local());
        assert!(TableLocation::parse("file:///tmp/x").unwrap().is_local());
        assert!(!TableLocation::parse("memory://m/p").unwrap().is_local());
        assert!(TableLocation::parse("nosuch://bucket/x").is_err());
        assert!(TableLocation::parse("").is_err());
    }
}
