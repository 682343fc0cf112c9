//! Named regression tests for applying layers as an image means them (issue 13), each on
//! every driver: the cases reported by hand-made layer stacks and the ones the
//! differential test against umoci (`differential.rs`) found. A layered driver (overlay2,
//! aufs) must see the layers below while it applies one; a complete-tree driver (vfs,
//! btrfs) must get the same result.

mod common;

use common::TarBuilder;
use drivers::{Driver, DriverOptions, LayerKind};
use layerstore::tarfs::{apply_to_layer, ApplyError, Limits};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::{Builder, EntryType, Header};

/// The layers applied on `name`, bottom first, and the top one mounted.
struct Stack {
    d: Box<dyn Driver>,
    top: String,
    root: PathBuf,
    _home: common::Home,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.d.put(&self.top);
    }
}

/// Applies `tars` as a chain of layers on driver `name`: `None` where the driver cannot
/// run here (printed), `Err` with the first refusal.
fn stack(name: &str, tars: &[Vec<u8>]) -> Option<Result<Stack, ApplyError>> {
    let home = common::home(name)?;
    let d = drivers::open(name, home.path(), &DriverOptions::default()).unwrap();
    let mut parent: Option<String> = None;
    for (i, t) in tars.iter().enumerate() {
        let id = format!("l{i}");
        d.create(&id, parent.as_deref(), LayerKind::ReadOnly)
            .unwrap();
        if let Err(e) = apply_to_layer(&t[..], d.as_ref(), &id, &Limits::default()) {
            return Some(Err(e));
        }
        parent = Some(id);
    }
    let top = parent.unwrap();
    let root = d.get(&top).unwrap();
    Some(Ok(Stack {
        d,
        top,
        root,
        _home: home,
    }))
}

fn applied(name: &str, tars: &[Vec<u8>]) -> Option<Stack> {
    stack(name, tars).map(|r| r.unwrap())
}

fn names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn dir_entry(b: &mut Builder<Vec<u8>>, path: &str, mode: u32, uid: u64, mtime: u64) {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Directory);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_mtime(mtime);
    h.set_size(0);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

fn case_implied_parent_keeps_lower_metadata(name: &str) {
    let mut b = Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.user.keep", &b"v"[..])])
        .unwrap();
    dir_entry(&mut b, "tmp/", 0o1777, 0, 1_500_000_000);
    dir_entry(&mut b, "srv/", 0o2775, 1000, 1_400_000_000);
    let lower = b.into_inner().unwrap();
    let upper = TarBuilder::new()
        .file("tmp/foo", b"f")
        .file("srv/x", b"x")
        .build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    let tmp = fs::metadata(s.root.join("tmp")).unwrap();
    assert_eq!(
        tmp.mode() & 0o7777,
        0o1777,
        "{name}: /tmp keeps its sticky 1777"
    );
    assert_eq!(tmp.mtime(), 1_500_000_000, "{name}: and its mtime");
    let mut v = [0u8; 8];
    let n = rustix::fs::getxattr(s.root.join("tmp").as_path(), "user.keep", &mut v).unwrap();
    assert_eq!(&v[..n], b"v", "{name}: and its xattrs");
    let srv = fs::metadata(s.root.join("srv")).unwrap();
    assert_eq!(
        (srv.mode() & 0o7777, srv.uid(), srv.gid()),
        (0o2775, 1000, 1000),
        "{name}: /srv keeps mode and owner"
    );
    assert_eq!(names(&s.root.join("tmp")), ["foo"]);
}

fn case_whiteout_and_recreate_in_one_layer(name: &str) {
    let lower = TarBuilder::new()
        .dir("d", 0o755)
        .file("d/old", b"o")
        .dir("e", 0o755)
        .file("e/old", b"o")
        .dir("f", 0o755)
        .file("f/old", b"o")
        .build();
    let upper = TarBuilder::new()
        // whiteout first, then the directory again
        .raw(b"d/../.wh.d", EntryType::Regular, b"", b"")
        .dir("d", 0o700)
        .file("d/new", b"n")
        // directory first, then its whiteout
        .dir("e", 0o700)
        .file("e/new", b"n")
        .file(".wh.e", b"")
        // whiteout, then a file inside: the directory is implied anew
        .file(".wh.f", b"")
        .file("f/new", b"n")
        .build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    for d in ["d", "e", "f"] {
        assert_eq!(
            names(&s.root.join(d)),
            ["new"],
            "{name}: the old files of {d}/ stay hidden"
        );
    }
}

