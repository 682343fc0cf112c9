//! The conformance suite every storage driver must pass: the same cases, run against each
//! driver on real directories (and, for mounting drivers, real mounts). A new driver joins
//! by adding one line to `conformance!` at the bottom.

mod common;

use common::{snapshot, TarBuilder};
use drivers::{Driver, DriverError, DriverOptions, LayerKind};
use layerstore::tarfs::{apply_to_layer, write_layer, ApplyError, Limits};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use tar::EntryType;

fn open(name: &str, home: &Path) -> Box<dyn Driver> {
    drivers::open(name, home, &DriverOptions::default()).unwrap()
}

fn apply(
    d: &dyn Driver,
    id: &str,
    tar: &[u8],
) -> Result<layerstore::tarfs::ApplyResult, ApplyError> {
    apply_to_layer(tar, d, id, &Limits::default())
}

fn base_tar() -> Vec<u8> {
    TarBuilder::new()
        .dir("a", 0o755)
        .file("a/x", b"x")
        .file("a/y", b"y")
        .dir("d", 0o755)
        .dir("d/deep", 0o700)
        .file("d/deep/z", b"z")
        .dir("o", 0o755)
        .file("o/old1", b"1")
        .file("o/old2", b"2")
        .file("keep", b"keep")
        .build()
}

/// A layer that deletes a file, a whole directory, makes `o` opaque (the marker comes
/// after the new entry: order inside a layer must not matter) and modifies `keep`.
fn change_tar() -> Vec<u8> {
    TarBuilder::new()
        .file("a/.wh.x", b"")
        .file(".wh.d", b"")
        .file("o/new", b"new")
        .file("o/.wh..wh..opq", b"")
        .file("keep", b"kept and changed")
        .build()
}

fn case_create_chain(name: &str) {
    let Some(tmp) = common::home(name) else {
        return;
    };
    let d = open(name, tmp.path());
    d.create("base", None, LayerKind::ReadOnly).unwrap();
    d.create("child", Some("base"), LayerKind::ReadOnly)
        .unwrap();
    d.create("rw", Some("child"), LayerKind::ReadWrite).unwrap();
    assert!(d.exists("base") && d.exists("child") && d.exists("rw"));
    assert_eq!(d.parent("rw").unwrap().as_deref(), Some("child"));
    assert_eq!(d.parent("base").unwrap(), None);
    assert_eq!(d.list().unwrap(), vec!["base", "child", "rw"]);
    assert!(matches!(
        d.create("base", None, LayerKind::ReadOnly),
        Err(DriverError::Exists(_))
    ));
    assert!(matches!(
        d.create("x", Some("nope"), LayerKind::ReadOnly),
        Err(DriverError::NotFound(_))
    ));
    assert!(!d.exists("x"), "a failed create must leave nothing behind");
    assert!(matches!(
        d.create("../evil", None, LayerKind::ReadOnly),
        Err(DriverError::BadId(_))
    ));
}

fn case_mount_counts(name: &str) {
    let Some(tmp) = common::home(name) else {
        return;
    };
    let d = open(name, tmp.path());
    d.create("base", None, LayerKind::ReadOnly).unwrap();
    apply(d.as_ref(), "base", &base_tar()).unwrap();
    let p1 = d.get("base").unwrap();
    let p2 = d.get("base").unwrap();
    assert_eq!(p1, p2);
    assert_eq!(fs::read(p1.join("a/x")).unwrap(), b"x");
    assert_eq!(d.mount_count("base").unwrap(), 2);
    // A second driver instance (another CLI process) sees the same count.
    let other = open(name, tmp.path());
    assert_eq!(other.mount_count("base").unwrap(), 2);
    assert!(matches!(d.remove("base"), Err(DriverError::InUse { .. })));
    other.put("base").unwrap();
    d.put("base").unwrap();
    assert_eq!(d.mount_count("base").unwrap(), 0);
    assert!(matches!(d.put("base"), Err(DriverError::NotMounted(_))));
    d.remove("base").unwrap();
    assert!(!d.exists("base"));
}

fn case_remove_parent_refused(name: &str) {
    let Some(tmp) = common::home(name) else {
        return;
    };
    let d = open(name, tmp.path());
    d.create("base", None, LayerKind::ReadOnly).unwrap();
    d.create("child", Some("base"), LayerKind::ReadOnly)
        .unwrap();
    let e = d.remove("base").unwrap_err();
    assert!(matches!(e, DriverError::InUse { .. }), "{e}");
    assert!(d.exists("base"));
    d.remove("child").unwrap();
    d.remove("base").unwrap();
    assert!(d.list().unwrap().is_empty());
}

