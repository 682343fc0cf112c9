//! The AUFS-style driver through the CLI: Docker's aufs layout on disk, the FUSE union
//! (one server process per mount, gone after umount, a crashed one cleaned up), and real
//! workloads on the union: a tar unpacked into it, shell scripts that create, rename and
//! delete, hardlinks, xattrs, statfs and mmap.

mod common;

use common::{driver_available, fixture, sh, Strata};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn container_id(s: &Strata, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&s.ok(&["ps", "-a", "--format", "json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|c| c["Names"] == name || c["Name"] == name)
        .and_then(|c| c["Id"].as_str().or(c["ID"].as_str()))
        .unwrap_or_else(|| panic!("no container {name} in {v}"))
        .to_string()
}

/// The pids of FUSE union servers serving a mount under `root`.
fn servers(root: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("unionfs-serve") && cmd.contains(&*root.to_string_lossy()) {
            let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            if !stat.contains(") Z ") {
                out.push(pid);
            }
        }
    }
    out
}

fn fstype(mountpoint: &Path) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = mountpoint.to_string_lossy();
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let dash = f.iter().position(|x| *x == "-")?;
        (f.get(4) == Some(&&*want)).then(|| f[dash + 1].to_string())
    })
}

fn setup() -> Option<(Strata, PathBuf, String)> {
    if !driver_available("aufs") {
        return None;
    }
    let s = Strata::with_driver("aufs");
    s.load("images/busybox-wh.docker.tar");
    let root = s.mounted("busybox-wh:1", "c");
    let id = container_id(&s, "c");
    Some((s, root, id))
}

#[test]
fn the_union_is_a_fuse_mount_with_one_server_that_umount_ends() {
    let Some((s, root, id)) = setup() else {
        return;
    };
    let home = s.root().join("aufs");
    assert_eq!(root, home.join("mnt").join(&id));
    let ft = fstype(&root).expect("mounted");
    if ft != "aufs" {
        assert!(
            ft == "fuse" || ft == "fuse.strata",
            "the FUSE union serves the mount: {ft}"
        );
        assert_eq!(servers(&s.root()).len(), 1, "one server per mount");
    }
    // Docker's aufs layout: layers/<id> lists the 7 image layers, nearest first.
    let parents = fs::read_to_string(home.join("layers").join(&id)).unwrap();
    assert_eq!(parents.lines().count(), 7, "{parents}");
    for p in parents.lines() {
        assert!(home.join("diff").join(p).is_dir());
    }
    // A second mount of the same container shares the server.
    s.ok(&["mount", "c"]);
    assert_eq!(servers(&s.root()).len().min(1), servers(&s.root()).len());
    s.ok(&["umount", "c"]);
    assert!(fstype(&root).is_some(), "still mounted: one reference left");
    // The server ends on its own when unmounted; the driver kills one still there after
    // 5 s, so a slow umount means the unmount did not reach it.
    let t0 = std::time::Instant::now();
    s.ok(&["umount", "c"]);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(3),
        "the server did not end with its mount ({:?})",
        t0.elapsed()
    );
    assert!(fstype(&root).is_none(), "unmounted by the last umount");
    assert!(
        servers(&s.root()).is_empty(),
        "the server exits with its mount"
    );
    s.ok(&["rm", "c"]);
}

