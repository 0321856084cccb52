//! Streaming uploads: plaintext in, optionally age-encrypted, hashed on both sides,
//! cut into multipart parts, one part in flight while the next fills, so memory
//! stays flat (two 5 MiB parts at most) whatever the size. S3 signs and retries a
//! part whole, so a part is held in memory until the store took it; 5 MiB is the
//! smallest part S3 allows.
//!
//! Multipart is what keeps an interrupted upload invisible: S3 creates no object
//! under the key until `CompleteMultipartUpload`, so a killed pgbox or a store that
//! went away leaves at most unfinished parts (aborted on the way out when pgbox
//! can; a bucket lifecycle rule `AbortIncompleteMultipartUpload` sweeps the rest),
//! never an object. Even a completed object counts only once [`check`] read it back
//! and the caller wrote its manifest. [`Upload`] takes any byte stream (a dump, a
//! file, later a base backup or a WAL segment); [`ship`] uploads a local backup.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use super::Remote;
use crate::cancel::Guard;
use crate::crypt::{Encrypting, Recipients};
use crate::error::Fail;

/// The smallest part S3 takes (all but the last); grows after every 2000 parts so
/// the 10000-part limit is never reached (5 MiB × 2000 + 10 MiB × 2000 + ...).
const PART: usize = 5 << 20;
const IN_FLIGHT: usize = 1;

pub use crate::digest::Sum;

pub(crate) struct Hasher(Sha256, u64);

impl Hasher {
    pub(crate) fn new() -> Self {
        Hasher(Sha256::new(), 0)
    }
    pub(crate) fn update(&mut self, b: &[u8]) {
        self.0.update(b);
        self.1 += b.len() as u64;
    }
    pub(crate) fn sum(self) -> Sum {
        Sum {
            bytes: self.1,
            sha256: crate::digest::hex(&self.0.finalize()),
        }
    }
}

/// What was stored: the object's size and sha256, and the plaintext's.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub key: Key,
    pub stored: Sum,
    pub plain: Sum,
}

/// An upload under way (see the module doc).
pub struct Upload {
    remote: Remote,
    key: Key,
    mp: Arc<Mutex<Box<dyn MultipartUpload>>>,
    enc: Option<Encrypting>,
    buf: Vec<u8>,
    parts: usize,
    inflight: JoinSet<object_store::Result<()>>,
    plain: Hasher,
    stored: Hasher,
    abort: Guard,
}

impl Upload {
    /// Start a multipart upload to `key`, encrypted to `to` when given.
    pub async fn begin(
        remote: &Remote,
        key: Key,
        to: Option<&Recipients>,
    ) -> anyhow::Result<Upload> {
        let enc = to.map(Encrypting::new).transpose()?;
        let mp = remote
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| remote.fail_bucket("starting an upload to", e))?;
        let mp = Arc::new(Mutex::new(mp));
        let abort = {
            let mp = mp.clone();
            Guard::future(format!("the unfinished upload of `{key}`"), async move {
                let _ = mp.lock().await.abort().await;
            })
        };
        Ok(Upload {
            remote: remote.clone(),
            key,
            mp,
            enc,
            buf: Vec::new(),
            parts: 0,
            inflight: JoinSet::new(),
            plain: Hasher::new(),
            stored: Hasher::new(),
            abort,
        })
    }

    /// A guard of its own that aborts this upload, for a caller that hands the
    /// upload to a task (a signal drops the caller, not the task).
    pub fn abort_guard(&self) -> Guard {
        let mp = self.mp.clone();
        Guard::future(
            format!("the unfinished upload of `{}`", self.key),
            async move {
                let _ = mp.lock().await.abort().await;
            },
        )
    }

    fn part_size(&self) -> usize {
        PART << (self.parts / 2000).min(10)
    }

    /// Add plaintext.
    pub async fn write(&mut self, plain: &[u8]) -> anyhow::Result<()> {
        self.plain.update(plain);
        match self.enc.as_mut() {
            Some(e) => {
                let c = e.push(plain)?;
                self.store_bytes(&c).await
            }
            None => self.store_bytes(plain).await,
        }
    }

    async fn store_bytes(&mut self, mut b: &[u8]) -> anyhow::Result<()> {
        self.stored.update(b);
        // Parts are cut at their exact size, so a buffer is allocated once, whole,
        // and never grows (a grown one would be copied into one twice its size).
        while !b.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(self.part_size());
            }
            let n = (self.part_size() - self.buf.len()).min(b.len());
            self.buf.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.buf.len() == self.part_size() {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self) -> anyhow::Result<()> {
        while self.inflight.len() >= IN_FLIGHT {
            self.join_one().await?;
        }
        let data = Bytes::from(std::mem::take(&mut self.buf));
        let part = self.mp.lock().await.put_part(PutPayload::from(data));
        self.inflight.spawn(part);
        self.parts += 1;
        Ok(())
    }

    async fn join_one(&mut self) -> anyhow::Result<()> {
        if let Some(r) = self.inflight.join_next().await {
            r?.map_err(|e| self.remote.fail("uploading a part to", e))?;
        }
        Ok(())
    }

    /// Send what is left, complete the upload, read the object back and compare.
    /// On failure the upload is aborted: nothing is left under the key.
    pub async fn finish(mut self) -> anyhow::Result<Uploaded> {
        let result = self.finish_inner().await;
        match result {
            Ok(u) => {
                self.abort.disarm();
                Ok(u)
            }
            Err(e) => {
                self.inflight.abort_all();
                self.abort.undo().await;
                // Completed but not matching: remove the object too.
                let _ = self.remote.store.delete(&self.key).await;
                Err(e)
            }
        }
    }

    /// Stream the file at `path` into the upload, calling `progress` with each
    /// chunk's size, then [`finish`](Self::finish); a read or write error aborts
    /// the upload.
    pub async fn send_file(
        mut self,
        path: &std::path::Path,
        mut progress: impl FnMut(u64),
    ) -> anyhow::Result<Uploaded> {
        use tokio::io::AsyncReadExt;
        let read = async {
            let mut f = tokio::fs::File::open(path).await?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                self.write(&buf[..n]).await?;
                progress(n as u64);
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = read {
            self.abort().await;
            return Err(e.context(format!("cannot ship `{}`", path.display())));
        }
        self.finish().await
    }

    /// Give up: abort the multipart upload.
    pub async fn abort(mut self) {
        self.inflight.abort_all();
        self.abort.undo().await;
    }

    async fn finish_inner(&mut self) -> anyhow::Result<Uploaded> {
        if let Some(e) = self.enc.take() {
            let tail = e.finish()?;
            self.store_bytes(&tail).await?;
        }
        if !self.buf.is_empty() || self.parts == 0 {
            self.send_part().await?;
        }
        while !self.inflight.is_empty() {
            self.join_one().await?;
        }
        self.mp
            .lock()
            .await
            .complete()
            .await
            .map_err(|e| self.remote.fail("completing the upload to", e))?;
        let stored = std::mem::replace(&mut self.stored, Hasher::new()).sum();
        let plain = std::mem::replace(&mut self.plain, Hasher::new()).sum();
        check(&self.remote, &self.key, &stored).await?;
        Ok(Uploaded {
            key: self.key.clone(),
            stored,
            plain,
        })
    }
}

