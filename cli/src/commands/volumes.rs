//! Named volumes (`volume create|ls|rm|inspect|prune`) and `cp` between a container and the
//! host. Paths inside a container are resolved with openat2 `RESOLVE_IN_ROOT`, so a
//! symlink in the container can never point a copy at the host (CVE-2018-15664).

use super::{print_json, run::bundle, Context, OutFormat};
use crate::output::{print_table, table};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Subcommand};
use fsutil::{copy_entry_at, copy_tree_fds, open_in_root, open_root, CopyOptions, OpenMode};
use layerstore::volumes::Volumes;
use layerstore::Store;
use serde_json::json;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume.
    Create { name: String },
    /// List volumes.
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: OutFormat,
    },
    /// Remove volumes (refused while a container uses one).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show volumes as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every volume no container uses.
    Prune,
}

/// Containers whose runtime spec binds volume `name`.
fn users(store: &Store, vols: &Volumes, name: &str) -> Result<Vec<String>> {
    let Some(v) = vols.get(name)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (_, c) in store.containers.all()? {
        let Ok(spec) = std::fs::read(bundle(store, &c.id).join("config.json")) else {
            continue;
        };
        let spec: serde_json::Value = serde_json::from_slice(&spec).unwrap_or_default();
        let uses = spec["mounts"].as_array().is_some_and(|ms| {
            ms.iter()
                .any(|m| m["source"].as_str().map(Path::new) == Some(v.mountpoint.as_path()))
        });
        if uses {
            out.push(c.name.clone());
        }
    }
    Ok(out)
}

fn volume_json(v: &layerstore::volumes::Volume) -> serde_json::Value {
    json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": v.mountpoint,
        "CreatedAt": layerstore::export::rfc3339(v.created),
        "Scope": "local",
    })
}

pub fn volume(ctx: &Context, cmd: VolumeCmd) -> Result<i32> {
    match cmd {
        VolumeCmd::Create { name } => {
            let store = ctx.store()?;
            let v = Volumes::new(&store.root).create(&name)?;
            println!("{}", v.name);
        }
        VolumeCmd::Ls { quiet, format } => {
            let store = ctx.store_ro()?;
            let all = Volumes::new(&store.root).list()?;
            if format == OutFormat::Json {
                print_json(&json!(all.iter().map(volume_json).collect::<Vec<_>>()))?;
            } else if quiet {
                all.iter().for_each(|v| println!("{}", v.name));
            } else {
                let mut t = table(&["DRIVER", "VOLUME NAME"]);
                for v in &all {
                    t.add_row(vec!["local".to_string(), v.name.clone()]);
                }
                print_table(&t);
            }
        }
        VolumeCmd::Rm { names } => {
            let store = ctx.store()?;
            let vols = Volumes::new(&store.root);
            for n in &names {
                let u = users(&store, &vols, n)?;
                vols.remove(n, &u)
                    .with_context(|| format!("volume rm {n}"))?;
                println!("{n}");
            }
        }
        VolumeCmd::Inspect { names } => {
            let store = ctx.store_ro()?;
            let vols = Volumes::new(&store.root);
            let mut out = Vec::new();
            for n in &names {
                let v = vols.get(n)?.ok_or_else(|| anyhow!("no such volume: {n}"))?;
                out.push(volume_json(&v));
            }
            print_json(&json!(out))?;
        }
        VolumeCmd::Prune => {
            let store = ctx.store()?;
            let vols = Volumes::new(&store.root);
            for v in vols.list()? {
                if users(&store, &vols, &v.name)?.is_empty() {
                    vols.remove(&v.name, &[])?;
                    println!("Deleted: {}", v.name);
                }
            }
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// CONTAINER:PATH or a host path.
    src: String,
    /// CONTAINER:PATH or a host path.
    dst: String,
}

fn split_container(s: &str) -> Option<(&str, &str)> {
    if s.starts_with('/') || s.starts_with('.') {
        return None;
    }
    s.split_once(':')
}

/// The directory and name of a host path (trusted: the user named it).
fn host_parent(p: &Path) -> Result<(std::os::fd::OwnedFd, std::ffi::OsString)> {
    let name = p
        .file_name()
        .ok_or_else(|| anyhow!("{}: give a path that ends in a name", p.display()))?
        .to_os_string();
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fd = open_root(parent).with_context(|| format!("open {}", parent.display()))?;
    Ok((fd, name))
}

/// Makes room for a new entry `name` in `dir`: an existing non-directory is removed (the
/// entry itself, never what a symlink there points to).
fn clear_for(dir: &std::os::fd::OwnedFd, name: &std::ffi::OsStr) -> Result<()> {
    use rustix::fs::{AtFlags, FileType};
    if let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
        }
    }
    Ok(())
}

