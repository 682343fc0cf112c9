//! Loading real images made by Docker, skopeo, kaniko and others, and checking the trees.

mod common;

use common::{fixture, Strata};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The tree the busybox-wh README promises after all 7 layers.
fn assert_busybox_wh_tree(r: &Path) {
    let mut keep: Vec<String> = fs::read_dir(r.join("data/keep"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    keep.sort();
    assert_eq!(keep, ["hard-dst", "hard-src", "k1", "k4", "k5"]);
    let md = |p: &str| fs::symlink_metadata(r.join(p)).unwrap();
    assert_eq!(
        md("data/keep/hard-src").ino(),
        md("data/keep/hard-dst").ino(),
        "hardlink pair"
    );
    assert_eq!(md("data/keep/k1").mode() & 0o7777, 0o640);
    assert_eq!(
        fs::read_to_string(r.join("data/keep/k4")).unwrap(),
        "keep 4\nchanged\n"
    );
    let replace: Vec<_> = fs::read_dir(r.join("data/replace"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(replace, ["only-new"]);
    assert!(!r.join("data/gone").exists());
    assert!(fs::symlink_metadata(r.join("bin/vi")).is_err());
    assert!(fs::symlink_metadata(r.join("usr/bin/wget")).is_err());
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(
        fs::read_link(r.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert!(md("bin/busybox").len() > 500_000);
}

/// Every driver the CLI tests run the main paths on.
#[test]
fn busybox_wh_in_every_archive_form_gives_the_expected_tree() {
    for driver in common::drivers_here() {
        busybox_wh_on(driver);
    }
}

fn busybox_wh_on(driver: &str) {
    for (i, f) in [
        "images/busybox-wh.docker.tar",
        "images/busybox-wh.docker.tar.gz",
        "images/busybox-wh.oci.tar",
    ]
    .iter()
    .enumerate()
    {
        let s = Strata::with_driver(driver);
        let out = s.load(f);
        assert!(out.contains("Loaded image: busybox-wh:1"), "{f}: {out}");
        let r = s.mounted("busybox-wh:1", &format!("c{i}"));
        assert_busybox_wh_tree(&r);
        s.assert_fsck_ok();
    }
}

#[test]
fn docker_archive_ids_match_docker() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let imgs = s.images_json();
    // The id Docker gave this image (../shared/images/README.md).
    assert!(
        imgs[0]["Id"]
            .as_str()
            .unwrap()
            .starts_with("sha256:5837ceff625e"),
        "{imgs:?}"
    );
    assert_eq!(imgs[0]["Layers"], 7);
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["inspect", "busybox-wh:1"])).unwrap();
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 7);
    // By repository digest, by short id, and by full id.
    let manifest = imgs[0]["ManifestDigest"].as_str().unwrap();
    let by_digest: serde_json::Value =
        serde_json::from_str(&s.ok(&["inspect", &format!("busybox-wh@{manifest}")])).unwrap();
    assert_eq!(by_digest[0]["Id"], imgs[0]["Id"]);
    s.ok(&["inspect", "5837ceff625e"]);
    s.ok(&["inspect", imgs[0]["Id"].as_str().unwrap()]);
    let err = s.fails(&["inspect", "nosuch:image"], 125);
    assert!(err.contains("No such image"), "{err}");
    let hist = s.ok(&["history", "busybox-wh:1"]);
    assert!(hist.contains("echo changed >> /data/keep/k4"), "{hist}");
}

#[test]
fn dive_fourteen_layers_with_moves_and_directory_whiteouts() {
    let s = Strata::new();
    s.load("archives/dive-test-docker-image.tar");
    let r = s.mounted("dive-test:latest", "d");
    // `rm -rf root/example` in layer 10 is a directory whiteout.
    assert!(!r.join("root/example").exists());
    // 392 hardlinks to busybox in layer 0 stay one inode.
    let bb = fs::metadata(r.join("bin/busybox")).unwrap();
    assert!(bb.nlink() > 300, "nlink {}", bb.nlink());
    assert_eq!(fs::metadata(r.join("bin/ls")).unwrap().ino(), bb.ino());
    assert_eq!(fs::metadata(r.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
    // The kaniko build of the same Dockerfile (gzip layers, config named sha256:<hex>).
    s.load("archives/dive-test-kaniko-image.tar");
    let k = s.mounted("dive-test:kaniko-latest", "k");
    assert!(!k.join("root/example").exists());
    assert!(k.join("bin/busybox").exists());
}

#[test]
fn directory_whited_out_then_recreated() {
    let s = Strata::new();
    s.load("archives/gcr-whiteout_dir.tar");
    s.load("archives/gcr-whiteout_image.tar");
    s.load("archives/gcr-overwritten_file.tar");
    let imgs = s.images_json();
    assert_eq!(imgs.len(), 3);
    let r = s.mounted("bazel/pkg/v1/mutate:whiteout_image", "w");
    assert!(!r.join("foo.txt").exists());
    let o = s.mounted("bazel/pkg/v1/mutate:overwritten_file", "o");
    let entries: Vec<_> = fs::read_dir(&o)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!entries.is_empty());
    s.assert_fsck_ok();
}

#[test]
fn oci_layouts_compressed_every_way_and_platform_choice() {
    for c in ["uncompressed", "gzip", "zstd"] {
        let s = Strata::new();
        let f = fixture(&format!("archives/dive-test-oci-{c}-image.tar"));
        // The image is arm64 only: the default linux/amd64 is refused with the choices.
        let err = s.fails(&["load", "-i", f.to_str().unwrap()], 125);
        assert!(
            err.contains("linux/arm64") && err.contains("--platform"),
            "{err}"
        );
        assert!(s.images_json().is_empty());
        s.ok(&[
            "load",
            "--platform",
            "linux/arm64",
            "-i",
            f.to_str().unwrap(),
        ]);
        assert_eq!(s.images_json().len(), 1, "{c}");
        s.assert_fsck_ok();
    }
}

#[test]
fn docker25_hybrid_bundles_links_and_gzipped_archives() {
    let s = Strata::new();
    let out = s.load("archives/gcr-hello-world-v25.tar");
    assert!(out.contains("sha256:ee301c921b8a"), "{out}");
    let out = s.load("archives/gcr-test_bundle.tar");
    assert!(
        out.contains("test_image_1:latest") && out.contains("test_image_2:latest"),
        "{out}"
    );
    // A layer.tar that is a symlink to another image's layer.tar.
    let out = s.load("archives/gcr-test_link.tar");
    assert!(out.contains("test_image_3"), "{out}");
    let out = s.load("archives/trivy-alpine-310.tar.gz");
    assert!(out.contains("alpine:3.10"), "{out}");
    let r = s.mounted("alpine:3.10", "a");
    assert!(fs::read_to_string(r.join("etc/alpine-release"))
        .unwrap()
        .starts_with("3.10"));
    s.assert_fsck_ok();
}

#[test]
fn save_and_load_round_trip_keeps_ids_and_trees() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let before = s.images_json()[0]["Id"].clone();
    for (fmt, name) in [
        ("docker", "out.tar"),
        ("oci", "out-oci"),
        ("oci", "out-oci.tar"),
    ] {
        let out = s.dir.path().join(name);
        s.ok(&[
            "save",
            "--format",
            fmt,
            "-o",
            out.to_str().unwrap(),
            "busybox-wh:1",
        ]);
        let t = Strata::new();
        t.ok(&["load", "-i", out.to_str().unwrap()]);
        let imgs = t.images_json();
        assert_eq!(imgs[0]["Id"], before, "{fmt} {name}");
        assert_eq!(imgs[0]["RepoTags"][0], "busybox-wh:1", "{fmt} {name}");
        assert_busybox_wh_tree(&t.mounted("busybox-wh:1", "c"));
    }
}

#[test]
fn tag_rmi_and_garbage_collection() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    s.ok(&["tag", "busybox-wh:1", "mybox"]);
    assert!(s.ok(&["images"]).contains("mybox"));
    // Untagging one of two names keeps the image.
    let out = s.ok(&["rmi", "mybox"]);
    assert!(out.contains("Untagged: mybox:latest"), "{out}");
    assert_eq!(s.images_json().len(), 1);
    // A container keeps its image.
    s.ok(&["create", "--name", "c", "busybox-wh:1"]);
    let err = s.fails(&["rmi", "busybox-wh:1"], 125);
    assert!(err.contains("used by container"), "{err}");
    s.ok(&["rm", "c"]);
    let out = s.ok(&["rmi", "busybox-wh:1"]);
    assert!(out.contains("Deleted: sha256:5837ceff625e"), "{out}");
    assert!(s.images_json().is_empty());
    let count = |d: &str| fs::read_dir(s.root().join(d)).unwrap().count();
    assert_eq!(count("layers"), 0, "all layers freed");
    assert_eq!(count("blobs/sha256"), 0, "all blobs freed");
    let info: serde_json::Value =
        serde_json::from_str(&s.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(
        info["DriverStatus"]["Layers"], "0",
        "all driver layers freed: {info}"
    );
    s.assert_fsck_ok();
}

#[test]
fn shared_layers_are_stored_once() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    s.load("images/busybox-wh.docker.tar.gz");
    assert_eq!(
        s.images_json().len(),
        1,
        "the same image twice is one image"
    );
    assert_eq!(fs::read_dir(s.root().join("layers")).unwrap().count(), 7);
}

#[test]
fn import_a_rootfs_tar() {
    let s = Strata::new();
    let id = s.ok(&[
        "import",
        fixture("layers/regclient-layer-wh.tar").to_str().unwrap(),
        "imported:v1",
    ]);
    assert!(id.trim().starts_with("sha256:"));
    let r = s.mounted("imported:v1", "i");
    // A whiteout in a first layer hides nothing and never appears in the rootfs.
    for e in walk(&r) {
        assert!(!e.contains(".wh."), "{e}");
    }
    let t = s.ok(&[
        "import",
        fixture("layers/tarsplit-longlink.tar.gz").to_str().unwrap(),
        "longlink",
    ]);
    assert!(t.starts_with("sha256:"));
    s.assert_fsck_ok();
}

#[test]
fn xattrs_and_device_nodes_from_real_tars() {
    let s = Strata::new();
    s.ok(&[
        "import",
        fixture("layers/tarsplit-xattrs.tar").to_str().unwrap(),
        "x",
    ]);
    let r = s.mounted("x", "x");
    let list = rustix::fs::llistxattr(r.join("small.txt"), &mut [0u8; 256][..]).unwrap();
    assert!(list > 0, "xattrs kept");
    s.ok(&[
        "import",
        fixture("layers/moby-xattr-layer.tar").to_str().unwrap(),
        "mx",
    ]);
    s.ok(&[
        "import",
        fixture("layers/tarsplit-ustar-file-devs.tar")
            .to_str()
            .unwrap(),
        "devs",
    ]);
    s.assert_fsck_ok();
}

fn walk(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        out.push(e.file_name().to_string_lossy().to_string());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}
