//! The one interface every storage driver implements.

use crate::changes::Change;
use crate::error::DriverError;
use crate::whiteout::WhiteoutFormat;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Driver options from `--storage-opt` / `storage-opts`, e.g. `vfs.reflink=false`.
#[derive(Debug, Clone, Default)]
pub struct DriverOptions {
    /// Options keyed by their full name (`vfs.reflink`), values as given.
    pub opts: BTreeMap<String, String>,
}

impl DriverOptions {
    /// Parses `K=V` strings. A string without `=`, an unknown driver prefix or a key the
    /// named driver does not know is an error naming it, whichever driver ends up active,
    /// so a typo never goes unnoticed.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, DriverError> {
        let mut opts = BTreeMap::new();
        for item in items {
            let item = item.as_ref();
            let (k, v) = item.split_once('=').ok_or_else(|| {
                DriverError::BadOption(item.to_string(), "expected KEY=VALUE".into())
            })?;
            let k = k.trim();
            let known = k.split_once('.').and_then(|(driver, key)| {
                crate::DRIVERS
                    .iter()
                    .find(|r| r.name == driver)
                    .map(|r| (driver, key, r.options))
            });
            match known {
                Some((_, key, keys)) if keys.contains(&key) => {}
                Some((driver, _, keys)) => {
                    let list = if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    };
                    return Err(DriverError::BadOption(
                        k.to_string(),
                        format!("{driver} options are: {list}"),
                    ));
                }
                None => {
                    return Err(DriverError::BadOption(
                        k.to_string(),
                        "options are DRIVER.KEY with DRIVER one of overlay2, btrfs, aufs, vfs"
                            .into(),
                    ))
                }
            }
            opts.insert(k.to_string(), v.trim().to_string());
        }
        Ok(DriverOptions { opts })
    }

    /// Takes the options that belong to driver `name`, refusing any of its keys that its
    /// registration (`crate::DRIVERS`) does not list, so a typo never goes unnoticed.
    pub fn for_driver(&self, name: &str) -> Result<BTreeMap<String, String>, DriverError> {
        let known = crate::DRIVERS
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.options)
            .unwrap_or(&[]);
        let prefix = format!("{name}.");
        let mut out = BTreeMap::new();
        for (k, v) in &self.opts {
            if let Some(key) = k.strip_prefix(&prefix) {
                if !known.contains(&key) {
                    return Err(DriverError::BadOption(
                        k.clone(),
                        format!("{name} knows only: {}", known.join(", ")),
                    ));
                }
                out.insert(key.to_string(), v.clone());
            }
        }
        Ok(out)
    }

    /// Parses a size the way Docker does: bytes, or a number with a `k`, `m`, `g` or `t`
    /// suffix (powers of 1024, an optional trailing `b`, any case).
    pub fn parse_size(key: &str, v: &str) -> Result<u64, DriverError> {
        let bad = || {
            DriverError::BadOption(
                format!("{key}={v}"),
                "expected a size such as 512M, 10G or 1073741824".into(),
            )
        };
        let t = v.trim().to_ascii_lowercase();
        let t = t.strip_suffix('b').unwrap_or(&t);
        let (num, mult) = match t.chars().last() {
            Some('k') => (&t[..t.len() - 1], 1u64 << 10),
            Some('m') => (&t[..t.len() - 1], 1 << 20),
            Some('g') => (&t[..t.len() - 1], 1 << 30),
            Some('t') => (&t[..t.len() - 1], 1 << 40),
            _ => (t, 1),
        };
        let n: f64 = num.trim().parse().map_err(|_| bad())?;
        if !(n.is_finite() && n > 0.0) {
            return Err(bad());
        }
        Ok((n * mult as f64) as u64)
    }

    /// Parses a boolean option value the way Docker does (`true`/`false`/`1`/`0`).
    pub fn parse_bool(key: &str, v: &str) -> Result<bool, DriverError> {
        match v {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(DriverError::BadOption(
                format!("{key}={v}"),
                "expected true or false".into(),
            )),
        }
    }
}

/// A directory holding every added or modified path of a layer's changes, as the layer has
/// it, readable without a mount.
#[derive(Debug, Clone)]
pub struct ChangesSource {
    /// The directory (a driver's per-layer data, e.g. overlay's upper dir).
    pub dir: PathBuf,
    /// Xattrs with this prefix are the driver's bookkeeping, not the layer's content.
    pub private_xattrs: Option<&'static str>,
}

