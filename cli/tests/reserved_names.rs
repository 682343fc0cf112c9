//! Names a layer cannot hold: `.wh.*` marks a whiteout in the layer format and is how the
//! aufs driver stores whiteouts. A real file or directory of such a name is refused with an
//! error naming it, on every driver, never silently dropped or turned into a deletion.

mod common;

use common::Strata;
use std::path::Path;

/// A tar holding `a/`, a directory `a/.wh.x/` and a file in it.
fn tar_with_wh_dir(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("whdir.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&p).unwrap());
    for (name, kind) in [
        ("a/", tar::EntryType::Directory),
        ("a/.wh.x/", tar::EntryType::Directory),
        ("a/.wh.x/f", tar::EntryType::Regular),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    }
    b.finish().unwrap();
    p
}

#[test]
fn a_layer_with_a_directory_named_wh_is_refused_on_every_driver() {
    for d in common::drivers_here() {
        let s = Strata::with_driver(d);
        let t = tar_with_wh_dir(s.dir.path());
        let err = s.fails(&["import", t.to_str().unwrap(), "whdir:1"], 125);
        assert!(
            err.contains("a/.wh.x") && err.contains("named .wh.* cannot be stored"),
            "{d}: {err}"
        );
        assert!(!s.ok(&["images"]).contains("whdir"), "{d}");
        s.assert_fsck_ok();
    }
}

#[test]
fn a_container_file_named_wh_is_never_committed_as_a_deletion() {
    for d in common::drivers_here() {
        let s = Strata::with_driver(d);
        s.load("images/busybox-wh.docker.tar");
        let o = s.run(&[
            "run",
            "--name",
            "c",
            "--network",
            "none",
            "busybox-wh:1",
            "/bin/busybox",
            "sh",
            "-c",
            "echo data > /tmp/.wh.passwd && cat /tmp/.wh.passwd",
        ]);
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        if d == "aufs" {
            // The union refuses the name as kernel aufs does.
            assert!(
                !o.status.success() && err.contains("Operation not permitted"),
                "{d}: {out}{err}"
            );
            s.ok(&["rm", "c"]);
            continue;
        }
        assert!(o.status.success() && out == "data\n", "{d}: {out}{err}");
        let err = s.fails(&["commit", "c", "wh:1"], 125);
        assert!(
            err.contains("tmp/.wh.passwd") && err.contains("rename it"),
            "{d}: {err}"
        );
        // A plain archive of the files keeps the name as it is.
        let exported = s.dir.path().join("c.tar");
        s.ok(&["export", "-o", exported.to_str().unwrap(), "c"]);
        let mut a = tar::Archive::new(std::fs::File::open(&exported).unwrap());
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(
            names.iter().any(|n| n == "tmp/.wh.passwd"),
            "{d}: {names:?}"
        );
        s.ok(&["rm", "c"]);
        s.assert_fsck_ok();
    }
}
