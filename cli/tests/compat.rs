//! Compatibility with the real tools: skopeo reads what strata saves, strata loads what
//! skopeo writes, and umoci unpacks the same rootfs strata mounts, file by file.

mod common;

use common::{fixture, require_tool, sh, Strata};
use std::path::Path;
use std::process::Command;

fn untar(file: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    sh(Command::new("tar").arg("-xf").arg(file).arg("-C").arg(dir));
}

#[test]
fn umoci_unpacks_the_same_rootfs_strata_mounts() {
    let umoci = require_tool("umoci");
    let s = Strata::new();
    let work = s.dir.path().join("work");
    untar(&fixture("images/busybox-wh.oci.tar"), &work);
    let bundle = s.dir.path().join("bundle");
    sh(Command::new(&umoci)
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:1", work.join("busybox-wh.oci").display()))
        .arg(&bundle));
    s.ok(&["load", "-i", work.join("busybox-wh.oci").to_str().unwrap()]);
    let ours = s.mounted("busybox-wh:1", "c");
    let a = fsutil::tree_manifest(&bundle.join("rootfs")).unwrap();
    let b = fsutil::tree_manifest(&ours).unwrap();
    let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "umoci only: {only_a:?}\nstrata only: {only_b:?}"
    );
    for (k, v) in &a {
        assert_eq!(v, &b[k], "{k} differs (umoci vs strata)");
    }
    assert!(
        a.len() > 280,
        "the whole busybox tree was compared ({} entries)",
        a.len()
    );
}

#[test]
fn skopeo_reads_strata_archives_and_layouts() {
    let skopeo = require_tool("skopeo");
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let d = s.dir.path();
    let arch = d.join("bb.tar");
    s.ok(&["save", "-o", arch.to_str().unwrap(), "busybox-wh:1"]);
    let out = sh(Command::new(&skopeo)
        .arg("inspect")
        .arg(format!("docker-archive:{}", arch.display())));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 7, "{out}");
    let layout = d.join("bb-oci");
    s.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        layout.to_str().unwrap(),
        "busybox-wh:1",
    ]);
    let out = sh(Command::new(&skopeo)
        .arg("inspect")
        .arg(format!("oci:{}:1", layout.display())));
    let w: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(w["Layers"], v["Layers"], "same layer digests in both forms");
    // skopeo copies our layout into its own docker-archive; we load that back.
    let back = d.join("back.tar");
    sh(Command::new(&skopeo)
        .arg("copy")
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!(
            "docker-archive:{}:busybox-wh:copied",
            back.display()
        )));
    let t = Strata::new();
    t.ok(&["load", "-i", back.to_str().unwrap()]);
    let imgs = t.images_json();
    assert_eq!(
        imgs[0]["Id"],
        s.images_json()[0]["Id"],
        "the image id survives skopeo copy"
    );
}

#[test]
fn oci_gzip_image_saved_as_docker_archive() {
    // Layers stored gzip-compressed go out as the uncompressed layer.tar docker expects.
    let skopeo = require_tool("skopeo");
    let s = Strata::new();
    s.load("images/busybox-wh.oci.tar");
    let arch = s.dir.path().join("from-oci.tar");
    s.ok(&["save", "-o", arch.to_str().unwrap(), "busybox-wh:1"]);
    let out = sh(Command::new(&skopeo)
        .arg("inspect")
        .arg("--config")
        .arg(format!("docker-archive:{}", arch.display())));
    let cfg: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 7);
    let t = Strata::new();
    t.ok(&["load", "-i", arch.to_str().unwrap()]);
    assert_eq!(t.images_json()[0]["Id"], s.images_json()[0]["Id"]);
}

#[test]
fn strata_loads_what_skopeo_writes() {
    let skopeo = require_tool("skopeo");
    let s = Strata::new();
    let d = s.dir.path();
    let layout = d.join("from-skopeo");
    sh(Command::new(&skopeo)
        .arg("copy")
        .arg(format!(
            "docker-archive:{}",
            fixture("images/busybox-wh.docker.tar").display()
        ))
        .arg(format!("oci:{}:v9", layout.display())));
    s.ok(&["load", "-i", layout.to_str().unwrap()]);
    let imgs = s.images_json();
    assert_eq!(imgs[0]["RepoTags"][0], "from-skopeo:v9");
    let r = s.mounted("from-skopeo:v9", "c");
    assert!(!r.join("data/gone").exists());
    assert_eq!(
        std::fs::read_to_string(r.join("data/keep/k4")).unwrap(),
        "keep 4\nchanged\n"
    );
}

#[test]
fn docker_loads_strata_archives_and_strata_loads_docker_save() {
    let docker = require_tool("docker");
    let info = Command::new(&docker).arg("info").output().unwrap();
    assert!(
        info.status.success(),
        "dockerd is not running: scripts/test.sh starts it (dockerd --iptables=false --ip6tables=false --bridge=none)"
    );
    let s = Strata::new();
    s.load("images/busybox-wh.oci.tar");
    let tag = format!("strata-compat-{}:t", std::process::id());
    s.ok(&["tag", "busybox-wh:1", &tag]);
    let arch = s.dir.path().join("for-docker.tar");
    s.ok(&["save", "-o", arch.to_str().unwrap(), &tag]);
    sh(Command::new(&docker).arg("load").arg("-i").arg(&arch));
    let id = sh(Command::new(&docker).args(["image", "inspect", "--format", "{{.Id}}", &tag]));
    let ours = s.images_json()[0]["Id"].as_str().unwrap().to_string();
    assert_eq!(id.trim(), ours, "docker gives the image the same id");
    let back = s.dir.path().join("from-docker.tar");
    sh(Command::new(&docker)
        .arg("save")
        .arg("-o")
        .arg(&back)
        .arg(&tag));
    let _ = Command::new(&docker).args(["rmi", "-f", &tag]).output();
    let t = Strata::new();
    t.ok(&["load", "-i", back.to_str().unwrap()]);
    assert_eq!(t.images_json()[0]["Id"].as_str().unwrap(), ours);
    let r = t.mounted(&tag, "c");
    assert_eq!(
        std::fs::read_to_string(r.join("data/keep/k4")).unwrap(),
        "keep 4\nchanged\n"
    );
}
