//! The union's branch logic without FUSE: resolution through whiteouts and opaque
//! directories, merged listings, copy-up (hardlinks through pseudo-links), removal and
//! rename in AUFS's on-disk form.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use unionfs::branches::Found;
use unionfs::Union;

/// The real path of what `f` resolved to, for the branches of [`three_branches`].
fn real_path(t: &tempfile::TempDir, f: &Found) -> PathBuf {
    let b = ["up", "l1", "l2"][f.real.branch];
    t.path().join(b).join(&f.real.rel)
}

fn names(u: &Union, rel: &str) -> Vec<String> {
    let d = u.resolve(Path::new(rel)).unwrap().unwrap();
    let mut v: Vec<String> = u
        .list(&d, Path::new(rel))
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

/// lower2 (bottom) < lower1 < upper: lower1 deletes `gone`, makes `opq` opaque.
fn three_branches() -> (tempfile::TempDir, Union) {
    let t = tempfile::tempdir().unwrap();
    let (up, l1, l2) = (
        t.path().join("up"),
        t.path().join("l1"),
        t.path().join("l2"),
    );
    for d in [&up, &l1, &l2] {
        fs::create_dir(d).unwrap();
    }
    fs::create_dir_all(l2.join("d")).unwrap();
    fs::write(l2.join("d/a"), "a2").unwrap();
    fs::write(l2.join("d/gone"), "g").unwrap();
    fs::create_dir_all(l2.join("opq")).unwrap();
    fs::write(l2.join("opq/old"), "o").unwrap();
    fs::write(l2.join("h1"), "hard").unwrap();
    fs::hard_link(l2.join("h1"), l2.join("h2")).unwrap();
    fs::create_dir_all(l1.join("d")).unwrap();
    fs::write(l1.join("d/a"), "a1").unwrap();
    fs::write(l1.join("d/.wh.gone"), "").unwrap();
    fs::create_dir_all(l1.join("opq")).unwrap();
    fs::write(l1.join("opq/.wh..wh..opq"), "").unwrap();
    fs::write(l1.join("opq/new"), "n").unwrap();
    let u = Union::new(up, vec![l1, l2]);
    (t, u)
}

#[test]
fn resolution_honours_whiteouts_and_opaque_dirs() {
    let (t, u) = three_branches();
    let a = u.resolve(Path::new("d/a")).unwrap().unwrap();
    assert_eq!(
        fs::read_to_string(real_path(&t, &a)).unwrap(),
        "a1",
        "the higher branch wins"
    );
    assert!(u.resolve(Path::new("d/gone")).unwrap().is_none());
    assert!(u.resolve(Path::new("opq/old")).unwrap().is_none());
    assert!(
        u.resolve(Path::new("d/.wh.gone")).unwrap().is_none(),
        "bookkeeping is hidden"
    );
    assert_eq!(names(&u, "d"), ["a"]);
    assert_eq!(names(&u, "opq"), ["new"]);
    assert_eq!(names(&u, ""), ["d", "h1", "h2", "opq"]);
}

#[test]
fn copy_up_keeps_hardlinks_linked_through_a_pseudo_link() {
    let (t, u) = three_branches();
    let f = u.copy_up(Path::new("h1")).unwrap();
    assert_eq!(f.branch, 0);
    fs::write(t.path().join("up/h1"), "changed").unwrap();
    // The other name, still only in the lower branch, shows the copy.
    let h2 = u.resolve(Path::new("h2")).unwrap().unwrap();
    assert_eq!(fs::read_to_string(real_path(&t, &h2)).unwrap(), "changed");
    assert_eq!(
        h2.st.st_ino,
        fs::metadata(t.path().join("up/h1")).unwrap().ino()
    );
    assert!(t.path().join("up/.wh..wh.plnk").is_dir());
    assert_eq!(
        names(&u, ""),
        ["d", "h1", "h2", "opq"],
        "the pseudo-link dir is hidden"
    );
}

#[test]
fn remove_writes_whiteouts_only_where_a_lower_branch_shows_the_name() {
    let (t, u) = three_branches();
    u.remove(Path::new("d"), "a".as_ref()).unwrap();
    assert!(t.path().join("up/d/.wh.a").is_file());
    assert!(u.resolve(Path::new("d/a")).unwrap().is_none());
    u.prepare_create(Path::new("d"), "fresh".as_ref()).unwrap();
    fs::write(t.path().join("up/d/fresh"), "f").unwrap();
    u.remove(Path::new("d"), "fresh".as_ref()).unwrap();
    assert!(
        !t.path().join("up/d/.wh.fresh").exists(),
        "nothing below had it"
    );
    // Re-creating a deleted name removes its whiteout.
    assert!(u.prepare_create(Path::new("d"), "a".as_ref()).unwrap());
    assert!(!t.path().join("up/d/.wh.a").exists());
}

#[test]
fn rename_moves_files_and_refuses_lower_directories() {
    let (t, u) = three_branches();
    u.rename(Path::new("d/a"), Path::new("moved")).unwrap();
    assert_eq!(fs::read_to_string(t.path().join("up/moved")).unwrap(), "a1");
    assert!(
        t.path().join("up/d/.wh.a").is_file(),
        "the old name is whited out"
    );
    let e = u.rename(Path::new("opq"), Path::new("opq2")).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(18),
        "EXDEV for a directory of a lower branch"
    );
}

/// What a container racing the server can leave behind at any instant: a directory of
/// its upper branch swapped for a symlink to a host directory. No union operation may
/// follow it (each resolves beneath the branch root with symlinks refused).
#[test]
fn no_operation_follows_a_symlink_swapped_into_a_branch() {
    let (t, u) = three_branches();
    let host = t.path().join("host");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("a"), "host file").unwrap();
    fs::write(host.join("secret"), "s").unwrap();
    // The union saw `d` as a directory (its nodes hold the path `d/a`); now it is a symlink.
    assert!(u.resolve(Path::new("d/a")).unwrap().is_some());
    fs::create_dir_all(t.path().join("up")).unwrap();
    std::os::unix::fs::symlink(&host, t.path().join("up/d")).unwrap();

    let upper = u.upper().unwrap();
    assert!(upper.lstat(Path::new("d/a")).unwrap().is_none());
    for e in [
        upper.chmod(Path::new("d/a"), 0o777).unwrap_err(),
        upper
            .chown(Path::new("d/a"), Some(65534), None)
            .unwrap_err(),
        upper
            .open_file(Path::new("d/a"), rustix::fs::OFlags::WRONLY, 0)
            .unwrap_err(),
        upper.remove_all(Path::new("d/secret")).unwrap_err(),
        upper
            .rename(Path::new("d/secret"), Path::new("stolen"))
            .unwrap_err(),
    ] {
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    }
    // The union-level operations see `d` as the symlink it now is.
    assert!(u.remove(Path::new("d"), "a".as_ref()).is_ok());
    assert!(u.copy_up(Path::new("d/secret")).is_err());
    assert!(u.prepare_create(Path::new("d"), "new".as_ref()).is_err());

    let meta = fs::metadata(host.join("a")).unwrap();
    assert_eq!(fs::read_to_string(host.join("a")).unwrap(), "host file");
    assert_eq!(meta.mode() & 0o777, 0o644);
    assert_eq!(meta.uid(), 0);
    assert!(host.join("secret").exists());
    assert!(!t.path().join("up/stolen").exists());
    assert_eq!(
        fs::read_dir(&host).unwrap().count(),
        2,
        "nothing made on the host"
    );
}
