//! What strata does on the host side with things an image or a container controls (issue
//! 12), on every driver available here: the data root is closed to other local users (a
//! setuid binary of an image is neither runnable nor readable by uid 65534), and the
//! container's own `/etc/passwd` as a FIFO or an endless device gives a clear error at once.

mod common;

use common::Strata;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BB: &str = "/bin/busybox";

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn setup(driver: &str) -> Strata {
    let s = Strata::with_driver(driver);
    s.load("images/busybox-wh.docker.tar");
    s
}

/// Runs `c`, killing it after `limit`: the output, or `None` if it had to be killed.
fn within(mut c: Command, limit: Duration) -> Option<Output> {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every path under `dir` named `name` (not following symlinks, not crossing into mounts'
/// contents twice).
fn find(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if e.file_name() == name {
            out.push(p.clone());
        }
        if ft.is_dir() {
            find(&p, name, out);
        }
    }
}

/// As uid/gid 65534 with no groups: runs `args`, returning whether it succeeded and what
/// it printed. Through a shell: setpriv execs its command while root's capabilities are
/// still in effect (they go at that exec), so its own exec could reach what uid 65534
/// cannot.
fn as_nobody(args: &[&str]) -> (bool, String) {
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["/bin/sh", "-c", "exec \"$0\" \"$@\""])
        .args(args)
        .output()
        .expect("setpriv (util-linux)");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string() + &err(&o),
    )
}

#[test]
fn setuid_files_of_an_image_are_out_of_reach_of_local_users() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        // A layer with a setuid-root copy of id(1), imported as an image.
        let src = s.dir.path().join("suid-src");
        std::fs::create_dir_all(src.join("usr/bin")).unwrap();
        std::fs::copy("/usr/bin/id", src.join("usr/bin/suid-id")).unwrap();
        let tar = s.dir.path().join("suid.tar");
        let o = Command::new("tar")
            .arg("-C")
            .arg(&src)
            .args(["--owner=0", "--group=0", "--mode=u+s", "-cf"])
            .arg(&tar)
            .arg("usr")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", err(&o));
        s.ok(&["import", tar.to_str().unwrap(), "suid:1"]);
        s.ok(&["create", "--name", "c", "suid:1", "/usr/bin/suid-id"]);
        let merged = s.ok(&["mount", "c"]);
        let mut found = Vec::new();
        find(&s.root(), "suid-id", &mut found);
        assert!(
            !found.is_empty(),
            "{driver}: the file is somewhere under the data root"
        );
        // The check is real: the same binary where uid 65534 can reach it runs as root.
        let open = s.dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::copy("/usr/bin/id", open.join("suid-id")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            open.join("suid-id"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        let (ok, text) = as_nobody(&[open.join("suid-id").to_str().unwrap(), "-u"]);
        assert!(ok && text.trim() == "0", "{driver}: control: {text}");
        for p in found
            .iter()
            .chain([&PathBuf::from(merged.trim()).join("usr/bin/suid-id")])
        {
            let (ok, text) = as_nobody(&[p.to_str().unwrap(), "-u"]);
            assert!(!ok, "{driver}: uid 65534 ran {}: {text}", p.display());
            let (ok, text) = as_nobody(&["cat", p.to_str().unwrap()]);
            assert!(!ok, "{driver}: uid 65534 read {}: {text}", p.display());
        }
        // A container's spec (its environment) and logs are root's only.
        let (ok, _) = as_nobody(&["ls", s.root().join("containers").to_str().unwrap()]);
        assert!(!ok, "{driver}: the containers folder is listable");
        s.ok(&["umount", "c"]);
        s.ok(&["rm", "c"]);
    }
}

