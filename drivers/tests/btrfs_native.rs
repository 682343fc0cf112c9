//! btrfs's native diff against the shared tree walk, and its cost: the tree search must
//! visit what changed, not the whole layer. Runs on a btrfs made on a loop device.

use drivers::btrfs::ioctl;
use drivers::changes::tree_changes;
use drivers::{DriverOptions, LayerKind};
use loopfs::{kernel_has, LoopFs};
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn btrfs_home() -> Option<(tempfile::TempDir, LoopFs)> {
    if !kernel_has("btrfs") {
        fsutil::testing::skip("the kernel has no btrfs");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = LoopFs::create(
        "btrfs",
        &dir.path().join("img"),
        &dir.path().join("mnt"),
        512 << 20,
    )
    .unwrap();
    Some((dir, fs))
}

#[test]
fn native_diff_equals_the_tree_walk_and_visits_only_the_change() {
    let Some((_dir, lfs)) = btrfs_home() else {
        return;
    };
    let home = lfs.path().join("btrfs");
    let d = drivers::open("btrfs", &home, &DriverOptions::default()).unwrap();
    d.create("base", None, LayerKind::ReadOnly).unwrap();
    let base = d.diff_dir("base").unwrap();
    for i in 0..30 {
        let sub = base.join(format!("d{i:02}"));
        fs::create_dir(&sub).unwrap();
        for j in 0..100 {
            fs::write(sub.join(format!("f{j:03}")), format!("{i}/{j}")).unwrap();
        }
    }
    d.create("c", Some("base"), LayerKind::ReadWrite).unwrap();
    let c = d.get("c").unwrap();
    fs::write(c.join("d03/f007"), b"rewritten").unwrap();
    fs::remove_file(c.join("d10/f000")).unwrap();
    fs::write(c.join("d20/new"), b"new").unwrap();
    fs::set_permissions(c.join("d29/f099"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_dir_all(c.join("d15")).unwrap();
    fs::hard_link(c.join("d20/new"), c.join("d21/link")).unwrap();
    // Reads (atime updates) anywhere are not changes.
    for j in 0..100 {
        let _ = fs::read(c.join(format!("d05/f{j:03}"))).unwrap();
    }

    let native = d.changes("c").unwrap();
    let walked = tree_changes(Some(&base), &c).unwrap();
    assert_eq!(
        native, walked,
        "native diff must list what the tree walk lists"
    );
    assert!(d.status().contains(&("Native Diff".into(), "true".into())));

    // The search returns the touched inodes (6 changes, their directories and the 100
    // files whose atime moved), not the 3,030 the layer has.
    let fd = fsutil::open_root(&c).unwrap();
    let info = ioctl::subvol_info(&fd).unwrap();
    ioctl::commit_transaction(&fd).unwrap();
    let changed = ioctl::search_inodes_since(&fd, info.otransid).unwrap();
    assert!(
        changed.len() < 200,
        "{} inodes visited for 6 changes and 100 reads",
        changed.len()
    );
    d.put("c").unwrap();
}

#[test]
fn a_layer_that_is_not_a_snapshot_of_its_parent_falls_back_to_the_walk() {
    let Some((_dir, lfs)) = btrfs_home() else {
        return;
    };
    let home = lfs.path().join("btrfs");
    let d = drivers::open("btrfs", &home, &DriverOptions::default()).unwrap();
    d.create("a", None, LayerKind::ReadOnly).unwrap();
    fs::write(d.diff_dir("a").unwrap().join("only-in-a"), b"a").unwrap();
    d.create("b", None, LayerKind::ReadOnly).unwrap();
    fs::write(d.diff_dir("b").unwrap().join("only-in-b"), b"b").unwrap();
    // Claim b was made on a (as a hand edit or an old tool might leave it).
    fs::write(home.join("meta/b.json"), br#"{"parent":"a","rw":false}"#).unwrap();
    let got = d.changes("b").unwrap();
    let want = tree_changes(Some(&d.diff_dir("a").unwrap()), &d.diff_dir("b").unwrap()).unwrap();
    assert_eq!(got, want);
    assert!(got.iter().any(|c| c.path.as_os_str() == "only-in-a"));
    let status = d.status();
    let native = status.iter().find(|(k, _)| k == "Native Diff").unwrap();
    assert!(native.1.starts_with("false"), "{native:?}");
}
