//! The shared tree walk that lists what a layer changed against its parent.
//!
//! Follows Docker's rules so `strata diff` prints what `docker diff` would: entries are
//! compared by type, mode, owner, device number, and for non-directories size, mtime and
//! link target; a directory with changed children is reported as modified before them.

use crate::driver::Driver;
use crate::error::DriverError;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Modified,
    Added,
    Deleted,
    /// A directory that hides everything the lower layers had in it (overlay's
    /// `trusted.overlay.opaque`); written as the directory plus `.wh..wh..opq`.
    Opaque,
}

impl ChangeKind {
    /// The letter `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified | ChangeKind::Opaque => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path, relative to the layer root (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    pub kind: ChangeKind,
}

/// The changes of layer `id` against its parent, by mounting both and walking the two
/// views: the default for every driver, and the fallback where a native diff is unsafe.
pub fn compare_views<D: Driver + ?Sized>(d: &D, id: &str) -> Result<Vec<Change>, DriverError> {
    let parent = d.parent(id)?;
    let upper = d.get(id)?;
    let lower = match &parent {
        Some(p) => match d.get(p) {
            Ok(path) => Some(path),
            Err(e) => {
                let _ = d.put(id);
                return Err(e);
            }
        },
        None => None,
    };
    let result = tree_changes(lower.as_deref(), &upper);
    if let Some(p) = &parent {
        d.put(p)?;
    }
    d.put(id)?;
    result.map_err(|e| DriverError::io("compare layer trees", upper, e))
}

/// Lists the changes of the tree `upper` against `lower` (or against nothing), in path
/// order with each directory before its contents.
pub fn tree_changes(lower: Option<&Path>, upper: &Path) -> io::Result<Vec<Change>> {
    let mut out = Vec::new();
    walk(lower, upper, &mut PathBuf::new(), &mut out)?;
    Ok(out)
}

fn entries(dir: &Path) -> io::Result<BTreeMap<OsString, fs::Metadata>> {
    let mut map = BTreeMap::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let md = fs::symlink_metadata(e.path())?;
        map.insert(e.file_name(), md);
    }
    Ok(map)
}

fn capability(path: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 128];
    match rustix::fs::lgetxattr(path, "security.capability", &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

fn differs(lp: &Path, l: &fs::Metadata, up: &Path, u: &fs::Metadata) -> bool {
    if l.mode() != u.mode() || l.uid() != u.uid() || l.gid() != u.gid() || l.rdev() != u.rdev() {
        return true;
    }
    if !u.is_dir()
        && (l.size() != u.size() || l.mtime() != u.mtime() || l.mtime_nsec() != u.mtime_nsec())
    {
        return true;
    }
    if u.file_type().is_symlink() && fs::read_link(lp).ok() != fs::read_link(up).ok() {
        return true;
    }
    capability(lp) != capability(up)
}

fn add_all(upper: &Path, rel: &mut PathBuf, out: &mut Vec<Change>) -> io::Result<()> {
    for (name, md) in entries(upper)? {
        rel.push(&name);
        out.push(Change {
            path: rel.clone(),
            kind: ChangeKind::Added,
        });
        if md.is_dir() {
            fsutil::check_depth(rel)?;
            add_all(&upper.join(&name), rel, out)?;
        }
        rel.pop();
    }
    Ok(())
}

fn walk(
    lower: Option<&Path>,
    upper: &Path,
    rel: &mut PathBuf,
    out: &mut Vec<Change>,
) -> io::Result<()> {
    let Some(lower) = lower else {
        return add_all(upper, rel, out);
    };
    let lmap = entries(lower)?;
    let umap = entries(upper)?;
    let mut names: Vec<&OsString> = lmap.keys().chain(umap.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        rel.push(name);
        let lp = lower.join(name);
        let up = upper.join(name);
        match (lmap.get(name), umap.get(name)) {
            (Some(_), None) => out.push(Change {
                path: rel.clone(),
                kind: ChangeKind::Deleted,
            }),
            (None, Some(u)) => {
                out.push(Change {
                    path: rel.clone(),
                    kind: ChangeKind::Added,
                });
                if u.is_dir() {
                    fsutil::check_depth(rel)?;
                    add_all(&up, rel, out)?;
                }
            }
            (Some(l), Some(u)) => {
                let at = out.len();
                let changed = differs(&lp, l, &up, u);
                if u.is_dir() {
                    fsutil::check_depth(rel)?;
                    let lower_dir = if l.is_dir() { Some(lp.as_path()) } else { None };
                    walk(lower_dir, &up, rel, out)?;
                }
                if changed || out.len() > at {
                    out.insert(
                        at,
                        Change {
                            path: rel.clone(),
                            kind: ChangeKind::Modified,
                        },
                    );
                }
            }
            (None, None) => {}
        }
        rel.pop();
    }
    Ok(())
}