#[test]
fn existing_open_data_roots_are_closed_when_opened() {
    let s = setup("vfs");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    s.ok(&["images", "-q"]);
    let mode = std::fs::metadata(s.root()).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    let mode = std::fs::metadata(s.root().join("vfs"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o700);
}

#[test]
fn a_fifo_or_a_device_as_etc_passwd_fails_at_once() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        // Planted in the container's filesystem before it starts.
        s.ok(&[
            "create",
            "--name",
            "c",
            "-u",
            "nobody",
            "busybox-wh:1",
            BB,
            "id",
        ]);
        let root = PathBuf::from(s.ok(&["mount", "c"]).trim());
        std::fs::remove_file(root.join("etc/passwd")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("etc/passwd"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        s.ok(&["umount", "c"]);
        let o = within(s.cmd(&["start", "-a", "c"]), Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{driver}: start hung on a FIFO /etc/passwd"));
        assert_eq!(o.status.code(), Some(125), "{driver}: {}", err(&o));
        assert!(
            err(&o).contains("not a regular file"),
            "{driver}: {}",
            err(&o)
        );
        // Made by the running container itself, then used by exec -u.
        s.ok(&[
            "run",
            "-d",
            "--name",
            "bg",
            "busybox-wh:1",
            BB,
            "sleep",
            "60",
        ]);
        for (plant, what) in [
            ("rm /etc/passwd; mkfifo /etc/passwd", "FIFO"),
            ("rm /etc/passwd; mknod /etc/passwd c 1 5", "device"),
        ] {
            s.ok(&["exec", "bg", BB, "sh", "-c", plant]);
            let o = within(
                s.cmd(&["exec", "-u", "nobody", "bg", BB, "id"]),
                Duration::from_secs(20),
            )
            .unwrap_or_else(|| panic!("{driver}: exec -u hung on a {what} /etc/passwd"));
            assert_eq!(o.status.code(), Some(125), "{driver}: {what}: {}", err(&o));
            assert!(
                err(&o).contains("not a regular file"),
                "{driver}: {what}: {}",
                err(&o)
            );
        }
        // Numeric ids need no lookup.
        let o = s.ok(&[
            "exec",
            "-u",
            "65534:65534",
            "bg",
            BB,
            "grep",
            "^Uid:",
            "/proc/self/status",
        ]);
        assert!(o.contains("65534"), "{o}");
        s.ok(&["rm", "-f", "bg", "c"]);
    }
}

/// Runs GNU tar with `args` in `dir`.
fn gnu_tar(dir: &Path, args: &[&str]) {
    let o = Command::new("tar")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "tar {args:?}: {}", err(&o));
}

#[test]
fn sparse_files_become_holes_and_sparse_bombs_are_refused_at_once() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        let d = s.dir.path().join("sparse");
        std::fs::create_dir(&d).unwrap();
        // 512 MiB that are all hole but 1 MiB of data in the middle.
        let f = std::fs::File::create(d.join("big")).unwrap();
        f.set_len(512 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&vec![7u8; 1 << 20], 256 << 20).unwrap();
        drop(f);
        gnu_tar(
            &d,
            &["--format=gnu", "--sparse", "-cf", "../sparse.tar", "big"],
        );
        std::fs::remove_file(d.join("big")).unwrap();
        let tar = s.dir.path().join("sparse.tar");
        s.ok(&["import", tar.to_str().unwrap(), "sparse:1"]);
        s.ok(&["create", "--name", "c", "sparse:1", "/x"]);
        let root = PathBuf::from(s.ok(&["mount", "c"]).trim());
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(root.join("big")).unwrap();
        assert_eq!(md.len(), 512 << 20, "{driver}");
        assert!(
            md.blocks() * 512 < 64 << 20,
            "{driver}: {} bytes allocated",
            md.blocks() * 512
        );
        let mut b = [0u8; 4];
        std::fs::File::open(root.join("big"))
            .unwrap()
            .read_exact_at(&mut b, 256 << 20)
            .unwrap();
        assert_eq!(b, [7; 4], "{driver}: the data survives");
        s.ok(&["umount", "c"]);
        s.ok(&["rm", "c"]);
        s.assert_fsck_ok();
    }
    // 2 TiB of holes in a tar of a few KiB: refused before anything is written.
    let s = Strata::with_driver("overlay2");
    let d = s.dir.path().join("bomb");
    std::fs::create_dir(&d).unwrap();
    let f = std::fs::File::create(d.join("bomb")).unwrap();
    f.set_len(2 << 40).unwrap();
    drop(f);
    gnu_tar(
        &d,
        &["--format=gnu", "--sparse", "-cf", "../bomb.tar", "bomb"],
    );
    std::fs::remove_file(d.join("bomb")).unwrap();
    let tar = s.dir.path().join("bomb.tar");
    assert!(std::fs::metadata(&tar).unwrap().len() < 64 << 10);
    let o = within(
        s.cmd(&["import", tar.to_str().unwrap(), "bomb:1"]),
        Duration::from_secs(30),
    )
    .expect("the sparse bomb was worked on for 30 s");
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("max-layer-size"), "{}", err(&o));
    assert!(s.images_json().is_empty());
    s.assert_fsck_ok();
}

