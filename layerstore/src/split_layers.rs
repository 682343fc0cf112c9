//! Layers kept as their files plus a tar-split record instead of a blob (see
//! [`crate::tarsplit`]): applied straight from their source, read back as a tar for
//! `save`, `push`, `fsck` and migration.

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::layers::LayerRecord;
use crate::store::{NewLayer, Store};
use crate::tarfs::view::Gate;
use crate::tarfs::ApplyResult;
use std::io::Read;
use std::path::PathBuf;

/// Opens a layer's blob when it is not stored yet: an uncompressed layer inside an
/// archive being loaded (called once to apply it, again only if the blob must be kept
/// after all), or a download that stores the blob itself as it ends (`stores_blob`).
#[derive(Clone, Copy)]
pub struct LayerSource<'a> {
    pub open: &'a (dyn Fn() -> Result<Box<dyn Read + Send>> + Sync + 'a),
    /// The reader names the blob itself once it checks out at its end (a download): no
    /// tar-split is recorded and the source is never read twice.
    pub stores_blob: bool,
}

impl std::fmt::Debug for LayerSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LayerSource")
    }
}

impl Store {
    /// Where layer `chain`'s tar-split record lives.
    pub fn split_path(&self, chain: &Digest) -> PathBuf {
        self.root.join("tarsplit").join(chain.hex())
    }

    /// Layer `rec`'s tar as stored: its blob (maybe compressed), or, for a layer kept as
    /// files, the tar read back from them (uncompressed, checked against the DiffID as it
    /// ends).
    pub fn layer_tar(&self, rec: &LayerRecord) -> Result<Box<dyn Read + Send>> {
        if self.blobs.exists(&rec.blob) {
            return Ok(Box::new(self.blobs.open(&rec.blob)?));
        }
        if !rec.tar_split {
            return Err(StoreError::Missing {
                what: format!("blob {} of layer {}", rec.blob, rec.chain_id),
                source_name: "the store".into(),
            });
        }
        if rec.damaged {
            return Err(crate::flush::damaged(rec));
        }
        let id = rec
            .cache
            .get(self.driver.name())
            .filter(|id| self.driver.exists(id))
            .ok_or_else(|| {
                StoreError::Unsupported(format!(
                    "layer {} is kept as the files of another storage driver ({}): use `strata migrate` to move it, or load the image again",
                    rec.chain_id,
                    rec.cache.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
        let dir = self.driver.diff_dir(id)?;
        Ok(Box::new(crate::tarsplit::SplitReader::open(
            &self.split_path(&rec.chain_id),
            &dir,
            &rec.diff_id,
        )?))
    }

    /// Stores layer `rec`'s blob if it is kept as files only (before its files move to
    /// another driver); the tar read back must hash to the DiffID.
    pub fn keep_blob(&self, rec: &LayerRecord) -> Result<()> {
        if self.blobs.exists(&rec.blob) || !rec.tar_split {
            return Ok(());
        }
        let mut r = self.layer_tar(rec)?;
        let staged = self.blobs.stage(&mut r)?;
        self.blobs.commit(
            staged,
            &format!("layer {}", rec.chain_id),
            Some(&rec.diff_id),
        )?;
        Ok(())
    }

    /// Applies new layer `l` (ChainID `chain`) into the empty driver layer `id`: from its
    /// stored blob, or straight from its source, recording a tar-split so no blob is
    /// written (`split == Some(true)` in the result); where the files cannot give the tar
    /// back, the source is read again into a blob.
    pub(crate) fn apply_new(
        &self,
        id: &str,
        l: &NewLayer<'_>,
        chain: &Digest,
        what: &str,
        gate: Option<Gate<'_>>,
    ) -> Result<ApplyResult> {
        let source = match l.source {
            Some(s) if !self.blobs.exists(l.blob) => s,
            _ => return self.apply_blob(id, l.blob, l.diff_id, what, gate),
        };
        let started = std::time::Instant::now();
        let tmp = self.temp_path("split");
        let split_to = (!source.stores_blob).then_some(tmp.as_path());
        let res = (source.open)()
            .and_then(|r| self.apply_stream(id, r, l.diff_id, what, "its tar", gate, split_to));
        let res = match res {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if source.stores_blob {
            // A download: its blob was named when its digest checked out at the end.
            if !self.blobs.exists(l.blob) {
                return Err(StoreError::Format(format!(
                    "{what}: the download of {} did not complete",
                    l.blob
                )));
            }
            return Ok(ApplyResult {
                split: Some(false),
                ..res
            });
        }
        let kept_split = if res.split == Some(true) {
            let dst = self.split_path(chain);
            let parent = dst.parent().unwrap_or(&self.root);
            std::fs::create_dir_all(parent).map_err(|e| StoreError::io("create", parent, e))?;
            std::fs::rename(&tmp, &dst).map_err(|e| StoreError::io("rename", &dst, e))?;
            true
        } else {
            let _ = std::fs::remove_file(&tmp);
            let staged = self.blobs.stage(&mut (source.open)()?)?;
            self.blobs.commit(staged, what, Some(l.blob))?;
            false
        };
        tracing::debug!(
            layer = what,
            entries = res.entries,
            bytes = res.data_size,
            kept = if kept_split {
                "files + tar-split"
            } else {
                "files + blob"
            },
            ms = started.elapsed().as_millis() as u64,
            "layer applied from its source"
        );
        Ok(ApplyResult {
            split: Some(kept_split),
            ..res
        })
    }
}
