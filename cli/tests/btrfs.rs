//! The btrfs driver through the CLI, on a btrfs made for each test on a loop device: the
//! whole image/container path, native diff, size limits through qgroups, refusal off
//! btrfs, and no orphan subvolumes after rm, rmi or a failed load.

mod common;

use common::{driver_available, require_tool, sh, Strata};
use std::fs;
use std::io::Write;
use std::process::Command;

/// Subvolumes `btrfs subvolume list` shows under the data root (the filesystem's own view,
/// not strata's bookkeeping).
fn subvolumes(s: &Strata) -> Vec<String> {
    let btrfs = require_tool("btrfs");
    sh(Command::new(btrfs)
        .args(["subvolume", "list"])
        .arg(s.root()))
    .lines()
    .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
    .collect()
}

#[test]
fn images_and_containers_on_btrfs_leave_no_orphan_subvolumes() {
    if !driver_available("btrfs") {
        return;
    }
    let s = Strata::with_driver("btrfs");
    s.load("images/busybox-wh.docker.tar");
    // One subvolume per layer, each a snapshot of the one below.
    assert_eq!(subvolumes(&s).len(), 7, "{:?}", subvolumes(&s));
    let root = s.mounted("busybox-wh:1", "c");
    assert_eq!(
        fs::read_to_string(root.join("data/keep/k4")).unwrap(),
        "keep 4\nchanged\n"
    );
    assert!(!root.join("data/gone").exists());
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..200 {
        fs::write(root.join(format!("many/f{i:03}")), i.to_string()).unwrap();
    }
    fs::write(root.join("data/keep/k1"), b"changed").unwrap();
    fs::remove_file(root.join("bin/busybox")).unwrap();
    // Reading a file (an atime update) is not a change.
    let _ = fs::read(root.join("etc/passwd")).unwrap();
    let diff = s.ok(&["diff", "c"]);
    let lines: Vec<&str> = diff.lines().collect();
    assert!(lines.contains(&"A /many") && lines.contains(&"A /many/f199"));
    assert!(lines.contains(&"C /data/keep/k1") && lines.contains(&"C /data/keep"));
    assert!(lines.contains(&"D /bin/busybox") && lines.contains(&"C /bin"));
    assert!(!lines.iter().any(|l| l.contains("passwd")), "{diff}");
    assert_eq!(lines.len(), 1 + 200 + 3 + 2, "{diff}");
    let info = s.ok(&["info"]);
    assert!(
        info.contains("Backing Filesystem: btrfs") && info.contains("Native Diff: true"),
        "{info}"
    );
    s.ok(&["commit", "c", "next:1"]);
    let r2 = s.mounted("next:1", "c2");
    assert_eq!(fs::read(r2.join("data/keep/k1")).unwrap(), b"changed");
    assert!(!r2.join("bin/busybox").exists());
    s.ok(&["rm", "-f", "c", "c2"]);
    s.ok(&["rmi", "next:1", "busybox-wh:1"]);
    assert_eq!(
        subvolumes(&s),
        Vec::<String>::new(),
        "rm and rmi destroy every subvolume"
    );
    s.assert_fsck_ok();
    // A subvolume nothing names (a crash between snapshot and record): fsck lists it and
    // prune destroys it.
    let orphan = s.root().join("btrfs/subvolumes/0123abcd");
    sh(Command::new(require_tool("btrfs"))
        .args(["subvolume", "create"])
        .arg(&orphan));
    let notes = s.ok(&["fsck"]);
    assert!(
        notes.contains("0123abcd") && notes.contains("belongs to nothing"),
        "{notes}"
    );
    s.ok(&["system", "prune"]);
    assert_eq!(subvolumes(&s), Vec::<String>::new());
}