/// A one-file tar whose entry carries a PAX comment of `n` bytes.
fn pax_tar(path: &Path, n: usize) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    b.append_pax_extensions([("comment", "c".repeat(n).as_bytes())])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
    b.finish().unwrap();
}

#[test]
fn oversized_records_entry_counts_and_layer_counts_are_refused_with_the_limit_named() {
    let s = Strata::with_driver("overlay2");
    let big = s.dir.path().join("pax.tar");
    pax_tar(&big, 2 << 20);
    let e = s.fails(&["import", big.to_str().unwrap(), "pax:1"], 125);
    assert!(
        e.contains("PAX extended header of") && e.contains("1048576"),
        "{e}"
    );
    assert!(s.images_json().is_empty());
    // Allowed by daemon.json, it loads.
    std::fs::write(
        s.dir.path().join("daemon.json"),
        r#"{"max-tar-header-record": 4194304, "max-layer-entries": 5, "max-image-layers": 3}"#,
    )
    .unwrap();
    s.ok(&["import", big.to_str().unwrap(), "pax:1"]);
    // Six entries against a limit of five.
    let d = s.dir.path().join("many");
    std::fs::create_dir(&d).unwrap();
    for i in 0..6 {
        std::fs::write(d.join(format!("f{i}")), "x").unwrap();
    }
    gnu_tar(
        &d,
        &["-cf", "../many.tar", "f0", "f1", "f2", "f3", "f4", "f5"],
    );
    let many = s.dir.path().join("many.tar");
    let e = s.fails(&["import", many.to_str().unwrap(), "many:1"], 125);
    assert!(e.contains("max-layer-entries"), "{e}");
    // busybox-wh has 7 layers, the limit says 3.
    let e = s.fails(
        &[
            "load",
            "-i",
            common::fixture("images/busybox-wh.oci.tar")
                .to_str()
                .unwrap(),
        ],
        125,
    );
    assert!(e.contains("max-image-layers"), "{e}");
    s.assert_fsck_ok();
    // A config that is not a number is refused naming the key.
    std::fs::write(
        s.dir.path().join("daemon.json"),
        r#"{"max-layer-size": "big"}"#,
    )
    .unwrap();
    let e = s.fails(&["images"], 125);
    assert!(e.contains("daemon.json is invalid"), "{e}");
}

