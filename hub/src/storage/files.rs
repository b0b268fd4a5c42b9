//! Part bytes as files: `<root>/<tenant id>/<snapshot id>/<index>.zst`.

use super::{BlobKey, BlobStore, StoreResult};
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Blob store on the local file system; writes are temp file, fsync, rename, fsync dir.
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    counter: AtomicU64,
}

impl FsBlobStore {
    /// A store rooted at `root` (created when missing).
    pub fn open(root: &Path) -> StoreResult<Self> {
        fs::create_dir_all(root)?;
        Ok(Self { root: root.to_owned(), counter: AtomicU64::new(0) })
    }

    fn dir(&self, key: &BlobKey) -> PathBuf {
        // The snapshot id was checked to be hex before it reaches storage; guard anyway.
        debug_assert!(key.snapshot_id.bytes().all(|b| b.is_ascii_hexdigit()));
        self.root.join(key.tenant_id.to_string()).join(&key.snapshot_id)
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        self.dir(key).join(format!("{:06}.zst", key.index))
    }
}

impl BlobStore for FsBlobStore {
    fn put(&self, key: &BlobKey, bytes: &[u8]) -> StoreResult<()> {
        let dir = self.dir(key);
        fs::create_dir_all(&dir)?;
        // The directories' entries are durable before the part is acknowledged
        // (another put may have just created them and not synced them yet).
        if let Some(tenant_dir) = dir.parent() {
            sync_dir(tenant_dir)?;
        }
        sync_dir(&self.root)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{:06}.{}.{n}.tmp", key.index, std::process::id()));
        let result = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, self.path(key))?;
            sync_dir(&dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(result?)
    }

    fn open(&self, key: &BlobKey) -> StoreResult<Option<Box<dyn Read + Send>>> {
        match File::open(self.path(key)) {
            Ok(file) => Ok(Some(Box::new(file))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, key: &BlobKey) -> StoreResult<()> {
        match fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Makes a rename in `dir` durable (a no-op where directories cannot be opened, e.g. Windows).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_open_replace_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let key = BlobKey { tenant_id: 1, snapshot_id: "ab".repeat(32), index: 2 };
        assert!(store.open(&key).unwrap().is_none());
        store.put(&key, b"first").unwrap();
        store.put(&key, b"second").unwrap();
        let mut text = String::new();
        store.open(&key).unwrap().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "second");
        let leftovers: Vec<_> = fs::read_dir(store.dir(&key)).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files remain");
        store.delete(&key).unwrap();
        store.delete(&key).unwrap();
        assert!(store.open(&key).unwrap().is_none());
    }
}
