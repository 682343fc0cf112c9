//! overlay2's native diff against the shared tree walk, and its fallback when an upper
//! directory holds redirect or metacopy entries.

mod common;

use common::TarBuilder;
use drivers::{ChangeKind, Driver, DriverOptions, LayerKind};
use layerstore::tarfs::apply_layer;

fn setup(home: &std::path::Path) -> Box<dyn Driver> {
    let d = drivers::open("overlay2", home, &DriverOptions::default()).unwrap();
    d.create("l1", None, LayerKind::ReadOnly).unwrap();
    let base = TarBuilder::new()
        .dir("etc", 0o755)
        .file("etc/a", b"a")
        .file("etc/b", b"b")
        .dir("var", 0o755)
        .dir("var/old", 0o755)
        .file("var/old/x", b"x")
        .build();
    apply_layer(&base[..], &d.diff_dir("l1").unwrap(), d.whiteout_format()).unwrap();
    d.create("l2", Some("l1"), LayerKind::ReadWrite).unwrap();
    d
}

#[test]
fn native_diff_agrees_with_the_tree_walk() {
    let tmp = tempfile::tempdir().unwrap();
    let d = setup(tmp.path());
    let root = d.get("l2").unwrap();
    std::fs::write(root.join("etc/a"), b"changed").unwrap();
    std::fs::remove_file(root.join("etc/b")).unwrap();
    std::fs::remove_dir_all(root.join("var/old")).unwrap();
    std::fs::create_dir(root.join("var/old")).unwrap();
    std::fs::write(root.join("var/old/new"), b"n").unwrap();
    std::fs::write(root.join("top"), b"t").unwrap();
    d.put("l2").unwrap();
    let native = d.changes("l2").unwrap();
    let walked = drivers::changes::compare_views(d.as_ref(), "l2").unwrap();
    let show = |c: &[drivers::Change]| -> Vec<String> {
        c.iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path.display()))
            .collect()
    };
    // The native diff marks the recreated directory opaque instead of listing what it hid.
    assert!(native
        .iter()
        .any(|c| c.kind == ChangeKind::Opaque && c.path.ends_with("var/old")));
    let mut w = show(&walked);
    w.retain(|l| l != "D var/old/x");
    assert_eq!(show(&native), w);
    assert!(d
        .status()
        .iter()
        .any(|(k, v)| k == "Native Overlay Diff" && v == "true"));
}

#[test]
fn redirect_entries_fall_back_to_the_tree_walk() {
    let tmp = tempfile::tempdir().unwrap();
    let d = setup(tmp.path());
    let root = d.get("l2").unwrap();
    std::fs::write(root.join("added"), b"x").unwrap();
    d.put("l2").unwrap();
    // Pretend the kernel left a metacopy-style entry (an inode whose data lives below).
    let diff = d.diff_dir("l2").unwrap();
    std::fs::write(diff.join("moved"), b"").unwrap();
    rustix::fs::setxattr(
        diff.join("moved"),
        "trusted.overlay.redirect",
        b"/etc/a",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let changes = d.changes("l2").unwrap();
    let lines: Vec<String> = changes
        .iter()
        .map(|c| format!("{} {}", c.kind.letter(), c.path.display()))
        .collect();
    assert!(lines.contains(&"A added".to_string()), "{lines:?}");
    assert!(lines.contains(&"A moved".to_string()), "{lines:?}");
    // Another process (a later `strata info`) sees it too.
    drop(d);
    let d = drivers::open("overlay2", tmp.path(), &DriverOptions::default()).unwrap();
    let status = d.status();
    let native = status
        .iter()
        .find(|(k, _)| k == "Native Overlay Diff")
        .unwrap();
    assert!(native.1.starts_with("false"), "{native:?}");
}
