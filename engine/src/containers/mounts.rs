//! What a container gets at a path besides its image: a named volume, a host path or a
//! tmpfs, as typed specs. The CLI parses `-v`, `--mount`-less `--tmpfs` strings into them
//! and the daemon fills them from the API's `Binds`, `Mounts` and `Tmpfs`; neither formats
//! a string for the other, so a path with a colon in it survives the API.

use crate::error::{EngineError, Result};
use layerstore::volumes::Volumes;
use layerstore::Store;
use runtime::spec::Bind;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::path::{Path, PathBuf};

/// One filesystem at `target` in the container.
#[derive(Debug, Clone, PartialEq)]
pub struct MountSpec {
    pub source: MountSource,
    /// An absolute path in the container.
    pub target: String,
    pub read_only: bool,
}

/// Where a mount's files come from.
#[derive(Debug, Clone, PartialEq)]
pub enum MountSource {
    /// A named volume, made at create when it does not exist.
    Volume(String),
    /// A fresh volume of its own, named by a random id (`-v /path`, `Config.Volumes`).
    Anonymous,
    /// A host path, which must exist.
    Bind(PathBuf),
    /// A fresh tmpfs.
    Tmpfs(TmpfsSpec),
}

/// A tmpfs's size, mode and further mount flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TmpfsSpec {
    /// Bytes (the kernel's default, half of memory, when none).
    pub size: Option<u64>,
    /// Permission bits of its root.
    pub mode: Option<u32>,
    /// Flags such as `noexec`, `exec`, `ro`, `nr_inodes=N`.
    pub options: Vec<String>,
    /// The option string as the client wrote it (`size=2m`), shown back by inspect.
    pub as_given: Option<String>,
}

impl TmpfsSpec {
    /// Parses Docker's tmpfs option string (`rw,noexec,size=64m,mode=1777`).
    pub fn parse(opts: &str) -> Result<TmpfsSpec> {
        let mut t = TmpfsSpec {
            as_given: Some(opts.to_string()),
            ..Default::default()
        };
        for o in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if let Some(v) = o.strip_prefix("size=") {
                t.size = Some(parse_bytes("tmpfs size", v)? as u64);
            } else if let Some(v) = o.strip_prefix("mode=") {
                t.mode = Some(
                    u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| {
                            EngineError::Invalid(format!(
                                "invalid tmpfs mode {v:?}: use octal permission bits like 1777"
                            ))
                        })?,
                );
            } else if o.contains('/') || o.contains('\0') {
                return Err(EngineError::Invalid(format!("invalid tmpfs option {o:?}")));
            } else {
                t.options.push(o.to_string());
            }
        }
        Ok(t)
    }

    /// The option string as given (`HostConfig.Tmpfs` shows it), else as parsed.
    pub fn shown(&self) -> String {
        self.as_given
            .clone()
            .unwrap_or_else(|| self.option_string())
    }

    /// The option string the kernel takes as data.
    pub fn option_string(&self) -> String {
        let mut parts = self.options.clone();
        if let Some(s) = self.size {
            parts.push(format!("size={s}"));
        }
        if let Some(m) = self.mode {
            parts.push(format!("mode={m:o}"));
        }
        parts.join(",")
    }
}