/// Whether a layer is an image layer (read-only once committed) or a container's writable layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    ReadOnly,
    ReadWrite,
    /// A writable layer that need not survive a crash (`run --rm`): drivers may skip
    /// flushing its bookkeeping. A crash leaves at most debris that `system prune` frees.
    Scratch,
}

impl LayerKind {
    /// Whether the layer is a container's writable one.
    pub fn writable(self) -> bool {
        matches!(self, LayerKind::ReadWrite | LayerKind::Scratch)
    }
}

/// A storage driver: directories, snapshots and mounts for a chain of layers.
///
/// Modelled on moby's graphdriver and containerd's snapshotter, without archive knowledge:
/// the layer store writes a layer by applying a tar into [`Driver::diff_dir`], using the
/// driver's [`WhiteoutFormat`] for deletions, and reads it back through [`Driver::changes`].
pub trait Driver: Send + Sync {
    /// The driver's name as used in `--storage-driver`.
    fn name(&self) -> &'static str;

    /// Where this driver keeps its state.
    fn home(&self) -> &Path;

    /// Creates layer `id` on top of `parent` (or empty). Fails if `id` exists.
    fn create(&self, id: &str, parent: Option<&str>, kind: LayerKind) -> Result<(), DriverError>;

    /// Removes layer `id`; refused while it is mounted or is the parent of another layer.
    fn remove(&self, id: &str) -> Result<(), DriverError>;

    /// Whether layer `id` exists.
    fn exists(&self, id: &str) -> bool;

    /// The parent recorded when `id` was created.
    fn parent(&self, id: &str) -> Result<Option<String>, DriverError>;

    /// Every layer id the driver holds, for consistency checks and garbage collection.
    fn list(&self) -> Result<Vec<String>, DriverError>;

    /// Mounts layer `id` (if the driver mounts) and returns its full root filesystem view.
    /// Reference counted across processes: each `get` needs one [`Driver::put`].
    fn get(&self, id: &str) -> Result<PathBuf, DriverError>;

    /// Releases one reference taken by [`Driver::get`]; unmounts on the last one.
    fn put(&self, id: &str) -> Result<(), DriverError>;

    /// How many `get`s of `id` are outstanding (across processes).
    fn mount_count(&self, id: &str) -> Result<u32, DriverError>;

    /// The directory a layer's changes are written into when a tar is applied.
    fn diff_dir(&self, id: &str) -> Result<PathBuf, DriverError>;

    /// How deletions and opaque directories are stored in [`Driver::diff_dir`].
    fn whiteout_format(&self) -> &dyn WhiteoutFormat;

    /// The layer directories below `id`'s own, nearest first, for drivers whose layer
    /// directories hold only their own changes (a tar applied into `id` must see them);
    /// empty where a layer's directory is a complete tree.
    fn lower_dirs(&self, id: &str) -> Result<Vec<PathBuf>, DriverError> {
        let _ = id;
        Ok(Vec::new())
    }

    /// The changes of `id` against its parent. The default is the shared tree walk of the
    /// two mounted views; a driver with cheaper knowledge overrides it.
    fn changes(&self, id: &str) -> Result<Vec<Change>, DriverError> {
        crate::changes::compare_views(self, id)
    }

    /// The changes of `id` and, where the driver can say, a directory to read them from
    /// without mounting the layer (its own copy of exactly those paths). Commit and export
    /// use it to skip a mount, an unmount and the union filesystem's lookups.
    fn changes_with_source(
        &self,
        id: &str,
    ) -> Result<(Vec<Change>, Option<ChangesSource>), DriverError> {
        Ok((self.changes(id)?, None))
    }

    /// Limits how much space container layer `id` may use (`--storage-opt size=`). Only
    /// drivers with a quota mechanism can; the rest refuse with the reason.
    fn set_size_limit(&self, id: &str, bytes: u64) -> Result<(), DriverError> {
        let _ = (id, bytes);
        Err(DriverError::BadOption(
            "size".into(),
            format!(
                "the {} driver cannot limit a container's size (btrfs with quotas enabled can)",
                self.name()
            ),
        ))
    }

    /// Bytes used by layer `id`'s own data.
    fn diff_size(&self, id: &str) -> Result<u64, DriverError> {
        let d = self.diff_dir(id)?;
        fsutil::tree::tree_size(&d).map_err(|e| DriverError::io("measure", d, e))
    }

    /// Key/value lines for `info`: backing filesystem, options, limits.
    fn status(&self) -> Vec<(String, String)>;

    /// Releases every mount the driver holds; called when the store shuts down for good.
    fn cleanup(&self) -> Result<(), DriverError>;
}
