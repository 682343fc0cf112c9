//! An image whose upper layer only makes sense over the one below (issue 13): an implied
//! `/tmp` that must keep its sticky mode, a file written through a `lib -> usr/lib`
//! symlink of the lower layer, a hardlink to a lower file, a directory whited out and
//! made again. Loaded on every driver, a container's `diff`, `commit`, `export` (and the
//! same after `migrate`) give the same bytes everywhere.

mod common;

use common::{driver_available, drivers_here, Strata};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;
use tar::{Builder, EntryType, Header};

fn entry(b: &mut Builder<Vec<u8>>, kind: EntryType, path: &str, mode: u32, data: &[u8]) {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_500_000_000);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn link(b: &mut Builder<Vec<u8>>, kind: EntryType, path: &str, target: &str) {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o777);
    h.set_mtime(1_500_000_000);
    h.set_size(0);
    b.append_link(&mut h, path, target).unwrap();
}

fn lower() -> Vec<u8> {
    let mut b = Builder::new(Vec::new());
    entry(&mut b, EntryType::Directory, "tmp/", 0o1777, b"");
    entry(&mut b, EntryType::Directory, "usr/", 0o755, b"");
    entry(&mut b, EntryType::Directory, "usr/lib/", 0o755, b"");
    link(&mut b, EntryType::Symlink, "lib", "usr/lib");
    entry(&mut b, EntryType::Directory, "bin/", 0o755, b"");
    entry(&mut b, EntryType::Regular, "bin/tool", 0o755, b"tool\n");
    link(&mut b, EntryType::Link, "bin/tool-alias", "bin/tool");
    entry(&mut b, EntryType::Directory, "d/", 0o755, b"");
    entry(&mut b, EntryType::Regular, "d/old", 0o644, b"old\n");
    b.into_inner().unwrap()
}

fn upper() -> Vec<u8> {
    let mut b = Builder::new(Vec::new());
    entry(&mut b, EntryType::Regular, "tmp/foo", 0o644, b"foo\n");
    entry(&mut b, EntryType::Regular, "lib/x.so", 0o755, b"x\n");
    link(&mut b, EntryType::Link, "bin/tool2", "bin/tool");
    entry(&mut b, EntryType::Regular, ".wh.d", 0o644, b"");
    entry(&mut b, EntryType::Directory, "d/", 0o700, b"");
    entry(&mut b, EntryType::Regular, "d/new", 0o644, b"new\n");
    b.into_inner().unwrap()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The two layers as an OCI layout tagged `copyups:1`.
fn write_layout(dir: &Path) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |data: &[u8]| {
        let h = sha(data);
        fs::write(dir.join("blobs/sha256").join(&h), data).unwrap();
        h
    };
    let layers: Vec<Vec<u8>> = vec![lower(), upper()];
    let hashes: Vec<String> = layers.iter().map(|l| put(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/tool"]},
        "rootfs": {"type": "layers", "diff_ids": hashes.iter().map(|h| format!("sha256:{h}")).collect::<Vec<_>>()},
    }))
    .unwrap();
    let ch = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{ch}"), "size": config.len()},
        "layers": layers.iter().zip(&hashes).map(|(l, h)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{h}"), "size": l.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let mh = put(&manifest);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{mh}"),
        "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "copyups:1"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// What a driver gives: the container's `diff`, the committed layer's DiffID, the
/// export's sha256, the rootfs as seen by `mount`.
#[derive(Debug, PartialEq)]
struct Outcome {
    diff: String,
    committed_layer: String,
    export: String,
}

fn export_digest(s: &Strata, name: &str) -> String {
    let out = s.dir.path().join(format!("{name}.tar"));
    s.ok(&["export", "-o", out.to_str().unwrap(), name]);
    sha(&fs::read(&out).unwrap())
}

fn outcome(driver: &str, layout: &Path, added: &Path) -> (Strata, Outcome) {
    let s = Strata::with_driver(driver);
    s.ok(&["load", "-i", layout.to_str().unwrap()]);
    s.ok(&["create", "--name", "c", "copyups:1"]);
    let root = Path::new(s.ok(&["mount", "c"]).trim()).to_path_buf();
    let meta = fs::metadata(root.join("tmp")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        meta.mode() & 0o7777,
        0o1777,
        "{driver}: /tmp keeps its mode"
    );
    assert_eq!(meta.mtime(), 1_500_000_000, "{driver}: and its time");
    assert_eq!(
        fs::read(root.join("usr/lib/x.so")).unwrap(),
        b"x\n",
        "{driver}"
    );
    assert_eq!(
        fs::metadata(root.join("bin/tool2")).unwrap().ino(),
        fs::metadata(root.join("bin/tool-alias")).unwrap().ino(),
        "{driver}: one link group"
    );
    let mut d: Vec<_> = fs::read_dir(root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    d.sort();
    assert_eq!(d, ["new"], "{driver}: the re-made d/ hides the old one");
    s.ok(&["umount", "c"]);
    s.ok(&["cp", added.to_str().unwrap(), "c:/added"]);
    let diff = s.ok(&["diff", "c"]);
    s.ok(&["commit", "c", "out:1"]);
    let inspect: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "out:1"])).unwrap();
    let layers = inspect[0]["RootFS"]["Layers"].as_array().unwrap();
    let committed_layer = layers.last().unwrap().as_str().unwrap().to_string();
    let export = export_digest(&s, "c");
    (
        s,
        Outcome {
            diff,
            committed_layer,
            export,
        },
    )
}

#[test]
fn containers_of_an_image_that_needs_copy_ups_are_the_same_on_every_driver() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(&layout);
    let added = tmp.path().join("added");
    fs::write(&added, "added\n").unwrap();
    let when = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_600_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_600_000_000,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, &added, &when, rustix::fs::AtFlags::empty()).unwrap();

    let mut first: Option<(String, Outcome)> = None;
    let mut stores = Vec::new();
    for driver in drivers_here() {
        let (s, o) = outcome(driver, &layout, &added);
        assert!(o.diff.contains("A /added"), "{driver}: {}", o.diff);
        match &first {
            None => first = Some((driver.to_string(), o)),
            Some((d0, o0)) => assert_eq!(&o, o0, "{driver} differs from {d0}"),
        }
        stores.push((driver, s));
    }
    let (_, reference) = first.expect("no driver here");
    // A migrated container is still the same bytes.
    for (driver, s) in stores.iter_mut() {
        let to = if *driver == "vfs" { "overlay2" } else { "vfs" };
        if !driver_available(to) {
            continue;
        }
        s.ok(&["migrate", "--to", to]);
        s.driver = Some(to.to_string());
        assert_eq!(export_digest(s, "c"), reference.export, "{driver} -> {to}");
    }
}
