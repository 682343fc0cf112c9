//! Image references: `name:tag` -> image id, kept in one atomically rewritten file.

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::locks::StoreLocks;
use drivers::lock::FileLock;
use fsutil::write_atomic;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

/// Checks a reference with Docker's grammar ([`crate::reference`]) and spells it as the
/// table keeps it: `name:tag`, with `latest` when no tag is given, and `docker.io/library/`
/// and `docker.io/` prefixes dropped (as Docker displays them).
pub fn normalize(reference: &str) -> Result<String> {
    let bad = |why: &str| StoreError::BadReference(reference.to_string(), why.to_string());
    let p = crate::reference::parse(reference).map_err(bad)?;
    if p.digest.is_some() {
        return Err(bad(
            "digest references name an image, they cannot be tagged",
        ));
    }
    let full = match p.domain {
        Some(d) => format!("{d}/{}", p.path),
        None => p.path.to_string(),
    };
    let name = full
        .strip_prefix("docker.io/library/")
        .or_else(|| full.strip_prefix("docker.io/"))
        .unwrap_or(&full);
    Ok(format!("{name}:{}", p.tag.unwrap_or("latest")))
}

/// Splits a normalized `name:tag`.
pub fn split(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, ""),
    }
}

/// The reference table. Reads take no lock (the file is replaced atomically); every
/// change is a read-modify-write under the store's records lock, so two processes or
/// threads tagging at once never lose a name.
#[derive(Debug, Clone)]
pub struct Refs {
    path: PathBuf,
    locks: StoreLocks,
}

impl Refs {
    /// References stored at `path`, changed under `locks`' records lock.
    pub fn new(path: PathBuf, locks: StoreLocks) -> Refs {
        Refs { path, locks }
    }

    /// Changes the table with `f` under the records lock; returns what `f` returns. The
    /// file is rewritten only when `f` changed something.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, Digest>) -> Result<T>,
    ) -> Result<T> {
        let held = self.locks.records()?;
        self.update_held(&held, f)
    }

    /// [`Refs::update`] for a caller already holding the records lock (`held`), which
    /// changes other records in the same critical section.
    pub fn update_held<T>(
        &self,
        _held: &FileLock,
        f: impl FnOnce(&mut BTreeMap<String, Digest>) -> Result<T>,
    ) -> Result<T> {
        let mut all = self.load()?;
        let before = all.clone();
        let out = f(&mut all)?;
        if all != before {
            self.save(&all)?;
        }
        Ok(out)
    }

    /// All references.
    pub fn load(&self) -> Result<BTreeMap<String, Digest>> {
        match fs::read(&self.path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| StoreError::json("refs.json", e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(StoreError::io("read", &self.path, e)),
        }
    }

    /// Replaces all references (callers hold the records lock: see [`Refs::update`]).
    fn save(&self, refs: &BTreeMap<String, Digest>) -> Result<()> {
        let data = serde_json::to_vec_pretty(refs).map_err(|e| StoreError::json("refs.json", e))?;
        write_atomic(&self.path, &data).map_err(|e| StoreError::io("write", &self.path, e))
    }

    /// Points `reference` (normalized) at `id`.
    pub fn set(&self, reference: &str, id: &Digest) -> Result<()> {
        self.update(|all| {
            all.insert(reference.to_string(), id.clone());
            Ok(())
        })
    }

    /// The references of image `id`.
    pub fn of(&self, id: &Digest) -> Result<Vec<String>> {
        Ok(self
            .load()?
            .into_iter()
            .filter(|(_, v)| v == id)
            .map(|(k, _)| k)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(normalize("busybox").unwrap(), "busybox:latest");
        assert_eq!(
            normalize("docker.io/library/busybox:1").unwrap(),
            "busybox:1"
        );
        assert_eq!(
            normalize("localhost:5000/a/b").unwrap(),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(
            normalize("localhost:5000/a/b:v2").unwrap(),
            "localhost:5000/a/b:v2"
        );
        assert!(normalize("Busybox").is_err());
        assert!(normalize("a:").is_err());
        assert!(normalize("a@sha256:00").is_err());
        assert!(normalize("../x").is_err());
    }
}