impl MountSpec {
    /// Parses `-v NAME:/path[:ro|rw]` or `-v /host/path:/path[:ro|rw]`.
    pub fn parse_volume(s: &str) -> Result<MountSpec> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, read_only) = match parts.as_slice() {
            [dst] if dst.starts_with('/') => {
                return Ok(MountSpec {
                    source: MountSource::Anonymous,
                    target: dst.to_string(),
                    read_only: false,
                })
            }
            [src, dst] => (*src, *dst, false),
            [src, dst, "ro"] => (*src, *dst, true),
            [src, dst, "rw"] => (*src, *dst, false),
            _ => {
                return Err(EngineError::Invalid(format!(
                    "invalid volume {s:?}: use NAME:/path, /host/path:/path, with :ro for read-only"
                )))
            }
        };
        let source = if src.starts_with('/') {
            MountSource::Bind(src.into())
        } else {
            MountSource::Volume(src.into())
        };
        let m = MountSpec {
            source,
            target: dst.into(),
            read_only,
        };
        m.check()?;
        Ok(m)
    }

    /// Parses `--tmpfs /path[:OPTIONS]`.
    pub fn parse_tmpfs(s: &str) -> Result<MountSpec> {
        let (path, opts) = s.split_once(':').unwrap_or((s, ""));
        let m = MountSpec {
            source: MountSource::Tmpfs(TmpfsSpec::parse(opts)?),
            target: path.into(),
            read_only: false,
        };
        m.check()?;
        Ok(m)
    }

    /// Checks what needs no store: an absolute target, a non-empty source.
    pub fn check(&self) -> Result<()> {
        if !self.target.starts_with('/') {
            return Err(EngineError::Invalid(format!(
                "invalid mount target {:?}: the container path must be absolute",
                self.target
            )));
        }
        match &self.source {
            MountSource::Volume(n) if n.is_empty() => Err(EngineError::Invalid(format!(
                "the mount at {} needs a source (a volume name)",
                self.target
            ))),
            MountSource::Volume(n) if !layerstore::volumes::valid_name(n) => {
                Err(EngineError::Invalid(format!(
                    "{n:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                )))
            }
            MountSource::Bind(p) if !p.is_absolute() => Err(EngineError::Invalid(format!(
                "invalid bind source {}: the host path must be absolute",
                p.display()
            ))),
            _ => Ok(()),
        }
    }

    /// Docker's `Binds` form (`SRC:DST[:ro]`), as inspect shows it.
    pub fn bind_string(&self) -> String {
        let src = match &self.source {
            MountSource::Volume(n) => n.clone(),
            MountSource::Bind(p) => p.display().to_string(),
            MountSource::Anonymous | MountSource::Tmpfs(_) => String::new(),
        };
        let ro = if self.read_only { ":ro" } else { "" };
        format!("{src}:{}{ro}", self.target)
    }
}

/// Docker's `Mount` object, as inspect shows `HostConfig.Mounts`.
impl Serialize for MountSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match &self.source {
            MountSource::Volume(n) => {
                m.serialize_entry("Type", "volume")?;
                m.serialize_entry("Source", n)?;
            }
            MountSource::Bind(p) => {
                m.serialize_entry("Type", "bind")?;
                m.serialize_entry("Source", p)?;
            }
            MountSource::Anonymous => m.serialize_entry("Type", "volume")?,
            MountSource::Tmpfs(_) => m.serialize_entry("Type", "tmpfs")?,
        }
        m.serialize_entry("Target", &self.target)?;
        if self.read_only {
            m.serialize_entry("ReadOnly", &true)?;
        }
        if let MountSource::Tmpfs(t) = &self.source {
            let mut o = serde_json::Map::new();
            if let Some(size) = t.size {
                o.insert("SizeBytes".into(), size.into());
            }
            if let Some(mode) = t.mode {
                o.insert("Mode".into(), mode.into());
            }
            if !o.is_empty() {
                m.serialize_entry("TmpfsOptions", &o)?;
            }
        }
        m.end()
    }
}

/// Byte counts as Docker writes them (`64m`, `1g`, `512k`, or plain bytes).
pub fn parse_bytes(what: &str, v: &str) -> Result<i64> {
    let n = drivers::DriverOptions::parse_size(what, v).map_err(|_| {
        EngineError::Invalid(format!(
            "invalid {what} {v:?}: use bytes or a size like 64m or 1g"
        ))
    })?;
    i64::try_from(n).map_err(|_| EngineError::Invalid(format!("{what} {v:?} is too large")))
}

/// A tmpfs as the runtime takes it: the container path and the mount data.
pub(crate) type TmpfsMount = (String, String);

/// What a container's mount specs come to.
#[derive(Default)]
pub(crate) struct Resolved {
    pub binds: Vec<Bind>,
    pub tmpfs: Vec<TmpfsMount>,
    /// Volumes that are empty, with where they are mounted: they get the image's files
    /// at that path (Docker's copy-up).
    pub empty_volumes: Vec<(PathBuf, String)>,
}

