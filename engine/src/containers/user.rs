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
    let read = |name: &str| read_table(rootfs, name, &format!("user {user:?}"));
    // Numeric user and group need no lookup at all.
    if let (Ok(uid), Some(Ok(gid))) = (u.parse::<u32>(), g.map(str::parse::<u32>)) {
        return Ok((uid, gid, vec![gid]));
    }
    // A numeric user needs no entry: an unreadable passwd (absent, or masked by
    // /dev/null) only leaves its primary group at 0, as runc does.
    let passwd = match (u.parse::<u32>(), read("etc/passwd")) {
        (_, Ok(table)) => table,
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
            Err(_) => group_id(&read("etc/group")?, g).ok_or_else(|| {
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
        for f in read("etc/group")? {
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
                    table = Some(read_table(rootfs, "etc/group", &format!("group {g:?}"))?);
                }
                table
                    .as_deref()
                    .and_then(|t| group_id(t, g))
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

/// One of the image's /etc tables (passwd, group) as lines of `:`-separated fields, read
/// inside the rootfs: a regular file of at most 4 MiB only, so a FIFO or a device planted
/// there fails at once instead of hanging or filling memory. `what` is being looked up
/// (for the error); an absent file is an empty table.
fn read_table(rootfs: &Path, name: &str, what: &str) -> Result<Vec<Vec<String>>> {
    let root = fsutil::open_root(rootfs)
        .map_err(|e| EngineError::io(format!("open the rootfs {}", rootfs.display()), e))?;
    let data = fsutil::read_regular_in_root(&root, Path::new(name), 4 << 20)
        .ctx(|| format!("read the image's /{name} to look up {what}"))?;
    Ok(String::from_utf8_lossy(&data.unwrap_or_default())
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect())
}

/// The id of group `name` in an /etc/group table.
fn group_id(table: &[Vec<String>], name: &str) -> Option<u32> {
    table
        .iter()
        .find(|f| f.len() > 2 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
}
