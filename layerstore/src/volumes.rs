//! Named volumes: directories under `<data-root>/volumes/<name>/_data` that outlive the
//! containers using them. A volume is in use while a container's runtime spec binds it;
//! removing one in use is refused.

use crate::error::{Result, StoreError};
use std::fs;
use std::path::{Path, PathBuf};

/// The volumes of a data root.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
}

/// One volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    /// What containers see (`_data`).
    pub mountpoint: PathBuf,
    pub created: u64,
    /// Labels as given at create.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Made for one container's unnamed mount (`-v /path`): what a plain prune removes.
    pub anonymous: bool,
}

/// What a volume keeps besides its files (`meta.json`, written before the volume
/// appears, so a volume never lacks it).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Meta {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    anonymous: bool,
}

/// Whether `name` can name a volume (Docker's rule).
pub fn valid_name(name: &str) -> bool {
    name.len() >= 2
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl Volumes {
    /// The volumes under `root/volumes`.
    pub fn new(root: &Path) -> Volumes {
        Volumes {
            dir: root.join("volumes"),
        }
    }

    fn check(name: &str) -> Result<()> {
        if valid_name(name) {
            Ok(())
        } else {
            Err(StoreError::Invalid(format!(
                "invalid volume name {name:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]+"
            )))
        }
    }

    /// The volume `name`, if it exists.
    pub fn get(&self, name: &str) -> Result<Option<Volume>> {
        Self::check(name)?;
        let data = self.dir.join(name).join("_data");
        match fs::metadata(&data) {
            Ok(md) => {
                let meta: Meta = fs::read(self.dir.join(name).join("meta.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                Ok(Some(Volume {
                    name: name.to_string(),
                    mountpoint: data,
                    labels: meta.labels,
                    anonymous: meta.anonymous,
                    created: md
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read", data, e)),
        }
    }

    /// Creates `name` (an existing one is returned as is, as Docker does).
    pub fn create(&self, name: &str) -> Result<Volume> {
        self.create_with(name, Default::default(), false)
    }

    /// Creates `name` with `labels`, `anonymous` for one made for an unnamed mount (an
    /// existing one is returned as is, as Docker does).
    pub fn create_with(
        &self,
        name: &str,
        labels: std::collections::BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume> {
        if let Some(v) = self.get(name)? {
            return Ok(v);
        }
        let tmp = self.dir.join(format!(".tmp-{name}-{}", crate::random_id()));
        let meta = serde_json::to_vec(&Meta { labels, anonymous })
            .map_err(|e| StoreError::Format(e.to_string()))?;
        let build = || -> std::io::Result<()> {
            fs::create_dir_all(tmp.join("_data"))?;
            fsutil::write_atomic(&tmp.join("meta.json"), &meta)?;
            fs::rename(&tmp, self.dir.join(name))?;
            fsutil::fsync_dir(&self.dir)
        };
        if let Err(e) = build() {
            let _ = fsutil::remove_tree(&tmp);
            // Made by another process or thread at the same moment: that one is it.
            if let Some(v) = self.get(name)? {
                return Ok(v);
            }
            return Err(StoreError::io("create volume", self.dir.join(name), e));
        }
        self.get(name)?
            .ok_or_else(|| StoreError::Format(format!("volume {name} vanished")))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::io("read", &self.dir, e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if valid_name(&name) {
                if let Some(v) = self.get(&name)? {
                    out.push(v);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes `name`; `users` are the containers using it (refused unless empty).
    pub fn remove(&self, name: &str, users: &[String]) -> Result<()> {
        if self.get(name)?.is_none() {
            return Err(StoreError::NotFound(format!("no such volume: {name}")));
        }
        if !users.is_empty() {
            return Err(StoreError::InUse(format!(
                "volume {name} is in use by container(s) {}: remove them first",
                users.join(", ")
            )));
        }
        let tmp = self.dir.join(format!(".rm-{name}-{}", crate::random_id()));
        fs::rename(self.dir.join(name), &tmp)
            .map_err(|e| StoreError::io("remove volume", self.dir.join(name), e))?;
        fsutil::remove_tree(&tmp).map_err(|e| StoreError::io("remove", tmp, e))
    }
}