/// The runtime's binds and tmpfs mounts for `specs`, named volumes made as needed and
/// host paths checked.
pub(crate) fn resolve<'a>(
    store: &Store,
    specs: impl Iterator<Item = &'a MountSpec>,
) -> Result<Resolved> {
    let vols = Volumes::new(&store.root);
    let mut r = Resolved::default();
    for m in specs {
        m.check()?;
        let source = match &m.source {
            MountSource::Bind(p) => {
                if !p.exists() {
                    return Err(EngineError::Invalid(format!(
                        "invalid mount {}: {} does not exist on the host",
                        m.target,
                        p.display()
                    )));
                }
                p.clone()
            }
            MountSource::Volume(_) | MountSource::Anonymous => {
                let dir = match &m.source {
                    MountSource::Volume(n) => vols.create(n)?.mountpoint,
                    _ => {
                        vols.create_with(&layerstore::random_id(), Default::default(), true)?
                            .mountpoint
                    }
                };
                let empty = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none());
                if empty {
                    r.empty_volumes.push((dir.clone(), m.target.clone()));
                }
                dir
            }
            MountSource::Tmpfs(t) => {
                let mut data = t.option_string();
                if m.read_only {
                    data = if data.is_empty() {
                        "ro".into()
                    } else {
                        format!("{data},ro")
                    };
                }
                r.tmpfs.push((m.target.clone(), data));
                continue;
            }
        };
        r.binds.push(Bind {
            source,
            destination: m.target.clone(),
            readonly: m.read_only,
        });
    }
    Ok(r)
}

/// Docker's copy-up: each empty volume gets what the image has at its mount path (owners,
/// modes, xattrs kept), read inside the container's rootfs at `rootfs` so no symlink of
/// the image leads out of it. A path the image lacks, or that is no directory, gives
/// nothing.
pub(crate) fn copy_up(rootfs: &Path, empty: &[(PathBuf, String)]) -> Result<()> {
    let root = fsutil::open_root(rootfs)
        .map_err(|e| EngineError::io(format!("open the rootfs {}", rootfs.display()), e))?;
    for (dir, target) in empty {
        let rel = Path::new(target.trim_start_matches('/'));
        let Ok(src) = fsutil::open_in_root(&root, rel, fsutil::OpenMode::Dir) else {
            continue;
        };
        let dst = fsutil::open_root(dir).map_err(|e| EngineError::io("open the volume", e))?;
        fsutil::copy::copy_tree_fds(src, dst, &fsutil::copy::CopyOptions::new(true)).map_err(
            |e| EngineError::io(format!("copy the image's {target} into its volume"), e),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flags() {
        let m = MountSpec::parse_volume("data:/srv:ro").unwrap();
        assert_eq!(m.source, MountSource::Volume("data".into()));
        assert!(m.read_only);
        assert_eq!(m.bind_string(), "data:/srv:ro");
        let b = MountSpec::parse_volume("/tmp:/t").unwrap();
        assert_eq!(b.source, MountSource::Bind("/tmp".into()));
        assert_eq!(
            MountSpec::parse_volume("/data").unwrap().source,
            MountSource::Anonymous
        );
        for bad in ["x", "a:b", "a:/b:zz", "a:/b:ro:x"] {
            assert!(MountSpec::parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tmpfs_flags() {
        let m = MountSpec::parse_tmpfs("/run:rw,noexec,size=64m,mode=1777").unwrap();
        let MountSource::Tmpfs(t) = &m.source else {
            panic!()
        };
        assert_eq!(t.size, Some(64 << 20));
        assert_eq!(t.mode, Some(0o1777));
        assert_eq!(t.option_string(), "rw,noexec,size=67108864,mode=1777");
        assert!(MountSpec::parse_tmpfs("run").is_err());
        assert!(MountSpec::parse_tmpfs("/run:mode=999").is_err());
        assert!(MountSpec::parse_tmpfs("/run:x=/etc").is_err());
    }
}