#[test]
fn a_failed_load_leaves_no_subvolume() {
    if !driver_available("btrfs") {
        return;
    }
    let s = Strata::with_driver("btrfs");
    // A docker archive whose second layer is cut short.
    let src = fs::read(common::fixture("images/busybox-wh.docker.tar")).unwrap();
    let cut = s.dir.path().join("cut.tar");
    fs::write(&cut, &src[..src.len() * 3 / 4]).unwrap();
    s.fails(&["load", "-i", cut.to_str().unwrap()], 125);
    assert_eq!(subvolumes(&s), Vec::<String>::new());
    s.assert_fsck_ok();
}

#[test]
fn btrfs_is_refused_off_btrfs_with_the_reason() {
    let s = Strata::new();
    let err = s.fails(&["--storage-driver", "btrfs", "info"], 125);
    assert!(
        err.contains("not btrfs") && err.contains("--data-root"),
        "{err}"
    );
}

#[test]
fn size_limits_need_quotas_and_are_enforced() {
    if !driver_available("btrfs") {
        return;
    }
    let s = Strata::with_driver("btrfs");
    s.load("images/busybox-wh.docker.tar");
    let err = s.fails(
        &[
            "create",
            "--storage-opt",
            "size=16M",
            "--name",
            "q",
            "busybox-wh:1",
        ],
        125,
    );
    assert!(err.contains("btrfs quota enable"), "{err}");
    let ctrs = s.ok(&["ps", "-a", "-q"]);
    assert!(
        ctrs.trim().is_empty(),
        "a refused create leaves no container"
    );
    let err = s.fails(
        &[
            "create",
            "--storage-opt",
            "btrfs.min_space=32M",
            "--storage-opt",
            "size=16M",
            "busybox-wh:1",
        ],
        125,
    );
    assert!(err.contains("btrfs.min_space"), "{err}");
    let err = s.fails(
        &["create", "--storage-opt", "size=lots", "busybox-wh:1"],
        125,
    );
    assert!(err.contains("size=lots"), "{err}");

    sh(Command::new(require_tool("btrfs"))
        .args(["quota", "enable"])
        .arg(s.root()));
    s.ok(&[
        "create",
        "--storage-opt",
        "size=16M",
        "--name",
        "q",
        "busybox-wh:1",
    ]);
    let root = std::path::PathBuf::from(s.ok(&["mount", "q"]).trim());
    // 32 MiB into a 16 MiB container: the write (or its flush) fails with EDQUOT.
    let r = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(root.join("big"))?;
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..32 {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    })();
    let e = r.expect_err("a write over the size limit must fail");
    assert_eq!(
        e.raw_os_error(),
        Some(rustix::io::Errno::DQUOT.raw_os_error()),
        "{e}"
    );
    // Within the limit is fine.
    fs::remove_file(root.join("big")).unwrap();
    s.ok(&["umount", "q"]);
    s.ok(&["rm", "q"]);
}

#[test]
fn subvolumes_a_container_made_inside_its_layer_go_with_it() {
    if !driver_available("btrfs") {
        return;
    }
    let s = Strata::with_driver("btrfs");
    s.load("images/busybox-wh.docker.tar");
    let before = subvolumes(&s).len();
    let root = s.mounted("busybox-wh:1", "c");
    // What a container can do with the ioctl (no capability needed): nested subvolumes.
    let btrfs = require_tool("btrfs");
    sh(Command::new(&btrfs)
        .args(["subvolume", "create"])
        .arg(root.join("tmp/nest")));
    sh(Command::new(&btrfs)
        .args(["subvolume", "create"])
        .arg(root.join("tmp/nest/deeper")));
    fs::write(root.join("tmp/nest/deeper/f"), b"x").unwrap();
    assert_eq!(subvolumes(&s).len(), before + 3, "{:?}", subvolumes(&s));
    s.ok(&["umount", "c"]);
    s.ok(&["rm", "c"]);
    assert_eq!(subvolumes(&s).len(), before, "{:?}", subvolumes(&s));
    s.assert_fsck_ok();
}