/// The object at `key` must have `want`'s size (HEAD) and sha256: it is read back
/// whole, streamed, and hashed here (S3's ETag of a multipart upload is no digest of
/// the content, and stores differ in the checksums they offer).
pub async fn check(remote: &Remote, key: &Key, want: &Sum) -> anyhow::Result<()> {
    let got = read_sum(remote, key).await?;
    if &got != want {
        return Err(Fail::new(format!(
            "the copy at `s3://{}/{key}` does not match: {} bytes, sha256 {}; expected {} bytes, sha256 {}",
            remote.cfg.bucket, got.bytes, got.sha256, want.bytes, want.sha256
        ))
        .hint("the store changed or damaged the object; upload the backup again")
        .into());
    }
    Ok(())
}

/// Size and sha256 of the object at `key`, read back streaming.
pub async fn read_sum(remote: &Remote, key: &Key) -> anyhow::Result<Sum> {
    let meta = remote
        .store
        .head(key)
        .await
        .map_err(|e| remote.fail("reading back", e))?;
    let mut stream = remote
        .store
        .get(key)
        .await
        .map_err(|e| remote.fail("reading back", e))?
        .into_stream();
    let mut h = Hasher::new();
    while let Some(chunk) = stream.next().await {
        h.update(&chunk.map_err(|e| remote.fail("reading back", e))?);
    }
    let sum = h.sum();
    anyhow::ensure!(
        sum.bytes == meta.size,
        "the store says `{key}` holds {} bytes but sent {}",
        meta.size,
        sum.bytes
    );
    Ok(sum)
}

const FEED_CHUNK: usize = 256 << 10;

/// A blocking writer that hands its bytes to an async [`Upload`] running as a task,
/// for byte sources that push from synchronous callbacks (the dump's exec stream).
/// The channel holds two 256 KiB chunks at most: a slow store slows the dump.
pub struct Feed {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

/// Start `up` consuming a [`Feed`]; the task ends with the upload finished and
/// checked, or aborted when the feed was dropped without [`Feed::close`].
pub fn feed(mut up: Upload) -> (Feed, tokio::task::JoinHandle<anyhow::Result<Uploaded>>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    let task = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if b.is_empty() {
                // The close marker: everything arrived.
                return up.finish().await;
            }
            if let Err(e) = up.write(&b).await {
                up.abort().await;
                return Err(e);
            }
        }
        up.abort().await;
        Err(anyhow::anyhow!("the upload's input ended early"))
    });
    (
        Feed {
            tx,
            buf: Vec::with_capacity(FEED_CHUNK),
        },
        task,
    )
}

impl Feed {
    fn send(&mut self) -> std::io::Result<()> {
        let next = Vec::with_capacity(FEED_CHUNK);
        let b = Bytes::from(std::mem::replace(&mut self.buf, next));
        put(&self.tx, b)
    }

    /// All bytes were written: the upload may complete.
    pub fn close(mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        put(&self.tx, Bytes::new())
    }
}

/// Hand `b` to the upload task, waiting while its channel is full (a slow store
/// slows the source), but not past a Ctrl-C: the wait is the only place a
/// synchronous source can stall, and a signal must end it at once.
fn put(tx: &tokio::sync::mpsc::Sender<Bytes>, b: Bytes) -> std::io::Result<()> {
    let stopped = || std::io::Error::other("the upload stopped");
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async {
            tokio::select! {
                sent = tx.send(b) => sent.map_err(|_| stopped()),
                _ = crate::cancel::cancelled() => Err(std::io::Error::other(crate::error::Interrupted)),
            }
        })
    })
}

impl std::io::Write for Feed {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = (FEED_CHUNK - self.buf.len()).min(b.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == FEED_CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
