//! Containers' storage verbs, configuration handling and concurrent use of one store.

mod common;

use common::{fixture, Strata};
use std::fs;

#[test]
fn create_mount_diff_umount_rm() {
    let s = Strata::new();
    s.load("images/busybox-wh.docker.tar");
    let id = s
        .ok(&["create", "--name", "web", "busybox-wh:1"])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let err = s.fails(&["create", "--name", "web", "busybox-wh:1"], 125);
    assert!(err.contains("already in use"), "{err}");
    let r1 = s.ok(&["mount", "web"]);
    let r2 = s.ok(&["mount", &id[..12]]);
    assert_eq!(r1, r2);
    let root = std::path::PathBuf::from(r1.trim());
    fs::write(root.join("new-file"), b"x").unwrap();
    fs::remove_file(root.join("data/keep/k5")).unwrap();
    fs::write(root.join("data/keep/k4"), b"rewritten").unwrap();
    let diff = s.ok(&["diff", "web"]);
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(
        lines,
        [
            "C /data",
            "C /data/keep",
            "C /data/keep/k4",
            "D /data/keep/k5",
            "A /new-file"
        ]
    );
    // The image itself is untouched.
    let other = s.mounted("busybox-wh:1", "other");
    assert!(other.join("data/keep/k5").exists() && !other.join("new-file").exists());
    let err = s.fails(&["rm", "web"], 125);
    assert!(err.contains("mounted"), "{err}");
    s.ok(&["umount", "web"]);
    s.ok(&["umount", "web"]);
    let err = s.fails(&["umount", "web"], 125);
    assert!(err.contains("not mounted"), "{err}");
    s.ok(&["rm", "web"]);
    assert!(
        !root.exists(),
        "the read-write layer is gone with the container"
    );
    s.ok(&["rm", "-f", "other"]);
    let ps: Vec<serde_json::Value> =
        serde_json::from_str(&s.ok(&["ps", "-a", "--format", "json"])).unwrap();
    assert!(ps.is_empty());
    s.fails(&["mount", "nope"], 125);
    s.assert_fsck_ok();
}