fn case_whiteouts_and_opaque(name: &str) {
    let Some(tmp) = common::home(name) else {
        return;
    };
    let d = open(name, tmp.path());
    d.create("l1", None, LayerKind::ReadOnly).unwrap();
    apply(d.as_ref(), "l1", &base_tar()).unwrap();
    d.create("l2", Some("l1"), LayerKind::ReadOnly).unwrap();
    apply(d.as_ref(), "l2", &change_tar()).unwrap();
    let v = d.get("l2").unwrap();
    assert!(!v.join("a/x").exists(), "file whiteout");
    assert_eq!(fs::read(v.join("a/y")).unwrap(), b"y");
    assert!(!v.join("d").exists(), "directory whiteout");
    let mut o: Vec<_> = fs::read_dir(v.join("o"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    o.sort();
    assert_eq!(o, vec!["new"], "opaque dir keeps only this layer's entries");
    assert_eq!(fs::read(v.join("keep")).unwrap(), b"kept and changed");
    for n in fs::read_dir(&v).unwrap() {
        let n = n.unwrap().file_name();
        assert!(
            !n.to_string_lossy().starts_with(".wh."),
            "whiteout marker leaked into the rootfs: {n:?}"
        );
    }
    // The lower layer is untouched.
    let l1 = d.get("l1").unwrap();
    assert_eq!(fs::read(l1.join("a/x")).unwrap(), b"x");
    assert!(l1.join("d/deep/z").exists());
    d.put("l1").unwrap();
    d.put("l2").unwrap();
}

fn case_special_files(name: &str) {
    let Some(tmp) = common::home(name) else {
        return;
    };
    let d = open(name, tmp.path());
    d.create("l1", None, LayerKind::ReadOnly).unwrap();
    let tar = TarBuilder::new()
        .dir("bin", 0o755)
        .file_mode("bin/su", b"suid", 0o4755, 0, 0)
        .file_mode("owned", b"o", 0o640, 1000, 1001)
        .hardlink("bin/su-link", "bin/su")
        .symlink("bin/sh", "/bin/busybox")
        .symlink("escape", "../../../../etc/passwd")
        .dir("tmp", 0o1777)
        .dir("dev", 0o755)
        .device("dev/null", EntryType::Char, 1, 3)
        .device("dev/sda", EntryType::Block, 8, 0)
        .device("fifo", EntryType::Fifo, 0, 0)
        .file_xattr(
            "cap",
            b"c",
            &[("user.strata", b"yes"), ("trusted.overlay.x", b"y")],
        )
        .build();
    let r = apply(d.as_ref(), "l1", &tar).unwrap();
    assert_eq!(r.entries, 12);
    let v = d.get("l1").unwrap();
    let md = |p: &str| fs::symlink_metadata(v.join(p)).unwrap();
    assert_eq!(md("bin/su").mode() & 0o7777, 0o4755);
    assert_eq!((md("owned").uid(), md("owned").gid()), (1000, 1001));
    assert_eq!(md("bin/su").ino(), md("bin/su-link").ino(), "hardlink kept");
    assert_eq!(
        fs::read_link(v.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::read_link(v.join("escape")).unwrap(),
        Path::new("../../../../etc/passwd")
    );
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(md("dev/null").rdev(), rustix::fs::makedev(1, 3));
    assert!(std::os::unix::fs::FileTypeExt::is_block_device(
        &md("dev/sda").file_type()
    ));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &md("fifo").file_type()
    ));
    assert_eq!(md("owned").mtime(), 1_600_000_000);
    let snap = snapshot(&v);
    assert!(snap["cap"].contains("user.strata="), "{}", snap["cap"]);
    d.put("l1").unwrap();
}

fn case_diff_roundtrip(name: &str) {
    let Some(tmp) = common::home(name) else {
        return;
    };
    let d = open(name, tmp.path());
    d.create("l1", None, LayerKind::ReadOnly).unwrap();
    apply(d.as_ref(), "l1", &base_tar()).unwrap();
    d.create("l2", Some("l1"), LayerKind::ReadOnly).unwrap();
    apply(d.as_ref(), "l2", &change_tar()).unwrap();
    let extra = TarBuilder::new()
        .file_mode("newfile", b"hello", 0o600, 5, 6)
        .hardlink("newlink", "newfile")
        .symlink("sl", "a/y")
        .dir(
            "long-directory-name-to-push-paths-past-one-hundred-bytes",
            0o755,
        )
        .file(
            &format!(
                "long-directory-name-to-push-paths-past-one-hundred-bytes/{}",
                "f".repeat(90)
            ),
            b"long",
        )
        .symlink("long-link", &format!("/target/{}", "t".repeat(120)))
        .build();
    apply(d.as_ref(), "l2", &extra).unwrap();
    // diff(l2) applied on l1 must give l2 again.
    let changes = d.changes("l2").unwrap();
    let kinds: Vec<String> = changes
        .iter()
        .map(|c| format!("{} {}", c.kind.letter(), c.path.display()))
        .collect();
    assert!(kinds.contains(&"D a/x".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"D d".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"C keep".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"A newfile".to_string()), "{kinds:?}");
    let src = d.get("l2").unwrap();
    let tar = write_layer(&src, &changes, Vec::new()).unwrap();
    d.create("l3", Some("l1"), LayerKind::ReadOnly).unwrap();
    apply(d.as_ref(), "l3", &tar).unwrap();
    let dst = d.get("l3").unwrap();
    assert_eq!(snapshot(&src), snapshot(&dst));
    // And the diff of the copy is the same tar, byte for byte (deterministic writer).
    let changes3 = d.changes("l3").unwrap();
    assert_eq!(changes, changes3, "{name}: the copy's changes are the same");
    let again = write_layer(&dst, &changes3, Vec::new()).unwrap();
    assert!(tar == again, "{name}: the copy's diff is not the same tar");
    d.put("l2").unwrap();
    d.put("l3").unwrap();
}

fn case_reopen(name: &str) {
    let Some(tmp) = common::home(name) else {
        return;
    };
    {
        let d = open(name, tmp.path());
        d.create("l1", None, LayerKind::ReadOnly).unwrap();
        apply(d.as_ref(), "l1", &base_tar()).unwrap();
        d.create("l2", Some("l1"), LayerKind::ReadWrite).unwrap();
        d.get("l2").unwrap();
    }
    let d = open(name, tmp.path());
    assert!(d.exists("l1") && d.exists("l2"));
    assert_eq!(
        d.mount_count("l2").unwrap(),
        1,
        "mount counts survive a restart"
    );
    let v = d.get("l2").unwrap();
    assert_eq!(fs::read(v.join("keep")).unwrap(), b"keep");
    d.put("l2").unwrap();
    d.put("l2").unwrap();
    d.remove("l2").unwrap();
}

fn case_cleanup(name: &str) {
    let Some(tmp) = common::home(name) else {
        return;
    };
    let d = open(name, tmp.path());
    d.create("l1", None, LayerKind::ReadOnly).unwrap();
    d.get("l1").unwrap();
    d.get("l1").unwrap();
    d.cleanup().unwrap();
    assert_eq!(d.mount_count("l1").unwrap(), 0);
    d.remove("l1").unwrap();
}

fn case_hostile_tars(name: &str) {
    let Some(tmp) = common::home(name) else {
        return;
    };
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let d = open(name, &tmp.path().join("home"));
    d.create("l1", None, LayerKind::ReadOnly).unwrap();
    let root = d.diff_dir("l1").unwrap();
    let escape = TarBuilder::new()
        .raw(b"../../../outside/evil", EntryType::Regular, b"", b"x")
        .build();
    assert!(matches!(
        apply(d.as_ref(), "l1", &escape),
        Err(ApplyError::PathEscape(_))
    ));
    // A symlink to / followed by a write through it lands inside the layer, not on the host.
    let via_link = TarBuilder::new()
        .symlink("up", "/")
        .raw(b"up/outside-evil", EntryType::Regular, b"", b"x")
        .symlink("rel", "../../../../../../")
        .raw(b"rel/outside-evil2", EntryType::Regular, b"", b"y")
        .build();
    apply(d.as_ref(), "l1", &via_link).unwrap();
    assert!(root.join("outside-evil").exists());
    assert!(root.join("outside-evil2").exists());
    assert!(!Path::new("/outside-evil").exists() && !Path::new("/outside-evil2").exists());
    // A hardlink cannot reach a host file.
    let link = TarBuilder::new()
        .raw(b"pw", EntryType::Link, b"../../../../etc/passwd", b"")
        .build();
    assert!(apply(d.as_ref(), "l1", &link).is_err());
    let link2 = TarBuilder::new()
        .symlink("etcl", "/etc")
        .raw(b"pw2", EntryType::Link, b"etcl/passwd", b"")
        .build();
    assert!(
        apply(d.as_ref(), "l1", &link2).is_err(),
        "hardlink through a symlink resolves inside the layer"
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    let mode = fs::metadata(&root).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
}

macro_rules! conformance {
    ($($module:ident => $driver:expr),* $(,)?) => {$(
        mod $module {
            #[test] fn create_chain() { super::case_create_chain($driver) }
            #[test] fn mount_counts() { super::case_mount_counts($driver) }
            #[test] fn remove_parent_refused() { super::case_remove_parent_refused($driver) }
            #[test] fn whiteouts_and_opaque() { super::case_whiteouts_and_opaque($driver) }
            #[test] fn special_files() { super::case_special_files($driver) }
            #[test] fn diff_roundtrip() { super::case_diff_roundtrip($driver) }
            #[test] fn reopen_after_restart() { super::case_reopen($driver) }
            #[test] fn cleanup() { super::case_cleanup($driver) }
            #[test] fn hostile_tars() { super::case_hostile_tars($driver) }
        }
    )*};
}

conformance! {
    vfs => "vfs",
    overlay2 => "overlay2",
    btrfs => "btrfs",
    aufs => "aufs",
}
