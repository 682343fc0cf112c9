//! Helpers shared by the layer-store tests: building layer tars with the `tar` crate's
//! builder (an implementation independent of strata's own writer) and comparing trees.
#![allow(dead_code)]

use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
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
        TarBuilder { b: Builder::new(Vec::new()) }
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
        let recs: Vec<(String, &[u8])> = xattrs.iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v)).collect();
        self.b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v))).unwrap();
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
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>, inodes: &mut BTreeMap<(u64, u64), String>) {
    let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let mut desc = format!("mode={:o} uid={} gid={}", md.mode(), md.uid(), md.gid());
        if !ft.is_dir() {
            desc += &format!(" mtime={}", md.mtime());
        }
        if ft.is_file() {
            let data = fs::read(&p).unwrap();
            desc += &format!(" sha={}", hex::encode(Sha256::digest(&data)));
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                let first = inodes.entry(key).or_insert_with(|| rel.clone()).clone();
                desc += &format!(" link-group={first}");
            }
        } else if ft.is_symlink() {
            desc += &format!(" -> {}", fs::read_link(&p).unwrap().display());
        } else if ft.is_char_device() || ft.is_block_device() {
            desc += &format!(" rdev={}", md.rdev());
        }
        if let Ok(list) = xattr_list(&p) {
            desc += &format!(" xattrs={list:?}");
        }
        out.insert(rel, desc);
        if ft.is_dir() {
            walk(root, &p, out, inodes);
        }
    }
}

fn xattr_list(p: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let dir = drivers::fsutil::open_root(p.parent().unwrap())?;
    let v = drivers::fsutil::xattr::lget_all(std::os::fd::AsFd::as_fd(&dir), p.file_name().unwrap())?;
    Ok(v.into_iter().map(|(k, v)| (k.to_string_lossy().to_string(), v)).collect())
}
