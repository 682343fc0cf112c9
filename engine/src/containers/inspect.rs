//! Looking containers up and describing them: the record and runtime state together,
//! the list `ps` shows and the document `inspect` prints (Docker's shape).

use super::bundle::Bundle;
use crate::error::Result;
use crate::Engine;
use layerstore::containers::ContainerRecord;
use layerstore::Store;
use runtime::state::{State, Status};
use serde_json::json;

/// A container as every command sees it: its record, folder and runtime state.
#[derive(Debug, Clone)]
pub struct ContainerView {
    pub record: ContainerRecord,
    pub bundle: Bundle,
    pub state: State,
}

impl ContainerView {
    /// Its status as it really is (a `running` whose process is gone is `exited`).
    pub fn status(&self) -> Status {
        self.state.effective_status()
    }

    /// Docker's state word: its status, or `paused` for a running container that is frozen.
    pub fn state_word(&self) -> &'static str {
        if self.paused() {
            "paused"
        } else {
            self.status().as_str()
        }
    }

    /// Whether it runs and is frozen by `pause`.
    pub fn paused(&self) -> bool {
        self.status() == Status::Running && self.state.paused
    }

    /// Its `NetworkSettings` in Docker's shape: networks, addresses, published ports.
    pub fn network_settings(&self) -> serde_json::Value {
        crate::networks::network_settings(self.bundle.data_root(), &self.record.id)
    }

    /// [`ContainerView::network_settings`] from network records read once for a listing.
    pub fn network_settings_in(
        &self,
        nets: &[network::records::NetworkRecord],
    ) -> serde_json::Value {
        crate::networks::network_settings_in(nets, self.bundle.data_root(), &self.record.id)
    }

    pub(crate) fn of_record(store: &Store, record: ContainerRecord) -> ContainerView {
        let bundle = Bundle::of(&store.root, &record.id);
        let state = bundle.state_or_default();
        ContainerView {
            record,
            bundle,
            state,
        }
    }

    /// The document `inspect` prints for it.
    pub fn to_json(&self, store: &Store) -> Result<serde_json::Value> {
        let c = &self.record;
        let st = &self.state;
        let mounted = if c.driver == store.driver.name() && store.driver.exists(&c.layer) {
            store.driver.mount_count(&c.layer)?
        } else {
            0
        };
        let status = self.status();
        let running = status == Status::Running;
        let time = |t: Option<f64>| t.map(|t| layerstore::export::rfc3339(t as u64));
        let mut doc = json!({
            "Id": c.id,
            "Name": c.name,
            "Image": c.image.to_string(),
            "Config": {"Image": c.image_ref},
            "Created": layerstore::export::rfc3339(c.created),
            "State": {
                "Status": self.state_word(),
                "Paused": self.paused(),
                "Running": running,
                "Pid": if running { st.pid } else { 0 },
                "ExitCode": st.exit_code.unwrap_or(0),
                "OOMKilled": st.oom_killed,
                "Error": st.error.clone().unwrap_or_default(),
                "StartedAt": time(st.started_at),
                "FinishedAt": time(st.finished_at),
            },
            "GraphDriver": {"Name": c.driver, "Data": graph_data(store, c, mounted)},
            "HostConfig": self.host_config_with_limits(),
            "NetworkSettings": self.network_settings(),
        });
        // Only a container with checks has `Health` (clients read its absence as none).
        if let Some(h) = self.bundle.health() {
            doc["State"]["Health"] = serde_json::to_value(h)?;
        }
        Ok(doc)
    }

    /// Its `Status` as `ps` shows it ("Up 5 seconds (healthy)").
    pub fn status_text(&self) -> String {
        let health = if self.paused() {
            None
        } else {
            self.bundle.health()
        };
        super::status::status_text(&self.state, health.as_ref(), runtime::state::now())
    }

    /// Its health status (`starting`, `healthy`, `unhealthy`), or `none` without checks:
    /// the `health` filter's words.
    pub fn health_word(&self) -> String {
        self.bundle
            .health()
            .map(|h| h.status)
            .unwrap_or_else(|| "none".into())
    }

    /// The stored HostConfig (the limits as given, and as `update` changed them).
    fn host_config_with_limits(&self) -> serde_json::Value {
        let mut hc = self.bundle.host_config();
        if !hc.is_object() {
            hc = json!({});
        }
        hc
    }
}

/// The container layer's own directories, as Docker's inspect shows them.
fn graph_data(store: &Store, c: &ContainerRecord, mounted: u32) -> serde_json::Value {
    let mut d = serde_json::json!({"Layer": c.layer, "Mounts": mounted});
    if c.driver == store.driver.name() && store.driver.exists(&c.layer) {
        if let Ok(upper) = store.driver.diff_dir(&c.layer) {
            d["UpperDir"] = upper.display().to_string().into();
        }
        if let Ok(lowers) = store.driver.lower_dirs(&c.layer) {
            let l: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
            if !l.is_empty() {
                d["LowerDir"] = l.join(":").into();
            }
        }
    }
    d
}

impl Engine {
    /// Container `key` (name, id or unique id prefix) with its state.
    pub fn container(&self, key: &str) -> Result<ContainerView> {
        let store = self.store_ro()?;
        let c = store.resolve_container(key)?;
        Ok(ContainerView::of_record(&store, c))
    }

    /// Every container (or only running ones), newest first.
    pub fn containers(&self, all: bool) -> Result<Vec<ContainerView>> {
        let store = self.store_ro()?;
        Ok(Self::list_in(&store, all)?)
    }

    fn list_in(store: &Store, all: bool) -> layerstore::Result<Vec<ContainerView>> {
        let mut out: Vec<ContainerView> = store
            .containers
            .all()?
            .into_iter()
            .map(|(_, c)| ContainerView::of_record(store, c))
            .collect();
        out.sort_by_key(|v| std::cmp::Reverse(v.record.created));
        if !all {
            out.retain(|v| v.state.is_running());
        }
        Ok(out)
    }

    /// The `inspect` documents of containers (or only running ones), newest first.
    pub fn containers_json(&self, all: bool) -> Result<Vec<serde_json::Value>> {
        let store = self.store_ro()?;
        Self::list_in(&store, all)?
            .iter()
            .map(|v| v.to_json(&store))
            .collect()
    }

    /// The `inspect` document of container `key`.
    pub fn container_json(&self, key: &str) -> Result<serde_json::Value> {
        let store = self.store_ro()?;
        let c = store.resolve_container(key)?;
        ContainerView::of_record(&store, c).to_json(&store)
    }

    /// Containers whose runtime spec binds `source` (a volume's mountpoint).
    pub(crate) fn users_of(store: &Store, source: &std::path::Path) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (_, c) in store.containers.all()? {
            let Ok(spec) = Bundle::of(&store.root, &c.id).spec() else {
                continue;
            };
            if runtime::spec::bind_sources(&spec)
                .iter()
                .any(|s| s == source)
            {
                out.push(c.name.clone());
            }
        }
        Ok(out)
    }
}
