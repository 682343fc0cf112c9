//! `migrate` between every pair of drivers available here, with the container's whole
//! filesystem compared byte for byte (its `export`) before and after each move, names and
//! image ids unchanged, a dry run that changes nothing, running containers refused, and a
//! migration killed part way that leaves a working store and completes when run again.

mod common;

use common::{driver_available, Strata};
use sha2::{Digest, Sha256};
use std::time::Duration;

const BB: &str = "/bin/busybox";

fn export_digest(s: &Strata, name: &str) -> String {
    let out = s.dir.path().join(format!("{name}-export.tar"));
    s.ok(&["export", "-o", out.to_str().unwrap(), name]);
    hex::encode(Sha256::digest(std::fs::read(&out).unwrap()))
}

fn info_driver(s: &Strata) -> String {
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["info", "--format", "json"])).unwrap();
    v["Driver"].as_str().unwrap().to_string()
}

/// A store with an image, a container that changed files, and a committed image; then
/// commands auto-detect the driver (as a user's would).
fn populated(first: &str) -> Strata {
    let mut s = Strata::with_driver(first);
    s.load("images/busybox-wh.docker.tar");
    s.ok(&[
        "run", "--name", "c", "busybox-wh:1", BB, "sh", "-c",
        "echo x > /new; rm -rf /data/replace; mkdir /data/replace; echo y > /data/replace/z; rm /data/keep/k1; echo more >> /data/keep/hard-src",
    ]);
    s.ok(&["commit", "c", "committed:1"]);
    s.driver = None;
    s
}

#[test]
fn migrate_through_every_driver_keeps_every_file_and_name() {
    // On btrfs every driver works on the same filesystem; else btrfs is left out.
    let first = if driver_available("btrfs") {
        "btrfs"
    } else {
        "overlay2"
    };
    let s = populated(first);
    assert_eq!(info_driver(&s), first);
    let view = export_digest(&s, "c");
    let images = s.ok(&["images", "--format", "json"]);
    let mut order: Vec<&str> = vec!["vfs", "overlay2"];
    if driver_available("aufs") {
        order.push("aufs");
    }
    if first == "btrfs" {
        order.push("btrfs");
    } else {
        order.push("vfs");
    }
    let mut current = first.to_string();
    for to in order {
        if to == current {
            continue;
        }
        // A dry run says what would move and changes nothing.
        let dry = s.ok(&["migrate", "--to", to, "--dry-run"]);
        assert!(
            dry.contains(&format!("{current} -> {to}")) && dry.contains("container c"),
            "{dry}"
        );
        assert_eq!(info_driver(&s), current);
        let out = s.ok(&["migrate", "--to", to, "--prune"]);
        assert!(out.contains("1 container"), "{out}");
        assert_eq!(info_driver(&s), to, "the store now uses {to}");
        assert_eq!(
            export_digest(&s, "c"),
            view,
            "{current} -> {to}: the container's files changed"
        );
        assert_eq!(
            s.ok(&["images", "--format", "json"]),
            images,
            "names and ids unchanged"
        );
        // (Whether hard-dst shares the append depends on the first driver: overlayfs
        // without an index breaks a hardlink on copy-up; the committed image keeps
        // whatever the container saw, on every driver after.)
        let o = s.run(&[
            "run",
            "--rm",
            "committed:1",
            BB,
            "cat",
            "/new",
            "/data/keep/hard-src",
        ]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "x\nhello\nmore\n",
            "{to}"
        );
        assert!(
            !s.root().join(&current).exists(),
            "--prune removed {current}'s data"
        );
        s.assert_fsck_ok();
        current = to.to_string();
    }
}

#[test]
fn running_containers_are_refused_by_name() {
    let s = populated("overlay2");
    s.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox-wh:1",
        BB,
        "sleep",
        "30",
    ]);
    let err = s.fails(&["migrate", "--to", "vfs"], 125);
    assert!(
        err.contains("busy") && err.contains("stop them first"),
        "{err}"
    );
    s.ok(&["rm", "-f", "busy"]);
    s.ok(&["migrate", "--to", "vfs"]);
    // Without --prune the source driver's data stays, and the store keeps using vfs.
    assert!(s.root().join("overlay2").exists());
    assert_eq!(info_driver(&s), "vfs");
}

#[test]
fn a_killed_migration_leaves_a_working_store_and_completes_when_run_again() {
    let s = populated("overlay2");
    let view = export_digest(&s, "c");
    let mut interrupted = 0;
    for delay in [5u64, 15, 30, 60] {
        let mut child = s
            .cmd(&["migrate", "--to", "vfs"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.code().is_some() {
            // It finished first: move back and try a shorter window.
            s.ok(&["migrate", "--to", "overlay2", "--prune"]);
            continue;
        }
        interrupted += 1;
        // The store still works with the old driver.
        assert_eq!(info_driver(&s), "overlay2");
        assert_eq!(export_digest(&s, "c"), view);
        let o = s.run(&["run", "--rm", "busybox-wh:1", BB, "true"]);
        assert_eq!(o.status.code(), Some(0));
        s.assert_fsck_ok();
        // Running it again completes.
        s.ok(&["migrate", "--to", "vfs", "--prune"]);
        assert_eq!(info_driver(&s), "vfs");
        assert_eq!(export_digest(&s, "c"), view);
        s.ok(&["migrate", "--to", "overlay2", "--prune"]);
    }
    assert!(interrupted >= 1, "no migration was killed part way");
}