pub fn cp(ctx: &Context, a: CpArgs) -> Result<i32> {
    let (ctr, path, to_container, host) = match (split_container(&a.src), split_container(&a.dst)) {
        (Some((c, p)), None) => (c, p, false, PathBuf::from(&a.dst)),
        (None, Some((c, p))) => (c, p, true, PathBuf::from(&a.src)),
        (Some(_), Some(_)) => {
            bail!("copying between containers is not supported: copy through the host")
        }
        (None, None) => bail!("one of SRC and DST must be CONTAINER:PATH"),
    };
    let store = ctx.store()?;
    let rootfs = store
        .mount_container(ctr)
        .with_context(|| format!("cp: mount {ctr}"))?;
    // Every step in the container works through descriptors (openat2 RESOLVE_IN_ROOT,
    // then *at calls that never follow a symlink), so a running container swapping names
    // for symlinks cannot make strata read or write a host file.
    let result = (|| -> Result<()> {
        let root = open_root(&rootfs)?;
        let rel = Path::new(path.trim_start_matches('/'));
        let opts = CopyOptions::new(true);
        if to_container {
            // Into the directory `rel` if it is one, else as `rel` itself.
            let (dir, name) = match open_in_root(&root, rel, OpenMode::Dir) {
                Ok(d) => (
                    d,
                    host.file_name()
                        .ok_or_else(|| anyhow!("{} has no file name", host.display()))?
                        .to_os_string(),
                ),
                Err(_) => {
                    let dir_rel = rel.parent().unwrap_or(Path::new(""));
                    let d = open_in_root(&root, dir_rel, OpenMode::Dir).with_context(|| {
                        format!(
                            "{ctr}:{}: no such directory in the container",
                            dir_rel.display()
                        )
                    })?;
                    let n = rel
                        .file_name()
                        .ok_or_else(|| anyhow!("bad container path {path}"))?
                        .to_os_string();
                    (d, n)
                }
            };
            let (src_dir, src_name) = host_parent(&host)?;
            clear_for(&dir, &name)?;
            copy_entry_at(src_dir.as_fd(), &src_name, dir.as_fd(), &name, &opts)?;
        } else {
            let parent = open_in_root(&root, rel.parent().unwrap_or(Path::new("")), OpenMode::Dir)
                .with_context(|| {
                    format!("{ctr}:{path}: no such file or directory in the container")
                })?;
            let (dst_dir, dst_name) = if host.is_dir() {
                let n = rel
                    .file_name()
                    .map(|n| n.to_os_string())
                    .unwrap_or_else(|| "rootfs".into());
                (open_root(&host)?, n)
            } else {
                host_parent(&host)?
            };
            clear_for(&dst_dir, &dst_name)?;
            match rel.file_name() {
                Some(n) => copy_entry_at(parent.as_fd(), n, dst_dir.as_fd(), &dst_name, &opts)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => {
                            anyhow!("{ctr}:{path}: no such file or directory in the container")
                        }
                        _ => e.into(),
                    })?,
                // The container's root: its contents into a new directory.
                None => {
                    rustix::fs::mkdirat(
                        &dst_dir,
                        &dst_name,
                        rustix::fs::Mode::from_raw_mode(0o755),
                    )?;
                    let d = rustix::fs::openat(
                        &dst_dir,
                        &dst_name,
                        rustix::fs::OFlags::RDONLY
                            | rustix::fs::OFlags::DIRECTORY
                            | rustix::fs::OFlags::NOFOLLOW
                            | rustix::fs::OFlags::CLOEXEC,
                        rustix::fs::Mode::empty(),
                    )?;
                    copy_tree_fds(parent, d, &opts)?;
                }
            }
        }
        Ok(())
    })();
    store.umount_container(ctr)?;
    result.with_context(|| format!("cp {} {}", a.src, a.dst))?;
    Ok(0)
}
