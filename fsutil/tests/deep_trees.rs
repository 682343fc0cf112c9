//! Trees as deep as a container can make them: removal must work at any depth, on a small
//! stack, with few descriptors, and never follow what the tree holds.

use rustix::fs::{Mode, OFlags};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

fn open_dir(p: &Path) -> OwnedFd {
    rustix::fs::open(
        p,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

/// A chain `d/d/d/...` of `depth` directories under `root`, a file and a symlink at every
/// thousandth level, made by descriptor (no path is ever that long).
fn deep_chain(root: &Path, depth: usize) {
    let mut fd = open_dir(root);
    for i in 0..depth {
        rustix::fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
        if i % 1000 == 0 {
            let f = rustix::fs::openat(
                &fd,
                "f",
                OFlags::CREATE | OFlags::WRONLY,
                Mode::from_raw_mode(0o644),
            )
            .unwrap();
            drop(f);
            rustix::fs::symlinkat("/", &fd, "up").unwrap();
        }
        let next = rustix::fs::openat(&fd, "d", OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())
            .unwrap();
        fd = next;
    }
}

#[test]
fn a_100000_level_tree_is_removed_on_a_small_stack() {
    let tmp = tempfile::tempdir().unwrap();
    let _mem = fsutil::testing::Tmpfs::mount(tmp.path(), 1024).unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep"), "x").unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    deep_chain(&tree, 100_000);
    // A symlink to a directory outside: removal unlinks it, never enters it.
    std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
    let parent = open_dir(tmp.path());
    // 64 KiB of stack: a recursive removal dies after a few hundred levels.
    std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || fsutil::remove_all_at(parent.as_fd(), "tree".as_ref()))
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    assert!(!tree.exists());
    assert_eq!(std::fs::read_to_string(outside.join("keep")).unwrap(), "x");
}

#[test]
fn a_wide_and_deep_tree_is_emptied_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..50 {
        let sub = tmp.path().join(format!("s{i}"));
        std::fs::create_dir(&sub).unwrap();
        deep_chain(&sub, 200);
        for j in 0..20 {
            std::fs::write(sub.join(format!("f{j}")), "y").unwrap();
        }
    }
    let root = open_dir(tmp.path());
    fsutil::tree::empty_dir(root.as_fd()).unwrap();
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn walks_stop_exactly_past_the_depth_bound() {
    for (depth, ok) in [
        (fsutil::MAX_TREE_DEPTH, true),
        (fsutil::MAX_TREE_DEPTH + 1, false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("t");
        std::fs::create_dir(&t).unwrap();
        deep_chain(&t, depth);
        let root = open_dir(tmp.path());
        let mut seen = 0;
        let r = fsutil::walk_at(
            root.as_fd(),
            "t".as_ref(),
            "t".as_ref(),
            true,
            &mut |_, _, _, _| {
                seen += 1;
                Ok(())
            },
        );
        assert_eq!(r.is_ok(), ok, "{depth} levels: {r:?}");
        if ok {
            // The top, every level, and the file and symlink made at level 0.
            assert_eq!(seen, depth + 3);
        } else {
            assert!(r
                .unwrap_err()
                .to_string()
                .contains("deeper than 512 levels"));
        }
    }
}
