//! Layers that arrive uncompressed are written once: applied straight from the archive and
//! kept as their files plus a tar-split record, with no blob. `save` (docker and OCI)
//! must give back the exact layer tars, and `fsck` must notice files that no longer can.

mod common;
use common::*;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Every regular member of a tar file: name -> sha256 of its content.
fn members(path: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8_lossy(&e.path_bytes()).to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, sha(&data));
    }
    out
}

/// The sha256 of every `*/layer.tar` (or `blobs/sha256/*` layer) member.
fn layer_digests(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = members(path)
        .into_iter()
        .filter(|(n, _)| n.ends_with("layer.tar"))
        .map(|(_, d)| d)
        .collect();
    v.sort();
    v
}

fn blob_files(s: &Strata) -> usize {
    std::fs::read_dir(s.root().join("blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn an_uncompressed_archive_is_kept_as_files_and_saved_back_exactly() {
    for archive in [
        "images/busybox-wh.docker.tar",
        "archives/dive-test-docker-image.tar",
    ] {
        let s = Strata::with_driver("overlay2");
        s.load(archive);
        let img = &s.images_json()[0];
        let id = img["Id"].as_str().unwrap().to_string();
        // Only the config and the manifest are blobs; every layer is files + tar-split.
        assert_eq!(blob_files(&s), 2, "{archive}: layer blobs were written");
        let splits = std::fs::read_dir(s.root().join("tarsplit"))
            .unwrap()
            .count();
        assert!(splits >= 7, "{archive}: {splits} tar-split records");
        // docker save gives back the same layer tars, byte for byte.
        let out = s.dir.path().join("saved.tar");
        s.ok(&["save", "-o", out.to_str().unwrap(), &id]);
        assert_eq!(
            layer_digests(&out),
            layer_digests(&fixture(archive)),
            "{archive}"
        );
        // So does an OCI layout: each layer blob's name is its content's digest.
        let oci = s.dir.path().join("oci");
        s.ok(&["save", "--format", "oci", "-o", oci.to_str().unwrap(), &id]);
        for e in std::fs::read_dir(oci.join("blobs/sha256"))
            .unwrap()
            .flatten()
        {
            let data = std::fs::read(e.path()).unwrap();
            assert_eq!(sha(&data), e.file_name().to_string_lossy(), "{archive}");
        }
        s.assert_fsck_ok();
    }
}

#[test]
fn files_that_no_longer_give_the_tar_back_are_found() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    // Someone changes a layer's file behind strata's back (same length).
    let home = s.root().join("overlay2");
    let k4 = std::fs::read_dir(&home)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("diff/data/keep/k4"))
        .find(|p| p.exists())
        .unwrap();
    let mut data = std::fs::read(&k4).unwrap();
    data[0] ^= 1;
    std::fs::write(&k4, &data).unwrap();
    let fsck = s.run(&["fsck"]);
    assert!(!fsck.status.success());
    let text = String::from_utf8_lossy(&fsck.stdout);
    assert!(text.contains("do not give back its tar"), "{text}");
    // save refuses rather than write a tar that is not the layer.
    let out = s.dir.path().join("saved.tar");
    let err = s.fails(&["save", "-o", out.to_str().unwrap(), "busybox-wh:1"], 125);
    assert!(err.contains("damaged") || err.contains("DiffID"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_layer_its_files_cannot_reproduce_keeps_its_blob() {
    // The same path written twice in one layer: the first content is gone from disk.
    let s = Strata::with_driver("overlay2");
    let dir = tempfile::tempdir().unwrap();
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        for content in [&b"first"[..], b"second!"] {
            let mut h = tar::Header::new_ustar();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "f", content).unwrap();
        }
        b.into_inner().unwrap()
    };
    let diff = format!("sha256:{}", sha(&layer));
    let cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff]},
    });
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let cfg_name = format!("{}.json", sha(&cfg_bytes));
    let manifest = serde_json::json!([{"Config": cfg_name, "RepoTags": ["twice:1"], "Layers": ["l/layer.tar"]}]);
    let archive = dir.path().join("twice.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    for (name, data) in [
        (cfg_name.as_str(), cfg_bytes.clone()),
        ("l/layer.tar", layer.clone()),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.finish().unwrap();
    drop(b);
    s.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(blob_files(&s), 3, "the layer's blob is kept");
    // No shell in the image: the file is checked through a mount.
    let root = s.mounted("twice:1", "c");
    assert_eq!(std::fs::read(root.join("f")).unwrap(), b"second!");
    s.ok(&["umount", "c"]);
    let out = s.dir.path().join("saved.tar");
    s.ok(&["save", "-o", out.to_str().unwrap(), "twice:1"]);
    assert_eq!(layer_digests(&out), vec![sha(&layer)]);
    s.assert_fsck_ok();
}
