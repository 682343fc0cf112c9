//! The build cache, keyed as the classic builder keys it: the parent image and the step
//! as it will be recorded (the instruction after ARG/ENV substitution, with the build
//! arguments a RUN sees and the checksum of the files a COPY reads). An entry names the
//! image the step made; one whose image is gone is a miss.

use crate::error::{EngineError, Result};
use layerstore::images::ImageRecord;
use layerstore::{Digest, Store};
use std::path::PathBuf;

/// The cache of one data root.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache under `store`'s data root.
    pub fn of(store: &Store) -> Cache {
        Cache {
            dir: store.root.join("build-cache"),
        }
    }

    fn key(parent: &Digest, step: &str) -> String {
        Digest::of(format!("{parent}\n{step}").as_bytes())
            .hex()
            .to_string()
    }

    /// The image a step `step` made on `parent` before, if it is still there.
    pub fn get(&self, store: &Store, parent: &Digest, step: &str) -> Option<ImageRecord> {
        let id = std::fs::read_to_string(self.dir.join(Self::key(parent, step))).ok()?;
        let id: Digest = id.trim().parse().ok()?;
        let img = store.images.get(id.hex()).ok()??;
        // Every layer must still be there (a prune may have taken one).
        img.layers
            .iter()
            .all(|c| store.layer(c).is_ok())
            .then_some(img)
    }

    /// Records that `step` on `parent` made `image` (replacing an older entry; written
    /// whole or not at all).
    pub fn put(&self, parent: &Digest, step: &str, image: &Digest) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| EngineError::io(format!("create {}", self.dir.display()), e))?;
        let path = self.dir.join(Self::key(parent, step));
        fsutil::write_replace(&path, image.to_string().as_bytes())
            .map_err(|e| EngineError::io(format!("write {}", path.display()), e))
    }
}
