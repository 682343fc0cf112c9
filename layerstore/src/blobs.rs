//! Content-addressed blobs: `blobs/sha256/<hex>`, written crash-safely and hashed while
//! written, so nothing becomes visible under a digest it does not have. With a flush
//! journal (the store's default) a blob is named once its journal line is on disk and is
//! flushed later ([`crate::journal`]); without one, it is flushed before it is named.

use crate::digest::{Digest, HashWriter};
use crate::error::{Result, StoreError};
use fsutil::fsync_dir;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The blob store under a data root.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
    journal: Option<crate::journal::Journal>,
}

/// A file written to the temp area whose digest is known but which is not yet a blob.
#[derive(Debug)]
pub struct Staged {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

impl BlobStore {
    /// Blobs under `dir`, temp files under `tmp` (same filesystem, for atomic renames).
    pub fn new(dir: PathBuf, tmp: PathBuf) -> Result<BlobStore> {
        fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
        Ok(BlobStore {
            dir,
            tmp,
            journal: None,
        })
    }

    /// Names new blobs after noting them in `journal` instead of flushing each first.
    pub fn with_journal(mut self, journal: crate::journal::Journal) -> BlobStore {
        self.journal = Some(journal);
        self
    }

    /// Where blob `d` lives.
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    /// Whether blob `d` is stored.
    pub fn exists(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Opens blob `d` for reading.
    pub fn open(&self, d: &Digest) -> Result<File> {
        let p = self.path(d);
        File::open(&p).map_err(|e| StoreError::io("open blob", p, e))
    }

    /// Reads a small blob (manifest, config) whole.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.path(d);
        fs::read(&p).map_err(|e| StoreError::io("read blob", p, e))
    }

    /// Writes `r` to a temp file in `dir`, hashing as it goes (flushed by [`commit`]
    /// when the store keeps no journal).
    ///
    /// [`commit`]: BlobStore::commit
    pub fn stage_in(dir: &Path, r: &mut dyn Read) -> Result<Staged> {
        let path = dir.join(format!("stage-{}", crate::random_id()));
        let f = File::create(&path).map_err(|e| StoreError::io("create", &path, e))?;
        let mut w = HashWriter::new(BufWriter::with_capacity(256 * 1024, f));
        let res = io::copy(r, &mut w).and_then(|_| w.flush());
        if let Err(e) = res {
            let _ = fs::remove_file(&path);
            return Err(StoreError::io("write", &path, e));
        }
        let (digest, size, bw) = w.finish();
        bw.into_inner()
            .map_err(|e| StoreError::io("write", &path, e.into_error()))?;
        Ok(Staged { path, digest, size })
    }

    /// Stages `r` in this store's temp area.
    pub fn stage(&self, r: &mut dyn Read) -> Result<Staged> {
        Self::stage_in(&self.tmp, r)
    }

    /// Makes a staged file the blob of its digest, after checking it against `expected`:
    /// journaled (flushed later) when the store keeps a journal, else flushed first.
    pub fn commit(&self, staged: Staged, what: &str, expected: Option<&Digest>) -> Result<Digest> {
        self.commit_with(staged, what, expected, self.journal.is_none())
    }

    /// [`BlobStore::commit`], flushed before it returns whatever the store's mode: for
    /// blobs that records written right after depend on (configs, manifests, a committed
    /// layer), which are small or already flushed by their writer.
    pub fn commit_durable(
        &self,
        staged: Staged,
        what: &str,
        expected: Option<&Digest>,
    ) -> Result<Digest> {
        self.commit_with(staged, what, expected, true)
    }

    fn commit_with(
        &self,
        staged: Staged,
        what: &str,
        expected: Option<&Digest>,
        durable: bool,
    ) -> Result<Digest> {
        if let Some(exp) = expected {
            if *exp != staged.digest {
                let _ = fs::remove_file(&staged.path);
                return Err(StoreError::DigestMismatch {
                    what: what.to_string(),
                    expected: exp.clone(),
                    actual: staged.digest,
                });
            }
        }
        let dst = self.path(&staged.digest);
        if dst.exists() {
            let _ = fs::remove_file(&staged.path);
            return Ok(staged.digest);
        }
        match (&self.journal, durable) {
            (Some(j), false) => j.note_blob(&staged.digest)?,
            _ => File::open(&staged.path)
                .and_then(|f| f.sync_all())
                .map_err(|e| StoreError::io("fsync", &staged.path, e))?,
        }
        fs::rename(&staged.path, &dst).map_err(|e| StoreError::io("rename", &dst, e))?;
        if durable {
            fsync_dir(&self.dir).map_err(|e| StoreError::io("fsync", &self.dir, e))?;
        }
        Ok(staged.digest)
    }

    /// Stores `data` as a blob (checked against `expected`), flushed (configs and
    /// manifests: small, and image records depend on them), and returns its digest.
    pub fn put(&self, data: &[u8], what: &str, expected: Option<&Digest>) -> Result<Digest> {
        let d = Digest::of(data);
        if self.exists(&d) {
            if let Some(exp) = expected {
                if *exp != d {
                    return Err(StoreError::DigestMismatch {
                        what: what.into(),
                        expected: exp.clone(),
                        actual: d,
                    });
                }
            }
            return Ok(d);
        }
        let staged = self.stage(&mut &data[..])?;
        self.commit_durable(staged, what, expected)
    }

    /// Every stored blob's digest (files with other names are ignored).
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(|e| StoreError::io("read", &self.dir, e))? {
            let e = e.map_err(|e| StoreError::io("read", &self.dir, e))?;
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes blob `d`; returns what its content hashes to.
    pub fn rehash(&self, d: &Digest) -> Result<Digest> {
        let mut f = self.open(d)?;
        let mut w = HashWriter::new(io::sink());
        io::copy(&mut f, &mut w).map_err(|e| StoreError::io("read blob", self.path(d), e))?;
        Ok(w.finish().0)
    }

    /// Deletes blob `d`.
    pub fn remove(&self, d: &Digest) -> Result<()> {
        let p = self.path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove blob", p, e)),
        }
    }
}
