//! The native diff shared by drivers that keep each layer's own changes in a directory of
//! their own (overlay2's upper dir, the AUFS-style `diff/<id>`): walk only that directory
//! (O(changes), not O(image)) and translate the driver's on-disk whiteouts and opaque
//! markers back into changes. Each driver says how to read one entry; the walk, the
//! added-or-modified decision and the ordering are shared.

use crate::changes::{Change, ChangeKind};
use crate::driver::ChangesSource;
use crate::error::DriverError;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What one entry of a layer directory means, as its driver stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryMeaning {
    /// A file or directory of the layer; `opaque` for a directory hiding everything below.
    Entry { opaque: bool },
    /// A whiteout: the named entry of this directory is deleted.
    Deletes(OsString),
    /// A marker making the directory it is in opaque.
    MarksDirOpaque,
    /// The driver's bookkeeping, not part of the layer.
    Ignore,
    /// Something the native diff cannot interpret: fall back to the tree walk.
    Unsafe,
}

/// How a driver reads its own layer directory.
pub trait LayerDirFormat {
    /// The meaning of `name` (at `path`, with metadata `md`) in a layer directory.
    fn classify(&self, path: &Path, name: &OsStr, md: &fs::Metadata) -> io::Result<EntryMeaning>;
}

fn exists_below(lowers: &[PathBuf], rel: &Path) -> bool {
    lowers
        .iter()
        .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
}

/// The changes recorded in layer directory `dir` over the layer directories `lowers`
/// (nearest first), in path order with each directory before its contents; `None` when
/// an entry is [`EntryMeaning::Unsafe`].
pub fn layer_dir_changes(
    dir: &Path,
    lowers: &[PathBuf],
    format: &dyn LayerDirFormat,
) -> io::Result<Option<Vec<Change>>> {
    let mut out = Vec::new();
    if !walk(dir, &mut PathBuf::new(), lowers, format, &mut out)? {
        return Ok(None);
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some(out))
}

fn walk(
    dir: &Path,
    rel: &mut PathBuf,
    lowers: &[PathBuf],
    format: &dyn LayerDirFormat,
    out: &mut Vec<Change>,
) -> io::Result<bool> {
    let mut names: Vec<OsString> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    let mut entries = Vec::with_capacity(names.len());
    let mut dir_opaque = false;
    for name in names {
        let p = dir.join(&name);
        let md = fs::symlink_metadata(&p)?;
        match format.classify(&p, &name, &md)? {
            EntryMeaning::Unsafe => return Ok(false),
            EntryMeaning::Ignore => {}
            EntryMeaning::MarksDirOpaque => dir_opaque = true,
            EntryMeaning::Deletes(victim) => out.push(Change {
                path: rel.join(victim),
                kind: ChangeKind::Deleted,
            }),
            EntryMeaning::Entry { opaque } => entries.push((name, p, md, opaque)),
        }
    }
    if dir_opaque && !rel.as_os_str().is_empty() {
        if let Some(c) = out.iter_mut().rev().find(|c| c.path == *rel) {
            c.kind = ChangeKind::Opaque;
        }
    }
    // Nothing of the lower layers shows through an opaque directory.
    let lowers: &[PathBuf] = if dir_opaque { &[] } else { lowers };
    for (name, p, md, opaque) in entries {
        rel.push(&name);
        let kind = if opaque && md.is_dir() {
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
            fsutil::check_depth(rel)?;
            // Inside an opaque or new directory nothing below is visible: all is added.
            let below: &[PathBuf] = if matches!(kind, ChangeKind::Opaque | ChangeKind::Added) {
                &[]
            } else {
                lowers
            };
            if !walk(&p, rel, below, format, out)? {
                return Ok(false);
            }
        }
        rel.pop();
    }
    Ok(true)
}

/// A layer's changes read from its own directory `dir` where that is safe, else the shared
/// tree walk of the mounted views (`on_fallback` is told first): the one place the choice
/// between a driver's native diff and the walk is made.
pub fn native_or_walk<D: crate::Driver + ?Sized>(
    driver: &D,
    id: &str,
    dir: PathBuf,
    lowers: &[PathBuf],
    format: &dyn LayerDirFormat,
    private_xattrs: Option<&'static str>,
    on_fallback: impl FnOnce(),
) -> Result<(Vec<Change>, Option<ChangesSource>), DriverError> {
    match native_with_source(dir, lowers, format, private_xattrs)? {
        Some((c, src)) => Ok((c, Some(src))),
        None => {
            on_fallback();
            Ok((crate::changes::compare_views(driver, id)?, None))
        }
    }
}

/// The native changes of a layer kept in `dir`, with `dir` as the place to read them from
/// (its `private_xattrs` being the driver's own); `None` when an entry is unsafe and the
/// caller must walk the trees instead.
pub fn native_with_source(
    dir: PathBuf,
    lowers: &[PathBuf],
    format: &dyn LayerDirFormat,
    private_xattrs: Option<&'static str>,
) -> Result<Option<(Vec<Change>, ChangesSource)>, DriverError> {
    let changes = layer_dir_changes(&dir, lowers, format)
        .map_err(|e| DriverError::io("read layer changes", &dir, e))?;
    Ok(changes.map(|c| {
        (
            c,
            ChangesSource {
                dir,
                private_xattrs,
            },
        )
    }))
}
