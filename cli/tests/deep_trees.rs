//! A container makes a directory tree 100,000 levels deep (unprivileged, one level at a
//! time by descriptor). Whoever removes or copies it must neither die of a stack overflow
//! nor leave the store unusable: `rm -f`, `run --rm`, the daemon's `DELETE` and archive,
//! a build whose RUN made it, and a store whose `tmp/` holds such a tree.

mod common;

use common::daemon::Daemon;
use common::Strata;
use std::path::Path;

const DEPTH: &str = "100000";

/// Runs `/h/deeptree /t 100000` in a busybox container with the helper folder `helpers`
/// bound at `/h`, with `flags` before the image; returns its output.
fn make_tree(s: &Strata, helpers: &Path, flags: &[&str]) -> String {
    let bind = format!("{}:/h:ro", helpers.display());
    let head = ["run", "--network", "none", "-v", &bind];
    let tail = ["busybox-wh:1", "/h/deeptree", "/t", DEPTH];
    s.ok(&[&head[..], flags, &tail].concat())
}

/// The store answers and passes fsck, no container is left.
fn store_usable(s: &Strata) {
    assert_eq!(s.ok(&["ps", "-aq"]).trim(), "", "a container was left");
    s.ok(&["images"]);
    s.assert_fsck_ok();
}

#[test]
fn rm_and_run_rm_remove_a_100000_level_tree() {
    let s = Strata::on_tmpfs(2048);
    let h = common::helper("deeptree", s.dir.path());
    s.load("images/busybox-wh.docker.tar");
    // `rm -f` of the container that made it, by the CLI.
    make_tree(&s, &h, &["--name", "c"]);
    s.ok(&["rm", "-f", "c"]);
    store_usable(&s);
    // `--rm`: the remover is the container's own runner.
    let out = make_tree(&s, &h, &["--rm"]);
    assert!(out.contains("made 100000 levels"), "{out}");
    store_usable(&s);
    // Detached `--rm`: the shim removes it.
    make_tree(&s, &h, &["-d", "--rm", "--name", "d"]);
    // Removal of 100,000 levels takes seconds, many more on a loaded machine.
    for _ in 0..3000 {
        if s.ok(&["ps", "-aq"]).trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    store_usable(&s);
}

#[test]
fn the_daemon_removes_a_100000_level_tree_and_refuses_to_archive_it() {
    let s = Strata::on_tmpfs(2048);
    let h = common::helper("deeptree", s.dir.path());
    s.load("images/busybox-wh.docker.tar");
    make_tree(&s, &h, &["--name", "c"]);
    let d = Daemon::start(&s);
    // `docker cp c:/t -`: refused with what the limit is, before any byte of tar.
    let (status, body) = d.request("GET", "/containers/c/archive?path=/t", b"");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("deeper than 512 levels"), "{body}");
    // `docker export`: the stream ends short, the daemon lives on.
    let _ = d.request("GET", "/containers/c/export", b"");
    let (status, body) = d.request("GET", "/_ping", b"");
    assert_eq!((status, body.as_str()), (200, "OK"));
    // `docker rm -f` on one of the daemon's threads.
    let (status, body) = d.request("DELETE", "/containers/c?force=1", b"");
    assert_eq!(status, 204, "{body}");
    let (status, _) = d.request("GET", "/containers/json?all=1", b"");
    assert_eq!(status, 200);
    drop(d);
    store_usable(&s);
}

#[test]
fn a_build_whose_run_makes_a_100000_level_tree_fails_cleanly() {
    let s = Strata::on_tmpfs(2048);
    s.load("images/busybox-wh.docker.tar");
    let ctx = s.dir.path().join("ctx");
    let h = common::helper("deeptree", s.dir.path());
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(h.join("deeptree"), ctx.join("deeptree")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox-wh:1\nCOPY deeptree /deeptree\nRUN [\"/deeptree\", \"/t\", \"{DEPTH}\"]\n"),
    )
    .unwrap();
    let err = s.fails(
        &[
            "build",
            "--network",
            "none",
            "-t",
            "deep",
            ctx.to_str().unwrap(),
        ],
        125,
    );
    assert!(err.contains("deeper than 512 levels"), "{err}");
    store_usable(&s);
    assert!(!s.ok(&["images"]).contains("deep "));
}

#[test]
fn a_store_whose_tmp_holds_a_100000_level_tree_opens() {
    // The cleaning is the drivers' shared staging code: overlay2's, and btrfs's on a
    // filesystem of its own.
    for driver in common::drivers_here()
        .into_iter()
        .filter(|d| ["overlay2", "btrfs"].contains(d))
    {
        let s = if driver == "btrfs" {
            Strata::with_driver(driver)
        } else {
            let mut s = Strata::on_tmpfs(2048);
            s.driver = Some(driver.to_string());
            s
        };
        s.load("images/busybox-wh.docker.tar");
        // What a remover that died (a stack overflow, a kill) left in the driver's tmp/,
        // named for a process that is gone.
        let home = s.root().join(driver);
        let tmp = home.join("tmp");
        assert!(tmp.is_dir(), "{driver}: no {}", tmp.display());
        let h = common::helper("deeptree", s.dir.path());
        let left = tmp.join("0123abcd.999999999");
        common::sh(
            std::process::Command::new(h.join("deeptree"))
                .arg(&left)
                .arg(DEPTH),
        );
        s.ok(&["images"]);
        assert!(!left.exists(), "{driver}: the tree in tmp/ was not removed");
        s.assert_fsck_ok();
    }
}
