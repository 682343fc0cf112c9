//! The store as a whole: what it runs on (`info`), disk usage, pruning, checking and
//! repairing (`fsck`), and migrating every image and container to another driver.

use crate::error::{Context as _, Result};
use crate::Engine;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// Why each driver could or could not be used here.
#[derive(Debug, Clone, Serialize)]
pub struct DriverSupport {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Supported")]
    pub supported: bool,
    #[serde(rename = "Reason")]
    pub reason: Option<String>,
}

/// What `info` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "DriverStatus")]
    pub driver_status: std::collections::BTreeMap<String, String>,
    #[serde(rename = "DataRoot")]
    pub data_root: PathBuf,
    #[serde(rename = "Images")]
    pub images: usize,
    #[serde(rename = "Containers")]
    pub containers: usize,
    #[serde(rename = "Drivers")]
    pub drivers: Vec<DriverSupport>,
    #[serde(rename = "SecurityOptions")]
    pub security_options: Vec<String>,
}

/// One row of `system df`.
#[derive(Debug, Clone, Serialize)]
pub struct UsageRow {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Total")]
    pub total: usize,
    #[serde(rename = "Size")]
    pub size: u64,
}

/// What a migration did (or, dry, would do).
#[derive(Debug)]
pub struct MigrateOutcome {
    pub plan: layerstore::migrate::Plan,
    /// `None` for a dry run.
    pub done: Option<layerstore::migrate::Plan>,
}

impl Engine {
    /// The driver in use, its status, counts, and every driver's support here.
    pub fn info(&self) -> Result<Info> {
        let store = self.store_ro()?;
        let probes = layerstore::store::probe_drivers(&self.cfg.data_root, &self.cfg.driver_opts);
        Ok(Info {
            driver: store.driver.name().to_string(),
            driver_status: store.driver.status().into_iter().collect(),
            data_root: self.cfg.data_root.clone(),
            images: store.images.keys()?.len(),
            containers: store.containers.keys()?.len(),
            drivers: probes
                .into_iter()
                .map(|(name, r)| DriverSupport {
                    name,
                    supported: r.is_ok(),
                    reason: r.err(),
                })
                .collect(),
            security_options: runtime::security::host_security_options(),
        })
    }

    /// Disk usage of images (their layers), containers (what they wrote) and blobs.
    pub fn disk_usage(&self) -> Result<Vec<UsageRow>> {
        let store = self.store_ro()?;
        let images = store.images.keys()?.len();
        let img_size: u64 = store.layers.all()?.iter().map(|(_, l)| l.size).sum();
        let blobs = store.blobs.list()?;
        let blob_size: u64 = blobs
            .iter()
            .filter_map(|d| store.blobs.path(d).metadata().ok())
            .map(|m| m.len())
            .sum();
        let containers = store.containers.all()?;
        let mut ctr_size = 0;
        for (_, c) in &containers {
            if c.driver == store.driver.name() && store.driver.exists(&c.layer) {
                // A container's size is what it wrote: its added and changed files.
                let root = store.driver.diff_dir(&c.layer)?;
                for ch in store.driver.changes(&c.layer)? {
                    if ch.kind != drivers::ChangeKind::Deleted {
                        let md = std::fs::symlink_metadata(root.join(&ch.path));
                        ctr_size += md
                            .map(|m| if m.is_file() { m.len() } else { 0 })
                            .unwrap_or(0);
                    }
                }
            }
        }
        let row = |kind: &str, total, size| UsageRow {
            kind: kind.into(),
            total,
            size,
        };
        Ok(vec![
            row("Images", images, img_size),
            row("Containers", containers.len(), ctr_size),
            row("Blobs", blobs.len(), blob_size),
        ])
    }

    /// Frees layers and blobs no image or container uses: (layers, blobs) removed.
    pub fn prune(&self) -> Result<(usize, usize)> {
        Ok(self.store()?.gc()?)
    }

    /// Verifies every blob, layer, image and container; with `repair`, drops what cannot
    /// be trusted and frees what nothing uses.
    pub fn fsck(&self, repair: bool) -> Result<layerstore::fsck::Report> {
        let store = if repair {
            self.store()?
        } else {
            self.store_ro()?
        };
        let mut r = layerstore::fsck::fsck(&store, repair)?;
        let ids: std::collections::HashSet<String> = store.containers.keys()?.into_iter().collect();
        for found in network::records::Networks::read(&store.root)?.check(&ids, repair)? {
            if repair {
                r.repaired.push(format!("released {found}"));
            } else {
                r.problems
                    .push(format!("{found} (`fsck --repair` releases it)"));
            }
        }
        for found in crate::networks::sandbox::check(&store.root, repair)? {
            if repair {
                r.repaired.push(format!("attached again: {found}"));
            } else {
                r.problems
                    .push(format!("{found} (`fsck --repair` attaches it again)"));
            }
        }
        Ok(r)
    }

    /// Moves every image layer and stopped container from driver `from` (default: the one
    /// in use) to `to`; a dry run only plans. Refused while containers run.
    pub fn migrate(
        &self,
        to: &str,
        from: Option<&str>,
        dry_run: bool,
        prune: bool,
        on_plan: &mut dyn FnMut(&layerstore::migrate::Plan),
    ) -> Result<MigrateOutcome> {
        let mut driver = from.map(str::to_string).or_else(|| self.cfg.driver.clone());
        if driver.as_deref() == Some(to) && from.is_none() {
            driver = None;
        }
        let mut src = self.clone();
        src.cfg = self.cfg.with_driver(driver);
        let mut store = src.store()?;
        let plan = layerstore::migrate::plan(&store, to)?;
        on_plan(&plan);
        if dry_run {
            return Ok(MigrateOutcome { plan, done: None });
        }
        let running: Vec<String> = store
            .containers
            .all()?
            .into_iter()
            .filter(|(_, c)| {
                crate::containers::Bundle::of(&store.root, &c.id)
                    .state_or_default()
                    .is_running()
            })
            .map(|(_, c)| c.name)
            .collect();
        let done =
            layerstore::migrate::migrate(&mut store, to, &self.cfg.driver_opts, &running, prune)
                .ctx(|| format!("migrate to {to}"))?;
        Ok(MigrateOutcome {
            plan,
            done: Some(done),
        })
    }

    /// Events recorded between `since` and `until` (seconds since the epoch).
    pub fn events(
        &self,
        since: Option<u64>,
        until: Option<u64>,
    ) -> Result<Vec<crate::events::Event>> {
        crate::events::read(&self.cfg.data_root, since, until)
    }

    /// Events as they are recorded (by any process on the data root), for followers: one
    /// reader per engine, however many follow.
    pub fn event_feed(&self) -> Arc<crate::events::feed::Feed> {
        self.feed
            .get_or_init(|| crate::events::feed::Feed::start(&self.cfg.data_root))
            .clone()
    }
}
