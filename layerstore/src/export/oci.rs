//! OCI image layout output, as a directory or (path ending `.tar`) an OCI archive.
//! Docker-typed manifests are rewritten with OCI media types (the config and layer
//! blobs keep their digests), as `skopeo copy` does, so umoci and other OCI tools read them.

use super::{temp_file_beside, Selected};
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::spec::{self, Descriptor, Index, Manifest};
use crate::store::Store;
use crate::tarfs::LayerTarWriter;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Where layout files go.
trait Sink {
    fn add(&mut self, name: &str, size: u64, r: &mut dyn Read) -> io::Result<()>;
}

struct DirSink(PathBuf);

impl Sink for DirSink {
    fn add(&mut self, name: &str, _size: u64, r: &mut dyn Read) -> io::Result<()> {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut f = File::create(&p)?;
        io::copy(r, &mut f)?;
        f.sync_all()
    }
}

struct TarSink(LayerTarWriter<BufWriter<File>>);

impl Sink for TarSink {
    fn add(&mut self, name: &str, size: u64, r: &mut dyn Read) -> io::Result<()> {
        self.0.file(name, size, r)
    }
}

fn oci_type(mt: &str) -> &str {
    match mt {
        spec::DOCKER_LAYER => spec::OCI_LAYER,
        spec::DOCKER_LAYER_GZIP | spec::DOCKER_FOREIGN_GZIP => spec::OCI_LAYER_GZIP,
        spec::DOCKER_CONFIG => spec::OCI_CONFIG,
        other => other,
    }
}

fn write_blobs(store: &Store, sel: &[Selected], sink: &mut dyn Sink) -> Result<Vec<Descriptor>> {
    let mut written: HashSet<Digest> = HashSet::new();
    let mut index = Vec::new();
    let put_blob = |sink: &mut dyn Sink, written: &mut HashSet<Digest>, d: &Digest| -> Result<()> {
        if written.insert(d.clone()) {
            let f = store.blobs.open(d)?;
            let size = f
                .metadata()
                .map_err(|e| StoreError::io("stat", store.blobs.path(d), e))?
                .len();
            sink.add(
                &format!("blobs/sha256/{}", d.hex()),
                size,
                &mut io::BufReader::new(f),
            )
            .map_err(|e| StoreError::io("write", d.hex(), e))?;
        }
        Ok(())
    };
    for s in sel {
        let raw = store.blobs.read(&s.img.manifest)?;
        let mut m: Manifest =
            serde_json::from_slice(&raw).map_err(|e| StoreError::json("stored manifest", e))?;
        put_blob(sink, &mut written, &m.config.digest)?;
        for (l, chain) in m.layers.iter().zip(&s.img.layers) {
            if store.blobs.exists(&l.digest) {
                put_blob(sink, &mut written, &l.digest)?;
                continue;
            }
            // Kept as files: the tar read back, checked against the DiffID to its end.
            let rec = store.layer(chain)?;
            if written.insert(l.digest.clone()) {
                let mut r = store.layer_tar(&rec)?;
                let name = format!("blobs/sha256/{}", l.digest.hex());
                sink.add(&name, rec.tar_size, &mut r)
                    .and_then(|()| io::copy(&mut r, &mut io::sink()).map(|_| ()))
                    .map_err(|e| StoreError::io("write", name, e))?;
            }
        }
        let bytes = if s.img.manifest_media_type == spec::OCI_MANIFEST {
            raw
        } else {
            m.media_type = Some(spec::OCI_MANIFEST.into());
            m.config.media_type = oci_type(&m.config.media_type).to_string();
            for l in &mut m.layers {
                l.media_type = oci_type(&l.media_type).to_string();
            }
            serde_json::to_vec(&m).map_err(|e| StoreError::json("manifest", e))?
        };
        let digest = Digest::of(&bytes);
        if written.insert(digest.clone()) {
            sink.add(
                &format!("blobs/sha256/{}", digest.hex()),
                bytes.len() as u64,
                &mut &bytes[..],
            )
            .map_err(|e| StoreError::io("write", "manifest", e))?;
        }
        let desc = |annotations| Descriptor {
            media_type: spec::OCI_MANIFEST.into(),
            digest: digest.clone(),
            size: bytes.len() as u64,
            annotations,
            platform: None,
        };
        if s.names.is_empty() {
            index.push(desc(None));
        }
        for n in &s.names {
            let (_, tag) = crate::refs::split(n);
            let mut a = BTreeMap::new();
            a.insert(spec::REF_NAME.to_string(), tag.to_string());
            a.insert(spec::CONTAINERD_NAME.to_string(), n.clone());
            index.push(desc(Some(a)));
        }
    }
    Ok(index)
}

fn finish(sink: &mut dyn Sink, manifests: Vec<Descriptor>) -> Result<()> {
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    sink.add("oci-layout", layout.len() as u64, &mut &layout[..])
        .map_err(|e| StoreError::io("write", "oci-layout", e))?;
    let index = Index {
        schema_version: 2,
        media_type: Some(spec::OCI_INDEX.into()),
        manifests: Some(manifests),
        annotations: None,
    };
    let bytes = serde_json::to_vec(&index).map_err(|e| StoreError::json("index.json", e))?;
    sink.add("index.json", bytes.len() as u64, &mut &bytes[..])
        .map_err(|e| StoreError::io("write", "index.json", e))
}

pub(crate) fn save(store: &Store, sel: &[Selected], path: &Path) -> Result<()> {
    let as_tar = path.extension().is_some_and(|e| e == "tar");
    let tmp = fsutil::temp_name_beside(path)
        .map_err(|e| StoreError::io("name a temp file beside", path, e))?;
    if !as_tar
        && path.exists()
        && fs::read_dir(path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(StoreError::InUse(format!(
            "{} exists and is not an empty directory: choose a new path for the OCI layout",
            path.display()
        )));
    }
    let result = (|| {
        if as_tar {
            let (f, file_tmp) = temp_file_beside(path)?;
            let written = (|| {
                let mut sink = TarSink(LayerTarWriter::new(BufWriter::with_capacity(1 << 20, f)));
                let idx = write_blobs(store, sel, &mut sink)?;
                finish(&mut sink, idx)?;
                let io = |e| StoreError::io("write", &file_tmp, e);
                let mut bw = sink.0.finish().map_err(io)?;
                bw.flush().map_err(io)?;
                bw.into_inner()
                    .map_err(|e| io(e.into_error()))?
                    .sync_all()
                    .map_err(io)?;
                fs::rename(&file_tmp, path).map_err(|e| StoreError::io("rename", path, e))
            })();
            if written.is_err() {
                let _ = fs::remove_file(&file_tmp);
            }
            written
        } else {
            // A new directory (never an existing one, nor through a planted symlink).
            fs::create_dir(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
            let mut sink = DirSink(tmp.clone());
            let idx = write_blobs(store, sel, &mut sink)?;
            finish(&mut sink, idx)?;
            if path.exists() {
                fs::remove_dir(path).map_err(|e| StoreError::io("replace", path, e))?;
            }
            fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))
        }
    })();
    if result.is_err() {
        let _ = fsutil::remove_tree(&tmp);
        let _ = fs::remove_file(&tmp);
    }
    result
}
