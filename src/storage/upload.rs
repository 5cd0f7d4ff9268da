//! Writing one new file in parts: held in memory up to one part, then a multipart upload
//! with a bounded number of parts in flight. A failed upload is aborted, so no stray
//! upload is left on a cloud store; a file smaller than one part is a single PUT.
//!
//! Does I/O.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::task::JoinSet;

/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// A started multipart upload and its parts in flight.
type Started = (Box<dyn MultipartUpload>, JoinSet<object_store::Result<()>>);

/// A file being uploaded; see the module docs.
pub struct Upload {
    store: Arc<dyn ObjectStore>,
    path: Path,
    part_bytes: usize,
    /// Bytes not yet handed to the store (less than one part).
    pending: BytesMut,
    multipart: Option<Started>,
    written: u64,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").field("path", &self.path).field("written", &self.written).finish()
    }
}

impl Upload {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, path: Path, part_bytes: usize) -> Self {
        let part_bytes = part_bytes.max(1);
        Upload { store, path, part_bytes, pending: BytesMut::new(), multipart: None, written: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The size of the parts the file goes out in (all but the last).
    #[cfg(test)]
    pub(crate) fn part_bytes(&self) -> usize {
        self.part_bytes
    }

    /// Appends `bytes`; whole parts go out as soon as they are full.
    pub async fn write(&mut self, bytes: &[u8]) -> object_store::Result<()> {
        self.written += bytes.len() as u64;
        self.pending.extend_from_slice(bytes);
        while self.pending.len() >= self.part_bytes {
            let part = self.pending.split_to(self.part_bytes).freeze();
            self.send(part).await?;
        }
        Ok(())
    }

    async fn send(&mut self, part: Bytes) -> object_store::Result<()> {
        if self.multipart.is_none() {
            let upload = self.store.put_multipart(&self.path).await?;
            self.multipart = Some((upload, JoinSet::new()));
        }
        let (upload, parts) = self.multipart.as_mut().expect("started above");
        // Wait for a free slot before starting a part, so memory stays bounded.
        while parts.len() >= PARTS_IN_FLIGHT {
            joined(parts.join_next().await)?;
        }
        parts.spawn(upload.put_part(PutPayload::from(part)));
        Ok(())
    }

    /// Sends what is left and completes the file. On failure a started upload is
    /// aborted.
    pub async fn finish(&mut self) -> object_store::Result<()> {
        let rest = std::mem::take(&mut self.pending).freeze();
        let Some((mut upload, mut parts)) = self.multipart.take() else {
            self.store.put(&self.path, PutPayload::from(rest)).await?;
            return Ok(());
        };
        if !rest.is_empty() {
            parts.spawn(upload.put_part(PutPayload::from(rest)));
        }
        let completed = async {
            while let Some(part) = parts.join_next().await {
                joined(Some(part))?;
            }
            upload.complete().await
        }
        .await;
        if let Err(e) = completed {
            parts.shutdown().await;
            let _ = upload.abort().await;
            return Err(e);
        }
        Ok(())
    }

    /// Abandons the file: a started multipart upload is aborted (nothing was completed).
    pub async fn abort(&mut self) {
        self.pending.clear();
        if let Some((mut upload, mut parts)) = self.multipart.take() {
            parts.shutdown().await;
            let _ = upload.abort().await;
        }
    }
}

/// The outcome of one finished part.
fn joined(part: Option<Result<object_store::Result<()>, tokio::task::JoinError>>) -> object_store::Result<()> {
    match part {
        None => Ok(()),
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(object_store::Error::Generic { store: "upload", source: Box::new(e) }),
    }
}
