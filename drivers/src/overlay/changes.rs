//! overlay2's native changes: a layer's changes are exactly its upper (diff) directory, so
//! only that is walked (O(changes), not O(image)). 0/0 character devices are deletions and
//! `trusted.overlay.opaque` directories are opaque. Where redirect or metacopy xattrs
//! appear the upper dir is not a plain diff, and the caller falls back to the tree walk.

use super::whiteout::OPAQUE_XATTR;
use crate::changes::{Change, ChangeKind};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

fn xattr_of(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(p, name, &mut buf[..])
        .ok()
        .map(|n| buf[..n].to_vec())
}

/// Whether `p` has any `trusted.overlay.*` xattr: one list call instead of a lookup per
/// name, as nearly every entry of an upper dir has none.
fn has_overlay_xattrs(p: &Path) -> io::Result<bool> {
    let mut buf = [0u8; 1024];
    let names: Vec<u8> = match rustix::fs::llistxattr(p, &mut buf[..]) {
        Ok(n) => buf[..n].to_vec(),
        Err(rustix::io::Errno::RANGE) => {
            let mut v = vec![0u8; rustix::fs::llistxattr_query(p)? * 2];
            let n = rustix::fs::llistxattr(p, &mut v[..])?;
            v.truncate(n);
            v
        }
        Err(rustix::io::Errno::NOTSUP) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    Ok(names
        .split(|&b| b == 0)
        .any(|n| n.starts_with(b"trusted.overlay.")))
}

fn exists_below(lowers: &[PathBuf], rel: &Path) -> bool {
    lowers
        .iter()
        .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
}

/// The changes recorded in `diff`, or `None` when the native diff is not safe.
pub fn native(diff: &Path, lowers: &[PathBuf]) -> io::Result<Option<Vec<Change>>> {
    let mut out = Vec::new();
    if walk(diff, &mut PathBuf::new(), lowers, &mut out)? {
        Ok(Some(out))
    } else {
        Ok(None)
    }
}

fn walk(
    dir: &Path,
    rel: &mut PathBuf,
    lowers: &[PathBuf],
    out: &mut Vec<Change>,
) -> io::Result<bool> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let p = dir.join(&name);
        rel.push(&name);
        let md = fs::symlink_metadata(&p)?;
        let marked = has_overlay_xattrs(&p)?;
        if marked
            && (xattr_of(&p, "trusted.overlay.redirect").is_some()
                || xattr_of(&p, "trusted.overlay.metacopy").is_some())
        {
            return Ok(false);
        }
        let kind = if md.file_type().is_char_device() && md.rdev() == 0 {
            ChangeKind::Deleted
        } else if marked && md.is_dir() && xattr_of(&p, OPAQUE_XATTR).as_deref() == Some(b"y") {
            ChangeKind::Opaque
        } else if exists_below(lowers, rel) {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        out.push(Change {
            path: rel.clone(),
            kind,
        });
        if md.is_dir() {
            // Inside an opaque or new directory nothing below is visible: all is added.
            let below: &[PathBuf] = if matches!(kind, ChangeKind::Opaque | ChangeKind::Added) {
                &[]
            } else {
                lowers
            };
            if !walk(&p, rel, below, out)? {
                return Ok(false);
            }
        }
        rel.pop();
    }
    Ok(true)
}