#[test]
fn a_layout_blob_that_is_not_a_regular_file_is_refused_at_once() {
    let s = Strata::with_driver("vfs");
    let dir = s.dir.path().join("layout");
    std::fs::create_dir(&dir).unwrap();
    gnu_tar(
        &dir,
        &[
            "-xf",
            common::fixture("images/busybox-wh.oci.tar")
                .to_str()
                .unwrap(),
        ],
    );
    // The largest blob (a layer) replaced by a FIFO nobody writes to.
    let dir = dir.join("busybox-wh.oci");
    let blobs = dir.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    std::fs::remove_file(&biggest).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &biggest,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let o = within(
        s.cmd(&["load", "-i", dir.to_str().unwrap()]),
        Duration::from_secs(20),
    )
    .expect("load hung on a FIFO blob");
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("not a regular file"), "{}", err(&o));
    assert!(s.images_json().is_empty());
}

#[test]
fn cp_never_touches_the_host_while_a_container_swaps_symlinks() {
    for driver in common::drivers_here() {
        let s = setup(driver);
        let host = s.dir.path().join("host");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("payload"), "from host").unwrap();
        // Host files the container points its symlinks at.
        let victim = s.dir.path().join("victim");
        let secret = s.dir.path().join("secret");
        std::fs::write(&secret, "HOST SECRET").unwrap();
        let (v, sec) = (victim.display().to_string(), secret.display().to_string());
        // The container flips /tmp/t between a regular file and a symlink to the victim,
        // and /tmp/s between a regular file and a symlink to the secret, as fast as it can.
        let script = format!(
            "while :; do ln -sfn {v} /tmp/t; echo f > /tmp/t.new; mv -f /tmp/t.new /tmp/t; \
             ln -sfn {sec} /tmp/s; echo mine > /tmp/s.new; mv -f /tmp/s.new /tmp/s; done"
        );
        s.ok(&[
            "run",
            "-d",
            "--name",
            "flip",
            "busybox-wh:1",
            BB,
            "sh",
            "-c",
            &script,
        ]);
        let out_file = s.dir.path().join("out");
        let payload = host.join("payload");
        for _ in 0..150 {
            let _ = s.run(&["cp", payload.to_str().unwrap(), "flip:/tmp/t"]);
            let _ = std::fs::remove_file(&out_file);
            let _ = s.run(&["cp", "flip:/tmp/s", out_file.to_str().unwrap()]);
            assert!(
                !victim.exists(),
                "{driver}: cp into the container wrote a host file"
            );
            if let Ok(md) = std::fs::symlink_metadata(&out_file) {
                if md.is_file() {
                    let got = std::fs::read_to_string(&out_file).unwrap_or_default();
                    assert_ne!(got, "HOST SECRET", "{driver}: cp out read a host file");
                }
            }
        }
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "HOST SECRET");
        s.ok(&["rm", "-f", "flip"]);
    }
}

#[test]
fn the_union_server_never_touches_the_host_while_a_container_races_it() {
    if !common::driver_available("aufs") {
        return;
    }
    let s = setup("aufs");
    // A host directory the container's symlinks point at.
    let victim = s.dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("f"), "host").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(victim.join("f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let v = victim.display().to_string();
    // One loop flips /w between a real directory and a symlink to the host directory; the
    // others chmod, truncate and write through /w, so the server checks /w, then acts.
    let script = format!(
        "(while :; do rm -rf /w; mkdir /w; echo c > /w/f; rm -rf /w; ln -s {v} /w; done) & \
         (while :; do chmod 600 /w/f; done) 2>/dev/null & \
         (while :; do echo pwned > /w/new; : > /w/f; done) 2>/dev/null & \
         sleep 8; kill 0"
    );
    let o = within(
        s.cmd(&["run", "--rm", "busybox-wh:1", BB, "sh", "-c", &script]),
        Duration::from_secs(60),
    )
    .expect("the race container did not end");
    assert_ne!(
        o.status.code(),
        Some(125),
        "the race never ran: {}",
        err(&o)
    );
    let mode = std::fs::metadata(victim.join("f"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644, "the server changed a host file's mode");
    assert_eq!(std::fs::read_to_string(victim.join("f")).unwrap(), "host");
    assert!(!victim.join("new").exists(), "the server wrote a host file");
}
