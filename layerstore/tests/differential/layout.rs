//! Writes a generated stack as an OCI image layout (uncompressed layers), the input both
//! umoci and strata read.

use super::gen::{Entry, Kind};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;
use tar::{Builder, EntryType, Header};

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn put_blob(dir: &Path, data: &[u8]) -> String {
    let h = sha(data);
    fs::write(dir.join("blobs/sha256").join(&h), data).unwrap();
    h
}

/// The tar of one layer.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = Builder::new(Vec::new());
    for e in entries {
        let (name, kind, link, data): (String, EntryType, Option<String>, Vec<u8>) = match &e.kind {
            Kind::File(d) => (e.path.clone(), EntryType::Regular, None, d.clone()),
            Kind::Dir => (format!("{}/", e.path), EntryType::Directory, None, vec![]),
            Kind::Symlink(t) => (e.path.clone(), EntryType::Symlink, Some(t.clone()), vec![]),
            Kind::Hardlink(t) => (e.path.clone(), EntryType::Link, Some(t.clone()), vec![]),
            Kind::Fifo => (e.path.clone(), EntryType::Fifo, None, vec![]),
            Kind::Char(..) => (e.path.clone(), EntryType::Char, None, vec![]),
            Kind::Whiteout => {
                let (parent, leaf) = match e.path.rsplit_once('/') {
                    Some((p, l)) => (format!("{p}/"), l),
                    None => (String::new(), e.path.as_str()),
                };
                (
                    format!("{parent}.wh.{leaf}"),
                    EntryType::Regular,
                    None,
                    vec![],
                )
            }
            Kind::Opaque => (
                format!("{}/.wh..wh..opq", e.path),
                EntryType::Regular,
                None,
                vec![],
            ),
        };
        let mut pax: Vec<(String, Vec<u8>)> = e
            .meta
            .xattrs
            .iter()
            .filter(|_| !matches!(e.kind, Kind::Whiteout | Kind::Opaque | Kind::Hardlink(_)))
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
            .collect();
        let long = name.len() > 100 || link.as_ref().is_some_and(|l| l.len() > 100);
        if long && e.pax_name {
            pax.push(("path".into(), name.clone().into_bytes()));
            if let Some(l) = &link {
                pax.push(("linkpath".into(), l.clone().into_bytes()));
            }
        }
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(e.meta.mode);
        h.set_uid(e.meta.uid);
        h.set_gid(e.meta.gid);
        h.set_mtime(e.meta.mtime);
        h.set_size(data.len() as u64);
        if let Kind::Char(ma, mi) = e.kind {
            h.set_device_major(ma).unwrap();
            h.set_device_minor(mi).unwrap();
        }
        if long && e.pax_name {
            // The PAX records carry the names; the header keeps a short stand-in.
            let short: String = name
                .chars()
                .rev()
                .take(40)
                .collect::<String>()
                .chars()
                .rev()
                .collect();
            let short = short.trim_start_matches('/').to_string();
            h.set_path(if short.is_empty() { "x" } else { &short })
                .unwrap();
            if let Some(l) = &link {
                h.set_link_name(if l.len() > 100 { "x" } else { l.as_str() })
                    .unwrap();
            }
            h.set_cksum();
            b.append(&h, &data[..]).unwrap();
        } else if let Some(l) = &link {
            b.append_link(&mut h, &name, l).unwrap();
        } else {
            b.append_data(&mut h, &name, &data[..]).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// Writes the stack as an OCI layout at `dir`, tagged `t`.
pub fn write(dir: &Path, layers: &[Vec<Entry>]) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let tar = layer_tar(l);
        let h = put_blob(dir, &tar);
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{h}"),
            "size": tar.len(),
        }));
        diff_ids.push(format!("sha256:{h}"));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let ch = put_blob(dir, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{ch}"),
            "size": config.len(),
        },
        "layers": descs,
    }))
    .unwrap();
    let mh = put_blob(dir, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{mh}"),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "t"},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}