/// Runs strata with only the given arguments (no test defaults), returning (code, stderr).
fn bare(args: &[&str]) -> (Option<i32>, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn config_file_keys_flags_and_options() {
    let s = Strata::new();
    let root = s.root();
    let root = root.to_str().unwrap();
    let cfg = s.dir.path().join("bad.json");
    fs::write(&cfg, br#"{"storage-driver": "vfs", "graph": "/x"}"#).unwrap();
    let (code, _, err) = bare(&[
        "--data-root",
        root,
        "--config",
        cfg.to_str().unwrap(),
        "images",
    ]);
    assert_eq!(code, Some(125));
    assert!(err.contains("graph"), "an unknown key is named: {err}");
    fs::write(&cfg, br#"{"storage-driver": "zfs2"}"#).unwrap();
    let (code, _, err) = bare(&[
        "--data-root",
        root,
        "--config",
        cfg.to_str().unwrap(),
        "images",
    ]);
    assert_eq!(code, Some(125));
    assert!(err.contains("zfs2"), "{err}");
    // data-root from the file; the flag beats it.
    let from_file = s.dir.path().join("from-file");
    fs::write(
        &cfg,
        format!(r#"{{"data-root": "{}", "storage-driver": "vfs", "storage-opts": ["vfs.reflink=false"]}}"#, from_file.display()),
    )
    .unwrap();
    let (code, info, err) = bare(&["--config", cfg.to_str().unwrap(), "info"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        info.contains("Storage Driver: vfs") && info.contains("vfs.reflink=false"),
        "{info}"
    );
    assert!(
        from_file.join("vfs").exists(),
        "data-root came from the file"
    );
    let flag_root = s.dir.path().join("from-flag");
    let (code, _, err) = bare(&[
        "--config",
        cfg.to_str().unwrap(),
        "--data-root",
        flag_root.to_str().unwrap(),
        "images",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(flag_root.join("vfs").exists(), "the flag beats the file");
    let err = s.fails(&["--storage-opt", "vfs.bogus=1", "images"], 125);
    assert!(err.contains("vfs.bogus"), "{err}");
    let err = s.fails(&["--storage-opt", "novalue", "images"], 125);
    assert!(err.contains("KEY=VALUE"), "{err}");
    let err = s.fails(&["--storage-driver", "nope", "images"], 125);
    assert!(err.contains("unknown storage driver"), "{err}");
    s.fails(&["frobnicate"], 125);
}

#[test]
fn info_reports_every_driver() {
    let s = Strata::new();
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["info", "--format", "json"])).unwrap();
    // Auto-detection picks the first driver that works here, in Docker's order.
    let first_ok = v["Drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["Supported"] == true)
        .unwrap();
    assert_eq!(v["Driver"], first_ok["Name"]);
    assert_eq!(
        v["Driver"], "overlay2",
        "this kernel has overlayfs and the tests run as root"
    );
    let names: Vec<&str> = v["Drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["overlay2", "btrfs", "aufs", "vfs"]);
    for d in v["Drivers"].as_array().unwrap() {
        if d["Supported"] == false {
            assert!(d["Reason"].as_str().is_some_and(|r| !r.is_empty()), "{d}");
        }
    }
    assert!(v["DriverStatus"]["Backing Filesystem"].is_string());
}

#[test]
fn concurrent_commands_share_one_store() {
    let s = Strata::new();
    let files = [
        "images/busybox-wh.docker.tar",
        "archives/dive-test-docker-image.tar",
        "archives/trivy-alpine-310.tar.gz",
    ];
    let handles: Vec<_> = files
        .iter()
        .map(|f| {
            let mut c = s.cmd(&["load", "-i", fixture(f).to_str().unwrap()]);
            std::thread::spawn(move || c.output().unwrap())
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap().status.success());
    }
    assert_eq!(s.images_json().len(), 3);
    s.assert_fsck_ok();
}

#[test]
fn commit_makes_a_new_image_on_every_driver() {
    for driver in common::drivers_here() {
        let s = Strata::with_driver(driver);
        s.load("images/busybox-wh.docker.tar");
        let root = s.mounted("busybox-wh:1", "c");
        fs::write(root.join("hello"), b"world").unwrap();
        fs::remove_file(root.join("data/keep/k5")).unwrap();
        fs::remove_dir_all(root.join("data/replace")).unwrap();
        fs::create_dir(root.join("data/replace")).unwrap();
        fs::write(root.join("data/replace/fresh"), b"f").unwrap();
        // A copied-up file (overlay may mark it with trusted.overlay.* xattrs) and a user
        // xattr: the layer keeps the content and the user's xattr, never the driver's.
        fs::write(root.join("data/keep/k1"), b"changed").unwrap();
        rustix::fs::setxattr(
            root.join("hello"),
            "user.note",
            b"kept",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let id = s
            .ok(&["commit", "-m", "a message", "c", "committed:v1"])
            .trim()
            .to_string();
        assert!(id.starts_with("sha256:"), "{id}");
        let hist = s.ok(&["history", "committed:v1"]);
        assert!(
            hist.contains("strata commit c") && hist.contains("a message"),
            "{hist}"
        );
        let inspect: serde_json::Value =
            serde_json::from_str(&s.ok(&["inspect", "committed:v1"])).unwrap();
        assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 8);
        // A container of the new image sees the committed state.
        let r2 = s.mounted("committed:v1", "c2");
        assert_eq!(fs::read(r2.join("hello")).unwrap(), b"world");
        assert_eq!(fs::read(r2.join("data/keep/k1")).unwrap(), b"changed");
        let mut note = [0u8; 16];
        let n = rustix::fs::getxattr(r2.join("hello"), "user.note", &mut note[..]).unwrap();
        assert_eq!(&note[..n], b"kept", "{driver}");
        assert!(!r2.join("data/keep/k5").exists());
        let replace: Vec<_> = fs::read_dir(r2.join("data/replace"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            replace,
            ["fresh"],
            "{driver}: the recreated directory hides the old contents"
        );
        // It survives a save/load round trip with its id.
        let out = s.dir.path().join("c.tar");
        s.ok(&["save", "-o", out.to_str().unwrap(), "committed:v1"]);
        let saved = fs::read(&out).unwrap();
        assert!(
            !saved.windows(16).any(|w| w == b"trusted.overlay."),
            "{driver}: the driver's own xattrs leaked into the committed layer"
        );
        let t = Strata::with_driver(driver);
        t.ok(&["load", "-i", out.to_str().unwrap()]);
        assert_eq!(t.images_json()[0]["Id"], id.as_str());
        s.ok(&["rm", "-f", "c", "c2"]);
        s.assert_fsck_ok();
    }
}

#[test]
fn progress_is_drawn_on_a_terminal_and_not_when_piped() {
    let s = Strata::new();
    let piped = s.run(&[
        "load",
        "-i",
        fixture("images/busybox-wh.docker.tar").to_str().unwrap(),
    ]);
    assert!(piped.status.success());
    assert!(
        !String::from_utf8_lossy(&piped.stderr).contains("Applying"),
        "no progress when piped"
    );
    // `script` gives the command a pseudo-terminal.
    let t = Strata::new();
    let cmd = format!(
        "{} --data-root {} --config {} load -i {}",
        env!("CARGO_BIN_EXE_strata"),
        t.root().display(),
        t.dir.path().join("daemon.json").display(),
        fixture("images/busybox-wh.docker.tar").display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Applying layers") && text.contains("7/7"),
        "{text}"
    );
}

#[test]
fn export_then_import_gives_the_same_tree() {
    for driver in common::drivers_here() {
        let s = Strata::with_driver(driver);
        s.load("images/busybox-wh.docker.tar");
        let root = s.mounted("busybox-wh:1", "c");
        fs::write(root.join("extra"), b"e").unwrap();
        let tar = s.dir.path().join("rootfs.tar");
        s.ok(&["export", "-o", tar.to_str().unwrap(), "c"]);
        s.ok(&["import", tar.to_str().unwrap(), "flat:1"]);
        let flat = s.mounted("flat:1", "f");
        let a = fsutil::tree_manifest(&root).unwrap();
        let b = fsutil::tree_manifest(&flat).unwrap();
        assert_eq!(a.len(), b.len(), "{driver}");
        for (k, v) in &a {
            assert_eq!(Some(v), b.get(k), "{driver}: {k}");
        }
        let inspect: serde_json::Value =
            serde_json::from_str(&s.ok(&["inspect", "flat:1"])).unwrap();
        assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    }
}
