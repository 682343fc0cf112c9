//! overlay2 specifics: deep images past Docker's ~125-layer limit, mount state repaired
//! after a crash, a clear refusal on overlayfs, and the native diff.

mod common;

use common::Strata;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn layer_tar(n: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    let data = format!("layer {n}\n");
    h.set_size(data.len() as u64);
    b.append_data(&mut h, format!("layers/f{n:03}"), data.as_bytes())
        .unwrap();
    if n > 0 && n.is_multiple_of(10) {
        // Every tenth layer deletes the file of the layer before it.
        let mut w = tar::Header::new_gnu();
        w.set_mode(0o644);
        w.set_size(0);
        b.append_data(&mut w, format!("layers/.wh.f{:03}", n - 1), &[][..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes an OCI layout of an image with `n` layers to `dir`.
fn deep_image(dir: &Path, n: usize) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..n {
        let t = layer_tar(i);
        let d = sha(&t);
        fs::write(blobs.join(&d), &t).unwrap();
        layers.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{d}"), "size": t.len()}));
        diff_ids.push(format!("sha256:{d}"));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": []
    }))
    .unwrap();
    let cd = sha(&config);
    fs::write(blobs.join(&cd), &config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cd}"), "size": config.len()},
        "layers": layers
    }))
    .unwrap();
    let md = sha(&manifest);
    fs::write(blobs.join(&md), &manifest).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{md}"),
            "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "300"}}]}))
        .unwrap(),
    )
    .unwrap();
}

#[test]
fn a_300_layer_image_mounts() {
    let s = Strata::with_driver("overlay2");
    let layout = s.dir.path().join("deep");
    deep_image(&layout, 300);
    s.ok(&["load", "-i", layout.to_str().unwrap()]);
    let root = s.mounted("deep:300", "deep");
    let mut names: Vec<String> = fs::read_dir(root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    // 300 files, minus the 29 that a later layer whited out.
    assert_eq!(names.len(), 300 - 29, "{names:?}");
    assert!(!names.contains(&"f009".to_string()) && names.contains(&"f010".to_string()));
    assert_eq!(
        fs::read_to_string(root.join("layers/f299")).unwrap(),
        "layer 299\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("layers/f000")).unwrap(),
        "layer 0\n"
    );
    fs::write(root.join("written"), b"upper").unwrap();
    assert_eq!(s.ok(&["diff", "deep"]), "A /written\n");
    s.ok(&["umount", "deep"]);
    s.ok(&["rm", "deep"]);
    s.assert_fsck_ok();
}

fn mounted_points(under: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let base = under.to_string_lossy().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&base))
        .map(str::to_string)
        .collect()
}

#[test]
fn mount_state_is_repaired_after_a_crash() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let root = s.mounted("busybox-wh:1", "c");
    assert_eq!(
        mounted_points(s.dir.path()),
        [root.to_string_lossy().to_string()]
    );
    // A reboot: the mount is gone but the count says 1. The next start resets it.
    rustix::mount::unmount(&root, rustix::mount::UnmountFlags::empty()).unwrap();
    s.ok(&["images"]);
    let ps: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "c"])).unwrap();
    assert_eq!(ps[0]["GraphDriver"]["Data"]["Mounts"], 0);
    s.ok(&["rm", "c"]);
    // A crash after mounting but before counting: the stray mount is removed at start.
    let root = s.mounted("busybox-wh:1", "d");
    let id = root
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    fs::remove_file(s.root().join("overlay2/mounts").join(&id)).unwrap();
    s.ok(&["images"]);
    assert!(mounted_points(s.dir.path()).is_empty(), "stray mount left");
    s.ok(&["rm", "d"]);
    s.assert_fsck_ok();
}

#[test]
fn refuses_overlay_on_overlayfs_with_the_reason() {
    let s = Strata::new();
    let base = s.dir.path();
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir_all(base.join(d)).unwrap();
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        base.join("lower").display(),
        base.join("upper").display(),
        base.join("work").display()
    );
    let copts = std::ffi::CString::new(opts).unwrap();
    rustix::mount::mount(
        "overlay",
        base.join("merged"),
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(copts.as_c_str()),
    )
    .unwrap();
    let root: PathBuf = base.join("merged/root");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "--config",
            base.join("daemon.json").to_str().unwrap(),
            "--data-root",
            root.to_str().unwrap(),
        ])
        .args(["info", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ov = v["Drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["Name"] == "overlay2")
        .unwrap()
        .clone();
    assert_eq!(ov["Supported"], false);
    assert!(ov["Reason"].as_str().unwrap().contains("overlayfs"), "{ov}");
    // Auto-detection falls through, in order, to the next driver that works: aufs (the
    // FUSE union) where the kernel has FUSE, else vfs.
    let next = if common::driver_available("aufs") {
        "aufs"
    } else {
        "vfs"
    };
    assert_eq!(
        v["Driver"], next,
        "auto-detection falls through to a driver that works"
    );
    let err = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "--config",
            base.join("daemon.json").to_str().unwrap(),
            "--data-root",
            root.to_str().unwrap(),
        ])
        .args(["--storage-driver", "overlay2", "images"])
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&err.stderr).contains("not supported here"));
}

#[test]
fn native_diff_lists_a_containers_writes() {
    let s = Strata::with_driver("overlay2");
    s.load("images/busybox-wh.docker.tar");
    let root = s.mounted("busybox-wh:1", "w");
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..1000 {
        fs::write(root.join(format!("many/f{i:04}")), format!("{i}")).unwrap();
    }
    fs::remove_dir_all(root.join("data/replace")).unwrap();
    fs::create_dir(root.join("data/replace")).unwrap();
    fs::write(root.join("data/replace/again"), b"x").unwrap();
    fs::remove_file(root.join("bin/busybox")).unwrap();
    let diff = s.ok(&["diff", "w"]);
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(
        lines.len(),
        1 + 1000 + 5,
        "{}",
        &diff[..diff.len().min(400)]
    );
    assert!(lines.contains(&"D /bin/busybox"));
    assert!(lines.contains(&"A /many") && lines.contains(&"A /many/f0999"));
    assert!(lines.contains(&"C /data/replace") && lines.contains(&"A /data/replace/again"));
    let info = s.ok(&["info"]);
    assert!(info.contains("Native Overlay Diff: true"), "{info}");
}
