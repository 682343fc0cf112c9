//! A textual description of every entry of a tree, to compare trees across drivers and
//! tools (a migration, `umoci unpack` against strata's mount, apply(diff(x)) against x).

use super::xattr;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Path -> "type, mode, owner, mtime, content digest or link target or device, xattrs,
/// hardlink group" for every entry under `root` (the root itself excluded).
pub fn tree_manifest(root: &Path) -> io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    walk(root, root, &mut out, &mut inodes)?;
    // A hardlink group is the names of one inode within this tree (a link count that
    // counts names elsewhere, e.g. in an overlay's lower layer, is not a group).
    for names in inodes.values().filter(|n| n.len() > 1) {
        let first = names.iter().min().cloned().unwrap_or_default();
        for n in names {
            if let Some(d) = out.get_mut(n) {
                d.push_str(&format!(" hardlink-group={first}"));
            }
        }
    }
    Ok(out)
}

fn content_digest(p: &Path) -> io::Result<String> {
    use sha2::Digest;
    let mut f = fs::File::open(p)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hexs(&h.finalize()))
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    inodes: &mut HashMap<(u64, u64), Vec<String>>,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    names.sort();
    let dirfd = super::open_root(dir)?;
    for p in names {
        let rel = p
            .strip_prefix(root)
            .unwrap_or(&p)
            .to_string_lossy()
            .to_string();
        let md = fs::symlink_metadata(&p)?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
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
        };
        let mut d = format!(
            "{kind} mode={:o} uid={} gid={}",
            md.mode() & 0o7777,
            md.uid(),
            md.gid()
        );
        if !ft.is_dir() && !ft.is_symlink() {
            d += &format!(" mtime={}", md.mtime());
        }
        if ft.is_file() {
            d += &format!(" size={} sha256={}", md.len(), content_digest(&p)?);
            if md.nlink() > 1 {
                // Marked below, once it is known that another name in this tree shares it.
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_default()
                    .push(rel.clone());
            }
        } else if ft.is_symlink() {
            d += &format!(" target={}", fs::read_link(&p)?.display());
        } else if ft.is_char_device() || ft.is_block_device() {
            d += &format!(
                " rdev={}:{}",
                rustix::fs::major(md.rdev()),
                rustix::fs::minor(md.rdev())
            );
        }
        let name = p.file_name().unwrap_or_default();
        let xs = xattr::lget_all(dirfd.as_fd(), name)?;
        if !xs.is_empty() {
            let xs: Vec<String> = xs
                .iter()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), hexs(v)))
                .collect();
            d += &format!(" xattrs=[{}]", xs.join(","));
        }
        out.insert(rel, d);
        if ft.is_dir() {
            walk(root, &p, out, inodes)?;
        }
    }
    Ok(())
}

fn hexs(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}
