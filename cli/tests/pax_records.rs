//! PAX records are read by their length prefix, as Go's archive/tar reads them: an xattr
//! value holding newlines (binary values such as file capabilities do) applies on every
//! driver, cannot smuggle in a record of its own, and is written back byte for byte.

mod common;

use common::Strata;
use sha2::Digest;
use std::path::Path;

fn pax(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// A capability set whose bytes hold newlines: revision 2, effective, permitted
/// CAP_NET_BIND_SERVICE (bit 10) and CAP_DAC_READ_SEARCH (bit 2) = 0x40a.
const CAP: [u8; 20] = [
    1, 0, 0, 2, 0x0a, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
const SMUGGLE: &[u8] = b"line1\n30 path=etc/smuggled-by-xattr\nend";

/// A one-file layer: `bin/tool` with a capability and a user xattr full of newlines.
fn layer(dir: &Path) -> std::path::PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    let mut d = tar::Header::new_ustar();
    d.set_entry_type(tar::EntryType::Directory);
    d.set_mode(0o755);
    d.set_size(0);
    d.set_cksum();
    b.append_data(&mut d, "bin/", std::io::empty()).unwrap();
    let mut data = pax("SCHILY.xattr.security.capability", &CAP);
    data.extend(pax("SCHILY.xattr.user.notes", SMUGGLE));
    let mut x = tar::Header::new_ustar();
    x.set_entry_type(tar::EntryType::XHeader);
    x.set_mode(0o644);
    x.set_size(data.len() as u64);
    x.set_cksum();
    b.append_data(&mut x, "PaxHeaders/tool", &data[..]).unwrap();
    let mut f = tar::Header::new_ustar();
    f.set_entry_type(tar::EntryType::Regular);
    f.set_mode(0o755);
    f.set_size(3);
    f.set_cksum();
    b.append_data(&mut f, "bin/tool", &b"hi\n"[..]).unwrap();
    let p = dir.join("layer.tar");
    std::fs::write(&p, b.into_inner().unwrap()).unwrap();
    p
}

fn xattr(path: &Path, name: &str) -> Vec<u8> {
    let parent = fsutil::open_root(path.parent().unwrap()).unwrap();
    fsutil::xattr::lget(
        std::os::fd::AsFd::as_fd(&parent),
        path.file_name().unwrap(),
        name.as_ref(),
    )
    .unwrap_or_else(|e| panic!("{}: {name}: {e}", path.display()))
}

#[test]
fn xattr_values_with_newlines_apply_and_come_back_on_every_driver() {
    for d in common::drivers_here() {
        let s = Strata::with_driver(d);
        let t = layer(s.dir.path());
        s.ok(&["import", t.to_str().unwrap(), "caps:1"]);
        // The layer is the tar as given: its DiffID is the tar's own digest.
        let want = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(std::fs::read(&t).unwrap()))
        );
        let v: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "caps:1"])).unwrap();
        assert_eq!(v[0]["RootFS"]["Layers"][0], want.as_str(), "{d}");
        let root = s.mounted("caps:1", "c");
        assert_eq!(
            xattr(&root.join("bin/tool"), "security.capability"),
            CAP,
            "{d}"
        );
        assert_eq!(xattr(&root.join("bin/tool"), "user.notes"), SMUGGLE, "{d}");
        assert!(
            !root.join("etc/smuggled-by-xattr").exists(),
            "{d}: a record inside a value was taken"
        );
        assert_eq!(
            std::fs::read(root.join("bin/tool")).unwrap(),
            b"hi\n",
            "{d}"
        );
        // Saved back: the same bytes.
        let out = s.dir.path().join("saved");
        s.ok(&[
            "save",
            "--format",
            "oci",
            "-o",
            out.to_str().unwrap(),
            "caps:1",
        ]);
        let blob = out.join("blobs/sha256").join(&want["sha256:".len()..]);
        assert_eq!(
            std::fs::read(&blob).unwrap(),
            std::fs::read(&t).unwrap(),
            "{d}"
        );
        // Through a container's layer: a change to the file (a copy-up where the driver
        // has one) is committed, and the writer keeps the values byte for byte.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            root.join("bin/tool"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        s.ok(&["umount", "c"]);
        s.ok(&["commit", "c", "caps:2"]);
        let root2 = s.mounted("caps:2", "c2");
        assert_eq!(
            xattr(&root2.join("bin/tool"), "security.capability"),
            CAP,
            "{d}: committed"
        );
        assert_eq!(
            xattr(&root2.join("bin/tool"), "user.notes"),
            SMUGGLE,
            "{d}: committed"
        );
        s.ok(&["umount", "c2"]);
        s.ok(&["rm", "-f", "c", "c2"]);
        s.assert_fsck_ok();
    }
}
