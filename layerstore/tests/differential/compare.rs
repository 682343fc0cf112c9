//! What two unpacked root filesystems are compared on, entry by entry: type, mode, owner,
//! content, link target, device, `user.` xattrs, hardlink groups and mtimes.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Path -> description of every entry of a tree.
pub type Manifest = BTreeMap<String, String>;

/// Path -> description. A directory's mtime at or after `now` (made during this run,
/// for a directory only implied by an entry: both tools make those with the current time)
/// is shown as `new`.
pub fn manifest(root: &Path, now: i64) -> Manifest {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    walk(root, root, now, &mut out, &mut inodes);
    for names in inodes.values().filter(|n| n.len() > 1) {
        let first = names.iter().min().cloned().unwrap_or_default();
        for n in names {
            if let Some(d) = out.get_mut(n) {
                d.push_str(&format!(" link-group={first}"));
            }
        }
    }
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    now: i64,
    out: &mut BTreeMap<String, String>,
    inodes: &mut HashMap<(u64, u64), Vec<String>>,
) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let mtime = if ft.is_dir() && md.mtime() >= now {
            "new".to_string()
        } else {
            md.mtime().to_string()
        };
        let mut d = format!(
            "{} mode={:o} uid={} gid={} mtime={mtime}",
            kind(&ft),
            md.mode() & 0o7777,
            md.uid(),
            md.gid()
        );
        if ft.is_symlink() {
            d = format!("symlink uid={} gid={} mtime={mtime}", md.uid(), md.gid());
            d += &format!(" target={}", fs::read_link(&p).unwrap().display());
        } else if ft.is_file() {
            d += &format!(
                " data={:?}",
                String::from_utf8_lossy(&fs::read(&p).unwrap())
            );
            if md.nlink() > 1 {
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_default()
                    .push(rel.clone());
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            d += &format!(" rdev={:x}", md.rdev());
        }
        if !ft.is_symlink() {
            let mut xs: Vec<String> = Vec::new();
            if let Ok(names) = xattr_names(&p) {
                for n in names.into_iter().filter(|n| n.starts_with("user.")) {
                    let v = xattr_value(&p, &n).unwrap_or_default();
                    xs.push(format!("{n}={v:?}"));
                }
            }
            xs.sort();
            if !xs.is_empty() {
                d += &format!(" xattrs={xs:?}");
            }
        }
        out.insert(rel, d);
        if ft.is_dir() {
            walk(root, &p, now, out, inodes);
        }
    }
}

fn kind(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    }
}

fn xattr_names(p: &Path) -> std::io::Result<Vec<String>> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut buf[..])?;
    Ok(buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).to_string())
        .collect())
}

fn xattr_value(p: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::lgetxattr(p, name, &mut buf[..])?;
    buf.truncate(n);
    Ok(buf)
}

/// `d` with its mtime replaced by `new`.
fn mtime_new(d: &str) -> String {
    d.split(' ')
        .map(|f| {
            if f.starts_with("mtime=") {
                "mtime=new"
            } else {
                f
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The lines where umoci's manifest `a` and strata's `b` differ, for a readable failure.
///
/// Where umoci is wrong, strata follows the image spec (and Docker), and the difference
/// is accepted here: when umoci makes a directory that is only implied by an entry, the
/// directory it is made in gets the current time, because umoci restores only the
/// immediate parent's metadata after each entry. A directory umoci shows as made now
/// (`mtime=new`) may therefore keep its own time in strata.
pub fn differences(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("only in umoci: {k}: {v}")),
            Some(w) if w != v => {
                let umoci_clobbered = v.starts_with("dir ") && v.contains(" mtime=new");
                if !(umoci_clobbered && mtime_new(w) == *v) {
                    out.push(format!("{k}:\n    umoci:  {v}\n    strata: {w}"));
                }
            }
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push(format!("only in strata: {k}: {v}"));
        }
    }
    out
}