fn case_file_then_dir_in_one_layer_hides_below(name: &str) {
    let lower = TarBuilder::new()
        .dir("lib", 0o755)
        .file("lib/old", b"o")
        .build();
    let upper = TarBuilder::new()
        .file("lib", b"a file for a moment")
        .dir("lib", 0o755)
        .file("lib/new", b"n")
        .build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    assert_eq!(names(&s.root.join("lib")), ["new"], "{name}");
}

fn case_usrmerge_symlink_in_a_lower_layer(name: &str) {
    let lower = TarBuilder::new()
        .dir("usr", 0o755)
        .dir("usr/lib", 0o755)
        .symlink("lib", "usr/lib")
        .symlink("lib64", "/usr/lib")
        .build();
    let upper = TarBuilder::new()
        .file("lib/x.so", b"x")
        .file("lib64/y.so", b"y")
        .build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    assert!(
        s.root
            .join("lib")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink(),
        "{name}: lib stays a symlink"
    );
    assert_eq!(names(&s.root.join("usr/lib")), ["x.so", "y.so"], "{name}");
}

fn case_hardlink_to_a_lower_file(name: &str) {
    let lower = TarBuilder::new()
        .dir("bin", 0o755)
        .file_mode("bin/tool", b"tool", 0o755, 0, 0)
        .hardlink("bin/tool-alias", "bin/tool")
        .build();
    let upper = TarBuilder::new().hardlink("bin/tool2", "bin/tool").build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    let a = fs::metadata(s.root.join("bin/tool")).unwrap();
    let b = fs::metadata(s.root.join("bin/tool2")).unwrap();
    let c = fs::metadata(s.root.join("bin/tool-alias")).unwrap();
    assert_eq!(a.ino(), b.ino(), "{name}: one inode in the merged view");
    assert_eq!(
        a.ino(),
        c.ino(),
        "{name}: the lower link group stays together"
    );
    assert_eq!(a.nlink(), 3, "{name}");
    assert_eq!(fs::read(s.root.join("bin/tool2")).unwrap(), b"tool");
}

fn case_whiteout_of_nothing_is_a_no_op(name: &str) {
    let lower = TarBuilder::new().file("keep", b"k").build();
    let upper = TarBuilder::new()
        .file("ghost/dir/.wh.x", b"")
        .file(".wh.missing", b"")
        .file("new", b"n")
        .build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    assert_eq!(
        names(&s.root),
        ["keep", "new"],
        "{name}: nothing made for a whiteout"
    );
}

fn case_opaque_markers_wherever_they_sit(name: &str) {
    let lower = TarBuilder::new()
        .file("old-top", b"o")
        .dir("d", 0o755)
        .file("d/old", b"o")
        .dir("d/sub", 0o755)
        .file("d/sub/old", b"o")
        .build();
    // After entries of its own layer, and at the root.
    let upper = TarBuilder::new()
        .file("d/sub/new", b"n")
        .file("d/new", b"n")
        .file("d/.wh..wh..opq", b"")
        .file("top-new", b"n")
        .file(".wh..wh..opq", b"")
        .build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    assert_eq!(names(&s.root), ["d", "top-new"], "{name}: root opaque");
    assert_eq!(names(&s.root.join("d")), ["new", "sub"], "{name}");
    assert_eq!(names(&s.root.join("d/sub")), ["new"], "{name}");
}

fn case_opaque_hides_copies_up_of_the_same_layer(name: &str) {
    let lower = TarBuilder::new()
        .dir("d", 0o755)
        .file("d/a", b"a")
        .hardlink("d/b", "d/a")
        .build();
    // The hardlink copies d/a (and d/b) up; the opaque marker after it still hides them.
    let upper = TarBuilder::new()
        .hardlink("c", "d/a")
        .file("d/.wh..wh..opq", b"")
        .build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    assert_eq!(names(&s.root.join("d")), Vec::<String>::new(), "{name}");
    assert_eq!(fs::read(s.root.join("c")).unwrap(), b"a");
}

fn case_type_changes_across_layers(name: &str) {
    let l1 = TarBuilder::new().dir("x", 0o755).file("x/in", b"1").build();
    let l2 = TarBuilder::new().file("x", b"file").build();
    let l3 = TarBuilder::new().symlink("x", "elsewhere").build();
    let l4 = TarBuilder::new()
        .dir("x", 0o700)
        .file("x/again", b"4")
        .build();
    let Some(s) = applied(name, &[l1, l2, l3, l4]) else {
        return;
    };
    assert!(s.root.join("x").is_dir());
    assert_eq!(
        names(&s.root.join("x")),
        ["again"],
        "{name}: the old x/in stays gone"
    );
}

