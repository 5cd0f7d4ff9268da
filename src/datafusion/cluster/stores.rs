//! The object stores of an executor.
//!
//! A scan names its store by URL only: `file:///` for local tables, the process-wide
//! `memory://name`, and for cloud tables `s3-<hash>://bucket` (one name per store
//! configuration, see `TableLocation`). The scheduler plans scans with the client's storage
//! options; an executor builds the store of an unknown cloud name from the bucket and its
//! own options (`tsq cluster executor --storage-option`, or the environment), the way every
//! Ballista executor is given its stores. Building a store does no I/O.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use url::Url;

use crate::storage::TableLocation;

/// See the module docs.
pub(super) struct ExecutorStores {
    known: DefaultObjectStoreRegistry,
    /// Options for the cloud stores this executor builds. Never printed.
    options: Vec<(String, String)>,
}

impl ExecutorStores {
    pub(super) fn new(options: Vec<(String, String)>) -> Self {
        ExecutorStores { known: DefaultObjectStoreRegistry::new(), options }
    }
}

impl std::fmt::Debug for ExecutorStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The options may be credentials: only their names.
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ExecutorStores").field("known", &self.known).field("option_names", &keys).finish()
    }
}

impl ObjectStoreRegistry for ExecutorStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let store = match TableLocation::store_registered_as(url, &self.options) {
            Some(built) => built?,
            None => return Err(DataFusionError::Configuration(format!("no object store registered for {url}"))),
        };
        self.known.register_store(url, Arc::clone(&store));
        Ok(store)
    }
}
