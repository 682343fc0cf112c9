//! Resolving `-u` (or the image's `User`) to ids from the image's own passwd and group
//! files, read inside the rootfs (never following a symlink out).

use crate::error::{Context as _, EngineError, Result};
use std::path::Path;

/// The uid, gid and supplementary groups `user` (`UID[:GID]`, `NAME[:GROUP]`) names in
/// the rootfs at `rootfs`.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, vec![0]));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    // The image's files, read inside the rootfs: regular files of at most 4 MiB only, so a
    // FIFO or a device planted as /etc/passwd fails at once instead of hanging or filling
    // memory.
    let read = |name: &str| -> Result<String> {
        let root = fsutil::open_root(rootfs)
            .map_err(|e| EngineError::io(format!("open the rootfs {}", rootfs.display()), e))?;
        let data = fsutil::read_regular_in_root(&root, Path::new(name), 4 << 20)
            .ctx(|| format!("read the image's /{name} to look up user {user:?}"))?;
        Ok(String::from_utf8_lossy(&data.unwrap_or_default()).to_string())
    };
    // Numeric user and group need no lookup at all.
    if let (Ok(uid), Some(Ok(gid))) = (u.parse::<u32>(), g.map(str::parse::<u32>)) {
        return Ok((uid, gid, vec![gid]));
    }
    let fields = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split(':').map(str::to_string).collect())
            .collect()
    };
    // A numeric user needs no entry: an unreadable passwd (absent, or masked by
    // /dev/null) only leaves its primary group at 0, as runc does.
    let passwd = match (u.parse::<u32>(), read("etc/passwd")) {
        (_, Ok(text)) => fields(&text),
        (Ok(_), Err(_)) => Vec::new(),
        (Err(_), Err(e)) => return Err(e),
    };
    // The user's passwd entry: by name, or by uid for a numeric user (who may have none).
    let entry = passwd.iter().find(|f| {
        f.len() > 3
            && match u.parse::<u32>() {
                Ok(n) => f[2] == n.to_string(),
                Err(_) => f[0] == u,
            }
    });
    let (uid, mut gid) = match (u.parse::<u32>(), entry) {
        (Ok(n), e) => (n, e.and_then(|f| f[3].parse().ok()).unwrap_or(0)),
        (Err(_), e) => e
            .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "unable to find user {u}: no matching entries in the image's /etc/passwd"
                ))
            })?,
    };
    let name = entry.map(|f| f[0].clone());
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => fields(&read("etc/group")?)
                .iter()
                .find(|f| f.len() > 2 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "unable to find group {g}: no matching entries in the image's /etc/group"
                    ))
                })?,
        };
    }
    // Supplementary groups: those that list the user as a member (only when no group was
    // named), and always the primary group, as Docker's runtime sets them.
    let mut groups = vec![gid];
    if let (None, Some(name)) = (g, name) {
        for f in fields(&read("etc/group")?) {
            if f.len() > 3 && f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if !groups.contains(&n) {
                        groups.push(n);
                    }
                }
            }
        }
    }
    Ok((uid, gid, groups))
}

/// The ids of `--group-add` groups (numbers, or names from the image's /etc/group), added
/// to `groups` where not there yet.
pub fn add_groups(rootfs: &Path, names: &[String], groups: &mut Vec<u32>) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let mut table: Option<Vec<Vec<String>>> = None;
    for g in names {
        let id = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                if table.is_none() {
                    let root = fsutil::open_root(rootfs).map_err(|e| {
                        EngineError::io(format!("open the rootfs {}", rootfs.display()), e)
                    })?;
                    let data = fsutil::read_regular_in_root(&root, Path::new("etc/group"), 4 << 20)
                        .ctx(|| format!("read the image's /etc/group to look up group {g:?}"))?;
                    let text = String::from_utf8_lossy(&data.unwrap_or_default()).to_string();
                    table = Some(
                        text.lines()
                            .map(|l| l.split(':').map(str::to_string).collect())
                            .collect(),
                    );
                }
                table
                    .iter()
                    .flatten()
                    .find(|f| f.len() > 2 && f[0] == *g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "Unable to find group {g}: no matching entries in the image's /etc/group"
                        ))
                    })?
            }
        };
        if !groups.contains(&id) {
            groups.push(id);
        }
    }
    Ok(())
}