fn case_file_through_a_dangling_absolute_symlink(name: &str) {
    let lower = TarBuilder::new().symlink("data", "/srv/data").build();
    let upper = TarBuilder::new().file("data/f", b"f").build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    assert_eq!(fs::read(s.root.join("srv/data/f")).unwrap(), b"f", "{name}");
}

fn case_dir_entry_replaces_xattrs(name: &str) {
    let mut b = Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.user.old", &b"1"[..])])
        .unwrap();
    dir_entry(&mut b, "d/", 0o755, 0, 1_000_000_000);
    let lower = b.into_inner().unwrap();
    let mut b = Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.user.new", &b"2"[..])])
        .unwrap();
    dir_entry(&mut b, "d/", 0o750, 0, 1_100_000_000);
    let upper = b.into_inner().unwrap();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    let mut buf = [0u8; 256];
    let n = rustix::fs::listxattr(s.root.join("d").as_path(), &mut buf).unwrap();
    let listed: Vec<&[u8]> = buf[..n]
        .split(|c| *c == 0)
        .filter(|x| x.starts_with(b"user."))
        .collect();
    assert_eq!(
        listed,
        [&b"user.new"[..]],
        "{name}: the entry's xattrs, only"
    );
}

fn case_implied_dir_in_a_setgid_dir(name: &str) {
    let lower = TarBuilder::new().dir("shared", 0o2775).build();
    let upper = TarBuilder::new().file("shared/sub/f", b"f").build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    let m = fs::metadata(s.root.join("shared/sub")).unwrap().mode() & 0o7777;
    assert_eq!(m, 0o2755, "{name}: setgid handed down, as mkdir does");
}

fn case_binary_xattrs(name: &str) {
    let values: [&[u8]; 2] = [&[0, 1, 2, 0xff, 0, 7], b"ends-in-nul\0"];
    let t = TarBuilder::new()
        .file_xattr(
            "a",
            b"a",
            &[("user.bin", values[0]), ("user.nul", values[1])],
        )
        .build();
    let Some(s) = applied(name, &[t]) else {
        return;
    };
    for (k, v) in [("user.bin", values[0]), ("user.nul", values[1])] {
        let mut buf = [0u8; 64];
        let n = rustix::fs::getxattr(s.root.join("a").as_path(), k, &mut buf).unwrap();
        assert_eq!(&buf[..n], v, "{name}: {k} byte for byte");
    }
}

/// Go's archive/tar test data: one 200-byte sparse file in PAX 0.0, 0.1 and 1.0
/// (`fixtures/layers/tarsplit-pax-sparse-formats.tar`, see SOURCES.md).
fn case_gnu_and_pax_sparse_forms(name: &str) {
    let t = fs::read(common::fixture("layers/tarsplit-pax-sparse-formats.tar")).unwrap();
    let Some(s) = applied(name, &[t]) else {
        return;
    };
    for f in ["sparse-posix-0.0", "sparse-posix-0.1", "sparse-posix-1.0"] {
        let data = fs::read(s.root.join(f)).unwrap();
        assert_eq!(data.len(), 200, "{name}: {f}");
        use sha2::Digest;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&data)),
            "ed7c086b492e5f08afd6f20f81d445bcc007c24c5f6aad6d30f9d7e5a9ae34d9",
            "{name}: {f} holds what Go's and Python's readers give"
        );
    }
    assert_eq!(fs::read(s.root.join("end")).unwrap(), b"end\n");
}

/// A 60 GB PAX 1.0 sparse file of six 512-byte segments: applied as holes.
fn case_pax_sparse_big_is_holes(name: &str) {
    let t = fs::read(common::fixture("layers/tarsplit-pax-sparse-big.tar")).unwrap();
    let Some(s) = applied(name, &[t]) else {
        return;
    };
    let m = fs::metadata(s.root.join("pax-sparse")).unwrap();
    assert_eq!(m.len(), 60_000_000_000, "{name}");
    assert!(
        m.blocks() * 512 < 1 << 20,
        "{name}: {} blocks: holes stay holes",
        m.blocks()
    );
}

/// Device numbers that do not fit 32 bits are a corrupt archive, never cut down.
fn case_device_numbers_that_do_not_fit(name: &str) {
    for (label, field) in [
        (
            "base-256 above 32 bits",
            [0x80u8, 0, 0, 0x01, 0, 0, 0, 0x05],
        ),
        (
            "negative",
            [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
        ),
    ] {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Char);
        h.set_path("dev").unwrap();
        h.set_mode(0o600);
        h.set_size(0);
        h.as_gnu_mut().unwrap().dev_major = field;
        h.set_cksum();
        let mut b = Builder::new(Vec::new());
        b.append(&h, &[][..]).unwrap();
        let t = b.into_inner().unwrap();
        let Some(r) = stack(name, &[t]) else {
            return;
        };
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{name}: {label} device accepted"));
        assert!(
            e.to_string().contains("does not fit 32 bits"),
            "{name}: {label}: {e}"
        );
    }
}

