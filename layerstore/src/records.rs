//! A directory of JSON records, one file per key, each written atomically. Layers, images
//! and containers are kept this way so any one can be read, listed or checked on its own.

use crate::error::{Result, StoreError};
use fsutil::write_atomic;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs;
use std::io;
use std::marker::PhantomData;
use std::path::PathBuf;

/// Records of type `T` stored as `<dir>/<key>.json`.
#[derive(Debug, Clone)]
pub struct JsonDir<T> {
    dir: PathBuf,
    _t: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> JsonDir<T> {
    /// Records under `dir` (created if missing).
    pub fn new(dir: PathBuf) -> Result<Self> {
        // Made once; every later open (one per daemon request) costs one stat, not a
        // failed mkdir and a stat.
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
        }
        Ok(JsonDir {
            dir,
            _t: PhantomData,
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The record `key`, if present.
    pub fn get(&self, key: &str) -> Result<Option<T>> {
        let p = self.path(key);
        match fsutil::parsed_cache::read_parsed(&p, |data| serde_json::from_slice::<T>(data)) {
            Ok(Some(Ok(v))) => Ok(Some(v)),
            Ok(Some(Err(e))) => Err(StoreError::json(p.display().to_string(), e)),
            Ok(None) => Ok(None),
            Err(e) => Err(StoreError::io("read", p, e)),
        }
    }

    /// Writes record `key` (temp, fsync, rename).
    pub fn put(&self, key: &str, value: &T) -> Result<()> {
        let p = self.path(key);
        let data = serde_json::to_vec_pretty(value).map_err(|e| StoreError::json(key, e))?;
        write_atomic(&p, &data).map_err(|e| StoreError::io("write", p, e))
    }

    /// Writes record `key` atomically but without a flush, for records that need not
    /// survive a crash (a `run --rm` container's).
    pub fn put_volatile(&self, key: &str, value: &T) -> Result<()> {
        let p = self.path(key);
        let data = serde_json::to_vec_pretty(value).map_err(|e| StoreError::json(key, e))?;
        fsutil::write_replace(&p, &data).map_err(|e| StoreError::io("write", p, e))
    }

    /// Deletes record `key`; a missing one is fine.
    pub fn remove(&self, key: &str) -> Result<()> {
        let p = self.path(key);
        fsutil::parsed_cache::forget(&p);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", p, e)),
        }
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(|e| StoreError::io("read", &self.dir, e))? {
            let e = e.map_err(|e| StoreError::io("read", &self.dir, e))?;
            let name = e.file_name();
            if let Some(k) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                if !k.starts_with('.') {
                    out.push(k.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every record with its key.
    pub fn all(&self) -> Result<Vec<(String, T)>> {
        let mut out = Vec::new();
        for k in self.keys()? {
            if let Some(v) = self.get(&k)? {
                out.push((k, v));
            }
        }
        Ok(out)
    }
}