#[test]
fn real_workloads_write_aufs_form_into_the_container_layer() {
    let Some((s, root, id)) = setup() else {
        return;
    };
    // Unpack a real tar into the union (GNU tar: creates, sets owners, modes and times).
    sh(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-xf"])
        .arg(fixture("layers/tarsplit-xattrs.tar"))
        .arg("-C")
        .arg(root.join("tmp")));
    // A shell script that creates, appends, renames, deletes and recreates.
    sh(Command::new("sh").current_dir(&root).arg("-c").arg(
        "set -e
         mkdir -p work/deep && echo one > work/deep/f && echo two >> work/deep/f
         mv work/deep/f work/g && ln -s g work/link && cat work/link > work/copy
         rm -f bin/busybox && rm -rf data/replace && mkdir data/replace && echo n > data/replace/new
         mv data/keep/k5 data/k5-moved && echo x >> data/keep/hard-src
         for i in 1 2 3 4 5; do echo $i > work/n$i; done; rm work/n3",
    ));
    assert_eq!(
        fs::read_to_string(root.join("work/g")).unwrap(),
        "one\ntwo\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("work/copy")).unwrap(),
        "one\ntwo\n"
    );
    assert!(!root.join("bin/busybox").exists() && !root.join("work/n3").exists());
    let replace: Vec<_> = fs::read_dir(root.join("data/replace"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        replace,
        ["new"],
        "a recreated directory hides the old one's entries"
    );
    // A hardlink pair stays one inode after one name is copied up.
    let a = fs::metadata(root.join("data/keep/hard-src")).unwrap();
    let b = fs::metadata(root.join("data/keep/hard-dst")).unwrap();
    assert_eq!(
        fs::read(root.join("data/keep/hard-dst")).unwrap(),
        fs::read(root.join("data/keep/hard-src")).unwrap()
    );
    assert!(fs::read_to_string(root.join("data/keep/hard-dst"))
        .unwrap()
        .ends_with("x\n"));
    assert_eq!(a.nlink(), 2);
    assert_eq!(a.ino(), b.ino(), "one inode for both names");
    // xattrs, statfs, mmap.
    rustix::fs::setxattr(
        root.join("work/g"),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let mut v = [0u8; 8];
    let n = rustix::fs::getxattr(root.join("work/g"), "user.k", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"v");
    let st = rustix::fs::statvfs(&root).unwrap();
    assert!(st.f_blocks > 0 && st.f_bsize > 0);
    mmap_roundtrip(&root.join("work/mapped"));

    // On disk: the container layer holds exactly its changes, in AUFS's form.
    let diff = s.root().join("aufs/diff").join(&id);
    assert!(diff.join("bin/.wh.busybox").is_file());
    assert!(diff.join("data/replace/.wh..wh..opq").is_file());
    assert!(diff.join("data/keep/.wh.k5").is_file());
    assert!(
        !diff.join("work/n3").exists() && !diff.join("work/.wh.n3").exists(),
        "a file made and removed in the container leaves nothing (no lower layer had it)"
    );
    assert!(
        diff.join(".wh..wh.plnk").is_dir(),
        "the copied-up hardlink went through a pseudo-link"
    );
    let mut note = [0u8; 8];
    let n = rustix::fs::getxattr(diff.join("work/g"), "user.k", &mut note[..]).unwrap();
    assert_eq!(&note[..n], b"v");
    // diff and commit read that form back.
    let d = s.ok(&["diff", "c"]);
    for want in [
        "D /bin/busybox",
        "A /work/g",
        "C /data/replace",
        "A /data/replace/new",
        "D /data/keep/k5",
        "A /data/k5-moved",
    ] {
        assert!(d.lines().any(|l| l == want), "{want} missing in:\n{d}");
    }
    assert!(!d.contains(".wh."), "{d}");
    s.ok(&["commit", "c", "next:1"]);
    let r2 = s.mounted("next:1", "c2");
    assert_eq!(fs::read_to_string(r2.join("work/g")).unwrap(), "one\ntwo\n");
    assert!(!r2.join("bin/busybox").exists() && !r2.join("data/keep/k5").exists());
    // The unpacked tar's files, with their xattrs, made it into the committed layer.
    assert_eq!(fs::read(r2.join("tmp/small.txt")).unwrap().len(), 5);
    assert_eq!(fs::read(r2.join("tmp/small2.txt")).unwrap().len(), 11);
    let listed = rustix::fs::listxattr(r2.join("tmp/small.txt"), &mut [0u8; 256][..]).unwrap();
    assert!(listed > 0, "xattrs from the unpacked tar survive commit");
    s.ok(&["rm", "-f", "c", "c2"]);
    s.assert_fsck_ok();
}

fn mmap_roundtrip(p: &Path) {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(p)
        .unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    // SAFETY: a fresh shared mapping of a 4096-byte file we own, unmapped before return.
    unsafe {
        let m = rustix::mm::mmap(
            std::ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &f,
            0,
        )
        .unwrap();
        std::ptr::copy_nonoverlapping(b"mapped".as_ptr(), m as *mut u8, 6);
        rustix::mm::msync(m, 4096, rustix::mm::MsyncFlags::SYNC).unwrap();
        rustix::mm::munmap(m, 4096).unwrap();
    }
    drop(f);
    assert_eq!(&fs::read(p).unwrap()[..6], b"mapped");
}

#[test]
fn a_crashed_server_is_detected_and_its_mount_cleaned_up() {
    let Some((s, root, _id)) = setup() else {
        return;
    };
    if fstype(&root).as_deref() == Some("aufs") {
        // Not a missing feature: the kernel's aufs has no server that could crash.
        eprintln!("NOT APPLICABLE: kernel aufs mounts have no server to crash");
        return;
    }
    let pids = servers(&s.root());
    assert_eq!(pids.len(), 1);
    kill9(pids[0]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let e = fs::read_dir(&root).map(|_| ()).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc_enotconn()), "{e}");
    // The next mount finds the dead one (its references died with it) and serves the
    // container again.
    let again = PathBuf::from(s.ok(&["mount", "c"]).trim());
    assert_eq!(again, root);
    if let Err(e) = fs::metadata(root.join("data/keep/k1")) {
        panic!("the remounted union does not serve: {e}");
    }
    assert_eq!(servers(&s.root()).len(), 1);
    s.ok(&["umount", "c"]);
    assert!(fstype(&root).is_none() && servers(&s.root()).is_empty());
    // A crash with nothing mounting again: the next command's driver open cleans up.
    s.ok(&["mount", "c"]);
    let pids = servers(&s.root());
    kill9(pids[0]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    s.ok(&["ps", "-a"]);
    assert!(fstype(&root).is_none(), "the dead mount was removed");
    s.ok(&["rm", "c"]);
}

fn libc_enotconn() -> i32 {
    rustix::io::Errno::NOTCONN.raw_os_error()
}

fn kill9(pid: u32) {
    let p = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(p, rustix::process::Signal::KILL).unwrap();
}
