//! Helpers shared by the layer-store tests: building layer tars with the `tar` crate's
//! builder (an implementation independent of strata's own writer) and comparing trees.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use tar::{Builder, EntryType, Header};

/// Builds a layer tar in memory, entry by entry.
pub struct TarBuilder {
    b: Builder<Vec<u8>>,
}

fn hdr(kind: EntryType, mode: u32) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(0);
    h
}

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder {
            b: Builder::new(Vec::new()),
        }
    }
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = hdr(EntryType::Directory, mode);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }
    pub fn file(self, path: &str, data: &[u8]) -> Self {
        self.file_mode(path, data, 0o644, 0, 0)
    }
    pub fn file_mode(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = hdr(EntryType::Regular, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }
    pub fn file_xattr(mut self, path: &str, data: &[u8], xattrs: &[(&str, &[u8])]) -> Self {
        let recs: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.file(path, data)
    }
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = hdr(EntryType::Symlink, 0o777);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = hdr(EntryType::Link, 0o644);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }
    pub fn device(mut self, path: &str, kind: EntryType, major: u32, minor: u32) -> Self {
        let mut h = hdr(kind, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }
    /// An entry whose name is written raw, bypassing the builder's path checks (for
    /// hostile names such as `../x`).
    pub fn raw(mut self, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) -> Self {
        let mut h = hdr(kind, 0o644);
        h.set_size(data.len() as u64);
        let n = &mut h.as_old_mut().name;
        n[..name.len()].copy_from_slice(name);
        let l = &mut h.as_old_mut().linkname;
        l[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }
    pub fn build(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// Everything that must survive a layer round trip, per path.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fsutil::tree_manifest(root).unwrap()
}

/// A file of the project's `fixtures/` directory.
pub fn fixture(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
        .join(rel)
}

/// A driver home for one test: a temp dir, on a fresh loop-mounted btrfs for the btrfs
/// driver (unmounted when dropped).
pub struct Home {
    fs: Option<loopfs::LoopFs>,
    dir: tempfile::TempDir,
}

impl Home {
    pub fn path(&self) -> &Path {
        match &self.fs {
            Some(f) => f.path(),
            None => self.dir.path(),
        }
    }
}

/// A home for driver `name`, or `None` (printing why) where the kernel lacks what it needs.
pub fn home(name: &str) -> Option<Home> {
    let dir = tempfile::tempdir().unwrap();
    if name != "btrfs" {
        return Some(Home { fs: None, dir });
    }
    if !loopfs::kernel_has("btrfs") {
        fsutil::testing::skip("btrfs case: the kernel has no btrfs");
        return None;
    }
    let fs = loopfs::LoopFs::create(
        "btrfs",
        &dir.path().join("fs.img"),
        &dir.path().join("mnt"),
        512 << 20,
    )
    .unwrap();
    Some(Home { fs: Some(fs), dir })
}
