//! docker-archive output: `<config hex>.json`, `<diff hex>/layer.tar`, `manifest.json`.

use super::{temp_file_beside, Selected};
use crate::compress::decompress;
use crate::digest::HashReader;
use crate::error::{Result, StoreError};
use crate::spec::DockerArchiveEntry;
use crate::store::Store;
use crate::tarfs::LayerTarWriter;
use std::collections::HashSet;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

pub(crate) fn save(store: &Store, sel: &[Selected], path: &Path) -> Result<()> {
    let (f, tmp) = temp_file_beside(path)?;
    let result = (|| {
        let mut w = LayerTarWriter::new(BufWriter::with_capacity(1 << 20, f));
        let io = |e| StoreError::io("write", &tmp, e);
        let mut done = HashSet::new();
        let mut manifest = Vec::new();
        for s in sel {
            let cfg = store.blobs.read(&s.img.id)?;
            let cfg_name = format!("{}.json", s.img.id.hex());
            if done.insert(cfg_name.clone()) {
                w.file(&cfg_name, cfg.len() as u64, &mut &cfg[..])
                    .map_err(io)?;
            }
            let mut layers = Vec::new();
            for chain in &s.img.layers {
                let rec = store.layer(chain)?;
                let name = format!("{}/layer.tar", rec.diff_id.hex());
                if done.insert(name.clone()) {
                    w.dir(rec.diff_id.hex()).map_err(io)?;
                    let (_, plain) = decompress(store.layer_tar(&rec)?)
                        .map_err(|e| StoreError::io("read", store.blobs.path(&rec.blob), e))?;
                    let mut hr = HashReader::new(plain);
                    w.file(&name, rec.tar_size, &mut hr).map_err(io)?;
                    let (d, _) = hr
                        .finish()
                        .map_err(|e| StoreError::io("read", store.blobs.path(&rec.blob), e))?;
                    if d != rec.diff_id {
                        return Err(StoreError::DigestMismatch {
                            what: format!(
                                "stored layer blob {} (the store needs checking: fsck)",
                                rec.blob
                            ),
                            expected: rec.diff_id.clone(),
                            actual: d,
                        });
                    }
                }
                layers.push(name);
            }
            manifest.push(DockerArchiveEntry {
                config: cfg_name,
                repo_tags: Some(s.names.clone()),
                layers,
            });
        }
        let m = serde_json::to_vec(&manifest).map_err(|e| StoreError::json("manifest.json", e))?;
        w.file("manifest.json", m.len() as u64, &mut &m[..])
            .map_err(io)?;
        let mut bw = w.finish().map_err(io)?;
        bw.flush().map_err(io)?;
        let f = bw.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