fn case_whiteout_names_cleaned_lexically(name: &str) {
    let lower = TarBuilder::new().file("x", b"x").file("y", b"y").build();
    let upper = TarBuilder::new()
        .raw(b"a/../.wh.x", EntryType::Regular, b"", b"")
        .build();
    let Some(s) = applied(name, &[lower, upper]) else {
        return;
    };
    assert_eq!(names(&s.root), ["y"], "{name}: a/../.wh.x removes x");
    drop(s);
    let escape = TarBuilder::new()
        .raw(b"a/../../.wh.x", EntryType::Regular, b"", b"")
        .build();
    let Some(r) = stack(name, &[escape]) else {
        return;
    };
    assert!(
        matches!(r.err(), Some(ApplyError::PathEscape(_))),
        "{name}: above the root"
    );
}

/// overlayfs stores a whiteout as a 0/0 character device, so overlay2 cannot keep one as
/// a file of the image: refused with the reason; the other drivers keep the device.
fn case_zero_zero_char_device(name: &str) {
    let t = TarBuilder::new()
        .device("null0", EntryType::Char, 0, 0)
        .build();
    let Some(r) = stack(name, &[t]) else {
        return;
    };
    match (name, r) {
        ("overlay2", Err(e)) => assert!(e.to_string().contains("overlay2 cannot"), "{e}"),
        ("overlay2", Ok(_)) => panic!("overlay2 must refuse a 0/0 character device"),
        (_, Ok(s)) => {
            let m = fs::symlink_metadata(s.root.join("null0")).unwrap();
            assert!(m.file_type().is_char_device() && m.rdev() == 0, "{name}");
        }
        (_, Err(e)) => panic!("{name}: {e}"),
    }
}

macro_rules! regressions {
    ($($module:ident => $driver:expr),* $(,)?) => {$(
        mod $module {
            #[test] fn implied_parent_keeps_lower_metadata() { super::case_implied_parent_keeps_lower_metadata($driver) }
            #[test] fn whiteout_and_recreate_in_one_layer() { super::case_whiteout_and_recreate_in_one_layer($driver) }
            #[test] fn file_then_dir_in_one_layer_hides_below() { super::case_file_then_dir_in_one_layer_hides_below($driver) }
            #[test] fn usrmerge_symlink_in_a_lower_layer() { super::case_usrmerge_symlink_in_a_lower_layer($driver) }
            #[test] fn hardlink_to_a_lower_file() { super::case_hardlink_to_a_lower_file($driver) }
            #[test] fn whiteout_of_nothing_is_a_no_op() { super::case_whiteout_of_nothing_is_a_no_op($driver) }
            #[test] fn opaque_markers_wherever_they_sit() { super::case_opaque_markers_wherever_they_sit($driver) }
            #[test] fn opaque_hides_copies_up_of_the_same_layer() { super::case_opaque_hides_copies_up_of_the_same_layer($driver) }
            #[test] fn type_changes_across_layers() { super::case_type_changes_across_layers($driver) }
            #[test] fn file_through_a_dangling_absolute_symlink() { super::case_file_through_a_dangling_absolute_symlink($driver) }
            #[test] fn dir_entry_replaces_xattrs() { super::case_dir_entry_replaces_xattrs($driver) }
            #[test] fn implied_dir_in_a_setgid_dir() { super::case_implied_dir_in_a_setgid_dir($driver) }
            #[test] fn binary_xattrs() { super::case_binary_xattrs($driver) }
            #[test] fn gnu_and_pax_sparse_forms() { super::case_gnu_and_pax_sparse_forms($driver) }
            #[test] fn pax_sparse_big_is_holes() { super::case_pax_sparse_big_is_holes($driver) }
            #[test] fn device_numbers_that_do_not_fit() { super::case_device_numbers_that_do_not_fit($driver) }
            #[test] fn whiteout_names_cleaned_lexically() { super::case_whiteout_names_cleaned_lexically($driver) }
            #[test] fn zero_zero_char_device() { super::case_zero_zero_char_device($driver) }
        }
    )*};
}

regressions! {
    vfs => "vfs",
    overlay2 => "overlay2",
    btrfs => "btrfs",
    aufs => "aufs",
}
